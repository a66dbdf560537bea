package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Health checks against real faults: stopped replication threads, lag,
// frozen and killed servers. Each test breaks servers of its own topology.

// h3Trail records every published state of one server, as the monitor
// publishes it (Watch runs on the monitor's goroutine, for every snapshot).
type h3Trail struct {
	mu sync.Mutex
	ev []h3Event
}

type h3Event struct {
	at time.Time
	s  topology.Server
}

func h3Record(p *proxy.Proxy, name string) *h3Trail {
	tr := &h3Trail{}
	p.Monitor().Watch(func(_, cur *topology.Snapshot) {
		if s, ok := cur.ByName(name); ok {
			tr.mu.Lock()
			tr.ev = append(tr.ev, h3Event{time.Now(), *s})
			tr.mu.Unlock()
		}
	})
	return tr
}

// first waits until a state published after since satisfies cond and
// returns when it was published.
func (tr *h3Trail) first(t testing.TB, since time.Time, limit time.Duration, what string, cond func(*topology.Server) bool) h3Event {
	t.Helper()
	var found h3Event
	waitFor(t, limit, what, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, e := range tr.ev {
			if !e.at.Before(since) && cond(&e.s) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// last returns the latest published state.
func (tr *h3Trail) last() topology.Server {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.ev) == 0 {
		return topology.Server{}
	}
	return tr.ev[len(tr.ev)-1].s
}

// checks returns the distinct health checks published in [from, to) that
// satisfy cond (snapshots published by SetAdmin repeat a check).
func (tr *h3Trail) checks(from, to time.Time, cond func(*topology.Server) bool) []topology.Server {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []topology.Server
	var last time.Time
	for _, e := range tr.ev {
		if e.at.Before(from) || !e.at.Before(to) || e.s.LastCheck.Equal(last) {
			continue
		}
		last = e.s.LastCheck
		if cond(&e.s) {
			out = append(out, e.s)
		}
	}
	return out
}

// h3Load runs reads from n goroutines, each on its own client session,
// outside transactions, and keeps figures: reads per server, errors, the
// slowest read.
type h3Load struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	names map[string]string

	mu     sync.Mutex
	reads  map[string]int
	errs   []error
	maxLat time.Duration
	maxAt  time.Time
}

func h3StartLoad(t testing.TB, d *sql.DB, topo *testbed.Topology, n int, query string) *h3Load {
	t.Helper()
	l := &h3Load{stop: make(chan struct{}), names: h3PortNames(topo), reads: map[string]int{}}
	d.SetMaxOpenConns(n)
	d.SetMaxIdleConns(n)
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				// A client-side bound far above sluice's, to catch a hang.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				start := time.Now()
				var port string
				err := d.QueryRowContext(ctx, query).Scan(&port)
				took := time.Since(start)
				cancel()
				l.mu.Lock()
				if took > l.maxLat {
					l.maxLat, l.maxAt = took, start
				}
				if err != nil {
					l.errs = append(l.errs, err)
				} else {
					l.reads[l.names[port]]++
				}
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *h3Load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *h3Load) count(server string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads[server]
}

// figures stops the load and returns its totals.
func (l *h3Load) figures() (reads map[string]int, errs []error, maxLat time.Duration) {
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads, l.errs, l.maxLat
}

func h3LogErrors(t testing.TB, errs []error) {
	for i, err := range errs {
		if i == 5 {
			t.Logf("... %d errors in all", len(errs))
			return
		}
		t.Logf("client error: %v", err)
	}
}

func h3Exec(t testing.TB, s *testbed.Server, q string) {
	t.Helper()
	if err := s.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s on %s: %v", q, s.Name, err)
	}
}

