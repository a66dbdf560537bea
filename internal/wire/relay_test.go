package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// relayRun is what one Relay call did: its result, what the client received
// and what it left unread on the backend stream.
type relayRun struct {
	res      Result
	err      error
	out      []byte // bytes the client received (flushed)
	buffered int    // bytes still in dst's write buffer
	rest     []byte // backend bytes Relay did not consume
	dst      *Conn
	sink     *bytes.Buffer // receives dst's flushed bytes when no dstWriter is set
}

type relayOpts struct {
	nilDst        bool
	dstSeq        byte
	noLocalInfile bool
	dstWriter     io.Writer // nil: a bytes.Buffer
	dstBufSize    int       // 0: the default
}

func runRelay(t testing.TB, mode RelayMode, stream []byte, o relayOpts) relayRun {
	t.Helper()
	src := readerConn(stream)
	src.Seq = 1
	run := relayRun{sink: new(bytes.Buffer)}
	if !o.nilDst {
		w := o.dstWriter
		if w == nil {
			w = run.sink
		}
		run.dst = NewConn(&memConn{w: w})
		if o.dstBufSize > 0 {
			run.dst.W = bufio.NewWriterSize(run.dst.NC, o.dstBufSize)
		}
		run.dst.Seq = o.dstSeq
		run.dst.NoLocalInfile = o.noLocalInfile
	}
	run.res, run.err = Relay(run.dst, src, mode, time.Second, time.Second)
	run.out = run.sink.Bytes()
	if run.dst != nil {
		run.buffered = run.dst.W.Buffered()
	}
	rest, err := io.ReadAll(src.R)
	if err != nil {
		t.Fatalf("reading what Relay left: %v", err)
	}
	run.rest = rest
	return run
}

// trailer is the start of the next response on the same backend
// connection; Relay must leave it unread.
var trailer = frameAll(1, okPkt(42, 0, StatusAutocommit))

type relayWant struct {
	status      uint16
	affected    uint64
	lastID      uint64
	errCode     uint16
	rows        int64
	localInfile bool
	cursor      bool
}

func checkResult(t *testing.T, res Result, w relayWant) {
	t.Helper()
	if res.Status != w.status {
		t.Errorf("Status = %#x, want %#x", res.Status, w.status)
	}
	// Every case that carries a status uses a non-zero one, so a zero
	// status means none was seen: ERR packets, file requests, COM_FIELD_LIST
	// and single-packet answers carry none the session may rely on.
	if res.HasStatus != (w.status != 0) {
		t.Errorf("HasStatus = %v with status %#x", res.HasStatus, res.Status)
	}
	if res.OK.AffectedRows != w.affected || res.OK.LastInsertID != w.lastID {
		t.Errorf("OK = %d rows, id %d; want %d, %d", res.OK.AffectedRows, res.OK.LastInsertID, w.affected, w.lastID)
	}
	switch {
	case w.errCode == 0 && res.Err != nil:
		t.Errorf("Err = %v, want none", res.Err)
	case w.errCode != 0 && (res.Err == nil || res.Err.Code != w.errCode):
		t.Errorf("Err = %v, want code %d", res.Err, w.errCode)
	}
	if res.Rows != w.rows {
		t.Errorf("Rows = %d, want %d", res.Rows, w.rows)
	}
	if res.LocalInfile != w.localInfile {
		t.Errorf("LocalInfile = %v, want %v", res.LocalInfile, w.localInfile)
	}
	if res.CursorOpen != w.cursor {
		t.Errorf("CursorOpen = %v, want %v", res.CursorOpen, w.cursor)
	}
}

const (
	auto = StatusAutocommit
	more = StatusMoreResultsExists | StatusAutocommit
)

type relayCase struct {
	name     string
	mode     RelayMode
	response [][]byte // logical packets of one complete response
	want     relayWant
}

