package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Fencing: a primary that lost its place in a failover (frozen, or killed
// and restarted) must never take an application write again, whether the
// sluice that failed over is still running or a new one starts from the
// durable state file.

// fenceHaltWriters stops the writers now or when the test ends, whichever is first.
func fenceHaltWriters(t testing.TB, w *foWriters) func() {
	var once sync.Once
	halt := func() { once.Do(w.halt) }
	t.Cleanup(halt)
	return halt
}

// ackTimes maps every acknowledged id to when its COMMIT was acknowledged.
func fenceAckTimes(w *foWriters) map[int64]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int64]time.Time, len(w.acked))
	for i, id := range w.acked {
		out[id] = w.okAt[i]
	}
	return out
}

// readOnly reads a server's @@global.read_only through its admin socket.
func fenceReadOnly(s *testbed.Server) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.GlobalVariable(ctx, "read_only")
}

func fenceGlobalVar(t testing.TB, s *testbed.Server, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v string
	reconnecting(t, name+" of "+s.Name, func() (err error) {
		v, err = s.GlobalVariable(ctx, name)
		return err
	})
	return v
}

// fenceErrorKinds counts the writers' errors by message (without the id).
func fenceErrorKinds(w *foWriters) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	kinds := map[string]int{}
	for _, err := range w.errs {
		msg := err.Error()
		if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "insert ") && i > 0 {
			msg = msg[i+2:]
		}
		kinds[fenceTruncate(msg, 90)]++
	}
	var out []string
	for k, n := range kinds {
		out = append(out, fmt.Sprintf("%d× %q", n, k))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func fenceTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fenceOnSightRecord finds the manager's record of fencing server on sight.
func fenceOnSightRecord(rep failover.Report, server string) (failover.Record, bool) {
	for _, r := range rep.History {
		if r.Kind == "fence" && r.Server == server {
			return r, true
		}
	}
	return failover.Record{}, false
}

// fenceDone waits until a failover from server has finished fencing it:
// its record says the failover's own fence succeeded (the server woke
// before that attempt gave up), or a fence on sight was recorded.
func fenceDone(t testing.TB, p *proxy.Proxy, server string, within time.Duration) {
	t.Helper()
	waitFor(t, within, "the fence of "+server+" recorded", func() bool {
		rep := p.Failover().Report()
		if r, ok := fenceOnSightRecord(rep, server); ok {
			if !r.OK {
				t.Fatalf("fence on sight of %s failed: %+v", server, r)
			}
			return true
		}
		r, ok := fenceFailoverRecord(rep)
		return ok && r.Old == server && slices.ContainsFunc(r.Reasons, func(s string) bool {
			return strings.HasPrefix(s, server+" set read_only")
		})
	})
}

func fenceFailoverRecord(rep failover.Report) (failover.Record, bool) {
	for _, r := range rep.History {
		if r.Kind == "failover" && r.OK {
			return r, true
		}
	}
	return failover.Record{}, false
}

// A frozen primary (SIGSTOP: connections stay open, nothing answers) is
// replaced once the replicas confirm the loss; when it wakes it is made
// read-only on sight and takes no application write, and every write
// acknowledged after the failover is on the new primary. The writers use
// go-sql-driver's default binary protocol (a COM_STMT_PREPARE before each
// statement), as most applications do.
func TestFrozenPrimaryFailsOverAndStaysFenced(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML("")})
	schema := foSchema(t, topo)
	d := openDB(t, p, "")
	w := startWriters(t, d, schema, 4)
	halt := fenceHaltWriters(t, w)
	waitFor(t, 10*time.Second, "writes flow", func() bool { return w.count() > 100 })

	old := topo.Primary
	stopped := pauseServer(t, old)

	newName := waitNewPrimary(t, p, old.Name, 20*time.Second)
	routed := time.Since(stopped)
	// No failover can finish within a second of the stop: the monitor
	// needs fall=2 failed checks and the replicas slave_net_timeout=5 s.
	// An acknowledgement in that second is a reply db1 sent just before it
	// froze, not a write on the new primary.
	strictFrom := stopped.Add(time.Second)
	var firstAck time.Time
	waitFor(t, 20*time.Second, "a write acknowledged after the failover", func() bool {
		at, ok := w.okAfter(strictFrom)
		firstAck = at
		return ok
	})
	newSrv := topo.ByName(newName)
	topo.SetPrimary(newSrv)
	w.mu.Lock()
	errsAtFailover := len(w.errs)
	w.mu.Unlock()

	// The record is written once the old primary's fencing was tried and
	// the other replicas repointed, after traffic moved.
	var rep failover.Report
	var rec failover.Record
	ok := false
	waitFor(t, 20*time.Second, "the failover's record", func() bool {
		rep = p.Failover().Report()
		rec, ok = fenceFailoverRecord(rep)
		return ok
	})
	if rec.Old != old.Name || rec.New != newName || rec.Trigger != "automatic" {
		t.Errorf("failover record %+v, want automatic %s -> %s", rec, old.Name, newName)
	}
	if !slices.Contains(rep.Fenced, old.Name) {
		t.Errorf("Report().Fenced = %v after the failover, want %s in it", rep.Fenced, old.Name)
	}
	if s, _ := p.Snapshot().ByName(old.Name); !s.Fenced {
		t.Errorf("snapshot: %s not fenced after the failover: %+v", old.Name, *s)
	}
	t.Logf("SIGSTOP %s: sluice routes to %s after %s, first write acknowledged %s after the stop (hold %.0f ms, epoch %d); %d client errors meanwhile",
		old.Name, newName, routed.Round(time.Millisecond), firstAck.Sub(stopped).Round(time.Millisecond), rec.PauseMS, rec.Epoch, errsAtFailover)
	t.Logf("failover reasons: %s", strings.Join(rec.Reasons, "; "))

	// SIGCONT: db1 comes back writable, believing it is still the primary.
	resumed := time.Now()
	if err := old.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, old.Name+" read_only=ON (fenced on sight)", func() bool {
		v, err := fenceReadOnly(old)
		return err == nil && v == "ON"
	})
	fencedIn := time.Since(resumed)
	var frec failover.Record
	waitFor(t, 5*time.Second, "a fence record for "+old.Name, func() bool {
		frec, ok = fenceOnSightRecord(p.Failover().Report(), old.Name)
		return ok
	})
	if !frec.OK {
		t.Errorf("fence on sight of %s failed: %+v", old.Name, frec)
	}
	waitFor(t, 5*time.Second, "the snapshot shows "+old.Name+" up, read-only and fenced", func() bool {
		s, _ := p.Snapshot().ByName(old.Name)
		return s.Up && s.ReadOnly && s.Fenced
	})
	if pr, ok := p.Snapshot().PrimaryServer(); !ok || pr.Name != newName {
		t.Errorf("primary after %s came back: %v %v, want %s", old.Name, pr, ok, newName)
	}
	if rep := p.Failover().Report(); !slices.Contains(rep.Fenced, old.Name) || rep.Primary != newName {
		t.Errorf("report after resume: primary %s fenced %v, want primary %s with %s fenced", rep.Primary, rep.Fenced, newName, old.Name)
	}
	t.Logf("SIGCONT %s: read_only=ON %s later (%s)", old.Name, fencedIn.Round(time.Millisecond), strings.Join(frec.Reasons, "; "))

	// Writes go on, none of them to db1.
	before := userCommands(t, topo)
	n0 := w.count()
	waitFor(t, 30*time.Second, "200 more acknowledged writes", func() bool { return w.count() >= n0+200 })
	after := userCommands(t, topo)
	halt()
	if got := after[old.Name]["update"] - before[old.Name]["update"]; got != 0 {
		t.Errorf("%s received %d app writes after it was fenced", old.Name, got)
	}
	if got := after[newName]["update"] - before[newName]["update"]; got < 400 {
		t.Errorf("%s received %d app writes for 200 acknowledged transactions (INSERT and UPDATE each), want >= 400", newName, got)
	}

	// Every write acknowledged after the failover is on the new primary.
	// Of those acknowledged before the stop, only the last ones db1 had
	// committed but not yet sent to its replicas can be missing
	// (asynchronous replication): a frozen primary sent everything else.
	acks := fenceAckTimes(w)
	var lostPre, lostPost []int64
	var oldest time.Time
	for _, id := range w.missing(t, newSrv, schema) {
		at := acks[id]
		switch {
		case at.After(strictFrom):
			lostPost = append(lostPost, id)
		case at.Before(stopped.Add(-2 * time.Second)):
			t.Errorf("insert %d acknowledged %s before the stop is missing on %s: replicas had long received it", id, stopped.Sub(at), newName)
		default:
			lostPre = append(lostPre, id)
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
	}
	if len(lostPost) > 0 {
		t.Errorf("%s lacks %d inserts acknowledged after the failover: %v", newName, len(lostPost), lostPost[:min(len(lostPost), 10)])
	}
	binlog1, binlogNew := fenceGlobalVar(t, old, "gtid_binlog_pos"), fenceGlobalVar(t, newSrv, "gtid_binlog_state")
	if len(lostPre) > 0 {
		t.Logf("%d inserts acknowledged by %s within %s before the SIGSTOP are not on %s: committed there but not yet sent to the replicas when it froze (asynchronous replication)",
			len(lostPre), old.Name, stopped.Sub(oldest).Round(time.Millisecond), newName)
	} else {
		t.Logf("no acknowledged insert lost: %d acknowledged in all, %d client errors", len(acks), len(w.errs))
	}
	t.Logf("%s gtid_binlog_pos %s; %s gtid_binlog_state %s", old.Name, binlog1, newName, binlogNew)
	t.Logf("client errors: %s", fenceErrorKinds(w))
	// Rows db1 has and the new primary lacks: its errant transactions. A
	// COMMIT that reached db1's socket before or while it froze runs when it
	// resumes, before anyone can fence it; its session was aborted, so it
	// was never acknowledged.
	onNew := tableIDs(t, newSrv, schema)
	var errant []string
	for id := range tableIDs(t, old, schema) {
		if onNew[id] {
			continue
		}
		at, acked := acks[id]
		switch {
		case !acked:
			errant = append(errant, fmt.Sprintf("%d (never acknowledged)", id))
		case at.After(strictFrom):
			t.Errorf("insert %d is on %s but not on %s, and was acknowledged %s after the stop (%s resumed %s after the stop)",
				id, old.Name, newName, at.Sub(stopped).Round(time.Millisecond), old.Name, resumed.Sub(stopped).Round(time.Millisecond))
		default:
			errant = append(errant, fmt.Sprintf("%d (acknowledged %s before the stop)", id, stopped.Sub(at).Round(time.Millisecond)))
		}
	}
	slices.Sort(errant)
	t.Logf("rows on %s missing on %s: %d %v", old.Name, newName, len(errant), errant)

	// Rejoin: allowed only when db1 has nothing the new primary lacks.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rrec, err := p.Failover().Rejoin(ctx, old.Name)
	if err != nil {
		if !errors.Is(err, failover.ErrConflict) || !(strings.Contains(err.Error(), "diverged") || strings.Contains(err.Error(), "lacks")) {
			t.Fatalf("rejoin %s: %v, want success or a refusal because its data diverged", old.Name, err)
		}
		if v, _ := fenceReadOnly(old); v != "ON" {
			t.Errorf("%s read_only=%q after a refused rejoin, want ON", old.Name, v)
		}
		if rep := p.Failover().Report(); !slices.Contains(rep.Fenced, old.Name) {
			t.Errorf("%s no longer fenced after a refused rejoin: %v", old.Name, rep.Fenced)
		}
		t.Logf("rejoin %s refused (its data diverged: %d acknowledged inserts not on %s): %v", old.Name, len(lostPre), newName, err)
		return
	}
	waitFor(t, 15*time.Second, old.Name+" replicates from "+newName, func() bool {
		st, err := old.SlaveStatus(ctx)
		return err == nil && st != nil && st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" &&
			st["Master_Port"] == fmt.Sprint(newSrv.Port)
	})
	if rep := p.Failover().Report(); slices.Contains(rep.Fenced, old.Name) {
		t.Errorf("%s still fenced after rejoining: %v", old.Name, rep.Fenced)
	}
	waitFor(t, 5*time.Second, "the snapshot shows "+old.Name+" as an unfenced replica", func() bool {
		s, _ := p.Snapshot().ByName(old.Name)
		return s.Up && !s.Fenced && s.Role == topology.RoleReplica
	})
	syncReplicas(t, topo)
	if m := w.missing(t, old, schema); len(m) > 0 {
		t.Errorf("%s lacks %d acknowledged inserts after rejoining: %v", old.Name, len(m), m[:min(len(m), 10)])
	}
	t.Logf("rejoin %s succeeded (epoch %d): it replicates from %s", old.Name, rrec.Epoch, newName)
}