// TestStoppedSQLThreadExcludesReplicaAndRiseReadmitsIt: STOP SLAVE
// SQL_THREAD takes a replica out of reads within fall × interval; START
// SLAVE SQL_THREAD brings it back only after rise good checks in a row.
func TestStoppedSQLThreadExcludesReplicaAndRiseReadmitsIt(t *testing.T) {
	const interval, rise, fall = 200 * time.Millisecond, 3, 2
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db2 := topo.ByName("db2")
	t.Cleanup(func() { db2.Exec(context.Background(), "START SLAVE SQL_THREAD") })
	s := h3Start(t, h3Cfg{topo: topo,
		health: fmt.Sprintf("{interval: %s, timeout: 1s, rise: %d, fall: %d}", interval, rise, fall),
		yaml:   "routing: {read_your_writes: false, balance: round-robin}\n"})
	trail := h3Record(s.p, "db2")
	d := s.db(t, "")
	if got := h3ReadOn(t, d, topo, 20, "SELECT @@port"); got["db2"] == 0 {
		t.Fatalf("db2 takes no reads before the test: %v", got)
	}

	stopped := time.Now()
	h3Exec(t, db2, "STOP SLAVE SQL_THREAD")
	out := trail.first(t, stopped, 5*time.Second, "db2 excluded from reads", func(s *topology.Server) bool { return !s.Readable })
	detect := out.at.Sub(stopped)
	t.Logf("SQL thread stopped: db2 out of reads after %s (state %q; bound fall×interval = %s)", detect.Round(time.Millisecond), out.s.State(), fall*interval)
	if out.s.State() != "stopped" || out.s.SQLRunning {
		t.Fatalf("db2 excluded as %q (sql running %v), want stopped", out.s.State(), out.s.SQLRunning)
	}
	// One check suffices: no check may have seen the thread stopped and
	// left db2 readable. The time bound is that, with room for a loaded
	// machine's slow checks.
	if seen := trail.checks(stopped, out.at, func(s *topology.Server) bool { return !s.SQLRunning && s.Readable }); len(seen) > 0 {
		t.Errorf("%d checks saw the SQL thread stopped and kept db2 readable, want exclusion at the first", len(seen))
	}
	if detect > 2*fall*interval+time.Second {
		t.Errorf("detection took %s, want within fall × interval (%s) and a margin", detect, fall*interval)
	}
	if got := h3ReadOn(t, d, topo, 40, "SELECT @@port"); got["db2"] != 0 || got["db3"] != 40 {
		t.Fatalf("reads with db2's SQL thread stopped: %v, want all on db3", got)
	}
	var api httpapi.ServerView
	if code := s.call(t, "GET", "/health/db2", "", &api); code != http.StatusServiceUnavailable || api.State != "stopped" {
		t.Fatalf("/health/db2: %d %+v", code, api)
	}

	started := time.Now()
	h3Exec(t, db2, "START SLAVE SQL_THREAD")
	back := trail.first(t, started, 5*time.Second, "db2 readmitted", func(s *topology.Server) bool { return s.Readable })
	rejoin := back.at.Sub(started)
	good := trail.checks(started, back.at, func(s *topology.Server) bool { return s.SQLRunning && s.IORunning && !s.Readable })
	t.Logf("SQL thread started: db2 back after %s, %d good checks held back before the readmitting one (rise %d)", rejoin.Round(time.Millisecond), len(good), rise)
	if len(good) != rise-1 {
		t.Errorf("readmitted after %d good checks, want rise = %d", len(good)+1, rise)
	}
	if rejoin < (rise-1)*interval {
		t.Errorf("readmitted after %s, before (rise-1) × interval = %s", rejoin, (rise-1)*interval)
	}
	waitFor(t, 5*time.Second, "db2 takes reads again", func() bool {
		return h3ReadOn(t, d, topo, 4, "SELECT @@port")["db2"] > 0
	})
}

