package wire

import (
	"errors"
	"io"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// RelayMode says which response shape to expect.
type RelayMode uint8

const (
	ModeText      RelayMode = iota // COM_QUERY: OK | ERR | LOCAL INFILE | result sets, possibly several
	ModeBinary                     // COM_STMT_EXECUTE: like text, rows in binary form, may open a cursor
	ModeFetch                      // COM_STMT_FETCH: rows then EOF, or ERR
	ModeFieldList                  // COM_FIELD_LIST: column definitions then EOF, or ERR
	ModeSingle                     // COM_STATISTICS and friends: one packet
)

// Result summarises a relayed response.
type Result struct {
	OK          OK     // last OK packet, if any
	Status      uint16 // last server status seen (OK or EOF)
	HasStatus   bool   // Status was carried by the response (ERR packets carry none)
	Warnings    uint16 // warning count of the last OK or EOF
	Err         *Error // the response ended in an ERR packet
	LocalInfile bool   // the server asked for a local file; the caller streams it, then relays again
	CursorOpen  bool   // COM_STMT_EXECUTE opened a cursor
	Rows        int64
	Bytes       int64     // payload bytes forwarded
	Wrote       bool      // at least one packet was forwarded to the client
	Partial     bool      // the backend failed inside a packet already partly forwarded
	GTID        gtid.GTID // last_gtid reported by an OK packet of the response (session tracking)
	HasGTID     bool
}

// Side tells which end of a relay failed.
type Side uint8

const (
	SideBackend Side = iota + 1
	SideClient
)

// RelayError is a network failure during Relay.
type RelayError struct {
	Side Side
	Err  error
}

func (e *RelayError) Error() string {
	if e.Side == SideClient {
		return "client: " + e.Err.Error()
	}
	return "backend: " + e.Err.Error()
}

func (e *RelayError) Unwrap() error { return e.Err }

// IsTimeout reports whether err is a network deadline.
func IsTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

const smallPacket = 4096

type relayState uint8

const (
	stFirst relayState = iota
	stColumns
	stColumnsEOF
	stRows
	stFieldList
)

// Relay copies one complete response from src (a backend) to dst (a client),
// packet by packet, renumbering sequence ids for dst. Rows are never decoded:
// only the first bytes of each packet are looked at to find where the
// response ends. A nil dst discards the response. timeout bounds each wait
// for the backend; dstTimeout bounds each flush to the client.
func Relay(dst, src *Conn, mode RelayMode, timeout, dstTimeout time.Duration) (Result, error) {
	var res Result
	state := stFirst
	if mode == ModeFetch {
		state = stRows
	} else if mode == ModeFieldList {
		state = stFieldList
	}
	cols := uint64(0)
	cont := false
	var dstErr error
	for {
		if dstErr != nil {
			// The client is gone: stop at this packet boundary rather than
			// read the rest of what may be a huge result for nobody. The
			// caller drops the backend connection (and kills the query).
			return res, &RelayError{SideClient, dstErr}
		}
		if src.R.Buffered() < 4 {
			if dst != nil && dstErr == nil && dst.W.Buffered() > 0 {
				dst.SetWriteTimeout(dstTimeout)
				dstErr = dst.Flush()
			}
			src.SetReadTimeout(timeout)
		}
		n, err := src.ReadHeader()
		if err != nil {
			return res, &RelayError{SideBackend, err}
		}
		if cont || n > smallPacket {
			// Continuation of a large logical packet, or a large row or
			// column: forward without looking. Only the first physical
			// packet of a logical one is a row or a column; the state must
			// advance the same way whether or not the client is still there.
			if !cont {
				switch state {
				case stRows:
					res.Rows++
				case stColumns:
					if cols--; cols == 0 {
						state = stColumnsEOF
					}
				}
			}
			cont = n == MaxPayload
			if dst != nil && dstErr == nil {
				res.Wrote = true
				dstErr = dst.WriteHeader(n)
			}
			if dst == nil || dstErr != nil {
				// Drained even when the header could not be written, or
				// the next header would be read from the middle of this
				// payload.
				if src.Sum != nil {
					if err := src.sumDiscard(n, timeout); err != nil {
						return res, &RelayError{SideBackend, err}
					}
					res.Bytes += int64(n)
					continue
				}
				if _, err := src.R.Discard(n); err != nil {
					return res, &RelayError{SideBackend, err}
				}
				res.Bytes += int64(n)
				continue
			}
			if err := copyN(dst, src, n, &dstErr, timeout, dstTimeout); err != nil {
				res.Partial = dstErr == nil
				return res, &RelayError{SideBackend, err}
			}
			res.Bytes += int64(n)
			continue
		}
		cont = false
		p := src.small(n)
		if _, err := io.ReadFull(src.R, p); err != nil {
			return res, &RelayError{SideBackend, err}
		}
		// Counted once read: a header alone may announce 16 MiB that never
		// come.
		res.Bytes += int64(n)
		done := false
		prev := state
		switch state {
		case stFirst:
			switch {
			case mode == ModeSingle:
				p = src.trackOK(p, &res)
				n = len(p)
				done = true
			case len(p) > 0 && p[0] == iOK:
				p = src.trackOK(p, &res)
				n = len(p)
				if ok, good := ParseOK(p); good {
					res.OK, res.Status, res.HasStatus, res.Warnings = ok, ok.Status, true, ok.Warnings
				}
				done = res.Status&StatusMoreResultsExists == 0
			case IsERR(p):
				res.Err = ParseError(p)
				done = true
			case len(p) > 0 && p[0] == iLocalInfile && mode == ModeText:
				res.LocalInfile = true
				done = true
			default:
				c, _, _, good := ReadLenEncInt(p)
				if !good || c == 0 {
					return res, &RelayError{SideBackend, ErrMalformed}
				}
				cols = c
				state = stColumns
			}
		case stColumns:
			if cols--; cols == 0 {
				state = stColumnsEOF
			}
		case stColumnsEOF:
			if IsERR(p) {
				res.Err = ParseError(p)
				done = true
				break
			}
			if w, st, good := ParseEOF(p); good {
				res.Status, res.HasStatus, res.Warnings = st, true, w
				if mode == ModeBinary && st&StatusCursorExists != 0 {
					res.CursorOpen = true
					done = true
					break
				}
			}
			state = stRows
		case stRows:
			switch {
			case IsEOF(p):
				if w, st, good := ParseEOF(p); good {
					res.Status, res.HasStatus, res.Warnings = st, true, w
				}
				if res.Status&StatusMoreResultsExists != 0 && mode != ModeFetch {
					state = stFirst
				} else {
					done = true
				}
			case IsERR(p):
				res.Err = ParseError(p)
				done = true
			default:
				res.Rows++
			}
		case stFieldList:
			switch {
			case IsEOF(p):
				done = true
			case IsERR(p):
				res.Err = ParseError(p)
				done = true
			}
		}
		if src.Sum != nil {
			src.Sum.add(prev, mode, p)
		}
		if res.LocalInfile && dst != nil && dst.NoLocalInfile {
			// The client cannot answer a file request; the caller refuses
			// it on the client's behalf.
			return res, nil
		}
		if dst != nil && dstErr == nil {
			res.Wrote = true
			if dst.W.Available() < n+4 {
				dst.SetWriteTimeout(dstTimeout) // this write flushes a full buffer
			}
			if dstErr = dst.WriteHeader(n); dstErr == nil {
				_, dstErr = dst.W.Write(p)
			}
		}
		if done {
			if dst != nil && dstErr == nil {
				dst.SetWriteTimeout(dstTimeout)
				dstErr = dst.Flush()
			}
			if dstErr != nil {
				return res, &RelayError{SideClient, dstErr}
			}
			return res, nil
		}
	}
}

// trackOK removes session-state data from an OK packet (see
// StripSessionState) and records the GTID it reported, telling the sink
// before the packet is forwarded.
func (c *Conn) trackOK(p []byte, res *Result) []byte {
	if !c.SessionTrack {
		return p
	}
	p, g, ok := StripSessionState(p)
	if ok {
		res.GTID, res.HasGTID = g, true
		if c.GTIDSink != nil {
			c.GTIDSink.NoteGTID(g)
		}
	}
	return p
}

// small returns a scratch slice of length n for short packets.
func (c *Conn) small(n int) []byte {
	if cap(c.scratch) < n {
		c.scratch = make([]byte, n, max(n, 512))
	}
	return c.scratch[:n]
}

// copyN moves n payload bytes from src to dst in chunks, so a large row never
// needs a buffer of its own size. A client write failure is recorded in
// dstErr and the rest of this packet is drained, so Relay stops at a packet
// boundary.
// Deadlines are re-armed per chunk: a large row that arrives, or is read
// by the client, slowly but steadily is not a frozen peer.
func copyN(dst, src *Conn, n int, dstErr *error, timeout, dstTimeout time.Duration) error {
	for n > 0 {
		chunk := src.small(min(n, 32<<10))
		if src.R.Buffered() < len(chunk) {
			src.SetReadTimeout(timeout)
		}
		if dst.W.Available() < len(chunk) {
			dst.SetWriteTimeout(dstTimeout)
		}
		if _, err := io.ReadFull(src.R, chunk); err != nil {
			return err
		}
		if src.Sum != nil {
			src.Sum.addLarge(chunk)
		}
		if *dstErr == nil {
			_, *dstErr = dst.W.Write(chunk)
		}
		n -= len(chunk)
	}
	return nil
}

// sumDiscard reads and sums n payload bytes nobody receives (a replayed
// statement's large row).
func (c *Conn) sumDiscard(n int, timeout time.Duration) error {
	for n > 0 {
		chunk := c.small(min(n, 32<<10))
		if c.R.Buffered() < len(chunk) {
			c.SetReadTimeout(timeout)
		}
		if _, err := io.ReadFull(c.R, chunk); err != nil {
			return err
		}
		c.Sum.addLarge(chunk)
		n -= len(chunk)
	}
	return nil
}
