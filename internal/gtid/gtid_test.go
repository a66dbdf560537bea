package gtid

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
)

func mustParse(t testing.TB, s string) Pos {
	t.Helper()
	p, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return p
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Pos
		canon   string
		wantErr string
	}{
		{in: "", want: Pos{}, canon: ""},
		{in: "  \n\t", want: Pos{}, canon: ""},
		{in: "0-1-100", want: Pos{0: {0, 1, 100}}, canon: "0-1-100"},
		{in: "1-2-7,0-1-100", want: Pos{0: {0, 1, 100}, 1: {1, 2, 7}}, canon: "0-1-100,1-2-7"},
		// SHOW output wraps long lists after the comma.
		{in: "0-1-100,\n1-2-7,\r\n 2-3-4 ", want: Pos{0: {0, 1, 100}, 1: {1, 2, 7}, 2: {2, 3, 4}}, canon: "0-1-100,1-2-7,2-3-4"},
		{in: "4294967295-4294967295-18446744073709551615", want: Pos{math.MaxUint32: {math.MaxUint32, math.MaxUint32, math.MaxUint64}}, canon: "4294967295-4294967295-18446744073709551615"},
		{in: "007-01-0100", want: Pos{7: {7, 1, 100}}, canon: "7-1-100"},
		{in: "0-1-100,0-2-101", wantErr: "domain 0 appears twice"},
		{in: "0-1-100,", wantErr: "empty element"},
		{in: ",0-1-100", wantErr: "empty element"},
		{in: "0-1-100,,1-2-3", wantErr: "empty element"},
		{in: "0-1", wantErr: "not domain-server-seq"},
		{in: "0-1-2-3", wantErr: "not domain-server-seq"},
		{in: "0-1-", wantErr: "not domain-server-seq"},
		{in: "-1-2", wantErr: "not domain-server-seq"},
		{in: "a-1-2", wantErr: "not domain-server-seq"},
		{in: "+0-1-2", wantErr: "not domain-server-seq"},
		{in: "0 - 1 - 2", wantErr: "not domain-server-seq"},
		{in: "0x1-1-2", wantErr: "not domain-server-seq"},
		{in: "1_0-1-2", wantErr: "not domain-server-seq"},
		{in: "4294967296-1-2", wantErr: "not domain-server-seq"},
		{in: "0-4294967296-2", wantErr: "not domain-server-seq"},
		{in: "0-1-18446744073709551616", wantErr: "not domain-server-seq"},
		{in: "0-1-100 1-2-3", wantErr: "not domain-server-seq"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got == nil || !maps.Equal(got, tt.want) {
				t.Errorf("Parse(%q) = %#v; want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.canon {
				t.Errorf("String() = %q; want %q", s, tt.canon)
			}
		})
	}
}

func TestGTIDString(t *testing.T) {
	if s := (GTID{1, 2, 3}).String(); s != "1-2-3" {
		t.Errorf("String = %q", s)
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name     string
		p, q     string
		contains bool // p.Contains(q)
		c        int
		diverged bool
	}{
		{"both empty", "", "", true, 0, false},
		{"empty vs some", "", "0-1-5", false, -1, false},
		{"some vs empty", "0-1-5", "", true, 1, false},
		{"equal", "0-1-5,1-2-3", "1-2-3,0-1-5", true, 0, false},
		{"ahead", "0-1-6", "0-1-5", true, 1, false},
		{"behind", "0-1-4", "0-1-5", false, -1, false},
		{"ahead, written by another server", "0-2-6", "0-1-5", true, 1, false},
		{"extra domain", "0-1-5,1-2-3", "0-1-5", true, 1, false},
		{"missing domain", "0-1-5", "0-1-5,1-2-3", false, -1, false},
		{"ahead in one domain, behind in another", "0-1-6,1-2-2", "0-1-5,1-2-3", false, 0, true},
		{"disjoint domains", "0-1-5", "1-2-3", false, 0, true},
		{"same seq, different server", "0-1-100", "0-2-100", false, 0, true},
		{"same seq, different server, other domain ahead", "0-1-100,1-1-9", "0-2-100,1-1-8", false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, q := mustParse(t, tt.p), mustParse(t, tt.q)
			if got := p.Contains(q); got != tt.contains {
				t.Errorf("Contains = %v; want %v", got, tt.contains)
			}
			c, div := p.Compare(q)
			if c != tt.c || div != tt.diverged {
				t.Errorf("Compare = %d, %v; want %d, %v", c, div, tt.c, tt.diverged)
			}
			// Antisymmetry.
			rc, rdiv := q.Compare(p)
			if rc != -tt.c || rdiv != tt.diverged {
				t.Errorf("reverse Compare = %d, %v; want %d, %v", rc, rdiv, -tt.c, tt.diverged)
			}
			if got := Diverged(p, q); got != tt.diverged {
				t.Errorf("Diverged = %v; want %v", got, tt.diverged)
			}
		})
	}
}