func relayCases() []relayCase {
	cols3 := []string{"id", "name", "note"}
	rows5 := [][]byte{
		textRow("1", "alice", "x"),
		textRow("2", nil, "NULL is 0xfb"),
		textRow("", "empty first column", "row starts with 0x00"),
		textRow("4", "d", nil),
		textRow(nil, nil, nil),
	}
	// Binary rows start with 0x00, like an OK packet, then the NULL bitmap
	// (offset by two bits) and the non-NULL values.
	binRow := func(bitmap byte, vals ...byte) []byte { return append([]byte{0x00, bitmap}, vals...) }
	bigint := func(v byte) []byte { return binRow(0, v, 0, 0, 0, 0, 0, 0, 0) }
	return []relayCase{
		{name: "ok", mode: ModeText,
			response: [][]byte{okPkt(3, 77, auto|StatusInTrans)},
			want:     relayWant{status: auto | StatusInTrans, affected: 3, lastID: 77}},
		{name: "ok with lenenc counters", mode: ModeText,
			response: [][]byte{okPkt(1<<40, 70000, auto)},
			want:     relayWant{status: auto, affected: 1 << 40, lastID: 70000}},
		{name: "err", mode: ModeText,
			response: [][]byte{errPkt(1064, "42000", "You have an error in your SQL syntax")},
			want:     relayWant{errCode: 1064}},
		{name: "text result set", mode: ModeText,
			response: resultSet(auto, auto|StatusNoIndexUsed, cols3, rows5...),
			want:     relayWant{status: auto | StatusNoIndexUsed, rows: 5}},
		{name: "empty result set", mode: ModeText,
			response: resultSet(auto, auto, []string{"a"}),
			want:     relayWant{status: auto}},
		{name: "row starting with 0xfe", mode: ModeText,
			// A row may start with 0xfe (an eight-byte length prefix), but
			// is then at least 9 bytes long, so it is no EOF. Here the first
			// value is an empty string with a needlessly long prefix.
			response: resultSet(auto, auto, []string{"a", "b"},
				append([]byte{0xfe, 0, 0, 0, 0, 0, 0, 0, 0}, 0x01, 'z')),
			want: relayWant{status: auto, rows: 1}},
		{name: "two result sets then ok", mode: ModeText,
			response: concat(
				resultSet(more, more, []string{"a"}, textRow("1"), textRow("2")),
				resultSet(more, more, []string{"b", "c"}, textRow("3", "4")),
				[][]byte{okPkt(0, 0, auto)}),
			want: relayWant{status: auto, rows: 3}},
		{name: "multi statement ok ok result set", mode: ModeText,
			response: concat(
				[][]byte{okPkt(1, 10, more), okPkt(2, 11, more)},
				resultSet(auto, auto, []string{"x"}, textRow("v"))),
			// res.OK is the last OK seen; the final status comes from the EOF.
			want: relayWant{status: auto, affected: 2, lastID: 11, rows: 1}},
		{name: "more results only on column eof", mode: ModeText,
			// The status that counts is the one after the rows.
			response: resultSet(more, auto, []string{"a"}, textRow("1")),
			want:     relayWant{status: auto, rows: 1}},
		{name: "err after ok", mode: ModeText,
			response: [][]byte{okPkt(1, 0, more), errPkt(1146, "42S02", "Table 't' doesn't exist")},
			want:     relayWant{status: more, affected: 1, errCode: 1146}},
		{name: "err in the middle of rows", mode: ModeText,
			response: concat(
				resultSet(auto, auto, cols3, rows5[:2]...)[:7],
				[][]byte{errPkt(1317, "70100", "Query execution was interrupted")}),
			want: relayWant{status: auto, errCode: 1317, rows: 2}},
		{name: "err instead of column eof", mode: ModeText,
			response: [][]byte{colCount(1), colDef("a"), errPkt(1105, "HY000", "unknown")},
			want:     relayWant{errCode: 1105}},
		{name: "local infile", mode: ModeText,
			response: [][]byte{append([]byte{0xfb}, "/tmp/data.csv"...)},
			want:     relayWant{localInfile: true}},
		{name: "local infile after ok", mode: ModeText,
			response: [][]byte{okPkt(0, 0, more), append([]byte{0xfb}, "x.csv"...)},
			want:     relayWant{status: more, localInfile: true}},
		{name: "binary result set", mode: ModeBinary,
			response: resultSet(auto, auto, []string{"a", "b"},
				binRow(0x00, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0),
				binRow(0x08, 7, 0, 0, 0, 0, 0, 0, 0), // second value NULL
				binRow(0x0c)),                        // both NULL: a 2-byte row
			want: relayWant{status: auto, rows: 3}},
		{name: "binary result set with out params", mode: ModeBinary,
			response: concat(
				resultSet(more, more, []string{"a"}, bigint(0)),
				resultSet(more|StatusPSOutParams, more|StatusPSOutParams, []string{"@o"}, bigint(0)),
				[][]byte{okPkt(0, 0, auto)}),
			want: relayWant{status: auto, rows: 2}},
		{name: "binary cursor", mode: ModeBinary,
			// With a cursor the server sends only the metadata; rows come
			// with COM_STMT_FETCH.
			response: [][]byte{colCount(2), colDef("a"), colDef("b"), eofPkt(auto | StatusCursorExists)},
			want:     relayWant{status: auto | StatusCursorExists, cursor: true}},
		{name: "cursor flag ignored in text mode", mode: ModeText,
			response: resultSet(auto|StatusCursorExists, auto, []string{"a"}, textRow("1")),
			want:     relayWant{status: auto, rows: 1}},
		{name: "binary ok", mode: ModeBinary,
			response: [][]byte{okPkt(5, 0, auto)},
			want:     relayWant{status: auto, affected: 5}},
		{name: "fetch", mode: ModeFetch,
			response: [][]byte{bigint(1), bigint(2), bigint(3), eofPkt(auto | StatusCursorExists)},
			want:     relayWant{status: auto | StatusCursorExists, rows: 3}},
		{name: "fetch last row", mode: ModeFetch,
			response: [][]byte{bigint(1), eofPkt(auto | StatusLastRowSent)},
			want:     relayWant{status: auto | StatusLastRowSent, rows: 1}},
		{name: "fetch ignores more results", mode: ModeFetch,
			response: [][]byte{bigint(1), eofPkt(more | StatusLastRowSent)},
			want:     relayWant{status: more | StatusLastRowSent, rows: 1}},
		{name: "fetch err", mode: ModeFetch,
			response: [][]byte{errPkt(1243, "HY000", "Unknown prepared statement handler")},
			want:     relayWant{errCode: 1243}},
		{name: "field list", mode: ModeFieldList,
			response: [][]byte{colDef("id"), colDef("name"), eofPkt(auto)},
			want:     relayWant{}},
		{name: "field list err", mode: ModeFieldList,
			response: [][]byte{errPkt(1146, "42S02", "Table 'x' doesn't exist")},
			want:     relayWant{errCode: 1146}},
		{name: "statistics", mode: ModeSingle,
			response: [][]byte{[]byte("Uptime: 3600  Threads: 2  Questions: 99  Slow queries: 0")},
			want:     relayWant{}},
		{name: "single packet starting like an ok", mode: ModeSingle,
			response: [][]byte{{0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00}},
			want:     relayWant{}},
		{name: "single packet that looks like an eof", mode: ModeSingle,
			response: [][]byte{{0xfe}},
			want:     relayWant{}},
	}
}

