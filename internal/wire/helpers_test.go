package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Some tests use net.Pipe; a goroutine left blocked on one would hide a
// Relay that never returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memConn is a net.Conn over an in-memory reader and writer, so Conn and
// Relay can be driven without sockets. Deadlines are accepted and ignored:
// in-memory reads never block.
type memConn struct {
	r io.Reader
	w io.Writer
}

var errNoReader = errors.New("memConn: no reader")

func (c *memConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return 0, errNoReader
	}
	return c.r.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.w == nil {
		return len(p), nil
	}
	return c.w.Write(p)
}

func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// readerConn returns a Conn that reads b and discards writes.
func readerConn(b []byte) *Conn { return NewConn(&memConn{r: bytes.NewReader(b)}) }

// errClientGone stands for a client that disconnected mid-response.
var errClientGone = errors.New("client went away")

// failWriter accepts the first `after` bytes, then fails every write, like a
// socket whose peer has gone.
type failWriter struct {
	after int
	got   bytes.Buffer
}

func (w *failWriter) Write(p []byte) (int, error) {
	room := w.after - w.got.Len()
	if room >= len(p) {
		return w.got.Write(p)
	}
	if room > 0 {
		w.got.Write(p[:room])
		return room, errClientGone
	}
	return 0, errClientGone
}

// frame appends payload as physical packets starting at *seq. It is written
// independently of Conn.WritePacket so that the tests do not check the codec
// against itself.
func frame(b []byte, seq *byte, payload []byte) []byte {
	for {
		n := min(len(payload), MaxPayload)
		b = append(b, byte(n), byte(n>>8), byte(n>>16), *seq)
		*seq++
		b = append(b, payload[:n]...)
		payload = payload[n:]
		if n < MaxPayload {
			return b
		}
	}
}

// frameAll frames logical packets starting at sequence seq.
func frameAll(seq byte, payloads ...[]byte) []byte {
	var b []byte
	for _, p := range payloads {
		b = frame(b, &seq, p)
	}
	return b
}

// physicalCount is the number of physical packets payloads occupy.
func physicalCount(payloads ...[]byte) int {
	n := 0
	for _, p := range payloads {
		n += len(p)/MaxPayload + 1
	}
	return n
}

func okPkt(affected, lastID uint64, status uint16) []byte {
	return AppendOK(nil, OK{AffectedRows: affected, LastInsertID: lastID, Status: status})
}

func eofPkt(status uint16) []byte { return AppendEOF(nil, 0, status) }

func errPkt(code uint16, state, msg string) []byte {
	return AppendError(nil, &Error{Code: code, State: state, Message: msg})
}

func colCount(n uint64) []byte { return AppendLenEncInt(nil, n) }

func colDef(name string) []byte {
	return AppendColumnDef(nil, Column{Name: name, Type: TypeVarString, Charset: 45, Length: 1024})
}

// textRow builds a text-protocol row; a nil value is SQL NULL (0xfb).
func textRow(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			b = append(b, 0xfb)
		case string:
			b = AppendLenEncString(b, []byte(v))
		case []byte:
			b = AppendLenEncString(b, v)
		default:
			panic("textRow: unsupported value")
		}
	}
	return b
}

// resultSet returns the packets of one text or binary result set: column
// count, definitions, EOF, rows, EOF.
func resultSet(colStatus, endStatus uint16, cols []string, rows ...[]byte) [][]byte {
	ps := [][]byte{colCount(uint64(len(cols)))}
	for _, c := range cols {
		ps = append(ps, colDef(c))
	}
	ps = append(ps, eofPkt(colStatus))
	ps = append(ps, rows...)
	return append(ps, eofPkt(endStatus))
}

func concat(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func payloadBytes(payloads ...[]byte) int64 {
	var n int64
	for _, p := range payloads {
		n += int64(len(p))
	}
	return n
}

// bigPayload returns n bytes of a repeating pattern, with the bytes at the
// given offsets overwritten, so a test can put a marker where a continuation
// packet starts.
func bigPayload(n int, at map[int]byte) []byte {
	// bytes.Repeat rather than a loop: a per-byte loop over 20 MiB is slow
	// under -race.
	b := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), n/26+1)[:n]
	for off, v := range at {
		b[off] = v
	}
	return b
}