// TestLaggingReplicaIsExcludedAndReadsStayFresh: a replica whose SQL thread
// is held behind FLUSH TABLES WITH READ LOCK while the primary takes writes
// falls behind the heartbeat; it is excluded once its lag passes
// max_replication_lag, reads through sluice keep seeing every write, and
// the replica returns after UNLOCK TABLES only after rise checks.
func TestLaggingReplicaIsExcludedAndReadsStayFresh(t *testing.T) {
	const interval, rise, maxLag = 200 * time.Millisecond, 3, time.Second
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	schema := newSchema(t, topo,
		"CREATE TABLE heartbeat (ts VARCHAR(26) NOT NULL, server_id INT UNSIGNED NOT NULL PRIMARY KEY)",
		"CREATE TABLE t (id INT PRIMARY KEY)")
	// The monitor account has no data privileges: the heartbeat needs
	// INSERT and DELETE (REPLACE) on the primary and SELECT everywhere. The
	// GRANT replicates, so the replicas get it too.
	h3Exec(t, topo.Primary, fmt.Sprintf("GRANT SELECT, INSERT, DELETE ON `%s`.heartbeat TO '%s'@'%%'", schema, testbed.MonitorUser))
	syncReplicas(t, topo)
	s := h3Start(t, h3Cfg{topo: topo,
		health: fmt.Sprintf("{interval: %s, timeout: 1s, rise: %d, fall: 2}", interval, rise),
		yaml: fmt.Sprintf("routing: {read_your_writes: false, balance: round-robin, max_replication_lag: %s, heartbeat_table: %s.heartbeat}\n",
			maxLag, schema)})
	trail := h3Record(s.p, "db2")
	waitFor(t, 5*time.Second, "both replicas readable with a heartbeat lag", func() bool {
		snap := s.p.Monitor().Snapshot()
		for _, n := range []string{"db2", "db3"} {
			if r, _ := snap.ByName(n); !r.Readable || !r.LagKnown {
				return false
			}
		}
		return true
	})
	before, _ := s.p.Monitor().Snapshot().ByName("db2")
	t.Logf("heartbeat lag of db2 before the lock: %s", before.Lag)
	// At start the lag is unknown until sluice has written a first
	// heartbeat; the first measured good lag readmits at once, so a start
	// does not keep the replicas out for rise checks.
	if measured := trail.first(t, time.Time{}, time.Second, "a measured lag", func(s *topology.Server) bool { return s.LagKnown }); !measured.s.Readable {
		t.Fatalf("db2's first measured lag (%s) did not readmit it at once: %+v", measured.s.Lag, measured.s)
	}

	admin, err := topo.ByName("db2").Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lock, err := admin.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlocked := false
	t.Cleanup(func() {
		if !unlocked {
			lock.ExecContext(ctx, "UNLOCK TABLES")
		}
		lock.Close()
	})
	if _, err := lock.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()

	// Write through sluice and read the write back through sluice.
	d := s.db(t, schema)
	names := h3PortNames(topo)
	var excludedAt time.Time
	var worst time.Duration
	afterExclusion, staleBefore, lastID := 0, 0, 0
	for id := 1; ; id++ {
		lastID = id
		if time.Since(locked) > 15*time.Second {
			t.Fatalf("db2 never excluded in 15 s of writes (last state %+v)", trail.last())
		}
		mustExec(t, d, "INSERT INTO t VALUES (?)", id)
		wrote := time.Now()
		for {
			var maxID int
			var port string
			if err := d.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0), @@port FROM t").Scan(&maxID, &port); err != nil {
				t.Fatal(err)
			}
			if !excludedAt.IsZero() && names[port] == "db2" {
				t.Fatalf("read %d ran on db2 after it was excluded", id)
			}
			if maxID >= id {
				break
			}
			if names[port] == "db2" {
				staleBefore++
			}
			// A replica is readable while its lag, measured at most an
			// interval ago, is within the limit.
			if bound := maxLag + 4*interval + time.Second; time.Since(wrote) > bound {
				t.Fatalf("write %d not visible through sluice after %s (last read on %s)", id, bound, names[port])
			}
		}
		worst = max(worst, time.Since(wrote))
		if excludedAt.IsZero() {
			if r, _ := s.p.Monitor().Snapshot().ByName("db2"); !r.Readable {
				excludedAt = time.Now()
				t.Logf("db2 excluded %s after the lock (state %q, heartbeat lag %s; %d writes so far)",
					excludedAt.Sub(locked).Round(time.Millisecond), r.State(), r.Lag, id)
				if r.State() != "lagging" || !r.LagKnown || r.Lag <= maxLag {
					t.Fatalf("db2 excluded as %+v, want lagging past %s", r, maxLag)
				}
			}
			continue
		}
		if afterExclusion++; afterExclusion == 50 {
			break
		}
	}
	t.Logf("reads: each write visible through sluice within %s; %d stale reads from db2 before its exclusion, 0 after", worst.Round(time.Millisecond), staleBefore)
	if ex := excludedAt.Sub(locked); ex > maxLag+4*interval+time.Second {
		t.Errorf("excluded %s after the lock, want about max_replication_lag (%s) + an interval", ex, maxLag)
	}
	if st, err := topo.ByName("db2").SlaveStatus(ctx); err == nil {
		t.Logf("db2 Seconds_Behind_Master while locked: %s", st["Seconds_Behind_Master"])
	}

	unlock := time.Now()
	if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	unlocked = true
	back := trail.first(t, unlock, 10*time.Second, "db2 readmitted after UNLOCK TABLES", func(s *topology.Server) bool { return s.Readable })
	good := trail.checks(unlock, back.at, func(s *topology.Server) bool { return s.LagKnown && s.Lag <= maxLag && !s.Readable })
	t.Logf("UNLOCK TABLES: db2 readmitted after %s (lag %s) with %d good checks held back before the readmitting one (rise %d)",
		back.at.Sub(unlock).Round(time.Millisecond), back.s.Lag, len(good), rise)
	if len(good) != rise-1 {
		t.Errorf("readmitted after %d good checks, want rise = %d", len(good)+1, rise)
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("db2 takes reads again and has every write (max id %d)", lastID), func() bool {
		var maxID int
		var port string
		if err := d.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0), @@port FROM t").Scan(&maxID, &port); err != nil {
			t.Fatal(err)
		}
		return names[port] == "db2" && maxID == lastID
	})
}