func TestRelay(t *testing.T) {
	for _, tc := range relayCases() {
		t.Run(tc.name, func(t *testing.T) {
			testRelayCase(t, tc)
		})
	}
}

func testRelayCase(t *testing.T, tc relayCase) {
	stream := append(frameAll(1, tc.response...), trailer...)
	// The client's numbering is independent of the backend's: the proxy may
	// have exchanged packets with the client before the response.
	seqs := []byte{1, 200}
	if payloadBytes(tc.response...) > 1<<20 {
		seqs = seqs[:1] // renumbering is covered by the small cases
	}
	for _, dstSeq := range seqs {
		// Compared as it streams: holding and comparing copies of 20 MiB
		// responses makes the -race run crawl.
		ew := &expectWriter{want: renumber(stream[:len(stream)-len(trailer)], dstSeq), bad: -1}
		run := runRelay(t, tc.mode, stream, relayOpts{dstSeq: dstSeq, dstWriter: ew})
		if run.err != nil {
			t.Fatalf("dstSeq %d: Relay: %v", dstSeq, run.err)
		}
		checkResult(t, run.res, tc.want)
		if err := ew.check(); err != "" {
			t.Fatalf("dstSeq %d: client got %s", dstSeq, err)
		}
		if run.buffered != 0 {
			t.Errorf("%d bytes left unflushed", run.buffered)
		}
		if want := dstSeq + byte(physicalCount(tc.response...)); run.dst.Seq != want {
			t.Errorf("dst.Seq = %d, want %d", run.dst.Seq, want)
		}
		if !bytes.Equal(run.rest, trailer) {
			t.Fatalf("left %d bytes unread, want the %d-byte trailer", len(run.rest), len(trailer))
		}
		if !run.res.Wrote {
			t.Error("Wrote = false")
		}
		if want := payloadBytes(tc.response...); run.res.Bytes != want {
			t.Errorf("Bytes = %d, want %d", run.res.Bytes, want)
		}
	}

	// Discard mode (draining a pooled connection) must find the same end
	// and report the same result.
	run := runRelay(t, tc.mode, stream, relayOpts{nilDst: true})
	if run.err != nil {
		t.Fatalf("nil dst: Relay: %v", run.err)
	}
	checkResult(t, run.res, tc.want)
	if run.res.Wrote {
		t.Error("nil dst: Wrote = true")
	}
	if !bytes.Equal(run.rest, trailer) {
		t.Fatalf("nil dst: left %d bytes unread, want the %d-byte trailer", len(run.rest), len(trailer))
	}
}

