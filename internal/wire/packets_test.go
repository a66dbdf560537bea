package wire

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestAppendOKBytes(t *testing.T) {
	got := AppendOK(nil, OK{AffectedRows: 1, LastInsertID: 300, Status: StatusAutocommit | StatusInTrans,
		Warnings: 2, Info: []byte("info")})
	want := []byte{0x00, 0x01, 0xfc, 0x2c, 0x01, 0x03, 0x00, 0x02, 0x00, 'i', 'n', 'f', 'o'}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendOK = % x, want % x", got, want)
	}
}

func TestOKRoundTrip(t *testing.T) {
	values := []uint64{0, 250, 251, 65535, 65536, 1<<24 - 1, 1 << 24, math.MaxUint64}
	for _, affected := range values {
		for _, id := range values {
			in := OK{AffectedRows: affected, LastInsertID: id, Status: StatusMoreResultsExists | StatusAutocommit,
				Warnings: 65535, Info: []byte("Rows matched: 1  Changed: 1  Warnings: 0")}
			p := AppendOK(nil, in)
			if !IsOK(p) {
				t.Fatalf("IsOK(% x) = false", p)
			}
			out, ok := ParseOK(p)
			if !ok || out.AffectedRows != affected || out.LastInsertID != id || out.Status != in.Status ||
				out.Warnings != in.Warnings || !bytes.Equal(out.Info, in.Info) {
				t.Fatalf("ParseOK(AppendOK(%+v)) = %+v, %v", in, out, ok)
			}
		}
	}
}

func TestParseOKRejects(t *testing.T) {
	full := AppendOK(nil, OK{AffectedRows: 70000, LastInsertID: 1 << 40, Status: 2})
	fixed := len(full) // no info: everything is required
	for i := range fixed {
		if _, ok := ParseOK(full[:i]); ok {
			t.Errorf("ParseOK of %d-byte prefix ok = true", i)
		}
	}
	for _, p := range [][]byte{
		{0xfe, 0, 0, 2, 0},          // EOF
		{0xff, 0x15, 0x04},          // ERR
		{0x00, 0xff, 0, 0, 0, 0, 0}, // 0xff is not a length
		{0x00, 0x00, 0xfc, 0x01},    // last insert id cut
	} {
		if _, ok := ParseOK(p); ok {
			t.Errorf("ParseOK(% x) ok = true", p)
		}
	}
}

func TestIsOK(t *testing.T) {
	if IsOK([]byte{0, 0, 0, 2, 0, 0}) {
		t.Error("6-byte packet is an OK")
	}
	if !IsOK([]byte{0, 0, 0, 2, 0, 0, 0}) {
		t.Error("minimal OK not recognised")
	}
	if IsOK([]byte{1, 0, 0, 2, 0, 0, 0}) {
		t.Error("column count 1 taken for OK")
	}
}

func TestEOF(t *testing.T) {
	p := AppendEOF(nil, 3, StatusMoreResultsExists|StatusAutocommit)
	if want := []byte{0xfe, 3, 0, 0x0a, 0}; !bytes.Equal(p, want) {
		t.Fatalf("AppendEOF = % x, want % x", p, want)
	}
	w, st, ok := ParseEOF(p)
	if !ok || w != 3 || st != StatusMoreResultsExists|StatusAutocommit {
		t.Errorf("ParseEOF = %d, %#x, %v", w, st, ok)
	}
	// The pre-4.1 EOF is the bare marker: an EOF without status.
	if !IsEOF([]byte{0xfe}) {
		t.Error("IsEOF(fe) = false")
	}
	if _, _, ok := ParseEOF([]byte{0xfe}); ok {
		t.Error("ParseEOF(fe) ok = true")
	}
	if _, _, ok := ParseEOF([]byte{0xfe, 0, 0, 2}); ok {
		t.Error("ParseEOF of 4 bytes ok = true")
	}
}

