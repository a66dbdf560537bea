package session

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// A session's own GTIDs are per cluster: a read on c2 does not wait for
// what the session wrote on c1, and coming back to c1 brings c1's back.
func TestCausalStateFollowsTheCluster(t *testing.T) {
	g := func(s string) gtid.GTID {
		x, err := gtid.ParseGTID(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	var c causalState
	var lastWrite time.Time
	c.switchCluster("", "c1", &lastWrite)
	c.own.Note(g("1-101-7"))
	wrote1 := time.Now()
	lastWrite = wrote1
	c.switchCluster("c1", "c2", &lastWrite)
	if len(c.own) != 0 || !c.untracked.IsZero() || !lastWrite.IsZero() {
		t.Fatalf("on c2 the session needs %v (untracked %v, last write %v), want nothing of c1's", c.own, c.untracked, lastWrite)
	}
	c.own.Note(g("2-201-3"))
	now := time.Now()
	c.untracked = now
	c.switchCluster("c2", "c1", &lastWrite)
	if got := c.own.String(); got != "1-101-7" || !c.untracked.IsZero() || !lastWrite.Equal(wrote1) {
		t.Fatalf("back on c1 the session needs %s (untracked %v, last write %v), want 1-101-7 and its write time only", got, c.untracked, lastWrite)
	}
	c.switchCluster("c1", "c2", &lastWrite)
	if got := c.own.String(); got != "2-201-3" || !c.untracked.Equal(now) || !lastWrite.IsZero() {
		t.Fatalf("back on c2 the session needs %s (untracked %v, last write %v), want 2-201-3 and its untracked write", got, c.untracked, lastWrite)
	}
	// A session that never wrote allocates nothing on a switch.
	var fresh causalState
	var never time.Time
	fresh.switchCluster("c1", "c2", &never)
	if fresh.other != nil {
		t.Fatal("a switch of a session that never wrote allocated its map")
	}
}
