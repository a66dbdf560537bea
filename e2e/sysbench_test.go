package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// sysbench 1.0 through sluice: its OLTP workloads use libmariadb/libmysql
// server-side prepared statements (prepared once per thread, re-executed
// with new_params_bound=0), transactions as prepared BEGIN/COMMIT, and 16
// concurrent sessions.

// sysbenchTime is the length of each sysbench run in seconds: 60 (what the
// issue asks and CI runs), or SLUICE_SYSBENCH_TIME to iterate faster
// locally, e.g. SLUICE_SYSBENCH_TIME=10.
func sysbenchTime() string {
	if v := os.Getenv("SLUICE_SYSBENCH_TIME"); v != "" {
		return v
	}
	return "60"
}

// sysbenchResult is what sysbench reported for one run.
type sysbenchResult struct {
	Read, Write, Other, Total int64 // "queries performed"
	Transactions              int64
	TPS, QPS                  float64
	IgnoredErrors, Reconnects int64
	P95                       float64 // ms
	Output                    string
}

var sysbenchStats = map[string]*regexp.Regexp{
	"read":           regexp.MustCompile(`(?m)^\s+read:\s+(\d+)\s*$`),
	"write":          regexp.MustCompile(`(?m)^\s+write:\s+(\d+)\s*$`),
	"other":          regexp.MustCompile(`(?m)^\s+other:\s+(\d+)\s*$`),
	"total":          regexp.MustCompile(`(?m)^\s+total:\s+(\d+)\s*$`),
	"transactions":   regexp.MustCompile(`(?m)^\s+transactions:\s+(\d+)\s+\(([\d.]+) per sec\.\)`),
	"queries":        regexp.MustCompile(`(?m)^\s+queries:\s+(\d+)\s+\(([\d.]+) per sec\.\)`),
	"ignored errors": regexp.MustCompile(`(?m)^\s+ignored errors:\s+(\d+)\s`),
	"reconnects":     regexp.MustCompile(`(?m)^\s+reconnects:\s+(\d+)\s`),
	"p95":            regexp.MustCompile(`(?m)^\s+95th percentile:\s+([\d.]+)\s*$`),
}

