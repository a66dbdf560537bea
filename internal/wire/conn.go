package wire

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

const bufSize = 16 << 10

// Conn frames MySQL packets over a net.Conn. It keeps one reusable buffer
// for logical packets, so a returned payload is valid only until the next
// read. It is not safe for concurrent use.
type Conn struct {
	NC  net.Conn
	R   *Reader
	W   *bufio.Writer // nil while a lending Conn is idle; see Hold
	Seq byte          // sequence id of the next packet, read or written

	// NoLocalInfile marks a client that did not offer CLIENT_LOCAL_FILES:
	// Relay does not forward a server's file request to it.
	NoLocalInfile bool
	// GTIDSink, on a backend connection, hears every GTID the server
	// reports for it (see StripSessionState).
	GTIDSink GTIDSink
	// SessionTrack: the peer negotiated CLIENT_SESSION_TRACK, so its OK
	// packets may carry session state that Relay strips for clients. A
	// peer that did not may send any bytes after the status there.
	SessionTrack bool
	// Sum, on a backend connection, hears what Relay reads of responses
	// (transaction replay); nil when nobody records.
	Sum *ResultSum

	buf     []byte
	scratch []byte
	hdr     [4]byte

	// The deadlines last armed on NC; a zero time is none. Known is false
	// until the first Set after NewConn or Reset, when what NC has armed is
	// not known.
	rdl, wdl           time.Time
	rdlKnown, wdlKnown bool

	lend bool // buffers are borrowed while a command runs: see Hold and Idle
}

// NewConn wraps nc with buffers of its own, for connections that are busy
// most of their life (backends).
func NewConn(nc net.Conn) *Conn {
	return &Conn{NC: nc, R: NewReader(nc), W: bufio.NewWriterSize(nc, bufSize)}
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}

// NewLendingConn wraps nc for a connection that is idle most of its life
// (clients): it holds no buffer while it waits for its next command. Call
// Hold before writing and Idle once a command is answered.
func NewLendingConn(nc net.Conn) *Conn {
	c := &Conn{NC: nc, R: NewLendingReader(nc), lend: true}
	c.Hold()
	return c
}

// Hold makes sure the write buffer is there.
func (c *Conn) Hold() {
	if c.W == nil {
		c.W = writers.Get().(*bufio.Writer)
		c.W.Reset(c.NC)
	}
}

// Idle gives the buffers of a lending Conn back to their pools when they
// hold nothing (a client that pipelined its next command keeps its read
// buffer), so that an idle client costs only its socket and session.
func (c *Conn) Idle() {
	if !c.lend {
		return
	}
	if c.W != nil && c.W.Buffered() == 0 {
		c.W.Reset(nil)
		writers.Put(c.W)
		c.W = nil
	}
	c.R.Release()
	if cap(c.buf) > 4<<10 {
		c.buf = nil
	}
	c.scratch = nil
}

// Reset points c at a new net.Conn (after a TLS upgrade) keeping Seq.
func (c *Conn) Reset(nc net.Conn) {
	c.NC = nc
	c.R.Reset(nc)
	c.Hold()
	c.W.Reset(nc)
	c.rdlKnown, c.wdlKnown = false, false
}

// ReadHeader reads one physical packet header and checks its sequence id.
func (c *Conn) ReadHeader() (length int, err error) {
	if _, err := io.ReadFull(c.R, c.hdr[:]); err != nil {
		return 0, err
	}
	length = int(c.hdr[0]) | int(c.hdr[1])<<8 | int(c.hdr[2])<<16
	if c.hdr[3] != c.Seq {
		return 0, fmt.Errorf("%w: got sequence %d, want %d", ErrSequence, c.hdr[3], c.Seq)
	}
	c.Seq++
	return length, nil
}

