package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/causal"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/gtid"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// causalPairs is the number of write-then-read pairs per consistency mode.
const causalPairs = 2000

// causalCount tallies write-then-read pairs: reads that missed their write
// and the server that served each read.
type causalCount struct {
	pairs, stale int
	servedBy     map[string]int
}

func (c *causalCount) add(o causalCount) {
	c.pairs += o.pairs
	c.stale += o.stale
	if c.servedBy == nil {
		c.servedBy = map[string]int{}
	}
	for k, v := range o.servedBy {
		c.servedBy[k] += v
	}
}

func (c causalCount) replicaShare(topo *testbed.Topology) float64 {
	n := 0
	for name, v := range c.servedBy {
		if name != topo.Primary.Name {
			n += v
		}
	}
	return float64(n) / float64(max(c.pairs, 1))
}

func (c causalCount) String() string {
	return fmt.Sprintf("%d pairs, %d stale reads, served by %v", c.pairs, c.stale, c.servedBy)
}

// writeThenRead inserts rows from..from+n-1 through writer, reading each
// back through reader right after its insert was acknowledged. Each read
// says which server answered it (@@port).
func writeThenRead(t *testing.T, topo *testbed.Topology, writer, reader *sql.Conn, binary bool, from, n int) causalCount {
	t.Helper()
	ctx := context.Background()
	byPort := map[string]string{}
	for _, s := range topo.Servers {
		byPort[strconv.Itoa(s.Port)] = s.Name
	}
	const ins, sel = "INSERT INTO t (id, v) VALUES (?, ?)", "SELECT v, @@port FROM t WHERE id = ?"
	insert := func(id int) error { _, err := writer.ExecContext(ctx, ins, id, id); return err }
	read := func(id int) *sql.Row { return reader.QueryRowContext(ctx, sel, id) }
	if binary {
		// Server-side prepared statements: COM_STMT_EXECUTE, binary rows.
		si, err := writer.PrepareContext(ctx, ins)
		if err != nil {
			t.Fatal(err)
		}
		defer si.Close()
		ss, err := reader.PrepareContext(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		insert = func(id int) error { _, err := si.ExecContext(ctx, id, id); return err }
		read = func(id int) *sql.Row { return ss.QueryRowContext(ctx, id) }
	}
	out := causalCount{servedBy: map[string]int{}}
	for id := from; id < from+n; id++ {
		if err := insert(id); err != nil {
			t.Fatalf("insert %d: %v", id, err)
		}
		var v int
		var port string
		err := read(id).Scan(&v, &port)
		out.pairs++
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out.stale++
			out.servedBy["?"]++ // a stale read's server is unknown: it returned no row
		case err != nil:
			t.Fatalf("read %d: %v", id, err)
		default:
			out.servedBy[byPort[port]]++
		}
	}
	return out
}

// causalTopology starts a primary with two replicas, the second delayed by
// MASTER_DELAY=3: healthy and within max_replication_lag, but 3 s stale.
func causalTopology(t *testing.T) (*testbed.Topology, string) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db := newSchema(t, topo, "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)")
	setDelay(t, topo.Replicas[1], 3)
	return topo, db
}