// A sluice restarted after a failover takes the primary from the state
// file, not from what it finds: the old primary, restarted writable and
// replicating from nobody, is never routed to and is fenced on sight.
func TestRestartAfterFailoverWritesOnlyToNewPrimary(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	stateFile := filepath.Join(t.TempDir(), "sluice-state.json")
	withState := func(c *config.Config) { c.Failover.StateFile = stateFile }
	a := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(""), mutate: withState})
	schema := foSchema(t, topo)
	da := openDB(t, a, "")
	w := startWriters(t, da, schema, 4)
	halt := fenceHaltWriters(t, w)
	waitFor(t, 10*time.Second, "writes flow", func() bool { return w.count() > 100 })

	old := topo.Primary
	killed := time.Now()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	var newName string
	var routedAt time.Time
	waitFor(t, 15*time.Second, "a new primary", func() bool {
		pr, ok := a.Snapshot().PrimaryServer()
		if ok && pr.Name != old.Name {
			newName, routedAt = pr.Name, time.Now()
			return true
		}
		return false
	})
	newSrv := topo.ByName(newName)
	topo.SetPrimary(newSrv)
	n0 := w.count()
	waitFor(t, 15*time.Second, "100 writes through sluice A on "+newName, func() bool { return w.count() >= n0+100 })
	halt()
	repA := a.Failover().Report()
	if repA.Primary != newName || !slices.Contains(repA.Fenced, old.Name) {
		t.Fatalf("sluice A: primary %s fenced %v, want %s with %s fenced", repA.Primary, repA.Fenced, newName, old.Name)
	}
	// The state file is sluice A's while it runs: a second instance on it
	// is refused.
	if p2, err := proxy.New(a.Config(), proxy.Options{}); err == nil {
		p2.Close()
		t.Errorf("a second sluice opened %s while sluice A holds it", stateFile)
	} else if !strings.Contains(err.Error(), "in use by another sluice") {
		t.Errorf("second sluice on %s: %v, want an error saying it is in use", stateFile, err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close sluice A: %v", err)
	}
	t.Logf("SIGKILL %s: sluice A routes to %s after %s; epoch %d; %d writes acknowledged, %d client errors",
		old.Name, newName, routedAt.Sub(killed).Round(time.Millisecond), repA.Epoch, w.count(), len(w.errs))

	// db1 comes back as it was: writable, replicating from nobody.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v := fenceGlobalVar(t, old, "read_only"); v != "OFF" {
		t.Fatalf("%s restarted with read_only=%s, want OFF (the split brain this test is about)", old.Name, v)
	}
	if st, err := old.SlaveStatus(ctx); err != nil || st != nil {
		t.Fatalf("%s restarted replicating (%v, %v), want a lone writable server", old.Name, st, err)
	}
	before := userCommands(t, topo)

	// Sluice B starts from the same state file. Record every primary its
	// snapshots ever name, from the first one.
	var mu sync.Mutex
	var primaries []string
	var atStart topology.Snapshot
	started := time.Now()
	b := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(""), mutate: withState, beforeStart: func(p *proxy.Proxy) {
		atStart = *p.Snapshot()
		p.Monitor().Watch(func(_, cur *topology.Snapshot) {
			if pr, ok := cur.PrimaryServer(); ok {
				mu.Lock()
				if len(primaries) == 0 || primaries[len(primaries)-1] != pr.Name {
					primaries = append(primaries, pr.Name)
				}
				mu.Unlock()
			}
		})
	}})
	if atStart.Epoch != repA.Epoch || atStart.Designated != newName {
		t.Errorf("sluice B before its first check: epoch %d designated %q, want epoch %d designated %s", atStart.Epoch, atStart.Designated, repA.Epoch, newName)
	}
	if rep := b.Failover().Report(); rep.Epoch != repA.Epoch || rep.Primary != newName || !slices.Contains(rep.Fenced, old.Name) {
		t.Errorf("sluice B: epoch %d primary %s fenced %v, want epoch %d (sluice A's last) primary %s with %s fenced",
			rep.Epoch, rep.Primary, rep.Fenced, repA.Epoch, newName, old.Name)
	}

	// Writes through B, at once: before and while db1 is fenced.
	db := openDB(t, b, "")
	const base, rows = 1_000_000, 100
	insert := func(from, to int) {
		t.Helper()
		for id := from; id < to; id++ {
			if _, err := db.Exec("INSERT INTO `"+schema+"`.t (id, v) VALUES (?, 'b')", base+id); err != nil {
				t.Fatalf("insert %d through sluice B: %v", base+id, err)
			}
		}
	}
	insert(0, rows/2)
	waitFor(t, 15*time.Second, old.Name+" read_only=ON (fenced on sight by sluice B)", func() bool {
		v, err := fenceReadOnly(old)
		return err == nil && v == "ON"
	})
	fencedIn := time.Since(started)
	var frec failover.Record
	waitFor(t, 5*time.Second, "a fence record for "+old.Name, func() bool {
		var ok bool
		frec, ok = fenceOnSightRecord(b.Failover().Report(), old.Name)
		return ok
	})
	if !frec.OK {
		t.Errorf("fence on sight of %s failed: %+v", old.Name, frec)
	}
	insert(rows/2, rows)
	after := userCommands(t, topo)

	if got := after[old.Name]["update"] - before[old.Name]["update"]; got != 0 {
		t.Errorf("%s received %d app writes from sluice B", old.Name, got)
	}
	if got := after[newName]["update"] - before[newName]["update"]; got < rows {
		t.Errorf("%s received %d app writes from sluice B, want >= %d", newName, got, rows)
	}
	mu.Lock()
	seen := slices.Clone(primaries)
	mu.Unlock()
	if len(seen) != 1 || seen[0] != newName {
		t.Errorf("sluice B's snapshots named primaries %v, want only %s", seen, newName)
	}
	if rep := b.Failover().Report(); rep.Epoch != repA.Epoch {
		t.Errorf("sluice B's epoch moved to %d, want %d: fencing is no primary change", rep.Epoch, repA.Epoch)
	}
	countB := func(s *testbed.Server) int {
		adm, err := s.Admin()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := adm.QueryRow("SELECT COUNT(*) FROM `"+schema+"`.t WHERE id >= ?", base).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countB(newSrv); n != rows {
		t.Errorf("%s has %d of the %d rows written through sluice B", newName, n, rows)
	}
	if n := countB(old); n != 0 {
		t.Errorf("%s has %d rows written through sluice B", old.Name, n)
	}
	// What sluice A acknowledged once it routed to the new primary is there;
	// only writes db1 acknowledged just before the kill may be missing.
	acks := fenceAckTimes(w)
	lostPre := 0
	for _, id := range w.missing(t, newSrv, schema) {
		if acks[id].After(routedAt) {
			t.Errorf("insert %d acknowledged by sluice A after the failover is missing on %s", id, newName)
		} else {
			lostPre++
		}
	}
	onNew := tableIDs(t, newSrv, schema)
	errant, errantAcked := 0, 0
	for id := range tableIDs(t, old, schema) {
		if !onNew[id] {
			errant++
			if _, ok := acks[id]; ok {
				errantAcked++
			}
		}
	}
	t.Logf("rows on %s (committed before the kill, never replicated) missing on %s: %d, of which %d acknowledged", old.Name, newName, errant, errantAcked)
	t.Logf("sluice B: epoch %d from the state file, primary %s from its first snapshot; %s fenced %s after B started (%s); %d rows through B, all on %s; %d inserts acknowledged by %s before the kill not on %s; %s gtid_binlog_pos %s",
		repA.Epoch, newName, old.Name, fencedIn.Round(time.Millisecond), strings.Join(frec.Reasons, "; "), rows, newName,
		lostPre, old.Name, newName, old.Name, fenceGlobalVar(t, old, "gtid_binlog_pos"))
}

