package wire

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"
)

const bufSize = 16 << 10

// Conn frames MySQL packets over a net.Conn. It keeps one reusable buffer
// for logical packets, so a returned payload is valid only until the next
// read. It is not safe for concurrent use.
type Conn struct {
	NC  net.Conn
	R   *bufio.Reader
	W   *bufio.Writer
	Seq byte // sequence id of the next packet, read or written

	// NoLocalInfile marks a client that did not offer CLIENT_LOCAL_FILES:
	// Relay does not forward a server's file request to it.
	NoLocalInfile bool
	// GTIDSink, on a backend connection, hears every GTID the server
	// reports for it (see StripSessionState).
	GTIDSink GTIDSink

	buf     []byte
	scratch []byte
	hdr     [4]byte
}

// NewConn wraps nc.
func NewConn(nc net.Conn) *Conn {
	return &Conn{NC: nc, R: bufio.NewReaderSize(nc, bufSize), W: bufio.NewWriterSize(nc, bufSize)}
}

// Reset points c at a new net.Conn (after a TLS upgrade) keeping Seq.
func (c *Conn) Reset(nc net.Conn) {
	c.NC = nc
	c.R.Reset(nc)
	c.W.Reset(nc)
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
func (c *Conn) SetReadTimeout(d time.Duration) {
	if d <= 0 {
		c.NC.SetReadDeadline(time.Time{})
		return
	}
	c.NC.SetReadDeadline(time.Now().Add(d))
}

// SetWriteTimeout arms a write deadline d from now; d <= 0 clears it.
func (c *Conn) SetWriteTimeout(d time.Duration) {
	if d <= 0 {
		c.NC.SetWriteDeadline(time.Time{})
		return
	}
	c.NC.SetWriteDeadline(time.Now().Add(d))
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
