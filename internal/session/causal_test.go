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
	c.switchCluster("", "c1")
	c.own.Note(g("1-101-7"))
	c.switchCluster("c1", "c2")
	if len(c.own) != 0 || !c.untracked.IsZero() {
		t.Fatalf("on c2 the session needs %v (untracked %v), want nothing of c1's", c.own, c.untracked)
	}
	c.own.Note(g("2-201-3"))
	now := time.Now()
	c.untracked = now
	c.switchCluster("c2", "c1")
	if got := c.own.String(); got != "1-101-7" || !c.untracked.IsZero() {
		t.Fatalf("back on c1 the session needs %s (untracked %v), want 1-101-7 only", got, c.untracked)
	}
	c.switchCluster("c1", "c2")
	if got := c.own.String(); got != "2-201-3" || !c.untracked.Equal(now) {
		t.Fatalf("back on c2 the session needs %s (untracked %v), want 2-201-3 and its untracked write", got, c.untracked)
	}
	// A session that never wrote allocates nothing on a switch.
	var fresh causalState
	fresh.switchCluster("c1", "c2")
	if fresh.other != nil {
		t.Fatal("a switch of a session that never wrote allocated its map")
	}
}
