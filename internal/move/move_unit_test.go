package move

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

func TestNormalize(t *testing.T) {
	got, err := Normalize([]Object{{"b", "t2"}, {"a", ""}, {"b", "t1"}, {"a", "x"}, {"b", "t2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Object{{"a", ""}, {"b", "t1"}, {"b", "t2"}}
	if len(got) != len(want) {
		t.Fatalf("Normalize = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Normalize = %v, want %v", got, want)
		}
	}
	for _, bad := range [][]Object{
		nil,
		{{"", "t"}},
		{{"mysql", ""}},
		{{"INFORMATION_SCHEMA", "x"}},
		{{"a", "t,u"}},
		{{"a ", "t"}},
		{{strings.Repeat("x", 65), ""}},
	} {
		if _, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%v) = nil error, want a refusal", bad)
		}
	}
}

func TestContains(t *testing.T) {
	objs := []Object{{"site", ""}, {"shard", "bucket_0001"}}
	for _, c := range []struct {
		db, table string
		want      bool
	}{
		{"site", "anything", true},
		{"shard", "bucket_0001", true},
		{"shard", "bucket_0002", false},
		{"other", "bucket_0001", false},
	} {
		if got := Contains(objs, c.db, c.table); got != c.want {
			t.Errorf("Contains(%s.%s) = %v, want %v", c.db, c.table, got, c.want)
		}
	}
}

func TestBuildFilters(t *testing.T) {
	objs, err := Normalize([]Object{{"shard", "bucket_0001"}, {"shard", "bucket_0000"}, {"site_1", ""}, {`a%b`, ""}})
	if err != nil {
		t.Fatal(err)
	}
	f := BuildFilters(objs)
	if f.DoTable != "shard.bucket_0000,shard.bucket_0001" {
		t.Errorf("DoTable = %q", f.DoTable)
	}
	// _ and % would match any character in a wild rule: site_1 must not
	// pull in siteX1.
	if f.WildDoTable != `a\%b.%,site\_1.%` {
		t.Errorf("WildDoTable = %q", f.WildDoTable)
	}
	if f := BuildFilters([]Object{{"d", "t"}}); f.WildDoTable != "" {
		t.Errorf("tables only: WildDoTable = %q, want empty", f.WildDoTable)
	}
}

func TestPhaseTransitions(t *testing.T) {
	ok := [][2]Phase{
		{PhasePending, PhaseChecking}, {PhaseChecking, PhaseCopying}, {PhaseCopying, PhaseCatchUp},
		{PhaseCatchUp, PhaseCutover}, {PhaseCutover, PhaseCatchUp}, {PhaseCutover, PhaseDone},
		{PhaseDone, PhaseCleaned}, {PhaseCopying, PhaseCancelled}, {PhaseCatchUp, PhaseFailed},
	}
	for _, c := range ok {
		if !CanTransition(c[0], c[1]) {
			t.Errorf("%s → %s refused", c[0], c[1])
		}
	}
	bad := [][2]Phase{
		{PhasePending, PhaseDone}, {PhaseCopying, PhaseCutover}, {PhaseDone, PhaseCancelled},
		{PhaseDone, PhaseFailed}, {PhaseCancelled, PhaseChecking}, {PhaseFailed, PhaseCopying}, {PhaseCleaned, PhaseDone},
	}
	for _, c := range bad {
		if CanTransition(c[0], c[1]) {
			t.Errorf("%s → %s allowed", c[0], c[1])
		}
	}
	for _, p := range []Phase{PhaseDone, PhaseCleaned, PhaseCancelled, PhaseFailed} {
		if !p.Terminal() {
			t.Errorf("%s not terminal", p)
		}
	}
	if PhaseCutover.Terminal() {
		t.Error("cutover terminal")
	}
}

func TestSlavePos(t *testing.T) {
	snap, _ := gtid.Parse("0-1-100,1-101-50,2-201-7")
	target, _ := gtid.Parse("1-101-900,2-201-3,3-301-4")
	// Domain 1 is further in the target's binlog: the target's entry.
	// Domain 2 is behind the snapshot: the snapshot's. Domain 3 only the
	// target has: kept, or strict mode refuses the position.
	if got := slavePos(snap, target, 0).String(); got != "0-1-100,1-101-900,2-201-7,3-301-4" {
		t.Errorf("slavePos = %q", got)
	}
	// The source's own domain is always the snapshot's.
	if got := slavePos(snap, target, 1).String(); !strings.Contains(got, "1-101-50") {
		t.Errorf("slavePos with source domain 1 = %q, lost the snapshot", got)
	}
}

func TestSameDefinition(t *testing.T) {
	a := "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4"
	b := "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=9000 DEFAULT CHARSET=utf8mb4"
	c := "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  `x` int\n) ENGINE=InnoDB AUTO_INCREMENT=9000 DEFAULT CHARSET=utf8mb4"
	if !sameDefinition(a, b) {
		t.Error("AUTO_INCREMENT counter counted as DDL")
	}
	if sameDefinition(a, c) {
		t.Error("added column not detected")
	}
}

func TestChangeMasterQuotes(t *testing.T) {
	q := changeMaster("sluice_move", "127.0.0.1", 3306, "repl", `p'w\`, 3)
	for _, want := range []string{"CHANGE MASTER 'sluice_move' TO", "MASTER_PORT=3306", `MASTER_PASSWORD='p''w\\'`, "DO_DOMAIN_IDS=(3)", "MASTER_USE_GTID=slave_pos"} {
		if !strings.Contains(q, want) {
			t.Errorf("%s lacks %s", q, want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	r := nopRouter{}
	ep := func(c, p string) Endpoint { return Endpoint{Cluster: c, Primary: p} }
	for _, s := range []Spec{
		{Objects: []Object{{"d", ""}}, Source: ep("a", "h:1"), Target: ep("a", "h:2")},
		{Objects: []Object{{"d", ""}}, Source: ep("a", "h:1"), Target: ep("b", "h:1")},
		{Objects: []Object{{"d", ""}}, Source: ep("a", "h:1"), Target: ep("b", "")},
		{Objects: []Object{{"d", ""}}, Source: ep("a", "h:1"), Target: ep("b", "h:2"), Options: Options{Connection: "bad name"}},
		{Source: ep("a", "h:1"), Target: ep("b", "h:2")},
	} {
		if _, err := New(s, r); err == nil {
			t.Errorf("New(%+v) = nil error", s)
		}
	}
	m, err := New(Spec{Objects: []Object{{"d", ""}}, Source: ep("a", "h:1"), Target: ep("b", "h:2")}, r)
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.Phase != PhasePending || st.Source != "a" || st.Target != "b" {
		t.Errorf("Status = %+v", st)
	}
	if !m.Cancel() {
		t.Error("Cancel of a pending move refused")
	}
}

type nopRouter struct{}

func (nopRouter) Hold(ctx context.Context, objs []Object) (func(), error) { return func() {}, nil }
func (nopRouter) Place(objs []Object, cluster string) error               { return nil }