// TestFrozenReplicaDoesNotHoldReadsPastTheBound: SIGSTOP on a replica
// while 8 sessions read; statements on it are interrupted when the monitor
// declares it down and retried elsewhere, so no read waits much longer
// than the detection — with timeouts.query left at its default (1 h), only
// the interruption at the loss can free them. After SIGCONT it takes reads
// again.
func TestFrozenReplicaDoesNotHoldReadsPastTheBound(t *testing.T) {
	// A read waits for the detection, then for its retry; a second is
	// ample for the retry of a 10 ms read on a loaded machine.
	const retryMargin = time.Second
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db2 := topo.ByName("db2")
	t.Cleanup(func() {
		if db2.Paused() {
			db2.Resume()
		}
	})
	s := h3Start(t, h3Cfg{topo: topo, health: "{interval: 200ms, timeout: 500ms, rise: 1, fall: 2}",
		yaml: "routing: {read_your_writes: false}\n"})
	if q := s.p.Config().Timeouts.Query; time.Duration(q) < time.Hour {
		t.Fatalf("timeouts.query = %s: the test needs the default, or the query timeout frees the reads", time.Duration(q))
	}
	trail := h3Record(s.p, "db2")
	d := s.db(t, "")
	load := h3StartLoad(t, d, topo, 8, "SELECT @@port FROM (SELECT SLEEP(0.01)) AS x")
	waitFor(t, 5*time.Second, "db2 serves reads", func() bool { return load.count("db2") > 20 })

	paused := time.Now()
	if err := db2.Pause(); err != nil {
		t.Fatal(err)
	}
	down := trail.first(t, paused, 10*time.Second, "db2 declared down", func(s *topology.Server) bool { return !s.Up })
	detect := down.at.Sub(paused)
	atPause := load.count("db2")
	// Keep db2 frozen well past the bound, so a read left hanging on it
	// shows as a slow one, while db3 keeps answering.
	atDown := load.count("db3")
	waitFor(t, 20*time.Second, "db3 answers reads for 2 s after db2 is down", func() bool {
		return load.count("db3") > atDown+100 && time.Since(down.at) > 2*retryMargin
	})
	if n := load.count("db2"); n != atPause {
		t.Errorf("db2 answered %d reads while frozen", n-atPause)
	}
	resumed := time.Now()
	if err := db2.Resume(); err != nil {
		t.Fatal(err)
	}
	up := trail.first(t, resumed, 10*time.Second, "db2 up again", func(s *topology.Server) bool { return s.Up && s.Readable })
	waitFor(t, 10*time.Second, "db2 takes reads again", func() bool { return load.count("db2") > atPause+20 })
	reads, errs, maxLat := load.figures()
	total := 0
	for _, n := range reads {
		total += n
	}
	bound := detect + retryMargin
	t.Logf("SIGSTOP: db2 down after %s; slowest read %s (bound %s); %d reads, %d errors; SIGCONT: db2 up after %s; reads per server %v",
		detect.Round(time.Millisecond), maxLat.Round(time.Millisecond), bound.Round(time.Millisecond), total, len(errs), up.at.Sub(resumed).Round(time.Millisecond), reads)
	h3LogErrors(t, errs)
	if maxLat > bound {
		t.Errorf("a read waited %s, want under the detection (%s) + %s", maxLat.Round(time.Millisecond), detect.Round(time.Millisecond), retryMargin)
	}
	if len(errs) != 0 {
		t.Errorf("%d reads failed; reads on a lost server should be retried elsewhere", len(errs))
	}
}