// renumber returns stream with its physical packets' sequence ids
// rewritten to start at seq; it is stream itself when nothing changes.
// Trailing bytes that do not form a whole header are kept as they are.
func renumber(stream []byte, seq byte) []byte {
	var out []byte
	for off := 0; off+4 <= len(stream); {
		if stream[off+3] != seq && out == nil {
			out = append([]byte(nil), stream...)
		}
		if out != nil {
			out[off+3] = seq
		}
		seq++
		off += 4 + (int(stream[off]) | int(stream[off+1])<<8 | int(stream[off+2])<<16)
	}
	if out == nil {
		return stream
	}
	return out
}

// expectWriter checks what it is given against want without keeping it.
type expectWriter struct {
	want []byte
	n    int
	bad  int // offset of the first write that differed, or -1
}

func (w *expectWriter) Write(p []byte) (int, error) {
	end := w.n + len(p)
	if w.bad < 0 && (end > len(w.want) || !bytes.Equal(p, w.want[w.n:end])) {
		w.bad = w.n
	}
	w.n = end
	return len(p), nil
}

func (w *expectWriter) check() string {
	switch {
	case w.bad >= 0:
		return fmt.Sprintf("a write at offset %d that differs from\n% x", w.bad, head(w.want[min(w.bad, len(w.want)):]))
	case w.n != len(w.want):
		return fmt.Sprintf("%d bytes, want %d", w.n, len(w.want))
	}
	return ""
}

func head(b []byte) []byte { return b[:min(len(b), 256)] }

