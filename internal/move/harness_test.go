package move_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/move"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// cluster is one testbed cluster as the tests see it.
type cluster struct {
	name string
	topo *testbed.Topology
	app  *sql.DB // app account on the primary
}

func startClusters(t *testing.T, names ...string) map[string]*cluster {
	t.Helper()
	topos := testbed.StartClustersT(t, len(names), testbed.Options{Replicas: 1})
	out := map[string]*cluster{}
	for i, n := range names {
		c := &cluster{name: n, topo: topos[i]}
		c.reopen(t)
		out[n] = c
	}
	return out
}

// reopen points the app pool at the cluster's current primary.
func (c *cluster) reopen(t *testing.T) {
	if c.app != nil {
		c.app.Close()
	}
	db, err := sql.Open("mysql", c.topo.Primary.DSN(testbed.AppUser, testbed.AppPassword, "test")+"&interpolateParams=true")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(16)
	c.app = db
	t.Cleanup(func() { db.Close() })
}

// endpoint describes the cluster to the mover; withReplica offers its
// replica for the snapshot.
func (c *cluster) endpoint(withReplica bool) move.Endpoint {
	ep := move.Endpoint{
		Cluster: c.name, Primary: c.topo.Primary.Addr(),
		User: testbed.AppUser, Password: testbed.AppPassword,
		ReplUser: testbed.ReplUser, ReplPassword: testbed.ReplPassword,
	}
	if withReplica && len(c.topo.Replicas) > 0 && c.topo.Replicas[0].Running() {
		ep.Replica = c.topo.Replicas[0].Addr()
	}
	return ep
}

func exec(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.80s: %v", q, err)
		}
	}
}

const bucketDDL = "(id BIGINT PRIMARY KEY, k VARCHAR(64) NOT NULL, doc JSON, " +
	"created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), " +
	"updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"

func bucket(i int) string { return fmt.Sprintf("bucket_%04d", i) }

// createTable creates db.name with seed rows 1..rows.
func createTable(t *testing.T, db *sql.DB, dbName, name string, rows int) {
	t.Helper()
	exec(t, db,
		fmt.Sprintf("CREATE TABLE `%s`.`%s` %s", dbName, name, bucketDDL),
		fmt.Sprintf("INSERT INTO `%s`.`%s` (id, k, doc) SELECT seq, CONCAT('k', seq), JSON_OBJECT('v', 0, 'pad', REPEAT('x', 40)) FROM seq_1_to_%d", dbName, name, rows))
}

// testRouter is the contract the proxy satisfies, done with a RWMutex per
// object: the workload read-locks the objects a statement touches for the
// statement's duration; Hold write-locks the moved ones.
type testRouter struct {
	def      string
	clusters map[string]*cluster

	mu    sync.Mutex
	locks map[string]*sync.RWMutex
	owner map[string]string

	onHold  func(objs []move.Object) error // before taking the locks
	onPlace func(objs []move.Object, cluster string) error
	held    atomic.Int64 // number of Hold calls
	placed  atomic.Int64
	heldKey sync.Map // keys ever held
}

func newRouter(def string, cs map[string]*cluster) *testRouter {
	return &testRouter{def: def, clusters: cs, locks: map[string]*sync.RWMutex{}, owner: map[string]string{}}
}

func key(o move.Object) string { return o.String() }

func (r *testRouter) lock(k string) *sync.RWMutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.locks[k]
	if l == nil {
		l = &sync.RWMutex{}
		r.locks[k] = l
	}
	return l
}

// owning returns the cluster owning db.table now.
func (r *testRouter) owning(db, table string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.owner[db+"."+table]; ok {
		return c
	}
	if c, ok := r.owner[db]; ok {
		return c
	}
	return r.def
}

// route read-locks the database and the table and returns the owner.
func (r *testRouter) route(db, table string) (*cluster, func()) {
	ld, lt := r.lock(db), r.lock(db+"."+table)
	ld.RLock()
	lt.RLock()
	return r.clusters[r.owning(db, table)], func() { lt.RUnlock(); ld.RUnlock() }
}

