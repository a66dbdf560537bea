package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/stats"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// replaySluice starts sluice with the failover settings of these tests and
// a stats observer, for sluice_transaction_replays_total.
func replaySluice(t *testing.T, topo *testbed.Topology, extra string, mutate func(*config.Config)) (*proxy.Proxy, *stats.Stats) {
	t.Helper()
	var st *stats.Stats
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(extra), mutate: mutate, beforeStart: func(p *proxy.Proxy) {
		st = stats.New(p, stats.Options{})
		p.SetObserver(st)
	}})
	t.Cleanup(st.Close)
	return p, st
}

// replayTxn is one client transaction through sluice: reads and writes in
// the text protocol and, through go-sql-driver's placeholders, the binary
// one (COM_STMT_PREPARE, EXECUTE, CLOSE on the transaction's connection).
type replayTxn struct {
	tx     *sql.Tx
	id     int64
	schema string
}

func beginReplayTxn(t *testing.T, ctx context.Context, d *sql.DB, schema string, id int64) *replayTxn {
	t.Helper()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &replayTxn{tx: tx, id: id, schema: schema}
	var v string
	if err := tx.QueryRowContext(ctx, "SELECT v FROM `"+schema+"`.t WHERE id = 1").Scan(&v); err != nil {
		t.Fatalf("txn %d: text read: %v", id, err)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT n FROM `"+schema+"`.c WHERE id = ?", 1).Scan(&n); err != nil {
		t.Fatalf("txn %d: prepared read: %v", id, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO `"+schema+"`.t (id, v) VALUES (?, ?)", id, "new"); err != nil {
		t.Fatalf("txn %d: prepared insert: %v", id, err)
	}
	// Its own row: the transactions of a test must not wait for each
	// other's locks.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("UPDATE `%s`.t SET v = 'before' WHERE id = %d", schema, id)); err != nil {
		t.Fatalf("txn %d: text update: %v", id, err)
	}
	return r
}

// finish runs more statements in the transaction, after the primary
// changed under it, and commits: every step must succeed.
func (r *replayTxn) finish(ctx context.Context, prepared bool) error {
	q := "`" + r.schema + "`"
	var err error
	if prepared {
		_, err = r.tx.ExecContext(ctx, "INSERT INTO "+q+".t (id, v) VALUES (?, ?)", r.id+1, "after")
	} else {
		_, err = r.tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s.t (id, v) VALUES (%d, 'after')", q, r.id+1))
	}
	if err != nil {
		r.tx.Rollback()
		return fmt.Errorf("txn %d: statement after the change: %w", r.id, err)
	}
	var v string
	if err := r.tx.QueryRowContext(ctx, "SELECT v FROM "+q+".t WHERE id = ?", r.id).Scan(&v); err != nil || v != "before" {
		r.tx.Rollback()
		return fmt.Errorf("txn %d: reading its own earlier row: %q, %v", r.id, v, err)
	}
	if err := r.tx.Commit(); err != nil {
		return fmt.Errorf("txn %d: COMMIT: %w", r.id, err)
	}
	return nil
}

func replays(st *stats.Stats) map[string]uint64 { return st.TransactionReplays() }

