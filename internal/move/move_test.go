package move_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/move"
)

const (
	buckets       = 64
	rowsPerBucket = 500
)

// setupShards creates shard.bucket_0000…0063, site1 (items, notes with a
// foreign key to items) and site2 on c, and returns every table.
func setupShards(t *testing.T, c *cluster) []move.Object {
	t.Helper()
	exec(t, c.app, "CREATE DATABASE shard", "CREATE DATABASE site1", "CREATE DATABASE site2")
	var all []move.Object
	for i := range buckets {
		createTable(t, c.app, "shard", bucket(i), rowsPerBucket)
		all = append(all, move.Object{DB: "shard", Table: bucket(i)})
	}
	createTable(t, c.app, "site1", "items", 2000)
	createTable(t, c.app, "site1", "notes", 500)
	exec(t, c.app, "ALTER TABLE site1.notes ADD COLUMN item_id BIGINT NULL, ADD CONSTRAINT notes_item FOREIGN KEY (item_id) REFERENCES site1.items (id)",
		"UPDATE site1.notes SET item_id = id")
	createTable(t, c.app, "site2", "items", 1000)
	all = append(all, move.Object{DB: "site1", Table: "items"}, move.Object{DB: "site1", Table: "notes"}, move.Object{DB: "site2", Table: "items"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	return all
}

// TestMoveUnderLoad moves 16 of 64 bucket tables to one cluster and a whole
// database to another while a workload writes to and reads from moved and
// unmoved tables on their owning cluster: no workload error, every
// acknowledged write on the owner, equal checksums at the cutover, a hold
// under a second, and Cleanup drops the source copies.
func TestMoveUnderLoad(t *testing.T) {
	cs := startClusters(t, "a", "b", "c")
	a, b, c := cs["a"], cs["b"], cs["c"]
	all := setupShards(t, a)
	r := newRouter("a", cs)

	var cutMu sync.Mutex
	atCutover := map[string][2]map[string]int64{} // target → source, target checksums
	r.onPlace = func(objs []move.Object, target string) error {
		var tables []move.Object
		for _, o := range all {
			if move.Contains(objs, o.DB, o.Table) {
				tables = append(tables, o)
			}
		}
		src := checksums(t, a.app, tables)
		dst := checksums(t, cs[target].app, tables)
		cutMu.Lock()
		atCutover[target] = [2]map[string]int64{src, dst}
		cutMu.Unlock()
		return nil
	}

	w := startWorkload(r, all, 4)
	waitFor(t, "the workload to run", 30*time.Second, func() bool { return w.ops.Load() > 500 })

	var moved []move.Object
	for i := 0; i < buckets; i += 4 {
		moved = append(moved, move.Object{DB: "shard", Table: bucket(i)})
	}
	m1, err := runMove(t, move.Spec{Objects: moved, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	st1 := m1.Status()
	report(t, "move 16 buckets a→b", st1)
	if err != nil {
		t.Fatalf("move buckets: %v", err)
	}

	m2, err := runMove(t, move.Spec{Objects: []move.Object{{DB: "site1"}}, Source: a.endpoint(true), Target: c.endpoint(false)}, r)
	st2 := m2.Status()
	report(t, "move database site1 a→c", st2)
	if err != nil {
		t.Fatalf("move site1: %v", err)
	}

	// The workload goes on against the new owners for a while.
	base := w.ops.Load()
	waitFor(t, "the workload to run after the moves", 30*time.Second, func() bool { return w.ops.Load() > base+1000 })
	w.finish()

	if n := w.errs.Load(); n != 0 {
		t.Errorf("%d workload errors, first: %v", n, w.first)
	}
	t.Logf("workload: %d operations, %d errors", w.ops.Load(), w.errs.Load())
	w.verify(t)

	for _, st := range []move.Status{st1, st2} {
		if st.Phase != move.PhaseDone {
			t.Errorf("phase %s, want done", st.Phase)
		}
		if st.Hold <= 0 || st.Hold >= time.Second {
			t.Errorf("hold %v, want (0, 1s)", st.Hold)
		}
		if st.SnapshotFrom != a.topo.Replicas[0].Addr() {
			t.Errorf("snapshot from %s, want the replica %s", st.SnapshotFrom, a.topo.Replicas[0].Addr())
		}
		if len(st.Checksums) != st.Tables || st.Tables == 0 {
			t.Errorf("%d checksums for %d tables", len(st.Checksums), st.Tables)
		}
		fmt.Printf("MOVE FIGURES %v: %d rows in %v = %.0f rows/s copied; catch-up %v; cutover hold %v (%d attempt(s))\n",
			st.Objects[0], st.RowsCopied, st.CopyTime.Round(time.Millisecond), st.RowsPerSec,
			st.CatchUpTime.Round(time.Millisecond), st.Hold.Round(100*time.Microsecond), st.CutoverAttempts)
	}
	for target, sums := range atCutover {
		if len(sums[0]) == 0 {
			t.Errorf("no checksums at the cutover to %s", target)
		}
		for k, v := range sums[0] {
			if sums[1][k] != v {
				t.Errorf("cutover to %s: CHECKSUM TABLE %s: source %d, target %d", target, k, v, sums[1][k])
			}
		}
	}
	// Only the moved objects were ever held.
	r.heldKey.Range(func(k, _ any) bool {
		s := k.(string)
		if s != "site1" && !strings.HasPrefix(s, "shard.bucket_") {
			t.Errorf("held %s, which was not moved", s)
		}
		return true
	})
	if got := len(connections(t, b.topo.Primary)) + len(connections(t, c.topo.Primary)); got != 0 {
		t.Errorf("%d replication connections left on the targets", got)
	}

	// The targets' replicas have the moved data too.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, cl := range []*cluster{b, c} {
		if err := cl.topo.WaitReplicated(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rb, _ := b.topo.Replicas[0].Admin()
	pb, _ := b.topo.Primary.Admin()
	if p, rr := checksums(t, pb, moved), checksums(t, rb, moved); fmt.Sprint(p) != fmt.Sprint(rr) {
		t.Errorf("b's replica differs from its primary: %v vs %v", rr, p)
	}

	// Cleanup drops the source copies, on the source's replica too.
	if err := m1.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	ra, _ := a.topo.Replicas[0].Admin()
	for _, srv := range []string{"primary", "replica"} {
		sdb := a.app
		if srv == "replica" {
			sdb = ra
		}
		if dbExists(t, sdb, "site1") {
			t.Errorf("site1 still on a's %s after Cleanup", srv)
		}
		if n := len(tablesIn(t, sdb, "shard")); n != buckets-len(moved) {
			t.Errorf("a's %s has %d bucket tables after Cleanup, want %d", srv, n, buckets-len(moved))
		}
	}
	if m1.Status().Phase != move.PhaseCleaned {
		t.Errorf("phase after Cleanup: %s", m1.Status().Phase)
	}
}

// TestMoveRefusesLimits: triggers, foreign keys across the boundary,
// objects present on the target, views and non-InnoDB tables are refused
// before anything changes.
func TestMoveRefusesLimits(t *testing.T) {
	cs := startClusters(t, "a", "b")
	a, b := cs["a"], cs["b"]
	exec(t, a.app, "CREATE DATABASE d")
	createTable(t, a.app, "d", "t1", 10)
	createTable(t, a.app, "d", "t2", 10)
	createTable(t, a.app, "d", "trig", 10)
	createTable(t, a.app, "d", "parent", 10)
	createTable(t, a.app, "d", "child", 10)
	exec(t, a.app,
		"CREATE TRIGGER d.trig_bi BEFORE INSERT ON d.trig FOR EACH ROW SET NEW.k = UPPER(NEW.k)",
		"ALTER TABLE d.child ADD COLUMN p BIGINT, ADD CONSTRAINT child_parent FOREIGN KEY (p) REFERENCES d.parent (id)",
		"CREATE TABLE d.myi (id INT PRIMARY KEY) ENGINE=MyISAM",
		"CREATE VIEW d.v AS SELECT id FROM d.t1",
		"CREATE DATABASE e",
		"CREATE TABLE e.t (id INT PRIMARY KEY)",
		"CREATE VIEW e.v AS SELECT id FROM e.t")
	exec(t, a.app, "CREATE DATABASE f", "CREATE TABLE f.t (id INT PRIMARY KEY)")
	exec(t, b.app, "CREATE DATABASE d", "CREATE TABLE d.t2 (id INT PRIMARY KEY)", "CREATE DATABASE f")
	r := newRouter("a", cs)
	for _, c := range []struct {
		objs []move.Object
		want string
	}{
		{[]move.Object{{DB: "d", Table: "trig"}}, "trigger"},
		{[]move.Object{{DB: "d", Table: "child"}}, "foreign key child_parent"},
		{[]move.Object{{DB: "d", Table: "parent"}}, "foreign key child_parent"},
		{[]move.Object{{DB: "d", Table: "t2"}}, "already exists on the target"},
		{[]move.Object{{DB: "d", Table: "myi"}}, "ENGINE=MyISAM"},
		{[]move.Object{{DB: "d", Table: "v"}}, "is a view"},
		{[]move.Object{{DB: "d", Table: "nope"}}, "does not exist"},
		{[]move.Object{{DB: "nodb"}}, "does not exist"},
		{[]move.Object{{DB: "f"}}, "already exists on the target"},
		{[]move.Object{{DB: "e"}}, "views are not moved"},
	} {
		m, err := runMove(t, move.Spec{Objects: c.objs, Source: a.endpoint(false), Target: b.endpoint(false)}, r)
		if !errors.Is(err, move.ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("move %v: err %v, want refused with %q", c.objs, err, c.want)
			continue
		}
		if p := m.Status().Phase; p != move.PhaseFailed {
			t.Errorf("move %v: phase %s", c.objs, p)
		}
		t.Logf("refused %v: %v", c.objs, err)
	}
	// Moving parent and child together is fine.
	if _, err := runMove(t, move.Spec{Objects: []move.Object{{DB: "d", Table: "parent"}, {DB: "d", Table: "child"}}, Source: a.endpoint(false), Target: b.endpoint(false)}, r); err != nil {
		t.Errorf("move parent+child: %v", err)
	}
	if r.held.Load() != 1 || r.placed.Load() != 1 {
		t.Errorf("holds %d, places %d; only the allowed move may hold and place", r.held.Load(), r.placed.Load())
	}
	if got := tablesIn(t, b.app, "d"); strings.Join(got, ",") != "child,parent,t2" {
		t.Errorf("target d tables = %v, want child,parent,t2", got)
	}

	// Same gtid_domain_id on both sides is refused.
	exec(t, b.app, "SET GLOBAL gtid_domain_id = 0")
	_, err := runMove(t, move.Spec{Objects: []move.Object{{DB: "d", Table: "t1"}}, Source: a.endpoint(false), Target: b.endpoint(false)}, r)
	exec(t, b.app, "SET GLOBAL gtid_domain_id = 1")
	if !errors.Is(err, move.ErrRefused) || !strings.Contains(err.Error(), "gtid_domain_id") {
		t.Errorf("same domain: err %v", err)
	}

	// DDL on a moved table during the move aborts the cutover and undoes.
	r.onHold = func(objs []move.Object) error {
		r.onHold = nil
		_, err := a.app.Exec("ALTER TABLE d.t1 ADD COLUMN extra INT")
		return err
	}
	_, err = runMove(t, move.Spec{Objects: []move.Object{{DB: "d", Table: "t1"}}, Source: a.endpoint(false), Target: b.endpoint(false)}, r)
	if !errors.Is(err, move.ErrAborted) || !strings.Contains(err.Error(), "DDL") {
		t.Errorf("DDL during move: err %v", err)
	}
	t.Logf("DDL during the move: %v", err)
	if got := tablesIn(t, b.app, "d"); strings.Join(got, ",") != "child,parent,t2" {
		t.Errorf("after the aborted move target d tables = %v, want child,parent,t2", got)
	}
	if n := connections(t, b.topo.Primary); len(n) != 0 {
		t.Errorf("connections left: %v", n)
	}
}

// TestMoveCancelLeavesNothing cancels a move at its cutover: the target
// copy and the replication connection are gone, nothing was placed, and a
// rerun succeeds.
func TestMoveCancelLeavesNothing(t *testing.T) {
	cs := startClusters(t, "a", "b")
	a, b := cs["a"], cs["b"]
	exec(t, a.app, "CREATE DATABASE shard")
	for i := range 4 {
		createTable(t, a.app, "shard", bucket(i), 200)
	}
	objs := []move.Object{{DB: "shard", Table: bucket(1)}, {DB: "shard", Table: bucket(2)}}
	r := newRouter("a", cs)
	var m *move.Move
	ready := make(chan struct{})
	r.onHold = func([]move.Object) error {
		<-ready
		if st := m.Status(); st.Phase != move.PhaseCutover || st.RowsCopied != 400 {
			t.Errorf("at the hold: %+v", st)
		}
		// The copy is on the target and replication runs now.
		if got := tablesIn(t, b.app, "shard"); len(got) != 2 {
			t.Errorf("target tables during the move: %v", got)
		}
		if !m.Cancel() {
			t.Error("Cancel refused before the cutover")
		}
		return nil
	}
	var err error
	m, err = move.New(move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = m.Run(ctx)
	if !errors.Is(err, move.ErrCancelled) {
		t.Fatalf("Run after Cancel: %v", err)
	}
	st := m.Status()
	t.Logf("cancelled: %s", st.Error)
	if st.Phase != move.PhaseCancelled {
		t.Errorf("phase %s", st.Phase)
	}
	if r.placed.Load() != 0 {
		t.Error("Place was called")
	}
	if dbExists(t, b.app, "shard") {
		t.Errorf("target still has database shard: %v", tablesIn(t, b.app, "shard"))
	}
	if n := connections(t, b.topo.Primary); len(n) != 0 {
		t.Errorf("connections left: %v", n)
	}
	if got := tablesIn(t, a.app, "shard"); len(got) != 4 {
		t.Errorf("source tables: %v", got)
	}
	if err := m.Cleanup(ctx); err == nil {
		t.Error("Cleanup of a cancelled move did not refuse")
	}

	// Cancel during the copy.
	r.onHold = nil
	createTable(t, a.app, "shard", "big", 5000)
	if err := a.topo.WaitReplicated(ctx); err != nil { // the snapshot comes from the replica
		t.Fatal(err)
	}
	big := []move.Object{{DB: "shard", Table: "big"}}
	m, err = move.New(move.Spec{Objects: big, Source: a.endpoint(true), Target: b.endpoint(false), Options: move.Options{BatchRows: 20}}, r)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m.Status().RowsCopied == 0 && !m.Status().Phase.Terminal() {
			time.Sleep(time.Millisecond)
		}
		m.Cancel()
	}()
	err = m.Run(ctx)
	st = m.Status()
	t.Logf("cancelled after %d of %d rows in phase %s: %v", st.RowsCopied, st.RowsTotal, st.Phase, err)
	if !errors.Is(err, move.ErrCancelled) || st.Phase != move.PhaseCancelled {
		t.Fatalf("cancel during the copy: %v, phase %s", err, st.Phase)
	}
	if dbExists(t, b.app, "shard") || len(connections(t, b.topo.Primary)) != 0 || r.placed.Load() != 0 {
		t.Fatalf("cancel during the copy left something: tables %v, connections %v", tablesIn(t, b.app, "shard"), connections(t, b.topo.Primary))
	}

	m2, err := runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	report(t, "rerun", m2.Status())
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if got := tablesIn(t, b.app, "shard"); strings.Join(got, ",") != bucket(1)+","+bucket(2) {
		t.Errorf("target tables after the rerun: %v", got)
	}
}

// TestMoveSourceFailover kills the source primary as the cutover starts
// and promotes its replica: the move aborts with a clear status and undoes
// itself; a rerun from the new primary succeeds with the data intact.
func TestMoveSourceFailover(t *testing.T) {
	cs := startClusters(t, "a", "b")
	a, b := cs["a"], cs["b"]
	exec(t, a.app, "CREATE DATABASE shard")
	for i := range 8 {
		createTable(t, a.app, "shard", bucket(i), 300)
	}
	objs := []move.Object{{DB: "shard", Table: bucket(3)}, {DB: "shard", Table: bucket(5)}}
	all := []move.Object{{DB: "shard", Table: bucket(3)}, {DB: "shard", Table: bucket(5)}, {DB: "shard", Table: bucket(6)}}
	r := newRouter("a", cs)
	// Writes made during the move, before the failover, replicate.
	w := startWorkload(r, all, 2)
	waitFor(t, "the workload to run", 30*time.Second, func() bool { return w.ops.Load() > 200 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.onHold = func([]move.Object) error {
		r.onHold = nil
		w.finish()
		if err := a.topo.WaitReplicated(ctx); err != nil {
			return err
		}
		if err := a.topo.Primary.Kill(); err != nil {
			return err
		}
		return a.topo.Promote(ctx, a.topo.Replicas[0])
	}
	m, err := runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	st := m.Status()
	t.Logf("move during the failover: phase=%s error=%s", st.Phase, st.Error)
	if !errors.Is(err, move.ErrAborted) || st.Phase != move.PhaseFailed || !strings.Contains(st.Error, "source primary") {
		t.Fatalf("move across a source failover: err %v, status %+v", err, st)
	}
	if r.placed.Load() != 0 {
		t.Error("Place was called")
	}
	if dbExists(t, b.app, "shard") {
		t.Errorf("target still has shard: %v", tablesIn(t, b.app, "shard"))
	}
	if n := connections(t, b.topo.Primary); len(n) != 0 {
		t.Errorf("connections left: %v", n)
	}

	// Bring the old primary back as a replica of the new one, then fail
	// the new primary while the move catches up (its first cutover is
	// refused by the router): the move notices the source is gone and
	// aborts after BrokenAfter.
	a.reopen(t)
	w.verify(t) // everything acknowledged before the failover is on the new primary
	old := a.topo.ByName("db1")
	if err := old.Rebuild(ctx, a.topo.Primary); err != nil {
		t.Fatal(err)
	}
	w2 := startWorkload(r, all, 2)
	waitFor(t, "the second workload to run", 30*time.Second, func() bool { return w2.ops.Load() > 200 })
	r.onHold = func([]move.Object) error {
		r.onHold = nil
		w2.finish()
		if err := a.topo.WaitReplicated(ctx); err != nil {
			return err
		}
		if err := a.topo.Primary.Kill(); err != nil {
			return err
		}
		return errors.New("test router: not now")
	}
	m, err = runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false), Options: move.Options{BrokenAfter: time.Second}}, r)
	st = m.Status()
	t.Logf("move during the second failover: phase=%s error=%s", st.Phase, st.Error)
	if !errors.Is(err, move.ErrAborted) || st.Phase != move.PhaseFailed || !strings.Contains(st.Error, "(a failover?)") {
		t.Fatalf("move across a failover during catch-up: err %v, status %+v", err, st)
	}
	if dbExists(t, b.app, "shard") || len(connections(t, b.topo.Primary)) != 0 || r.placed.Load() != 0 {
		t.Fatalf("the aborted move left something: tables %v, connections %v, places %d",
			tablesIn(t, b.app, "shard"), connections(t, b.topo.Primary), r.placed.Load())
	}
	if err := a.topo.Promote(ctx, old); err != nil {
		t.Fatal(err)
	}
	a.reopen(t)
	w.verify(t)
	w2.verify(t)

	// Rerun from the promoted primary (no replica left to copy from).
	m2, err := runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	report(t, "rerun after the failovers", m2.Status())
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	src, dst := checksums(t, a.app, objs), checksums(t, b.app, objs)
	if fmt.Sprint(src) != fmt.Sprint(dst) {
		t.Errorf("checksums after the rerun: source %v target %v", src, dst)
	}
	w.verify(t) // now read from b for the moved tables
	w2.verify(t)
}

// TestMoveTargetReadOnly: the target primary turning read-only (its
// failover) aborts the cutover; the copy it could not drop is refused by a
// rerun until Abandon removes it, then the rerun succeeds.
func TestMoveTargetReadOnly(t *testing.T) {
	cs := startClusters(t, "a", "b")
	a, b := cs["a"], cs["b"]
	exec(t, a.app, "CREATE DATABASE shard")
	exec(t, b.app, "CREATE DATABASE shard")
	for i := range 3 {
		createTable(t, a.app, "shard", bucket(i), 300)
	}
	objs := []move.Object{{DB: "shard", Table: bucket(1)}}
	r := newRouter("a", cs)
	r.onHold = func([]move.Object) error {
		r.onHold = nil
		return b.topo.Primary.Exec(context.Background(), "SET GLOBAL read_only = 1")
	}
	m, err := runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	st := m.Status()
	t.Logf("target turned read-only: error=%s warnings=%v", st.Error, st.Warnings)
	if !errors.Is(err, move.ErrAborted) || !strings.Contains(st.Error, "read-only") || r.placed.Load() != 0 {
		t.Fatalf("err %v, status %+v", err, st)
	}
	if err := b.topo.Primary.Exec(context.Background(), "SET GLOBAL read_only = 0"); err != nil {
		t.Fatal(err)
	}
	_, err = runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	if !errors.Is(err, move.ErrRefused) {
		t.Fatalf("rerun with the leftover copy: %v, want refused", err)
	}
	t.Logf("rerun before Abandon: %v", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := move.Abandon(ctx, b.endpoint(false), objs, ""); err != nil {
		t.Fatal(err)
	}
	if len(tablesIn(t, b.app, "shard")) != 0 || len(connections(t, b.topo.Primary)) != 0 {
		t.Fatal("Abandon left something")
	}
	m, err = runMove(t, move.Spec{Objects: objs, Source: a.endpoint(true), Target: b.endpoint(false)}, r)
	report(t, "rerun after Abandon", m.Status())
	if err != nil {
		t.Fatal(err)
	}
}