func (r *testRouter) Hold(ctx context.Context, objs []move.Object) (func(), error) {
	r.held.Add(1)
	if r.onHold != nil {
		if err := r.onHold(objs); err != nil {
			return nil, err
		}
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = key(o)
		r.heldKey.Store(keys[i], true)
	}
	slices.Sort(keys)
	unlockAll := func() {
		for _, k := range keys {
			r.lock(k).Unlock()
		}
	}
	done := make(chan struct{})
	go func() {
		for _, k := range keys {
			r.lock(k).Lock()
		}
		close(done)
	}()
	select {
	case <-done:
		return unlockAll, nil
	case <-ctx.Done():
		go func() { <-done; unlockAll() }()
		return nil, ctx.Err()
	}
}

func (r *testRouter) Place(objs []move.Object, cluster string) error {
	if r.onPlace != nil {
		if err := r.onPlace(objs, cluster); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range objs {
		r.owner[key(o)] = cluster
	}
	r.placed.Add(1)
	return nil
}

// workload writes to and reads from tables through the router, recording
// every acknowledged write.
type workload struct {
	r      *testRouter
	tables []move.Object
	errs   atomic.Int64
	ops    atomic.Int64
	mu     sync.Mutex
	acked  map[move.Object]map[int64]int64 // table → id → last acknowledged value
	first  []string                        // first errors
	stop   chan struct{}
	wg     sync.WaitGroup
	perObj sync.Map // move.Object → *atomic.Int64 ops
}

func startWorkload(r *testRouter, tables []move.Object, workers int) *workload {
	w := &workload{r: r, tables: tables, acked: map[move.Object]map[int64]int64{}, stop: make(chan struct{})}
	for i := range workers {
		w.wg.Go(func() { w.run(int64(i + 1)) })
	}
	return w
}

func (w *workload) fail(err error) {
	w.errs.Add(1)
	w.mu.Lock()
	if len(w.first) < 10 {
		w.first = append(w.first, err.Error())
	}
	w.mu.Unlock()
}

func (w *workload) count(o move.Object) int64 {
	v, _ := w.perObj.LoadOrStore(o, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (w *workload) run(worker int64) {
	rng := rand.New(rand.NewPCG(uint64(worker), 42))
	mine := map[move.Object][]int64{}
	vals := map[move.Object]map[int64]int64{}
	next := worker << 32
	var v int64
	ctx := context.Background()
	for {
		select {
		case <-w.stop:
			w.mu.Lock()
			for o, m := range vals {
				if w.acked[o] == nil {
					w.acked[o] = map[int64]int64{}
				}
				for id, val := range m {
					w.acked[o][id] = val
				}
			}
			w.mu.Unlock()
			return
		default:
		}
		o := w.tables[rng.IntN(len(w.tables))]
		if vals[o] == nil {
			vals[o] = map[int64]int64{}
		}
		v++
		c, unlock := w.r.route(o.DB, o.Table)
		tbl := "`" + o.DB + "`.`" + o.Table + "`"
		var err error
		op := rng.IntN(10)
		switch {
		case op < 5 || len(mine[o]) == 0:
			next++
			_, err = c.app.ExecContext(ctx, "INSERT INTO "+tbl+" (id, k, doc) VALUES (?, ?, JSON_OBJECT('v', ?))", next, fmt.Sprintf("w%d", worker), v)
			if err == nil {
				mine[o] = append(mine[o], next)
				vals[o][next] = v
			}
		case op < 8:
			id := mine[o][rng.IntN(len(mine[o]))]
			_, err = c.app.ExecContext(ctx, "UPDATE "+tbl+" SET doc = JSON_OBJECT('v', ?), k = ? WHERE id = ?", v, fmt.Sprintf("u%d", v), id)
			if err == nil {
				vals[o][id] = v
			}
		default:
			id := mine[o][rng.IntN(len(mine[o]))]
			var got int64
			err = c.app.QueryRowContext(ctx, "SELECT JSON_VALUE(doc, '$.v') FROM "+tbl+" WHERE id = ?", id).Scan(&got)
			if err == nil && got != vals[o][id] {
				err = fmt.Errorf("read %s id %d on %s: v=%d, last acknowledged write %d", o, id, c.name, got, vals[o][id])
			}
		}
		unlock()
		if err != nil {
			w.fail(fmt.Errorf("%s on %s: %w", o, c.name, err))
		}
		w.ops.Add(1)
		cnt, _ := w.perObj.LoadOrStore(o, new(atomic.Int64))
		cnt.(*atomic.Int64).Add(1)
		time.Sleep(time.Millisecond) // pacing, so the workload does not take both cores
	}
}

func (w *workload) finish() {
	close(w.stop)
	w.wg.Wait()
}

// verify checks that every acknowledged write is on the owning cluster.
func (w *workload) verify(t *testing.T) {
	t.Helper()
	var n int
	for o, m := range w.acked {
		c := w.r.clusters[w.r.owning(o.DB, o.Table)]
		rows, err := c.app.Query("SELECT id, JSON_VALUE(doc, '$.v') FROM `" + o.DB + "`.`" + o.Table + "` WHERE id > 4294967295")
		if err != nil {
			t.Fatalf("verify %s on %s: %v", o, c.name, err)
		}
		have := map[int64]int64{}
		for rows.Next() {
			var id, v int64
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			have[id] = v
		}
		rows.Close()
		for id, v := range m {
			n++
			if got, ok := have[id]; !ok || got != v {
				t.Errorf("%s id %d on %s: have %d (present %v), last acknowledged %d", o, id, c.name, got, ok, v)
			}
		}
	}
	t.Logf("verified %d acknowledged rows on their owning clusters", n)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checksums returns CHECKSUM TABLE of db.tables on db.
func checksums(t *testing.T, db *sql.DB, tables []move.Object) map[string]int64 {
	t.Helper()
	names := make([]string, len(tables))
	for i, o := range tables {
		names[i] = "`" + o.DB + "`.`" + o.Table + "`"
	}
	rows, err := db.Query("CHECKSUM TABLE " + strings.Join(names, ","))
	if err != nil {
		t.Errorf("checksum: %v", err)
		return nil
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var s sql.NullInt64
		if err := rows.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		if !s.Valid {
			t.Errorf("CHECKSUM TABLE %s: NULL (table missing)", n)
		}
		out[n] = s.Int64
	}
	return out
}

// tablesIn lists the base tables of db on a server.
func tablesIn(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

func dbExists(t *testing.T, db *sql.DB, schema string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// connections lists the named replication connections on a server.
func connections(t *testing.T, s *testbed.Server) []string {
	t.Helper()
	db, err := s.Admin()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SHOW ALL SLAVES STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows.Scan(ptrs...)
		for i, c := range cols {
			if c == "Connection_name" {
				out = append(out, vals[i].String)
			}
		}
	}
	return out
}

func runMove(t *testing.T, spec move.Spec, r move.Router) (*move.Move, error) {
	t.Helper()
	m, err := move.New(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = m.Run(ctx)
	return m, err
}

func report(t *testing.T, what string, st move.Status) {
	t.Helper()
	t.Logf("%s: phase=%s tables=%d rows=%d (est %d) copy=%v (%.0f rows/s) from %s at %s; catch-up=%v lag=%d; cutover attempts=%d hold=%v (drain %v, apply %v, verify %v); warnings=%v",
		what, st.Phase, st.Tables, st.RowsCopied, st.RowsTotal, st.CopyTime.Round(time.Millisecond), st.RowsPerSec,
		st.SnapshotFrom, st.SnapshotGTID, st.CatchUpTime.Round(time.Millisecond), st.LagGTIDs, st.CutoverAttempts,
		st.Hold.Round(100*time.Microsecond), st.HoldDrain.Round(100*time.Microsecond), st.HoldApply.Round(100*time.Microsecond),
		st.HoldVerify.Round(100*time.Microsecond), st.Warnings)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