// TestTransactionReplayAcrossSwitchover: transactions open on the old
// primary when a switchover cuts them (idle past drain_timeout, and one
// with a statement running) go on on the new primary and commit with no
// client error; their rows are there afterwards.
func TestTransactionReplayAcrossSwitchover(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	p, st := replaySluice(t, topo, "", nil) // drain_timeout 3s
	api := adminAPI(t, p)
	schema := foSchema(t, topo)
	primaryIs(t, p, "db1", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := openDB(t, p, "")
	d.SetMaxOpenConns(16)
	mustExec(t, d, "INSERT INTO `"+schema+"`.t VALUES (1, 'a')")

	const n = 4
	var txns []*replayTxn
	for i := range n {
		txns = append(txns, beginReplayTxn(t, ctx, d, schema, int64(1000+10*i)))
	}
	// One runs with autocommit off: its first statement opened it.
	ac := conn(t, d)
	mustExec(t, ac, "SET autocommit = 0")
	var v string
	if err := ac.QueryRowContext(ctx, "SELECT v FROM `"+schema+"`.t WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ac, "INSERT INTO `"+schema+"`.t (id, v) VALUES (?, ?)", 3000, "ac")
	// One transaction has a statement running on the old primary when the
	// drain ends: nothing of its result reached the client, so it runs
	// again on the new primary.
	busy := beginReplayTxn(t, ctx, d, schema, 2000)
	busyDone := make(chan error, 1)
	go func() {
		var x int
		err := busy.tx.QueryRowContext(ctx, "SELECT SLEEP(6)").Scan(&x)
		if err == nil {
			err = busy.finish(ctx, true)
		}
		busyDone <- err
	}()
	waitFor(t, 5*time.Second, "the SLEEP runs on db1", func() bool {
		for _, s := range p.Sessions() {
			if s.Server == "db1" && strings.Contains(s.Statement, "SLEEP") {
				return true
			}
		}
		return false
	})
	code, body := apiCall(t, api, http.MethodPost, "/api/switchover?to=db2", nil)
	if code != http.StatusOK {
		t.Fatalf("switchover: %d %s", code, body)
	}
	primaryIs(t, p, "db2", 5*time.Second)
	for i, r := range txns {
		if err := r.finish(ctx, i%2 == 0); err != nil {
			t.Errorf("after the switchover: %v", err)
		}
	}
	if err := <-busyDone; err != nil {
		t.Errorf("the transaction whose statement the switchover cut: %v", err)
	}
	if _, err := ac.ExecContext(ctx, "INSERT INTO `"+schema+"`.t (id, v) VALUES (3001, 'ac')"); err != nil {
		t.Errorf("autocommit=0 transaction after the switchover: %v", err)
	} else if _, err := ac.ExecContext(ctx, "COMMIT"); err != nil {
		t.Errorf("autocommit=0 transaction: COMMIT: %v", err)
	}
	ids := tableIDs(t, topo.ByName("db2"), schema)
	for _, r := range append(txns, busy, &replayTxn{id: 3000}) {
		if !ids[r.id] || !ids[r.id+1] {
			t.Errorf("txn %d: rows %d, %d on db2: %v, %v; want both", r.id, r.id, r.id+1, ids[r.id], ids[r.id+1])
		}
	}
	got := replays(st)
	t.Logf("switchover with %d idle transactions, one with autocommit off and one running a statement: replays %v", n, got)
	if got["ok"] != n+2 || len(got) != 1 {
		t.Errorf("sluice_transaction_replays_total %v, want ok=%d only", got, n+2)
	}
}

// TestTransactionReplayAcrossFailover: transactions open when the primary
// is SIGKILLed (semi-sync, as in the chaos tests) commit on the new
// primary with no client error, whether their next statement comes right
// after the kill (it meets the dead connection and waits for the
// failover) or after the failover (which cut them).
func TestTransactionReplayAcrossFailover(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, SemiSync: true, ExtraArgs: serverArgs})
	const interval, fall = 300 * time.Millisecond, 3
	p, st := replaySluice(t, topo, "", func(c *config.Config) {
		c.Health.Interval, c.Health.Timeout, c.Health.Fall = config.Duration(interval), config.Duration(time.Second), fall
	})
	schema := foSchema(t, topo)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := openDB(t, p, "")
	d.SetMaxOpenConns(16)
	mustExec(t, d, "INSERT INTO `"+schema+"`.t VALUES (1, 'a')")
	syncReplicas(t, topo)
	old := topo.Primary
	semiSyncOn(t, old, "before the kill")

	const n = 6
	var txns []*replayTxn
	for i := range n {
		txns = append(txns, beginReplayTxn(t, ctx, d, schema, int64(1000+10*i)))
	}
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Half go on at once: their statements meet the dead primary.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n/2; i++ {
		wg.Add(1)
		go func(r *replayTxn, prepared bool) {
			defer wg.Done()
			if err := r.finish(ctx, prepared); err != nil {
				errs <- err
			}
		}(txns[i], i%2 == 0)
	}
	newName := waitNewPrimary(t, p, old.Name, 20*time.Second)
	t.Logf("failed over to %s %s after the kill", newName, time.Since(killed).Round(time.Millisecond))
	for i := n / 2; i < n; i++ {
		if err := txns[i].finish(ctx, i%2 == 0); err != nil {
			errs <- err
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("after the failover: %v", err)
	}
	ids := tableIDs(t, topo.ByName(newName), schema)
	for _, r := range txns {
		if !ids[r.id] || !ids[r.id+1] {
			t.Errorf("txn %d: rows %d, %d on %s: %v, %v; want both", r.id, r.id, r.id+1, newName, ids[r.id], ids[r.id+1])
		}
	}
	got := replays(st)
	t.Logf("SIGKILL of %s with %d open transactions: replays %v", old.Name, n, got)
	if got["ok"] != n || len(got) != 1 {
		t.Errorf("sluice_transaction_replays_total %v, want ok=%d only", got, n)
	}
}

// TestTransactionReplayRefusesWhatItCannotProve: a transaction that read a
// row another client changed before the switchover is refused with the
// error it got before replay existed (1927), not silently changed, and
// none of its writes reach the new primary; so is one over
// failover.replay_max_size. A transaction beside them is replayed.
func TestTransactionReplayRefusesWhatItCannotProve(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	p, st := replaySluice(t, topo, ", replay_max_size: 4KiB", nil)
	api := adminAPI(t, p)
	schema := foSchema(t, topo)
	primaryIs(t, p, "db1", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := openDB(t, p, "")
	d.SetMaxOpenConns(16)
	tbl := "`" + schema + "`.t"
	mustExec(t, d, "INSERT INTO "+tbl+" VALUES (1, 'a'), (2, 'b')")

	changed := beginReplayTxn(t, ctx, d, schema, 300) // read row 1: 'a'
	mustExec(t, d, "UPDATE "+tbl+" SET v = 'changed' WHERE id = 1")

	big, err := d.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pad := " /* " + strings.Repeat("x", 2500) + " */"
	for _, id := range []int{400, 401} {
		if _, err := big.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 'big')%s", tbl, id, pad)); err != nil {
			t.Fatal(err)
		}
	}
	fine := beginReplayTxn(t, ctx, d, schema, 500)

	code, body := apiCall(t, api, http.MethodPost, "/api/switchover?to=db2", nil)
	if code != http.StatusOK {
		t.Fatalf("switchover: %d %s", code, body)
	}
	primaryIs(t, p, "db2", 5*time.Second)

	refused := func(name string, err error, why string) {
		t.Helper()
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1927 || !strings.Contains(me.Message, "switchover") || !strings.Contains(me.Message, why) {
			t.Errorf("%s after the switchover: %v, want error 1927 naming the switchover and saying %q", name, err, why)
			return
		}
		t.Logf("%s: %d %s", name, me.Number, me.Message)
	}
	refused("the transaction whose read changed", changed.finish(ctx, true), "gave another result than the client saw")
	_, err = big.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (402, 'big')")
	big.Rollback()
	refused("the transaction over replay_max_size", err, "replay_max_size")
	if err := fine.finish(ctx, false); err != nil {
		t.Errorf("the transaction beside them: %v", err)
	}

	ids := tableIDs(t, topo.ByName("db2"), schema)
	for _, id := range []int64{300, 301, 400, 401, 402} {
		if ids[id] {
			t.Errorf("row %d of a refused transaction is on db2", id)
		}
	}
	if !ids[500] || !ids[501] {
		t.Errorf("rows of the replayed transaction missing on db2: %v", ids)
	}
	var v string
	if err := d.QueryRowContext(ctx, "SELECT v FROM "+tbl+" WHERE id = 1").Scan(&v); err != nil || v != "changed" {
		t.Errorf("row 1 after: %q (%v), want the other client's 'changed'", v, err)
	}
	got := replays(st)
	t.Logf("replays %v", got)
	if got["ok"] != 1 || got["mismatch"] != 1 || got["too_big"] != 1 || len(got) != 3 {
		t.Errorf("sluice_transaction_replays_total %v, want ok=1 mismatch=1 too_big=1", got)
	}
}

