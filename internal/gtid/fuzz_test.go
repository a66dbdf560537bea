package gtid

import (
	"maps"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", " ", "0-1-100", "0-1-100,1-2-7", "0-1-100,\n1-2-7", "0-1-100,0-2-1",
		"4294967295-4294967295-18446744073709551615", "007-01-0100", "0-1-", ",", "0--1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse(%q) returned a position with error %v", s, err)
			}
			return
		}
		canon := p.String()
		q, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but Parse(String() = %q): %v", s, canon, err)
		}
		if !maps.Equal(p, q) {
			t.Fatalf("round trip of %q: %v != %v", s, p, q)
		}
		if q.String() != canon {
			t.Fatalf("String not canonical: %q then %q", canon, q.String())
		}
		for d, g := range p {
			if g.Domain != d {
				t.Fatalf("domain key %d holds %v", d, g)
			}
		}
		// A position contains itself and equals itself.
		if c, div := p.Compare(q); c != 0 || div || !p.Contains(q) || Behind(p, q) != 0 || len(Errant(p, q)) != 0 {
			t.Fatalf("%q does not equal itself", canon)
		}
	})
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{"", "0-1-100,0-2-110", "0-1-100,0-1-2", "1-2-3,\n0-1-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(s)
		if err != nil {
			return
		}
		canon := st.String()
		st2, err := ParseState(canon)
		if err != nil || !maps.Equal(st, st2) || st2.String() != canon {
			t.Fatalf("round trip of %q via %q: %v, %v", s, canon, st2, err)
		}
		if len(st.MissingFrom(st2)) != 0 {
			t.Fatalf("%q misses its own GTIDs", canon)
		}
	})
}

// FuzzParseBytes checks the allocation-free parser against ParseGTID.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"0-1-100", "4294967295-4294967295-18446744073709551615",
		"4294967296-1-1", "0-1-18446744073709551616", "0-1-", "-1-1", "0-1-1-", "00-01-02", "+1-1-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, ok := ParseBytes([]byte(s))
		want, err := ParseGTID(s)
		if ok != (err == nil) {
			t.Fatalf("ParseBytes(%q) ok=%v, ParseGTID err=%v", s, ok, err)
		}
		if ok && g != want {
			t.Fatalf("ParseBytes(%q) = %v, ParseGTID = %v", s, g, want)
		}
	})
}
