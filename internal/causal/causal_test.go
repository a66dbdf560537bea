package causal

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

func g(d, s uint32, seq uint64) gtid.GTID { return gtid.GTID{Domain: d, Server: s, Seq: seq} }

func TestPosNote(t *testing.T) {
	var p Pos
	p.Note(g(0, 1, 5))
	p.Note(g(0, 1, 3)) // older: ignored
	p.Note(g(1, 2, 7))
	p.Note(g(0, 2, 6)) // a new primary continues the domain
	if got := p.String(); got != "0-2-6,1-2-7" {
		t.Fatalf("p = %s", got)
	}
}

func TestCovered(t *testing.T) {
	need := Pos{g(0, 1, 100), g(1, 1, 5)}
	for _, tc := range []struct {
		pos  string
		want bool
	}{
		{"0-1-100,1-1-5", true},
		{"0-1-101,1-3-9", true},
		{" 1-1-5 ,\n0-2-200", true},
		{"0-1-99,1-1-5", false},
		{"0-1-100", false},
		{"", false},
		{"garbage,0-1-100,1-1-5", true},
		{"0-1-100,1-1-x", false},
	} {
		if got := need.CoveredByString(tc.pos); got != tc.want {
			t.Errorf("CoveredByString(%q) = %v, want %v", tc.pos, got, tc.want)
		}
		q, err := gtid.Parse(tc.pos)
		if err != nil {
			continue
		}
		var qp Pos
		for _, x := range q {
			qp = append(qp, x)
		}
		if got := need.CoveredBy(qp); got != tc.want {
			t.Errorf("CoveredBy(%q) = %v, want %v", tc.pos, got, tc.want)
		}
	}
	if !(Pos{}).CoveredByString("") {
		t.Error("nothing needed must be covered by anything")
	}
}

func TestWaitSQL(t *testing.T) {
	got := Pos{g(0, 1, 100), g(2, 3, 4)}.WaitSQL(1500 * time.Millisecond)
	want := "DO IF(MASTER_GTID_WAIT('0-1-100,2-3-4', 1.500) = 0, 0, (SELECT 1 UNION ALL SELECT 1))"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestTracker(t *testing.T) {
	var tr Tracker
	tr.NoteGTID(g(0, 1, 10))
	tr.NoteGTID(g(0, 1, 9))
	if got := tr.Global(nil).String(); got != "0-1-10" {
		t.Fatalf("global = %s", got)
	}
	need := Pos{g(0, 1, 10)}
	if tr.Has("db2", need, "0-1-9") {
		t.Fatal("db2 is behind")
	}
	if !tr.Has("db2", need, "0-1-10") {
		t.Fatal("the monitor saw db2 at 10")
	}
	tr.Reached("db2", need)
	if !tr.Has("db2", need, "0-1-3") || tr.Has("db3", need, "0-1-3") {
		t.Fatal("a wait proves db2 only")
	}
	now := time.Now()
	tr.Slow("db3", now)
	if !tr.SlowSince("db3", now.Add(-time.Second)) || tr.SlowSince("db3", now.Add(time.Second)) || tr.SlowSince("db2", now.Add(-time.Second)) {
		t.Fatal("SlowSince")
	}
	tr.Forget("db2")
	if tr.Has("db2", need, "") {
		t.Fatal("Forget kept what db2 reached")
	}
}

// FuzzCoveredByString: a printed position that gtid.Parse reads covers
// exactly what its parsed form covers.
func FuzzCoveredByString(f *testing.F) {
	f.Add("0-1-100,1-1-5", uint32(0), uint64(100))
	f.Add(" 1-1-5 ,\n0-2-200", uint32(1), uint64(6))
	f.Add("", uint32(0), uint64(0))
	// Found by the fuzzer: gtid.Parse trims every Unicode space, so
	// CoveredByString must too.
	f.Add("1-0-2\f", uint32(1), uint64(2))
	f.Add("\v1-0-2,0-1-3\u00a0", uint32(0), uint64(3))
	f.Add("\u00851-0-2", uint32(1), uint64(1))
	f.Fuzz(func(t *testing.T, s string, d uint32, seq uint64) {
		need := Pos{g(d, 1, seq)}
		got := need.CoveredByString(s)
		q, err := gtid.Parse(s)
		if err != nil {
			return
		}
		h, ok := q[d]
		if want := ok && h.Seq >= seq; got != want {
			t.Fatalf("CoveredByString(%q) for %v = %v, parsed says %v", s, need, got, want)
		}
	})
}

func BenchmarkHas(b *testing.B) {
	var tr Tracker
	need := Pos{g(0, 1, 123456)}
	tr.Reached("db2", need)
	b.ReportAllocs()
	for b.Loop() {
		if !tr.Has("db2", need, "0-1-123000") {
			b.Fatal("not covered")
		}
	}
}