// TestInterruptedCommitIsNotReplayed: a COMMIT sent to a primary that froze
// before answering has an unknown outcome: after the failover the client
// hears so (1927, "outcome is unknown"), the transaction is not replayed
// on the new primary, and the session goes on.
func TestInterruptedCommitIsNotReplayed(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	p, st := replaySluice(t, topo, "", nil)
	schema := foSchema(t, topo)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := conn(t, openDB(t, p, ""))
	mustExec(t, c, "BEGIN")
	mustExec(t, c, "INSERT INTO `"+schema+"`.t (id, v) VALUES (7, 'commit')")

	old := topo.Primary
	pauseServer(t, old)
	sent := time.Now()
	_, err := c.ExecContext(ctx, "COMMIT")
	t.Logf("COMMIT to the frozen %s answered after %s: %v", old.Name, time.Since(sent).Round(time.Millisecond), err)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1927 || !strings.Contains(me.Message, "outcome is unknown") {
		t.Errorf("COMMIT cut by the failover: %v, want error 1927 saying the outcome is unknown", err)
	}
	newName := waitNewPrimary(t, p, old.Name, 20*time.Second)
	var one int
	if err := c.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("the session does not go on after the interrupted COMMIT: %v", err)
	}
	if ids := tableIDs(t, topo.ByName(newName), schema); ids[7] {
		t.Errorf("the interrupted transaction's row is on the new primary %s: it was replayed", newName)
	}
	got := replays(st)
	if got["commit_unknown"] != 1 || got["ok"] != 0 {
		t.Errorf("sluice_transaction_replays_total %v, want commit_unknown=1 and no replay", got)
	}
}