// TestKilledReplicaUnderLoadCausesNoClientErrors: SIGKILL on a replica
// while 8 sessions read outside transactions; every read that was on it, or
// finds it unreachable, is retried once elsewhere. Restarted, it takes
// reads again.
func TestKilledReplicaUnderLoadCausesNoClientErrors(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db2 := topo.ByName("db2")
	s := h3Start(t, h3Cfg{topo: topo, yaml: "routing: {read_your_writes: false}\n"})
	trail := h3Record(s.p, "db2")
	d := s.db(t, "")
	load := h3StartLoad(t, d, topo, 8, "SELECT @@port FROM (SELECT SLEEP(0.01)) AS x")
	waitFor(t, 5*time.Second, "db2 serves reads", func() bool { return load.count("db2") > 20 })

	killed := time.Now()
	if err := db2.Kill(); err != nil {
		t.Fatal(err)
	}
	down := trail.first(t, killed, 10*time.Second, "db2 declared down", func(s *topology.Server) bool { return !s.Up })
	atKill := load.count("db2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	restarted := time.Now()
	if err := db2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	up := trail.first(t, restarted, 15*time.Second, "db2 readable again", func(s *topology.Server) bool { return s.Readable })
	waitFor(t, 10*time.Second, "db2 takes reads again", func() bool { return load.count("db2") > atKill+20 })
	reads, errs, maxLat := load.figures()
	t.Logf("SIGKILL: db2 down after %s; restart: readable %s after Start began; slowest read %s; reads per server %v; %d errors",
		down.at.Sub(killed).Round(time.Millisecond), up.at.Sub(restarted).Round(time.Millisecond), maxLat.Round(time.Millisecond), reads, len(errs))
	h3LogErrors(t, errs)
	if len(errs) != 0 {
		t.Errorf("%d client-visible errors, want 0", len(errs))
	}
}

// TestBalancing: backup servers, read_fallback: error, weights and
// per-server connection limits.
func TestBalancing(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db2, db3 := topo.ByName("db2"), topo.ByName("db3")
	t.Cleanup(func() {
		db2.Exec(context.Background(), "START SLAVE SQL_THREAD")
		db3.Exec(context.Background(), "START SLAVE SQL_THREAD")
	})
	noRYW := "routing: {read_your_writes: false%s}\n"

	t.Run("a backup takes reads only when no normal replica can", func(t *testing.T) {
		s := h3Start(t, h3Cfg{topo: topo, yaml: fmt.Sprintf(noRYW, ""),
			servers: []string{h3Server(topo, "db1"), h3Server(topo, "db2"), h3Server(topo, "db3", "backup: true")}})
		d := s.db(t, "")
		if got := h3ReadOn(t, d, topo, 40, "SELECT @@port"); got["db2"] != 40 {
			t.Fatalf("reads with db2 usable: %v, want all on db2", got)
		}
		h3Exec(t, db2, "STOP SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "db2 out of reads", func() bool {
			r, _ := s.p.Monitor().Snapshot().ByName("db2")
			return !r.Readable
		})
		if got := h3ReadOn(t, d, topo, 40, "SELECT @@port"); got["db3"] != 40 {
			t.Fatalf("reads with db2 stopped: %v, want all on the backup db3", got)
		}
		h3Exec(t, db2, "START SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "db2 readable again", func() bool {
			r, _ := s.p.Monitor().Snapshot().ByName("db2")
			return r.Readable
		})
		if got := h3ReadOn(t, d, topo, 40, "SELECT @@port"); got["db2"] != 40 {
			t.Fatalf("reads with db2 back: %v, want all on db2", got)
		}
	})

	t.Run("read_fallback error refuses reads, writes go on", func(t *testing.T) {
		schema := newSchema(t, topo, "CREATE TABLE t (id INT PRIMARY KEY)")
		s := h3Start(t, h3Cfg{topo: topo, yaml: fmt.Sprintf(noRYW, ", read_fallback: error")})
		d := s.db(t, schema)
		h3Exec(t, db2, "STOP SLAVE SQL_THREAD")
		h3Exec(t, db3, "STOP SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "no replica readable", func() bool {
			snap := s.p.Monitor().Snapshot()
			a, _ := snap.ByName("db2")
			b, _ := snap.ByName("db3")
			return !a.Readable && !b.Readable
		})
		var port string
		err := d.QueryRow("SELECT @@port").Scan(&port)
		if h3Code(err) != 9001 {
			t.Fatalf("read with no usable replica: %v (port %s), want error %d", err, port, 9001)
		}
		t.Logf("read: %v", err)
		mustExec(t, d, "INSERT INTO t VALUES (1)")
		if got := queryString(t, d, "/* sluice:primary */ SELECT COUNT(*) FROM t"); got != "1" {
			t.Fatalf("primary read: %s", got)
		}
		h3Exec(t, db2, "START SLAVE SQL_THREAD")
		h3Exec(t, db3, "START SLAVE SQL_THREAD")
		waitFor(t, 5*time.Second, "reads work again", func() bool {
			return d.QueryRow("SELECT @@port").Scan(&port) == nil
		})
	})

	t.Run("weights 3 and 1 share 400 reads 300/100", func(t *testing.T) {
		s := h3Start(t, h3Cfg{topo: topo, yaml: fmt.Sprintf(noRYW, ", balance: weighted"),
			servers: []string{h3Server(topo, "db1"), h3Server(topo, "db2", "weight: 3"), h3Server(topo, "db3", "weight: 1")}})
		c := conn(t, s.db(t, ""))
		got := h3ReadOn(t, c, topo, 400, "SELECT @@port")
		t.Logf("weighted 3:1, 400 reads: %v", got)
		if got["db2"] < 290 || got["db2"] > 310 || got["db2"]+got["db3"] != 400 {
			t.Fatalf("weighted 3:1 over 400 reads: %v, want about 300/100", got)
		}
	})

	t.Run("max_connections queues reads and pool_wait bounds the queue", func(t *testing.T) {
		one := []string{h3Server(topo, "db1"), h3Server(topo, "db2", "max_connections: 2")}
		const n = 6
		run := func(t *testing.T, s *h3Sluice) (errs []error, queued int, took time.Duration) {
			d := s.db(t, "")
			d.SetMaxOpenConns(n)
			var wg sync.WaitGroup
			var mu sync.Mutex
			start := time.Now()
			for range n {
				wg.Go(func() {
					var v, port string
					err := d.QueryRow("/* sluice:replica */ SELECT SLEEP(1), @@port").Scan(&v, &port)
					if err == nil && port != strconv.Itoa(db2.Port) {
						err = fmt.Errorf("ran on port %s, want db2", port)
					}
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			for {
				select {
				case <-done:
					return errs, queued, time.Since(start)
				case <-time.After(20 * time.Millisecond):
					queued = max(queued, s.servers(t)["db2"].Waiting)
				}
			}
		}

		t.Run("queued", func(t *testing.T) {
			s := h3Start(t, h3Cfg{topo: topo, servers: one, yaml: fmt.Sprintf(noRYW, "")})
			errs, queued, took := run(t, s)
			failed := 0
			for _, err := range errs {
				if err != nil {
					failed++
					t.Logf("read: %v", err)
				}
			}
			t.Logf("%d × SLEEP(1) on db2 with max_connections 2: %d failed, most queued seen %d, took %s; pool %+v",
				n, failed, queued, took.Round(time.Millisecond), s.p.PoolStats()["db2"])
			if failed != 0 || queued == 0 {
				t.Fatalf("want every read to succeed after queueing; %d failed, most queued %d", failed, queued)
			}
			if took < 3*time.Second {
				t.Fatalf("6 reads of 1 s on 2 connections took %s, want at least 3 s", took)
			}
			if st := s.p.PoolStats()["db2"]; st.Open > 2 {
				t.Fatalf("db2 pool has %d connections open, max_connections is 2", st.Open)
			}
		})

		t.Run("pool_wait overflow gets 1040", func(t *testing.T) {
			s := h3Start(t, h3Cfg{topo: topo, servers: one, yaml: fmt.Sprintf(noRYW, "") + "timeouts: {pool_wait: 200ms}\n"})
			errs, queued, _ := run(t, s)
			ok, full := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case h3Code(err) == 1040:
					full++
				default:
					t.Errorf("read: %v", err)
				}
			}
			t.Logf("pool_wait 200ms: %d succeeded, %d got 1040, most queued seen %d", ok, full, queued)
			if ok != 2 || full != n-2 {
				t.Fatalf("%d succeeded and %d got 1040, want 2 and %d", ok, full, n-2)
			}
		})
	})
}