func TestBehind(t *testing.T) {
	tests := []struct {
		name string
		p, q string
		want uint64
	}{
		{"equal", "0-1-5", "0-1-5", 0},
		{"p ahead", "0-1-9", "0-1-5", 0},
		{"p behind", "0-1-5", "0-1-9", 4},
		{"summed over domains", "0-1-5,1-2-10", "0-1-9,1-2-13", 7},
		{"behind in one, ahead in another", "0-1-9,1-2-10", "0-1-5,1-2-13", 3},
		{"domain p lacks counts whole seq", "0-1-5", "0-1-5,2-3-6", 6},
		{"empty p", "", "0-1-5,1-1-2", 7},
		{"empty q", "0-1-5", "", 0},
		{"same seq, different server", "0-1-5", "0-2-5", 0},
		{"saturates", "", "0-1-18446744073709551615,1-1-2", math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Behind(mustParse(t, tt.p), mustParse(t, tt.q)); got != tt.want {
				t.Errorf("Behind(%q, %q) = %d; want %d", tt.p, tt.q, got, tt.want)
			}
		})
	}
}

func TestErrant(t *testing.T) {
	tests := []struct {
		name       string
		candidate  string
		primary    string
		primaryIDs []uint32
		want       string
	}{
		{"equal", "0-1-100", "0-1-100", nil, ""},
		{"lagging", "0-1-90", "0-1-100", nil, ""},
		{"lagging, last GTID from an older primary", "0-3-90", "0-1-100", nil, ""},
		{"local write ahead", "0-2-101", "0-1-100", nil, "0-2-101"},
		{"domain absent on primary", "0-1-100,5-2-1", "0-1-100", nil, "5-2-1"},
		{"same seq, different server", "0-2-100", "0-1-100", nil, "0-2-100"},
		{"several domains", "0-2-101,1-1-5,2-2-3", "0-1-100,1-1-9", nil, "0-2-101,2-2-3"},
		// The primary kept writing after its position was read; the
		// candidate received those transactions before it died.
		{"ahead of a stale position, written by the primary, ID unknown", "0-1-105", "0-1-100", nil, "0-1-105"},
		{"ahead of a stale position, written by the primary", "0-1-105", "0-1-100", []uint32{1}, ""},
		{"primary's first write in a new domain", "0-1-100,3-1-1", "0-1-100", []uint32{1}, ""},
		{"local write with the primary's ID known", "0-2-105", "0-1-100", []uint32{1}, "0-2-105"},
		{"same seq, other server, even if it is the primary's ID", "0-1-100", "0-7-100", []uint32{1}, "0-1-100"},
		{"empty candidate", "", "0-1-100", nil, ""},
		{"empty primary", "0-1-3", "", nil, "0-1-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Errant(mustParse(t, tt.candidate), mustParse(t, tt.primary), tt.primaryIDs...)
			if got == nil {
				t.Fatal("Errant returned nil")
			}
			if got.String() != tt.want {
				t.Errorf("Errant(%q, %q, %v) = %q; want %q", tt.candidate, tt.primary, tt.primaryIDs, got, tt.want)
			}
		})
	}
}