// Rows and column definitions too big to be looked at are forwarded without
// buffering, and those spanning several physical packets must be forwarded
// and counted as one, whatever their continuation packets start with.
func TestRelayLargePackets(t *testing.T) {
	// A text row with one value of n bytes: lenenc header then the data.
	bigRow := func(n int, at map[int]byte) []byte {
		hdr := AppendLenEncInt(nil, uint64(n))
		return append(hdr, bigPayload(n, at)...)
	}
	// rowWithContinuation returns a two-column row of MaxPayload+len(tail)
	// bytes whose continuation packet is exactly tail: the first value fills
	// the first physical packet, the second value is tail.
	rowWithContinuation := func(tail []byte) []byte {
		r := bigRow(MaxPayload-5, nil)
		return AppendLenEncString(r, tail)
	}
	longDef := colDef(string(bigPayload(6000, nil)))
	cases := []relayCase{
		{name: "row over 4 KiB", mode: ModeText,
			response: resultSet(auto, auto, []string{"a"}, textRow("1"), bigRow(5000, nil), textRow("3")),
			want:     relayWant{status: auto, rows: 3}},
		{name: "20 MiB row, continuation starts with 0xfe", mode: ModeText,
			response: resultSet(auto, auto, []string{"a"},
				bigRow(20<<20, map[int]byte{MaxPayload - 9: 0xfe}), textRow("after")),
			want: relayWant{status: auto, rows: 2}},
		{name: "continuation that looks like an EOF", mode: ModeText,
			response: resultSet(auto, auto, []string{"a", "b"},
				rowWithContinuation([]byte{0xfe, 0, 0, 0x02, 0})),
			want: relayWant{status: auto, rows: 1}},
		{name: "continuation that looks like an ERR", mode: ModeText,
			response: resultSet(auto, auto, []string{"a", "b"},
				rowWithContinuation(append([]byte{0xff, 0x28, 0x04}, "#42000oops"...)), textRow("x", "y")),
			want: relayWant{status: auto, rows: 2}},
		{name: "binary row continuation that looks like an OK", mode: ModeBinary,
			response: resultSet(auto, auto, []string{"a"},
				append([]byte{0x00, 0x00}, bigPayload(MaxPayload+5, map[int]byte{MaxPayload - 2: 0x00})...)),
			want: relayWant{status: auto, rows: 1}},
		{name: "row of exactly 0xffffff bytes", mode: ModeText,
			// Followed by an empty packet, which must not end the response.
			response: resultSet(auto, auto, []string{"a"}, bigRow(MaxPayload-4, nil), textRow("2")),
			want:     relayWant{status: auto, rows: 2}},
		{name: "fetch 20 MiB row", mode: ModeFetch,
			response: [][]byte{append([]byte{0, 0}, bigPayload(20<<20, nil)...), eofPkt(auto | StatusLastRowSent)},
			want:     relayWant{status: auto | StatusLastRowSent, rows: 1}},
		{name: "column definitions over 4 KiB", mode: ModeText,
			response: resultSet(auto, auto, []string{"a", string(bigPayload(6000, nil)), "c"}, textRow("1", "2", "3")),
			want:     relayWant{status: auto, rows: 1}},
		{name: "empty result with long column definition", mode: ModeBinary,
			response: resultSet(auto, auto, []string{string(bigPayload(6000, nil))}),
			want:     relayWant{status: auto}},
		{name: "cursor after long column definition", mode: ModeBinary,
			response: [][]byte{colCount(1), longDef, eofPkt(auto | StatusCursorExists)},
			want:     relayWant{status: auto | StatusCursorExists, cursor: true}},
		{name: "field list with long default value", mode: ModeFieldList,
			response: [][]byte{colDef("a"), longDef, eofPkt(auto)},
			want:     relayWant{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testRelayCase(t, tc)
		})
	}
}

func TestRelayNoLocalInfile(t *testing.T) {
	request := append([]byte{0xfb}, "/etc/passwd"...)
	for _, tc := range []struct {
		name     string
		before   [][]byte // forwarded ahead of the request
		response [][]byte
	}{
		{"alone", nil, [][]byte{request}},
		{"after ok", [][]byte{okPkt(1, 0, more)}, [][]byte{okPkt(1, 0, more), request}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := append(frameAll(1, tc.response...), trailer...)
			run := runRelay(t, ModeText, stream, relayOpts{dstSeq: 1, noLocalInfile: true})
			if run.err != nil {
				t.Fatal(run.err)
			}
			if !run.res.LocalInfile {
				t.Error("LocalInfile = false")
			}
			// The client never sees the request: the caller refuses it on
			// the client's behalf with an empty packet to the backend.
			if err := run.dst.Flush(); err != nil {
				t.Fatal(err)
			}
			if want := frameAll(1, tc.before...); !bytes.Equal(run.sink.Bytes(), want) {
				t.Errorf("client got % x, want % x", run.sink.Bytes(), want)
			}
			if want := 1 + byte(len(tc.before)); run.dst.Seq != want {
				t.Errorf("dst.Seq = %d, want %d", run.dst.Seq, want)
			}
			if !bytes.Equal(run.rest, trailer) {
				t.Errorf("left % x unread, want the trailer", run.rest)
			}
		})
	}
}

// A LOCAL INFILE marker only means a file request as the first packet of a
// COM_QUERY response; elsewhere 0xfb is a NULL column count, which is
// malformed.
func TestRelayInfileMarkerOutsideTextMode(t *testing.T) {
	stream := frameAll(1, append([]byte{0xfb}, "f"...))
	run := runRelay(t, ModeBinary, stream, relayOpts{nilDst: true})
	var re *RelayError
	if !errors.As(run.err, &re) || re.Side != SideBackend || !errors.Is(run.err, ErrMalformed) {
		t.Fatalf("err = %v, want a backend ErrMalformed", run.err)
	}
	if run.res.LocalInfile {
		t.Error("LocalInfile = true in binary mode")
	}
}

func TestRelayMalformedFirstPacket(t *testing.T) {
	for name, p := range map[string][]byte{
		"empty":             {},
		"zero column count": {0xfc, 0x00, 0x00},
		"bad lenenc":        {0xfc, 0x01},
	} {
		run := runRelay(t, ModeText, frameAll(1, p), relayOpts{dstSeq: 1})
		if !errors.Is(run.err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, run.err)
		}
	}
}

