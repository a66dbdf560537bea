package wire

import (
	"bytes"
	"testing"
	"time"
)

// sumOf relays stream with a ResultSum on the backend connection, to a
// client or to nobody (as a replay does), and returns the sum.
func sumOf(t *testing.T, mode RelayMode, stream []byte, toClient bool) uint64 {
	t.Helper()
	src := readerConn(stream)
	src.Seq = 1
	var sum ResultSum
	sum.Reset()
	src.Sum = &sum
	var dst *Conn
	if toClient {
		dst = NewConn(&memConn{w: new(bytes.Buffer)})
	}
	if _, err := Relay(dst, src, mode, time.Second, time.Second); err != nil {
		t.Fatalf("relay: %v", err)
	}
	return sum.Sum64()
}

func TestResultSumCoversWhatTheClientSaw(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 3*smallPacket) // a row relayed without looking
	rows := func(colSt, endSt uint16, vals ...string) []byte {
		var rs [][]byte
		for _, v := range vals {
			rs = append(rs, textRow(v))
		}
		return frameAll(1, resultSet(colSt, endSt, []string{"v"}, rs...)...)
	}
	withWarnings := func(p []byte, w uint16) []byte { // OK: status at len-4.., warnings last two bytes
		q := append([]byte(nil), p...)
		q[len(q)-2], q[len(q)-1] = byte(w), byte(w>>8)
		return q
	}
	cases := []struct {
		name string
		a, b []byte
		same bool
	}{
		{"same rows, other status flags", rows(StatusInTrans, StatusInTrans, "a", "b"), rows(StatusAutocommit, StatusInTrans|StatusAutocommit, "a", "b"), true},
		{"a row differs", rows(0, 0, "a", "b"), rows(0, 0, "a", "c"), false},
		{"a row more", rows(0, 0, "a"), rows(0, 0, "a", "a"), false},
		{"same OK, other status", frameAll(1, okPkt(1, 7, StatusInTrans)), frameAll(1, okPkt(1, 7, StatusInTrans|StatusAutocommit)), true},
		{"same OK, other warning count", frameAll(1, okPkt(1, 7, 0)), frameAll(1, withWarnings(okPkt(1, 7, 0), 3)), true},
		{"affected rows differ", frameAll(1, okPkt(1, 7, 0)), frameAll(1, okPkt(2, 7, 0)), false},
		{"insert id differs", frameAll(1, okPkt(1, 7, 0)), frameAll(1, okPkt(1, 8, 0)), false},
		{"error instead of OK", frameAll(1, okPkt(0, 0, 0)), frameAll(1, errPkt(1213, "40001", "Deadlock found")), false},
		{"large rows differ", frameAll(1, resultSet(0, 0, []string{"v"}, textRow(append(big, 'a')))...),
			frameAll(1, resultSet(0, 0, []string{"v"}, textRow(append(big, 'b')))...), false},
		{"large rows equal", frameAll(1, resultSet(0, 0, []string{"v"}, textRow(append(big, 'a')))...),
			frameAll(1, resultSet(StatusInTrans, StatusInTrans, []string{"v"}, textRow(append(big, 'a')))...), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Relayed to the client the first time and replayed to nobody
			// the second: the sum must not depend on that.
			a, b := sumOf(t, ModeText, c.a, true), sumOf(t, ModeText, c.b, false)
			if (a == b) != c.same {
				t.Errorf("sums %x and %x: equal %v, want %v", a, b, a == b, c.same)
			}
		})
	}
}

func TestResultSumMarksLocalInfile(t *testing.T) {
	src := readerConn(frameAll(1, append([]byte{iLocalInfile}, "/tmp/f"...)))
	src.Seq = 1
	var sum ResultSum
	sum.Reset()
	src.Sum = &sum
	if _, err := Relay(nil, src, ModeText, time.Second, 0); err != nil {
		t.Fatal(err)
	}
	if !sum.LocalInfile {
		t.Error("a LOCAL INFILE request did not mark the sum")
	}
}

// Summing must cost no allocation per packet: it runs for every response
// of an open transaction.
func TestResultSumDoesNotAllocate(t *testing.T) {
	stream := frameAll(1, resultSet(0, 0, []string{"a", "b"}, textRow("1", "x"), textRow("2", "y"))...)
	var sum ResultSum
	br := bytes.NewReader(stream)
	mc := &memConn{r: br}
	src := NewConn(mc)
	allocs := testing.AllocsPerRun(100, func() {
		br.Reset(stream)
		src.R.Reset(mc)
		src.Seq = 1
		sum.Reset()
		src.Sum = &sum
		if _, err := Relay(nil, src, ModeText, time.Second, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per summed response, want 0", allocs)
	}
}

// FuzzResultSum: a response sums the same whether Relay forwards it to a
// client or discards it (as a replay does), and summing never changes
// what is relayed or how much is read.
func FuzzResultSum(f *testing.F) {
	for _, s := range relaySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		stream = renumber(stream, 1)
		for mode := ModeText; mode <= ModeSingle; mode++ {
			run := func(toClient, sum bool) (Result, error, uint64, int, []byte) {
				src := readerConn(stream)
				src.Seq = 1
				var rs ResultSum
				rs.Reset()
				if sum {
					src.Sum = &rs
				}
				var out bytes.Buffer
				var dst *Conn
				if toClient {
					dst = NewConn(&memConn{w: &out})
				}
				res, err := Relay(dst, src, mode, time.Second, time.Second)
				if dst != nil {
					dst.Flush()
				}
				return res, err, rs.Sum64(), src.R.Buffered(), out.Bytes()
			}
			res1, err1, sum1, left1, out1 := run(true, true)
			res2, err2, sum2, _, _ := run(false, true)
			res3, err3, _, left3, out3 := run(true, false)
			if (err1 == nil) != (err3 == nil) || left1 != left3 || !bytes.Equal(out1, out3) || res1.Rows != res3.Rows {
				t.Fatalf("mode %d: summing changed the relay: err %v / %v, left %d / %d", mode, err1, err3, left1, left3)
			}
			if err1 == nil && err2 == nil && !res1.LocalInfile && res1.Rows == res2.Rows && sum1 != sum2 {
				t.Fatalf("mode %d: sums %x relayed, %x discarded", mode, sum1, sum2)
			}
		}
	})
}
