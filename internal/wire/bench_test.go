package wire

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// loopReader serves data again and again, so a benchmark reads a fresh
// response each iteration without resetting anything.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// benchResultSet is a 100-row, 3-column text result set as a backend sends
// it in answer to a COM_QUERY.
func benchResultSet() [][]byte {
	rows := make([][]byte, 100)
	for i := range rows {
		rows[i] = textRow(fmt.Sprint(i), fmt.Sprintf("user-%d@example.com", i), nil)
	}
	return resultSet(auto, auto, []string{"id", "email", "deleted_at"}, rows...)
}

func BenchmarkRelayResultSet(b *testing.B) {
	response := benchResultSet()
	stream := frameAll(1, response...)
	for _, bc := range []struct {
		name string
		dst  func() *Conn
	}{
		// The client is a real Conn whose socket drops everything: the
		// whole forwarding path runs.
		{"client", func() *Conn { return NewConn(&memConn{w: io.Discard}) }},
		// Draining a pooled connection's leftover response.
		{"nil", func() *Conn { return nil }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := NewConn(&memConn{r: &loopReader{data: stream}})
			dst := bc.dst()
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				src.Seq = 1
				if dst != nil {
					dst.Seq = 1
				}
				res, err := Relay(dst, src, ModeText, time.Minute, time.Minute)
				if err != nil || res.Rows != 100 {
					b.Fatalf("Relay = %d rows, %v", res.Rows, err)
				}
			}
		})
	}
}

func BenchmarkReadPacket(b *testing.B) {
	for _, size := range []int{64, 16 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			// 256 packets, so the sequence ids wrap back to where the
			// stream starts again.
			var stream []byte
			seq := byte(0)
			payload := bigPayload(size, nil)
			for range 256 {
				stream = frame(stream, &seq, payload)
			}
			c := NewConn(&memConn{r: &loopReader{data: stream}})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				p, err := c.ReadPacket(1 << 20)
				if err != nil || len(p) != size {
					b.Fatalf("ReadPacket = %d bytes, %v", len(p), err)
				}
			}
		})
	}
}

func BenchmarkAppendOK(b *testing.B) {
	ok := OK{AffectedRows: 70000, LastInsertID: 1 << 33, Status: auto | StatusInTrans, Warnings: 1}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendOK(buf[:0], ok)
	}
	if len(buf) != 1+4+9+4 {
		b.Fatalf("OK packet of %d bytes", len(buf))
	}
}