func setDelay(t *testing.T, r *testbed.Server, seconds int) {
	t.Helper()
	if err := r.Exec(context.Background(), fmt.Sprintf("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=%d; START SLAVE", seconds)); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitSlaveRunning(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// causalYAML keeps the delayed replica in rotation (its lag is 3 s and
// more while writes flow), so only consistency keeps reads off it.
const causalYAML = "routing: {consistency: %s, max_replication_lag: 60s}\n"

// TestCausalReadsSeeTheirWrites: with a replica 3 s behind, every read
// right after a write sees it — the session's own (consistency: session)
// and another session's (consistency: global) — through the text and the
// binary protocol, while most reads still go to the caught-up replica. The
// same pairs with consistency: eventual read stale rows, which shows the
// delayed replica does serve reads.
func TestCausalReadsSeeTheirWrites(t *testing.T) {
	topo, db := causalTopology(t)
	caught, delayed := topo.Replicas[0].Name, topo.Replicas[1].Name
	next := 1
	run := func(t *testing.T, mode string, twoSessions bool, pairs int) causalCount {
		p := startSluice(t, sluiceOpts{topo: topo, yaml: fmt.Sprintf(causalYAML, mode)})
		var total causalCount
		for _, binary := range []bool{false, true} {
			params := []string{"interpolateParams=true"} // text protocol: arguments inlined
			if binary {
				params = nil
			}
			d := openDB(t, p, db, params...)
			w := conn(t, d)
			r := w
			if twoSessions {
				r = conn(t, d)
			}
			start := time.Now()
			got := writeThenRead(t, topo, w, r, binary, next, pairs/2)
			next += pairs / 2
			proto := map[bool]string{false: "text", true: "binary"}[binary]
			t.Logf("consistency %s, %s protocol, two sessions %v: %s in %s", mode, proto, twoSessions, got, time.Since(start).Round(time.Millisecond))
			total.add(got)
		}
		counts := p.CausalCounts()
		t.Logf("causal reads by outcome: %v", counts)
		if mode != "eventual" && counts["ready"]+counts["waited"]+counts["timeout"]+counts["no_replica"] < uint64(pairs) {
			t.Errorf("sluice_causal_reads_total counted %v for %d reads after writes", counts, pairs)
		}
		return total
	}

	t.Run("eventual shows the delayed replica is stale", func(t *testing.T) {
		got := run(t, "eventual", false, 200)
		if got.stale == 0 {
			t.Fatalf("no stale read among %s: the test does not exercise a stale replica", got)
		}
		fmt.Printf("causal reads: consistency eventual, same session: %d/%d stale reads\n", got.stale, got.pairs)
	})
	for _, tc := range []struct {
		mode        string
		twoSessions bool
	}{{"session", false}, {"global", true}} {
		t.Run(tc.mode, func(t *testing.T) {
			got := run(t, tc.mode, tc.twoSessions, causalPairs)
			where := "same session"
			if tc.twoSessions {
				where = "write in one session, read in another"
			}
			share := got.replicaShare(topo)
			fmt.Printf("causal reads: consistency %s, %s: %d pairs, %d stale reads, %.2f%% of reads served by replicas (%s %d, %s %d, primary %d)\n",
				tc.mode, where, got.pairs, got.stale, 100*share, caught, got.servedBy[caught], delayed, got.servedBy[delayed], got.servedBy[topo.Primary.Name])
			if got.stale != 0 {
				t.Errorf("%d stale reads: %s", got.stale, got)
			}
			if got.servedBy[delayed] != 0 {
				t.Errorf("the delayed replica served %d reads that had to see a write less than 3 s old", got.servedBy[delayed])
			}
			// The caught-up replica applies a write within milliseconds: it
			// serves nearly every read. The primary takes the reads that
			// found no replica ready (a wait that timed out, e.g. on the
			// delayed replica before the monitor measured its lag).
			if share < 0.9 {
				t.Errorf("replicas served %.1f%% of the reads, want at least 90%%: %s", 100*share, got)
			}
		})
	}
}

// TestCausalReadsAfterConnectionReset: a pooled connection handed from a
// session with SETs to one without is reset (COM_RESET_CONNECTION), which
// turns the server's session tracking back to its defaults; sluice turns
// last_gtid tracking on again, or the second session's writes would have no
// GTID and its reads could be stale.
func TestCausalReadsAfterConnectionReset(t *testing.T) {
	topo, db := causalTopology(t)
	p := startSluice(t, sluiceOpts{topo: topo, yaml: fmt.Sprintf(causalYAML, "session"), mutate: func(c *config.Config) {
		c.Servers[0].MaxConnections = 1 // one primary connection, shared in turn
	}})
	d := openDB(t, p, db)
	a, b := conn(t, d), conn(t, d)
	mustExec(t, a, "SET SESSION sql_mode = 'ANSI_QUOTES'")
	var total causalCount
	for i := range 100 {
		total.add(writeThenRead(t, topo, a, a, false, 100000+2*i, 1))
		total.add(writeThenRead(t, topo, b, b, false, 100000+2*i+1, 1))
	}
	t.Logf("sessions alternating on one primary connection: %s", total)
	if total.stale != 0 || total.servedBy[topo.Replicas[1].Name] != 0 {
		t.Fatalf("stale reads after connection resets: %s", total)
	}
}

// TestCausalTimeoutFallback: when no replica applies the write a read
// needs within routing.causal_timeout, the read goes to the primary, or
// fails with error 9002 under causal_fallback: error.
func TestCausalTimeoutFallback(t *testing.T) {
	topo, db := causalTopology(t)
	setDelay(t, topo.Replicas[0], 3) // now both replicas are 3 s behind
	ctx := context.Background()
	// The first read waits: the replicas were idle, so the monitor
	// measured no lag, and MASTER_GTID_WAIT times out. Later ones see the
	// replicas' lag (3 s, more than causal_timeout) and fall back at once.
	waited := false
	defer func() {
		if !waited {
			t.Errorf("no read waited causal_timeout: the timed-out MASTER_GTID_WAIT was not exercised")
		}
	}()
	for _, tc := range []struct {
		fallback string
		binary   bool
	}{{"error", false}, {"primary", false}, {"error", true}, {"primary", true}} {
		t.Run(fmt.Sprintf("%s/binary=%v", tc.fallback, tc.binary), func(t *testing.T) {
			p := startSluice(t, sluiceOpts{topo: topo, yaml: fmt.Sprintf(
				"routing: {consistency: session, causal_timeout: 300ms, causal_fallback: %s, max_replication_lag: 60s}\n", tc.fallback)})
			var params []string
			if !tc.binary {
				params = []string{"interpolateParams=true"}
			}
			c := conn(t, openDB(t, p, db, params...))
			id := int(time.Now().UnixNano() % 1e9)
			for i := range 5 {
				if _, err := c.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (?, ?)", id+i, i); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				var v int
				var port string
				err := c.QueryRowContext(ctx, "SELECT v, @@port FROM t WHERE id = ?", id+i).Scan(&v, &port)
				took := time.Since(start)
				if took >= 300*time.Millisecond {
					waited = true
				}
				if i == 0 {
					t.Logf("first read after a write: %s (%v)", took.Round(time.Millisecond), err)
				}
				if took > 5*time.Second {
					t.Errorf("read %d took %s: the wait is bounded by causal_timeout", i, took)
				}
				if tc.fallback == "primary" {
					if err != nil {
						t.Fatalf("read %d: %v", i, err)
					}
					if port != strconv.Itoa(topo.Primary.Port) {
						t.Fatalf("read %d served by port %s, want the primary (%d): no replica has the write", i, port, topo.Primary.Port)
					}
					continue
				}
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != 9002 {
					t.Fatalf("read %d: %v (after %s), want sluice error 9002", i, err, took)
				}
			}
			counts := p.CausalCounts()
			t.Logf("causal reads by outcome: %v", counts)
			// A binary-protocol read is two: its COM_STMT_PREPARE is routed
			// like the statement (a replica lacking the session's DDL would
			// describe the wrong table), then its COM_STMT_EXECUTE.
			if n := counts["timeout"] + counts["no_replica"]; n < 5 || n > 10 {
				t.Errorf("5 reads took causal_fallback, metrics count %v", counts)
			}
			// Reads that need nothing the session wrote are not held back:
			// a new session reads from a (stale) replica at once.
			c2 := conn(t, openDB(t, p, db, params...))
			if s := servedBy(t, c2, topo, ""); !isReplica(topo, s) {
				t.Errorf("a session that wrote nothing was served by %s, want a replica", s)
			}
		})
	}
}

// BenchmarkWriteGTID measures what learning a write's GTID costs, on
// backend connections to the primary (as sluice holds them), each
// iteration running one INSERT in each way in turn, so that all three see
// the same load on a busy machine:
//   - tracked-ns: session tracking reports last_gtid in the write's OK
//     packet (sluice's choice);
//   - untracked-ns: a connection with tracking off (the baseline);
//   - select-after-ns: tracking off, and SELECT @@last_gtid after each
//     write, the alternative (one more round trip per write).
//
// go test -run '^$' -bench WriteGTID ./e2e
func BenchmarkWriteGTID(b *testing.B) {
	db := newSchema(b, shared, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)")
	var conns [3]*backend.Conn
	for i := range conns {
		c, err := backend.Dial(context.Background(), backend.DialOptions{Addr: shared.Primary.Addr(),
			User: testbed.AppUser, Password: testbed.AppPassword, Schema: db, Timeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.TrackGTIDs(time.Minute); err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			if _, err := c.Exec("SET session_track_system_variables=''", time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		conns[i] = c
	}
	var spent [3]time.Duration
	for b.Loop() {
		for i, c := range conns {
			start := time.Now()
			res, err := c.Exec("INSERT INTO t VALUES ()", time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if res.HasGTID != (i == 0) {
				b.Fatalf("connection %d: GTID reported %v", i, res.HasGTID)
			}
			if i == 2 {
				if _, err := c.Exec("SELECT @@last_gtid", time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			spent[i] += time.Since(start)
		}
	}
	for i, name := range []string{"tracked-ns", "untracked-ns", "select-after-ns"} {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N), name)
	}
}

// BenchmarkReadGTIDCost measures what a causal read may add:
//   - replica-wait: DO MASTER_GTID_WAIT on a replica that already has the
//     GTID (a read whose replica is not yet known to have it);
//   - primary-binlog-pos: SELECT @@gtid_binlog_pos on the primary, what
//     global consistency would cost per read if it asked the primary for
//     its position instead of using the GTIDs sluice saw committed.
//
// go test -run '^$' -bench ReadGTIDCost ./e2e
func BenchmarkReadGTIDCost(b *testing.B) {
	ctx := context.Background()
	pos, err := shared.Primary.GTIDPos(ctx)
	if err != nil {
		b.Fatal(err)
	}
	syncReplicas(b, shared)
	var need causal.Pos
	for _, g := range mustParsePos(b, pos) {
		need.Note(g)
	}
	dial := func(s *testbed.Server) *backend.Conn {
		c, err := backend.Dial(ctx, backend.DialOptions{Addr: s.Addr(), User: testbed.AppUser, Password: testbed.AppPassword, Timeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	b.Run("replica-wait", func(b *testing.B) {
		c := dial(shared.Replicas[0])
		q := need.WaitSQL(time.Second)
		for b.Loop() {
			res, err := c.Exec(q, time.Minute)
			if err != nil || res.Warnings != 0 {
				b.Fatalf("wait for %s: %v, %d warnings", need, err, res.Warnings)
			}
		}
	})
	b.Run("primary-binlog-pos", func(b *testing.B) {
		c := dial(shared.Primary)
		for b.Loop() {
			if _, err := c.Exec("SELECT @@gtid_binlog_pos", time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func mustParsePos(b *testing.B, s string) gtid.Pos {
	p, err := gtid.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