func TestMostAdvanced(t *testing.T) {
	tests := []struct {
		name string
		list []string
		best int
		ties []int
	}{
		{"empty", nil, -1, nil},
		{"one", []string{"0-1-5"}, 0, []int{0}},
		{"one empty position", []string{""}, 0, []int{0}},
		{"clear winner", []string{"0-1-5", "0-1-9", "0-1-7"}, 1, []int{1}},
		{"winner with more domains", []string{"0-1-5", "0-1-5,1-2-3"}, 1, []int{1}},
		{"tie", []string{"0-1-9", "0-1-5", "0-1-9"}, 0, []int{0, 2}},
		{"tie of all", []string{"0-1-9", "0-1-9", "0-1-9"}, 0, []int{0, 1, 2}},
		{"tie above a laggard", []string{"0-1-5", "0-1-9,1-1-1", "1-1-1,0-1-9"}, 1, []int{1, 2}},
		{"diverged domains", []string{"0-1-9,1-2-1", "0-1-8,1-2-2"}, -1, nil},
		{"diverged at same seq", []string{"0-1-9", "0-2-9"}, -1, nil},
		{"a laggard and two diverged", []string{"0-1-1", "0-1-9", "0-2-9"}, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list []Pos
			for _, s := range tt.list {
				list = append(list, mustParse(t, s))
			}
			best, ties := MostAdvanced(list)
			if best != tt.best || !slices.Equal(ties, tt.ties) {
				t.Errorf("MostAdvanced(%q) = %d, %v; want %d, %v", tt.list, best, ties, tt.best, tt.ties)
			}
		})
	}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		in      string
		canon   string
		wantErr string
	}{
		{in: "", canon: ""},
		{in: "0-2-110,0-1-100,\n1-3-7", canon: "0-1-100,0-2-110,1-3-7"},
		{in: "0-1-100,0-1-101", wantErr: "domain 0 server 1 appears twice"},
		{in: "0-1-100,", wantErr: "empty element"},
		{in: "0-1", wantErr: "not domain-server-seq"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			st, err := ParseState(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseState(%q) = %v, %v; want error containing %q", tt.in, st, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st == nil || st.String() != tt.canon {
				t.Errorf("ParseState(%q).String() = %q; want %q", tt.in, st, tt.canon)
			}
		})
	}
}

func TestStateMissingFrom(t *testing.T) {
	tests := []struct {
		name   string
		s, t   string
		except []uint32
		want   string
	}{
		{"same", "0-1-100,0-2-110", "0-2-110,0-1-100", nil, ""},
		{"t ahead", "0-1-100", "0-1-100,0-2-110", nil, ""},
		// A failover lost 0-1-101..105: the new primary (2) is ahead by
		// seq_no, yet lacks the old primary's last transactions.
		{"rejoin after a lossy failover", "0-1-105", "0-1-100,0-2-110", nil, "0-1-105"},
		{"rejoin after a clean failover", "0-1-100", "0-1-100,0-2-110", nil, ""},
		// Candidate 3 wrote locally long ago (seq below the primary's):
		// positions cannot see it, states can.
		{"errant write on a lagging candidate", "0-1-90,0-3-91", "0-1-100", []uint32{1}, "0-3-91"},
		{"candidate received more from the dead primary", "0-1-105", "0-1-100", []uint32{1}, ""},
		{"history of an older primary is shared", "0-3-50,0-1-105", "0-3-50,0-1-100", []uint32{1}, ""},
		{"several, sorted", "1-4-1,0-4-2,0-1-3", "", nil, "0-1-3,0-4-2,1-4-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err1 := ParseState(tt.s)
			u, err2 := ParseState(tt.t)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			var got []string
			for _, g := range s.MissingFrom(u, tt.except...) {
				got = append(got, g.String())
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("MissingFrom = %q; want %q", got, tt.want)
			}
		})
	}
	// Positions alone judge the lossy rejoin wrongly; this is why State exists.
	if !mustParse(t, "0-2-110").Contains(mustParse(t, "0-1-105")) {
		t.Error("position comparison changed: update the State documentation")
	}
}

func TestStateHas(t *testing.T) {
	st, _ := ParseState("0-1-100,0-2-110")
	for _, tt := range []struct {
		g    GTID
		want bool
	}{
		{GTID{0, 1, 100}, true},
		{GTID{0, 1, 50}, true},
		{GTID{0, 1, 101}, false},
		{GTID{0, 2, 110}, true},
		{GTID{0, 3, 1}, false},
		{GTID{1, 1, 1}, false},
	} {
		if got := st.Has(tt.g); got != tt.want {
			t.Errorf("Has(%s) = %v; want %v", tt.g, got, tt.want)
		}
	}
}