func TestIsEOFOnlyShortPackets(t *testing.T) {
	for n := 0; n <= 12; n++ {
		p := make([]byte, n)
		if n > 0 {
			p[0] = 0xfe
		}
		// A text row whose first value is 2^24 bytes or longer starts with
		// 0xfe too, but is at least 9 bytes long.
		want := n >= 1 && n <= 8
		if got := IsEOF(p); got != want {
			t.Errorf("IsEOF(len %d) = %v, want %v", n, got, want)
		}
		if _, _, ok := ParseEOF(p); ok != (n >= 5 && n <= 8) {
			t.Errorf("ParseEOF(len %d) ok = %v", n, ok)
		}
	}
	for _, c := range []byte{0x00, 0xfb, 0xfc, 0xff} {
		if IsEOF([]byte{c, 0, 0, 2, 0}) {
			t.Errorf("IsEOF(%#x...) = true", c)
		}
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		want Error
	}{
		{"with sqlstate", append([]byte{0xff, 0x28, 0x04, '#', '4', '2', '0', '0', '0'}, "You have an error"...),
			Error{Code: 1064, State: "42000", Message: "You have an error"}},
		// Errors sent before the server knows the client speaks 4.1 (e.g.
		// too many connections) have no SQLSTATE.
		{"without sqlstate", append([]byte{0xff, 0x10, 0x04}, "Too many connections"...),
			Error{Code: 1040, State: "HY000", Message: "Too many connections"}},
		{"empty message", []byte{0xff, 0x10, 0x04}, Error{Code: 1040, State: "HY000"}},
		{"hash but short", []byte{0xff, 0x10, 0x04, '#', '1', '2'}, Error{Code: 1040, State: "HY000", Message: "#12"}},
		{"sqlstate only", []byte{0xff, 0x10, 0x04, '#', '0', '8', 'S', '0', '1'}, Error{Code: 1040, State: "08S01"}},
	}
	for _, tt := range tests {
		got := ParseError(tt.p)
		if *got != tt.want {
			t.Errorf("%s: ParseError = %+v, want %+v", tt.name, *got, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {0xff}, {0xff, 0x01}, {0x00, 1, 2, 3}} {
		e := ParseError(bad)
		if e == nil || e.Code != ErrHandshake || e.State != "08S01" {
			t.Errorf("ParseError(% x) = %+v, want a malformed-packet error", bad, e)
		}
	}
}

func TestErrorRoundTrip(t *testing.T) {
	in := &Error{Code: ErrAccessDenied, State: "28000", Message: "Access denied for user 'x'"}
	p := AppendError(nil, in)
	if !IsERR(p) || IsERR(nil) || IsERR([]byte{0}) {
		t.Fatal("IsERR wrong")
	}
	if got := ParseError(p); *got != *in {
		t.Errorf("round trip = %+v, want %+v", got, in)
	}
	// A state that is not five characters would shift the message; it is
	// replaced by the generic one.
	for _, st := range []string{"", "4200", "420000"} {
		got := ParseError(AppendError(nil, &Error{Code: 1, State: st, Message: "m"}))
		if got.State != "HY000" || got.Message != "m" {
			t.Errorf("state %q: got %+v", st, got)
		}
	}
	if s := Errorf(ErrNoDB, "3D000", "No database %s", "selected").Error(); s != "Error 1046 (3D000): No database selected" {
		t.Errorf("Error() = %q", s)
	}
}

func TestAppendColumnDef(t *testing.T) {
	c := Column{Name: "Variable_name", Type: TypeVarString, Charset: 33, Length: 256, Flags: 1, Decimals: 0x1f}
	p := AppendColumnDef(nil, c)
	var fields []string
	b := p
	for range 6 {
		s, n, ok := ReadLenEncString(b)
		if !ok {
			t.Fatalf("lenenc field %d unreadable in % x", len(fields), p)
		}
		fields = append(fields, string(s))
		b = b[n:]
	}
	if got := strings.Join(fields, ","); got != "def,,,,Variable_name,Variable_name" {
		t.Errorf("fields = %q", got)
	}
	want := []byte{0x0c, 33, 0, 0, 1, 0, 0, TypeVarString, 1, 0, 0x1f, 0, 0}
	if !bytes.Equal(b, want) {
		t.Errorf("fixed part = % x, want % x", b, want)
	}
}

func TestPrepareOK(t *testing.T) {
	in := PrepareOK{StmtID: 0x01020304, Columns: 3, Params: 65535, Warnings: 7}
	p := AppendPrepareOK(nil, in)
	if len(p) != 12 {
		t.Fatalf("len = %d, want 12", len(p))
	}
	out, ok := ParsePrepareOK(p)
	if !ok || out != in {
		t.Errorf("round trip = %+v, %v", out, ok)
	}
	if _, ok := ParsePrepareOK(p[:11]); ok {
		t.Error("11-byte PrepareOK accepted")
	}
	if _, ok := ParsePrepareOK(errPkt(1064, "42000", "syntax error here")); ok {
		t.Error("ERR accepted as PrepareOK")
	}
}