// A backend that dies mid-response leaves the client with a partial
// response; the caller must know it was the backend.
func TestRelayBackendClosesMidResponse(t *testing.T) {
	full := frameAll(1, concat(
		resultSet(auto, auto, []string{"a", "b"}, textRow("1", "2"), textRow(string(bigPayload(9000, nil)), "x")),
	)...)
	var cuts []int
	for cut := range len(full) {
		// Every cut in the small packets; a sample inside the large row.
		if cut < 120 || cut%61 == 0 || cut > len(full)-12 {
			cuts = append(cuts, cut)
		}
	}
	for _, cut := range cuts {
		for _, nilDst := range []bool{false, true} {
			run := runRelay(t, ModeText, full[:cut], relayOpts{dstSeq: 1, nilDst: nilDst})
			var re *RelayError
			if !errors.As(run.err, &re) || re.Side != SideBackend {
				t.Fatalf("cut at %d (nil dst %v): err = %v, want a backend RelayError", cut, nilDst, run.err)
			}
			if !errors.Is(run.err, io.EOF) && !errors.Is(run.err, io.ErrUnexpectedEOF) {
				t.Fatalf("cut at %d: err = %v, want it to wrap EOF", cut, run.err)
			}
			if re.Error()[:9] != "backend: " {
				t.Errorf("Error() = %q", re.Error())
			}
		}
	}
}

func TestRelayWrongSequenceFromBackend(t *testing.T) {
	stream := frameAll(1, resultSet(auto, auto, []string{"a"}, textRow("1"))...)
	stream[4+1+3] = 9 // first column definition's sequence id
	run := runRelay(t, ModeText, stream, relayOpts{dstSeq: 1})
	var re *RelayError
	if !errors.As(run.err, &re) || re.Side != SideBackend || !errors.Is(run.err, ErrSequence) {
		t.Fatalf("err = %v, want a backend ErrSequence", run.err)
	}
}

// When the client goes away the response is still read to its end, so the
// backend connection stays usable; the client failure is reported last.
func TestRelayClientWriteFails(t *testing.T) {
	response := concat(
		[][]byte{okPkt(1, 0, more)},
		resultSet(more, more, []string{"a", "b"},
			textRow("1", "2"), textRow(string(bigPayload(5000, nil)), "x"), textRow(nil, "y")),
		resultSet(auto, auto, []string{string(bigPayload(4500, nil))}, textRow("z")),
	)
	stream := append(frameAll(1, response...), trailer...)
	ok := runRelay(t, ModeText, stream, relayOpts{dstSeq: 1})
	if ok.err != nil {
		t.Fatal(ok.err)
	}
	wantOut := frameAll(1, response...)
	// Small write buffers put the failing flush at every kind of write: a
	// header, a small payload, a chunk of a large one.
	afters := []int{0, 1, 4, 9, 30, 100, 5000, 9000, len(wantOut) - 1}
	// Failing inside each packet header, so that for some buffer sizes the
	// header write is the one that fails, not its payload.
	for _, off := range packetOffsets(wantOut) {
		afters = append(afters, off, off+2)
	}
	for _, bufSize := range []int{0, 1, 3, 4, 5, 7, 16, 17, 64, 4099} {
		for _, after := range afters {
			fw := &failWriter{after: after}
			run := runRelay(t, ModeText, stream, relayOpts{dstSeq: 1, dstWriter: fw, dstBufSize: bufSize})
			var re *RelayError
			if !errors.As(run.err, &re) || re.Side != SideClient || !errors.Is(run.err, errClientGone) {
				t.Fatalf("buf %d, fail after %d: err = %v, want a client RelayError", bufSize, after, run.err)
			}
			if re.Error()[:8] != "client: " {
				t.Errorf("Error() = %q", re.Error())
			}
			// Relay stops at the packet boundary after the failure
			// instead of reading the rest of the response for nobody.
			if !bytes.HasSuffix(stream, run.rest) || len(run.rest) < len(trailer) {
				t.Fatalf("buf %d, fail after %d: %d bytes left unread, want a packet boundary before the trailer",
					bufSize, after, len(run.rest))
			}
			if run.res.Rows > ok.res.Rows || !run.res.Wrote {
				t.Fatalf("buf %d, fail after %d: result %+v, want at most %+v", bufSize, after, run.res, ok.res)
			}
			if !bytes.HasPrefix(wantOut, fw.got.Bytes()) {
				t.Errorf("buf %d, fail after %d: client got bytes that are not a prefix of the response", bufSize, after)
			}
		}
	}
}

func TestRelayReadTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	src := NewConn(a)
	src.Seq = 1
	start := time.Now()
	_, err := Relay(nil, src, ModeText, 20*time.Millisecond, 0)
	if !IsTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	var re *RelayError
	if !errors.As(err, &re) || re.Side != SideBackend {
		t.Errorf("err = %#v, want a backend RelayError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timed out after %v", d)
	}
}

// The deadline bounds each wait for the backend, not the whole response: a
// backend that keeps sending is not cut off by a timeout shorter than the
// whole response.
func TestRelayTimeoutIsPerWait(t *testing.T) {
	response := resultSet(auto, auto, []string{"a"}, textRow("1"), textRow("2"))
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		seq := byte(1)
		for _, p := range response {
			time.Sleep(150 * time.Millisecond) // paces the backend: 6 × 150 ms > the timeout
			if _, err := b.Write(frame(nil, &seq, p)); err != nil {
				return
			}
		}
	}()
	src := NewConn(a)
	src.Seq = 1
	if _, err := Relay(nil, src, ModeText, 500*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
}

// Deadlines move only when they would move by more than a sixteenth of the
// timeout, and never later than asked.
func TestNextDeadline(t *testing.T) {
	d := time.Minute
	now := time.Now()
	if _, ok := nextDeadline(now.Add(d), true, d); ok {
		t.Error("re-armed a deadline armed just now for the same timeout")
	}
	if dl, ok := nextDeadline(now.Add(d/2), true, d); !ok || dl.Sub(now) < d-time.Second {
		t.Errorf("deadline half gone: %v, %v; want re-armed to about now+d", dl, ok)
	}
	if dl, ok := nextDeadline(now.Add(time.Hour), true, d); !ok || dl.After(now.Add(d+time.Second)) {
		t.Errorf("a later deadline (%v, %v) was kept for a shorter timeout", dl, ok)
	}
	if _, ok := nextDeadline(time.Time{}, true, 0); ok {
		t.Error("cleared a deadline that is not armed")
	}
	if _, ok := nextDeadline(time.Time{}, false, 0); !ok {
		t.Error("did not clear an unknown deadline")
	}
	if _, ok := nextDeadline(now.Add(d), true, 0); !ok {
		t.Error("did not clear an armed deadline")
	}
}

// packetConn delivers one physical packet per Read, like a backend that
// sends slowly, and counts read deadlines.
type packetConn struct {
	memConn
	packets   [][]byte
	deadlines int
}

func (c *packetConn) Read(p []byte) (int, error) {
	if len(c.packets) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.packets[0])
	c.packets[0] = c.packets[0][n:]
	if len(c.packets[0]) == 0 {
		c.packets = c.packets[1:]
	}
	return n, nil
}

func (c *packetConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() {
		c.deadlines++
	}
	return nil
}

// A client that stops reading must not hold the relay forever.
func TestRelayClientWriteTimeout(t *testing.T) {
	a, b := net.Pipe() // nobody reads b
	defer a.Close()
	defer b.Close()
	dst := NewConn(a)
	dst.Seq = 1
	stream := append(frameAll(1, okPkt(0, 0, auto)), trailer...)
	src := readerConn(stream)
	src.Seq = 1
	_, err := Relay(dst, src, ModeText, time.Second, 20*time.Millisecond)
	var re *RelayError
	if !errors.As(err, &re) || re.Side != SideClient || !IsTimeout(err) {
		t.Fatalf("err = %v, want a client timeout", err)
	}
}

func TestIsTimeout(t *testing.T) {
	if IsTimeout(nil) || IsTimeout(io.EOF) || IsTimeout(errors.New("x")) {
		t.Error("IsTimeout true for a non-timeout")
	}
	wrapped := &RelayError{Side: SideBackend, Err: &net.OpError{Op: "read", Err: timeoutErr{}}}
	if !IsTimeout(wrapped) {
		t.Error("IsTimeout false for a wrapped timeout")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }
