package backend

import (
	"slices"
	"testing"
)

func TestStateRecordReplacesByKeyAndKeepsOrder(t *testing.T) {
	type rec struct{ key, sql string }
	for _, tc := range []struct {
		name string
		recs []rec
		want []string
	}{
		{"in order", []rec{{"sql_mode", "SET sql_mode='A'"}, {"time_zone", "SET time_zone='+01:00'"}},
			[]string{"SET sql_mode='A'", "SET time_zone='+01:00'"}},
		{"a later SET of the same variable replaces the earlier one and moves last", []rec{{"sql_mode", "SET sql_mode='A'"}, {"time_zone", "SET time_zone='+01:00'"}, {"sql_mode", "SET sql_mode='B'"}},
			[]string{"SET time_zone='+01:00'", "SET sql_mode='B'"}},
		{"keyless SETs are never replaced", []rec{{"", "SET @a=1, @b=2"}, {"", "SET @a=1, @b=2"}},
			[]string{"SET @a=1, @b=2", "SET @a=1, @b=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			for _, r := range tc.recs {
				if !s.Record(r.key, r.sql) {
					t.Fatalf("Record(%q) refused", r.sql)
				}
			}
			var got []string
			for _, e := range s.Sets {
				got = append(got, e.SQL)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("sets %q, want %q", got, tc.want)
			}
			// The same list, built again, has the same hash: pooled
			// connections match by it.
			var again State
			for _, sql := range tc.want {
				again.Record("", sql)
			}
			if again.SetsHash != s.SetsHash || s.SetsHash == 0 {
				t.Fatalf("hash %x for the same list built again, %x here", again.SetsHash, s.SetsHash)
			}
		})
	}
}

func TestStateHashTellsListsApart(t *testing.T) {
	var a, b, empty State
	a.Record("", "SET @x=1")
	a.Record("", "SET @y=2")
	b.Record("", "SET @y=2")
	b.Record("", "SET @x=1")
	if a.SetsHash == b.SetsHash {
		t.Fatal("the same SETs in another order hash alike: replaying one list for the other would change the result")
	}
	if empty.SetsHash != 0 {
		t.Fatalf("an empty state hashes to %x, want 0", empty.SetsHash)
	}
	c := a.Clone()
	c.Record("", "SET @z=3")
	if len(a.Sets) != 2 || a.SetsHash == c.SetsHash {
		t.Fatal("changing a clone changed the original")
	}
	a.ResetSets()
	if len(a.Sets) != 0 || a.SetsHash != 0 {
		t.Fatalf("after ResetSets: %+v", a)
	}
}

func TestStateRefusesBeyondItsBound(t *testing.T) {
	var s State
	for i := range maxSets {
		if !s.Record("", "SET @v=1") {
			t.Fatalf("Record %d refused below the bound", i)
		}
	}
	if s.Record("", "SET @v=1") {
		t.Fatal("Record beyond maxSets accepted: the session should be pinned instead")
	}
}

func TestMatchesNeedsSchemaCollationAndSets(t *testing.T) {
	st := State{Schema: "db", Collation: 45}
	st.Record("sql_mode", "SET sql_mode='A'")
	for _, tc := range []struct {
		name string
		mod  func(*Conn)
		want bool
	}{
		{"same state", func(c *Conn) {}, true},
		{"other schema", func(c *Conn) { c.Schema = "other" }, false},
		{"schema unknown after a reset", func(c *Conn) { c.schemaKnown = false }, false},
		{"other collation", func(c *Conn) { c.Collation = 8 }, false},
		{"other SETs", func(c *Conn) { c.SetsHash++ }, false},
	} {
		c := &Conn{}
		c.Adopt(&st)
		tc.mod(c)
		if got := c.Matches(&st); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}