// A transaction left open on the primary when it froze belongs to the old
// epoch: after the failover its COMMIT must never wait for the old primary
// to wake and commit there, where no replica and no new primary will ever
// see it. With transaction replay (the default) it is replayed on the new
// primary and commits there; without, the COMMIT fails.
func TestTransactionOpenOnFrozenPrimaryIsNotCommittedThere(t *testing.T) {
	for _, replay := range []bool{true, false} {
		t.Run(fmt.Sprintf("transaction_replay=%v", replay), func(t *testing.T) { frozenPrimaryTxn(t, replay) })
	}
}

func frozenPrimaryTxn(t *testing.T, replay bool) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(fmt.Sprintf(", transaction_replay: %v", replay))})
	schema := foSchema(t, topo)
	c := conn(t, openDB(t, p, ""))
	mustExec(t, c, "BEGIN")
	mustExec(t, c, "INSERT INTO `"+schema+"`.t (id, v) VALUES (1, 'open')")

	old := topo.Primary
	stopped := pauseServer(t, old)
	newName := waitNewPrimary(t, p, old.Name, 20*time.Second)
	t.Logf("failed over to %s %s after the stop", newName, time.Since(stopped).Round(time.Millisecond))

	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	sent := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := c.ExecContext(ctx, "COMMIT")
		done <- result{err, time.Now()}
	}()
	var res result
	select {
	case res = <-done:
		t.Logf("COMMIT answered in %s: %v", res.at.Sub(sent).Round(time.Millisecond), res.err)
	case <-time.After(5 * time.Second):
		// Still waiting on the frozen old primary: let it wake.
		resumed := time.Now()
		if err := old.Resume(); err != nil {
			t.Fatal(err)
		}
		res = <-done
		t.Errorf("COMMIT got no answer for 5 s after the failover; it was answered %s after %s resumed: %v",
			res.at.Sub(resumed).Round(time.Millisecond), old.Name, res.err)
	}
	if replay && res.err != nil {
		t.Errorf("COMMIT of a transaction begun on %s, replayed on %s: %v", old.Name, newName, res.err)
	}
	if !replay && res.err == nil {
		t.Errorf("COMMIT of a transaction begun on %s succeeded after the failover to %s", old.Name, newName)
	}
	if old.Paused() {
		if err := old.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	// read_only=ON is the fence's first step; it then kills the server's
	// client connections (the test's admin pool too), so only its record
	// says the fence is over.
	fenceDone(t, p, old.Name, 15*time.Second)
	if v := fenceGlobalVar(t, old, "read_only"); v != "ON" {
		t.Errorf("%s read_only=%s after its fence, want ON", old.Name, v)
	}
	if ids := tableIDs(t, old, schema); ids[1] {
		t.Errorf("%s has the row of the transaction begun on it before the failover", old.Name)
	}
	if ids := tableIDs(t, topo.ByName(newName), schema); ids[1] != replay {
		t.Errorf("%s has the row of the transaction begun on %s: %v, want %v (replayed and committed there)", newName, old.Name, ids[1], replay)
	}
}