// parseSysbench reads the figures of a sysbench 1.0 run report.
func parseSysbench(out string) (sysbenchResult, error) {
	r := sysbenchResult{Output: out}
	get := func(key string, group int) (string, error) {
		m := sysbenchStats[key].FindStringSubmatch(out)
		if m == nil {
			return "", fmt.Errorf("no %q line in the sysbench report", key)
		}
		return m[group], nil
	}
	ints := []struct {
		key string
		dst *int64
	}{
		{"read", &r.Read}, {"write", &r.Write}, {"other", &r.Other}, {"total", &r.Total},
		{"transactions", &r.Transactions}, {"ignored errors", &r.IgnoredErrors}, {"reconnects", &r.Reconnects},
	}
	for _, f := range ints {
		s, err := get(f.key, 1)
		if err != nil {
			return r, err
		}
		if *f.dst, err = strconv.ParseInt(s, 10, 64); err != nil {
			return r, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	floats := []struct {
		key   string
		group int
		dst   *float64
	}{
		{"transactions", 2, &r.TPS}, {"queries", 2, &r.QPS}, {"p95", 1, &r.P95},
	}
	for _, f := range floats {
		s, err := get(f.key, f.group)
		if err != nil {
			return r, err
		}
		if *f.dst, err = strconv.ParseFloat(s, 64); err != nil {
			return r, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	return r, nil
}

// sysbenchArgs is the common command line: prepared statements whenever the
// driver can, no error is ignored.
func sysbenchArgs(addr string, threads int) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{
		"--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + testbed.AppUser, "--mysql-password=" + testbed.AppPassword, "--mysql-db=sbtest",
		"--tables=4", "--table-size=10000", fmt.Sprintf("--threads=%d", threads),
		"--db-ps-mode=auto", "--report-interval=0", "--mysql-ignore-errors=none",
	}
}

// sysbench runs one sysbench command (prepare or run) and fails the test
// unless it exits 0 without a FATAL or ALERT line.
func sysbench(t testing.TB, addr, workload, command string, extra ...string) string {
	t.Helper()
	secs, err := strconv.Atoi(sysbenchTime())
	if err != nil || secs <= 0 {
		t.Fatalf("SLUICE_SYSBENCH_TIME=%q: want a number of seconds", sysbenchTime())
	}
	limit := time.Duration(secs)*time.Second + 2*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	args := append(sysbenchArgs(addr, 16), extra...)
	args = append(args, workload, command)
	cmd := exec.CommandContext(ctx, "sysbench", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	text := out.String()
	if ctx.Err() != nil {
		t.Fatalf("sysbench %s %s did not finish within %s:\n%s", workload, command, limit, text)
	}
	if err != nil {
		t.Fatalf("sysbench %s %s: %v\n%s", workload, command, err, text)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "FATAL") || strings.HasPrefix(line, "ALERT") {
			t.Fatalf("sysbench %s %s reported an error: %s\n%s", workload, command, line, text)
		}
	}
	t.Logf("sysbench %s %s took %s", workload, command, time.Since(start).Round(100*time.Millisecond))
	return text
}

// sysbenchRun runs a workload for sysbenchTime seconds and checks the
// figures every run must have: no error, no reconnect, work done.
func sysbenchRun(t testing.TB, p *proxy.Proxy, workload string, extra ...string) sysbenchResult {
	t.Helper()
	out := sysbench(t, p.Addr().String(), workload, "run", append([]string{"--time=" + sysbenchTime()}, extra...)...)
	r, err := parseSysbench(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.IgnoredErrors != 0 || r.Reconnects != 0 {
		t.Errorf("sysbench %s: %d ignored errors, %d reconnects; want 0 and 0\n%s", workload, r.IgnoredErrors, r.Reconnects, out)
	}
	if r.Transactions == 0 || r.Total == 0 || r.Read+r.Write+r.Other != r.Total {
		t.Fatalf("sysbench %s did no work or reported inconsistent counts:\n%s", workload, out)
	}
	t.Logf("sysbench %s through sluice: %d transactions (%.1f/s), %d queries (%.1f/s: read %d, write %d, other %d), p95 %.2f ms, %d errors, %d reconnects",
		workload, r.Transactions, r.TPS, r.Total, r.QPS, r.Read, r.Write, r.Other, r.P95, r.IgnoredErrors, r.Reconnects)
	return r
}

// sysbenchTopology starts a topology of its own (so the shared one's
// counters stay meaningful for other tests), a sluice in front of it, and
// loads sbtest through sluice.
func sysbenchTopology(t *testing.T) (*testbed.Topology, *proxy.Proxy) {
	t.Helper()
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	// The harness checks health every 200 ms with a 1 s timeout and two
	// failures mark a server down: right for the failover tests, but on a
	// loaded 2-CPU runner (the race detector, sysbench's 16 threads, other
	// packages' tests) a check can exceed 1 s while the server is busy
	// loading sbtest, and "no primary" would fail a run that is about the
	// data path. The monitor's own tests keep the tight timing.
	p := startSluice(t, sluiceOpts{topo: topo, mutate: func(c *config.Config) {
		c.Health.Timeout = config.Duration(5 * time.Second)
		c.Health.Fall = 5
	}})
	if err := topo.Primary.Exec(context.Background(), "CREATE DATABASE sbtest"); err != nil {
		t.Fatal(err)
	}
	syncReplicas(t, topo)
	before := userCommands(t, topo)
	sysbench(t, p.Addr().String(), "oltp_read_write", "prepare")
	syncReplicas(t, topo)
	// The load is writes and DDL: all of it on the primary.
	d := delta(userCommands(t, topo), before)
	for _, r := range topo.Replicas {
		if d[r.Name]["update"] != 0 {
			t.Fatalf("sysbench prepare through sluice wrote to replica %s: %v", r.Name, d[r.Name])
		}
	}
	for _, s := range topo.Servers {
		if got := queryString(t, mustAdmin(t, s), "SELECT COUNT(*) FROM sbtest.sbtest4"); got != "10000" {
			t.Fatalf("%s has %s rows in sbtest4 after prepare, want 10000", s.Name, got)
		}
	}
	return topo, p
}

func mustAdmin(t testing.TB, s *testbed.Server) queryer {
	t.Helper()
	db, err := s.Admin()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

var sysbenchCounters = []string{"Com_select", "Com_insert", "Com_update", "Com_delete", "Com_stmt_execute", "Com_stmt_prepare", "Com_begin", "Com_commit"}

// logPerServer prints what each server saw during a run.
func logPerServer(t testing.TB, topo *testbed.Topology, com, user counts) {
	t.Helper()
	for _, s := range topo.Servers {
		role := "replica"
		if s == topo.Primary {
			role = "primary"
		}
		c, u := com[s.Name], user[s.Name]
		t.Logf("%s (%s): Com_select %d, Com_insert %d, Com_update %d, Com_delete %d, Com_begin %d, Com_commit %d, Com_stmt_execute %d, Com_stmt_prepare %d; from sluice (USER_STATISTICS): select %d, update %d, other %d",
			s.Name, role, c["Com_select"], c["Com_insert"], c["Com_update"], c["Com_delete"], c["Com_begin"], c["Com_commit"],
			c["Com_stmt_execute"], c["Com_stmt_prepare"], u["select"], u["update"], u["other"])
	}
}

// TestSysbenchReadWriteAllOnPrimary: oltp_read_write (every statement inside
// a transaction, prepared statements) for sysbenchTime() seconds with 16
// threads finishes without an error, and every statement of it reaches the
// primary: a transaction belongs to the primary from BEGIN to COMMIT.
func TestSysbenchReadWriteAllOnPrimary(t *testing.T) {
	topo, p := sysbenchTopology(t)
	beforeUser := userCommands(t, topo)
	before := counters(t, topo, sysbenchCounters...)
	// --rand-type=uniform: sysbench's default "special" distribution sends
	// most accesses to the ids around the middle of each table, and at 16
	// threads InnoDB then detects a deadlock (DELETE ... WHERE id=5002
	// against DELETE ... WHERE id=5025) every 20 000-50 000 transactions
	// even with sysbench connected straight to the primary (measured on
	// MariaDB 10.11); --mysql-ignore-errors=none turns that into a failed
	// run. Uniform ids: no deadlock in 73 000 direct transactions. The
	// statements and their mix are unchanged.
	r := sysbenchRun(t, p, "oltp_read_write", "--rand-type=uniform")
	com := delta(counters(t, topo, sysbenchCounters...), before)
	pr := topo.Primary.Name
	user := userDeltaWhen(t, topo, beforeUser, "USER_STATISTICS on the primary count sysbench's reads and writes", func(d counts) bool {
		return d[pr]["select"] >= r.Read && d[pr]["update"] >= r.Write
	})
	logPerServer(t, topo, com, user)

	// Com_stmt_execute is counted while the statement runs, so it is exact
	// the moment sysbench has its answers: every query was one execute.
	if got := com[pr]["Com_stmt_execute"]; got != r.Total {
		t.Errorf("primary executed %d prepared statements, sysbench ran %d queries", got, r.Total)
	}
	if got := user[pr]["select"]; got != r.Read {
		t.Errorf("primary ran %d SELECTs from sluice, sysbench ran %d reads", got, r.Read)
	}
	if got := user[pr]["update"]; got != r.Write {
		t.Errorf("primary ran %d writes from sluice, sysbench ran %d", got, r.Write)
	}
	if got := com[pr]["Com_begin"]; got != r.Transactions {
		t.Errorf("primary saw %d BEGINs, sysbench ran %d transactions", got, r.Transactions)
	}
	// Replicas count the replicated writes, BEGINs and COMMITs as Com_*;
	// USER_STATISTICS and Com_stmt_execute tell sluice's statements apart.
	for _, rep := range topo.Replicas {
		n := rep.Name
		if user[n]["select"] != 0 || user[n]["update"] != 0 || user[n]["other"] != 0 || com[n]["Com_stmt_execute"] != 0 || com[n]["Com_select"] != 0 {
			t.Errorf("replica %s served statements of the read-write workload: Com %v, from sluice %v", n, com[n], user[n])
		}
	}
}

// TestSysbenchReadOnlyOnReplicas: oltp_read_only --skip_trx=on (autocommit
// reads, prepared statements) for sysbenchTime() seconds with 16 threads
// finishes without an error, the replicas serve at least 90% of all
// SELECTs, and no replica ever gets an INSERT, UPDATE or DELETE.
func TestSysbenchReadOnlyOnReplicas(t *testing.T) {
	topo, p := sysbenchTopology(t)
	beforeUser := userCommands(t, topo)
	before := counters(t, topo, sysbenchCounters...)
	r := sysbenchRun(t, p, "oltp_read_only", "--skip_trx=on")
	com := delta(counters(t, topo, sysbenchCounters...), before)
	user := userDeltaWhen(t, topo, beforeUser, "USER_STATISTICS count sysbench's reads", func(d counts) bool {
		return total(d, topo.Servers, "select") >= r.Read
	})
	logPerServer(t, topo, com, user)

	if r.Write != 0 || r.Other != 0 || r.Read != r.Total {
		t.Fatalf("oltp_read_only --skip_trx=on ran writes or transaction statements: %+v", r)
	}
	all := total(com, topo.Servers, "Com_select")
	onReplicas := total(com, topo.Replicas, "Com_select")
	if all != r.Read {
		t.Errorf("the servers ran %d SELECTs, sysbench ran %d", all, r.Read)
	}
	ratio := float64(onReplicas) / float64(max(all, 1))
	t.Logf("replicas served %d of %d SELECTs: %.2f%% (target >= 90%%)", onReplicas, all, 100*ratio)
	if ratio < 0.90 {
		t.Errorf("replicas served %.2f%% of the SELECTs, want at least 90%%", 100*ratio)
	}
	for _, rep := range topo.Replicas {
		n := rep.Name
		if com[n]["Com_select"] == 0 {
			t.Errorf("replica %s served no SELECT: reads are not balanced", n)
		}
		if user[n]["update"] != 0 || com[n]["Com_insert"] != 0 || com[n]["Com_update"] != 0 || com[n]["Com_delete"] != 0 {
			t.Errorf("replica %s saw writes: Com %v, from sluice %v", n, com[n], user[n])
		}
	}
}

// TestPreparedStatementsStayWithinServerLimit: sluice prepares a client's
// statement lazily on every pooled connection that executes it, so with many
// sessions each backend connection ends up holding the statements of all of
// them. sysbench found the consequence: after a few oltp_read_write runs
// (16 threads x 38 statements), 31 pooled connections to the primary held
// 512 statements each and every new prepare failed with error 1461 (Can't
// create more than max_prepared_stmt_count statements), although the
// clients themselves held 608. Here the server allows 300 statements; the
// 8 sessions need 80, and sluice must stay usable.
func TestPreparedStatementsStayWithinServerLimit(t *testing.T) {
	const limit, sessions, perSession, rounds = 300, 8, 10, 40
	topo := testbed.StartT(t, testbed.Options{Replicas: 0, ExtraArgs: append(append([]string(nil), serverArgs...), fmt.Sprintf("--max-prepared-stmt-count=%d", limit))})
	p := startSluice(t, sluiceOpts{topo: topo})
	db := newSchema(t, topo, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
	d := openDB(t, p, db, "interpolateParams=false")
	d.SetMaxOpenConns(sessions)
	ctx := context.Background()
	type session struct{ stmts []*sql.Stmt }
	all := make([]session, sessions)
	for i := range all {
		c := conn(t, d)
		for j := range perSession {
			st, err := c.PrepareContext(ctx, fmt.Sprintf("SELECT v + %d FROM t WHERE id = ?", i*perSession+j))
			if err != nil {
				t.Fatalf("session %d, prepare %d: %v", i, j, err)
			}
			t.Cleanup(func() { st.Close() })
			all[i].stmts = append(all[i].stmts, st)
		}
	}
	// Concurrent sessions spread their executes over several pooled
	// connections, and each connection gets the statements of all of them.
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() {
			for r := range rounds {
				for j, st := range s.stmts {
					var v int
					if err := st.QueryRowContext(ctx, 1).Scan(&v); err != nil {
						errs <- fmt.Errorf("session %d, round %d, statement %d: %w", i, r, j, err)
						return
					}
					if want := 1 + i*perSession + j; v != want {
						errs <- fmt.Errorf("session %d, statement %d returned %d, want %d", i, j, v, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n, err := topo.Primary.GlobalStatus(ctx, "Prepared_stmt_count")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the primary holds %d prepared statements (limit %d) for %d client statements", n, limit, sessions*perSession)
}