// ReadPacket reads one logical packet, joining continuation packets. With
// max > 0 a larger packet is drained from the connection and ErrPacketTooLarge
// is returned, so the stream stays in sync and the caller may answer 1153.
func (c *Conn) ReadPacket(max int) ([]byte, error) {
	c.buf = c.buf[:0]
	tooLarge := false
	for {
		n, err := c.ReadHeader()
		if err != nil {
			return nil, err
		}
		if tooLarge || (max > 0 && len(c.buf)+n > max) {
			tooLarge = true
			c.buf = c.buf[:0]
			if _, err := c.R.Discard(n); err != nil {
				return nil, err
			}
		} else {
			start := len(c.buf)
			c.buf = grow(c.buf, n)
			if _, err := io.ReadFull(c.R, c.buf[start:]); err != nil {
				return nil, err
			}
		}
		if n < MaxPayload {
			break
		}
	}
	if tooLarge {
		return nil, ErrPacketTooLarge
	}
	// Don't let one huge packet pin megabytes for the connection's lifetime.
	p := c.buf
	if cap(c.buf) > 1<<20 {
		c.buf = nil
	}
	return p, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// WritePacket buffers one logical packet, splitting it at 16 MiB. Call Flush
// to send.
func (c *Conn) WritePacket(payload []byte) error {
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		c.hdr = [4]byte{byte(n), byte(n >> 8), byte(n >> 16), c.Seq}
		c.Seq++
		if _, err := c.W.Write(c.hdr[:]); err != nil {
			return err
		}
		if _, err := c.W.Write(payload[:n]); err != nil {
			return err
		}
		payload = payload[n:]
		if n < MaxPayload {
			return nil
		}
	}
}

// WriteHeader buffers a physical packet header with the next sequence id.
func (c *Conn) WriteHeader(length int) error {
	c.hdr = [4]byte{byte(length), byte(length >> 8), byte(length >> 16), c.Seq}
	c.Seq++
	_, err := c.W.Write(c.hdr[:])
	return err
}

// Flush sends buffered packets.
func (c *Conn) Flush() error { return c.W.Flush() }

// WriteFlush writes one packet and flushes.
func (c *Conn) WriteFlush(payload []byte) error {
	if err := c.WritePacket(payload); err != nil {
		return err
	}
	return c.W.Flush()
}

// WriteCommand starts a new command (sequence 0) and sends it.
func (c *Conn) WriteCommand(payload []byte) error {
	c.Seq = 0
	return c.WriteFlush(payload)
}

// SetReadTimeout arms a read deadline d from now; d <= 0 clears it.
//
// A busy connection re-arms its timer a few times per second at most, not
// several times per statement: the deadline is armed a little past d
// (deadlineSlack) and left alone while it still falls within d to
// d+slack from now. The wait it bounds so ends no earlier than d and at
// most the slack later.
func (c *Conn) SetReadTimeout(d time.Duration) {
	if dl, ok := nextDeadline(c.rdl, c.rdlKnown, d); ok {
		c.NC.SetReadDeadline(dl)
		c.rdl, c.rdlKnown = dl, true
	}
}

// SetWriteTimeout arms a write deadline d from now; d <= 0 clears it. See
// SetReadTimeout.
func (c *Conn) SetWriteTimeout(d time.Duration) {
	if dl, ok := nextDeadline(c.wdl, c.wdlKnown, d); ok {
		c.NC.SetWriteDeadline(dl)
		c.wdl, c.wdlKnown = dl, true
	}
}

// deadlineSlack is how much later than asked a deadline may fire: a
// sixteenth of the timeout, at most 250 ms (so a 1 h query timeout is not
// minutes late).
func deadlineSlack(d time.Duration) time.Duration {
	return min(d/16, 250*time.Millisecond)
}

// nextDeadline returns the deadline to arm for a timeout d, and false
// when the armed one (cur) already falls within d to d+slack from now.
func nextDeadline(cur time.Time, known bool, d time.Duration) (time.Time, bool) {
	if d <= 0 {
		return time.Time{}, !known || !cur.IsZero()
	}
	want := time.Now().Add(d)
	slack := deadlineSlack(d)
	if known && !cur.IsZero() && !cur.Before(want) && cur.Sub(want) <= slack {
		return cur, false
	}
	return want.Add(slack), true
}

// Close closes the network connection.
func (c *Conn) Close() error { return c.NC.Close() }

// WriteError sends an ERR packet and flushes.
func (c *Conn) WriteError(e *Error) error {
	return c.WriteFlush(AppendError(nil, e))
}

// Detach makes the next ReadPacket use a new buffer, leaving the payload
// returned last intact for whoever still holds it (the statement text of a
// LOAD DATA LOCAL INFILE while the file's packets are read).
func (c *Conn) Detach() { c.buf = nil }
