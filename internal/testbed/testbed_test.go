package testbed

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"
)

const helperEnv = "SLUICE_TESTBED_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helperMain()
		return
	}
	goleak.VerifyTestMain(m)
}

// helperMain is the child process of TestServersDieWithTheTestProcess: it
// starts a topology, prints its pids and directory, and waits to be killed.
// If its parent dies first, its stdin closes and it exits.
func helperMain() {
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}()
	t, err := Start(context.Background(), Options{Replicas: 1})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(t.Primary.PID(), t.Replicas[0].PID(), t.Dir)
	select {}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openApp(t *testing.T, s *Server) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN(AppUser, AppPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	v, _ := Version()
	t.Logf("mariadbd %s at %s", v, binaries.mariadbd)
}

func TestPrimaryWritesReachReplicas(t *testing.T) {
	t.Parallel()
	start := time.Now()
	topo := StartT(t, Options{Replicas: 2})
	t.Logf("1 primary + 2 replicas started in %v", time.Since(start).Round(time.Millisecond))

	if len(topo.Servers) != 3 || topo.Servers[0] != topo.Primary || topo.ByName("db3") != topo.Replicas[1] {
		t.Fatalf("unexpected layout: %+v", topo.Servers)
	}
	p := openApp(t, topo.Primary)
	mustExec(t, p, "CREATE DATABASE shop")
	mustExec(t, p, "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20))")
	mustExec(t, p, "INSERT INTO shop.items VALUES (1, 'a'), (2, 'b'), (3, 'ü')")
	if err := topo.WaitReplicated(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, r := range topo.Replicas {
		db := openApp(t, r)
		if n := count(t, db, "SELECT COUNT(*) FROM shop.items"); n != 3 {
			t.Errorf("%s has %d rows, want 3", r.Name, n)
		}
		var name string
		if err := db.QueryRow("SELECT name FROM shop.items WHERE id = 3").Scan(&name); err != nil || name != "ü" {
			t.Errorf("%s: name = %q, %v", r.Name, name, err)
		}
	}
}

func TestReplicasAreReadOnlyGTIDReplicas(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 2})
	ctx := ctxT(t, 30*time.Second)

	if ro, err := topo.Primary.GlobalVariable(ctx, "read_only"); err != nil || ro != "OFF" {
		t.Errorf("primary read_only = %q, %v", ro, err)
	}
	if st, err := topo.Primary.SlaveStatus(ctx); err != nil || st != nil {
		t.Errorf("primary SHOW SLAVE STATUS = %v, %v; want no rows", st, err)
	}
	ids := map[string]bool{}
	for _, s := range topo.Servers {
		id, err := s.GlobalVariable(ctx, "server_id")
		if err != nil {
			t.Fatal(err)
		}
		if id != strconv.Itoa(s.ServerID) || ids[id] {
			t.Errorf("%s server_id = %s (ServerID %d)", s.Name, id, s.ServerID)
		}
		ids[id] = true
		for name, want := range map[string]string{
			"gtid_strict_mode": "ON", "log_bin": "ON", "log_slave_updates": "ON", "binlog_format": "ROW",
			"local_infile": "ON", "character_set_server": "utf8mb4", "slave_net_timeout": "5",
		} {
			if got, err := s.GlobalVariable(ctx, name); err != nil || got != want {
				t.Errorf("%s %s = %q, %v; want %q", s.Name, name, got, err, want)
			}
		}
	}
	for _, r := range topo.Replicas {
		if ro, err := r.GlobalVariable(ctx, "read_only"); err != nil || ro != "ON" {
			t.Errorf("%s read_only = %q, %v", r.Name, ro, err)
		}
		st, err := r.SlaveStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Using_Gtid": "Slave_Pos",
			"Master_Port": strconv.Itoa(topo.Primary.Port), "Master_User": ReplUser,
		} {
			if st[k] != want {
				t.Errorf("%s %s = %q, want %q", r.Name, k, st[k], want)
			}
		}
		// app lacks READ_ONLY ADMIN, so a misrouted write fails.
		_, err = openApp(t, r).Exec("CREATE DATABASE nope")
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1290 {
			t.Errorf("%s: write as app: %v, want error 1290", r.Name, err)
		}
	}
}

func TestMonitorAccountCanRunFailover(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 1})
	r := topo.Replicas[0]
	db, err := sql.Open("mysql", r.DSN(MonitorUser, MonitorPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"SHOW SLAVE STATUS", "SHOW GLOBAL VARIABLES LIKE 'read_only'", "SHOW BINLOG STATUS",
		"SHOW PROCESSLIST", "SHOW GLOBAL STATUS LIKE 'Uptime'",
		"STOP SLAVE", "SET GLOBAL read_only = 0", "SET GLOBAL read_only = 1",
		"SET GLOBAL rpl_semi_sync_master_enabled = 0", "FLUSH BINARY LOGS",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USE_GTID=slave_pos", topo.Primary.Port),
		"START SLAVE",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Errorf("%s as %s: %v", q, MonitorUser, err)
		}
	}
	if err := r.WaitSlaveRunning(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	root, _ := sql.Open("mysql", topo.Primary.DSN(RootUser, "", ""))
	defer root.Close()
	if err := root.Ping(); err == nil {
		t.Error("root over TCP was accepted; it must be socket only")
	}
}

func TestKilledReplicaResumesReplication(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 2})
	ctx := ctxT(t, 60*time.Second)
	p := openApp(t, topo.Primary)
	mustExec(t, p, "CREATE TABLE test.t (id INT PRIMARY KEY)")
	mustExec(t, p, "INSERT INTO test.t VALUES (1)")
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	r := topo.Replicas[0]
	pid := r.PID()
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if r.Running() || r.PID() != 0 || processAlive(pid) {
		t.Fatalf("%s still running after Kill", r.Name)
	}
	if err := r.Kill(); err == nil {
		t.Error("Kill of a dead server: want an error")
	}
	mustExec(t, p, "INSERT INTO test.t VALUES (2), (3)")
	// A dead replica is not waited for.
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica restarted after SIGKILL in %v", time.Since(start).Round(time.Millisecond))
	if err := r.WaitSlaveRunning(ctx); err != nil {
		t.Fatal(err)
	}
	if ro, err := r.GlobalVariable(ctx, "read_only"); err != nil || ro != "ON" {
		t.Errorf("restarted replica read_only = %q, %v; want ON", ro, err)
	}
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, openApp(t, r), "SELECT COUNT(*) FROM test.t"); n != 3 {
		t.Errorf("%s has %d rows after restart, want 3", r.Name, n)
	}
}

func TestStoppedPrimaryRestartsAndReplicasReconnect(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 1})
	ctx := ctxT(t, 60*time.Second)
	start := time.Now()
	if err := topo.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("clean shutdown in %v", time.Since(start).Round(time.Millisecond))
	if topo.Primary.Running() {
		t.Fatal("primary still running after Stop")
	}
	if err := topo.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := openApp(t, topo.Primary)
	mustExec(t, p, "CREATE TABLE test.t (id INT PRIMARY KEY)")
	mustExec(t, p, "INSERT INTO test.t VALUES (1)")
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, openApp(t, topo.Replicas[0]), "SELECT COUNT(*) FROM test.t"); n != 1 {
		t.Errorf("replica has %d rows, want 1", n)
	}
}

func TestPausedReplicaHangsAndCatchesUpAfterResume(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 2})
	ctx := ctxT(t, 60*time.Second)
	r := topo.Replicas[1]
	rdb := openApp(t, r)
	if err := rdb.Ping(); err != nil { // keep a connection open across the pause
		t.Fatal(err)
	}
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	if !r.Paused() || !r.Running() {
		t.Fatalf("Paused() = %v, Running() = %v", r.Paused(), r.Running())
	}
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := rdb.QueryRowContext(qctx, "SELECT 1").Scan(new(int))
	cancel()
	if err == nil {
		t.Fatal("a paused server answered a query")
	}
	p := openApp(t, topo.Primary)
	mustExec(t, p, "CREATE TABLE test.t (id INT PRIMARY KEY)")
	mustExec(t, p, "INSERT INTO test.t VALUES (1)")
	if err := topo.WaitReplicated(ctx); err != nil { // skips the paused replica
		t.Fatal(err)
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, rdb, "SELECT COUNT(*) FROM test.t"); n != 1 {
		t.Errorf("resumed replica has %d rows, want 1", n)
	}
}

func TestPausedServerCanBeStoppedAndKilled(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 1})
	ctx := ctxT(t, 60*time.Second)
	if err := topo.Primary.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := topo.Primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := topo.Replicas[0].Pause(); err != nil {
		t.Fatal(err)
	}
	// Close (from StartT's cleanup) must kill the paused replica.
}

func TestGlobalStatusAndWaitDoNotCountAsSelects(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 1})
	ctx := ctxT(t, 30*time.Second)
	names := []string{"Com_select", "Com_insert", "Questions"}
	before := map[*Server]map[string]int64{}
	for _, s := range topo.Servers {
		m, err := s.GlobalStatuses(ctx, names...)
		if err != nil {
			t.Fatal(err)
		}
		before[s] = m
	}
	p := openApp(t, topo.Primary)
	mustExec(t, p, "CREATE TABLE test.t (id INT PRIMARY KEY)")
	mustExec(t, p, "INSERT INTO test.t VALUES (1)")
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range topo.Servers {
		if _, err := s.GTIDPos(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := s.GlobalStatus(ctx, "Com_select")
		if err != nil {
			t.Fatal(err)
		}
		if n != before[s]["Com_select"] {
			t.Errorf("%s Com_select moved from %d to %d without any SELECT", s.Name, before[s]["Com_select"], n)
		}
	}
	ins, _ := topo.Primary.GlobalStatus(ctx, "Com_insert")
	if ins != before[topo.Primary]["Com_insert"]+1 {
		t.Errorf("primary Com_insert = %d, want %d", ins, before[topo.Primary]["Com_insert"]+1)
	}
	if _, err := topo.Primary.GlobalStatus(ctx, "No_such_counter"); err == nil {
		t.Error("unknown status: want an error")
	}
	if _, err := topo.Primary.GlobalStatus(ctx, "Com_select' OR 1"); err == nil {
		t.Error("bad name: want an error")
	}
	pos, err := topo.Primary.GTIDPos(ctx)
	if err != nil || !strings.HasPrefix(pos, "0-1-") {
		t.Errorf("primary GTIDPos = %q, %v", pos, err)
	}
}

func TestSemiSync(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 2, SemiSync: true})
	ctx := ctxT(t, 30*time.Second)
	for _, s := range topo.Servers {
		for _, v := range []string{"rpl_semi_sync_master_enabled", "rpl_semi_sync_slave_enabled"} {
			if got, err := s.GlobalVariable(ctx, v); err != nil || got != "ON" {
				t.Errorf("%s %s = %q, %v", s.Name, v, got, err)
			}
		}
	}
	p := openApp(t, topo.Primary)
	start := time.Now()
	mustExec(t, p, "CREATE TABLE test.t (id INT PRIMARY KEY)")
	mustExec(t, p, "INSERT INTO test.t VALUES (1)")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("two semi-sync commits took %v; acks are not arriving", d)
	}
	m, err := topo.Primary.GlobalStatuses(ctx, "Rpl_semi_sync_master_yes_tx", "Rpl_semi_sync_master_no_tx", "Rpl_semi_sync_master_clients")
	if err != nil {
		t.Fatal(err)
	}
	if m["Rpl_semi_sync_master_yes_tx"] < 2 || m["Rpl_semi_sync_master_no_tx"] != 0 || m["Rpl_semi_sync_master_clients"] != 2 {
		t.Errorf("semi-sync status on primary: %v", m)
	}
	// Replicas apply without waiting for acks of their own (no replicas of theirs).
	start = time.Now()
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("replicas took %v to apply two transactions", d)
	}
	for _, r := range topo.Replicas {
		if st, err := r.GlobalStatus(ctx, "Rpl_semi_sync_slave_status"); err != nil || st != 1 {
			t.Errorf("%s Rpl_semi_sync_slave_status = %d, %v", r.Name, st, err)
		}
		if v, err := r.GlobalVariable(ctx, "rpl_semi_sync_master_enabled"); err != nil || v != "ON" {
			t.Errorf("%s rpl_semi_sync_master_enabled = %q, %v", r.Name, v, err)
		}
	}

	// With every replica gone the primary goes async at once
	// (rpl_semi_sync_master_wait_no_slave=OFF) instead of stalling.
	for _, r := range topo.Replicas {
		if err := r.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	mustExec(t, p, "INSERT INTO test.t VALUES (2)")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("commit without replicas took %v", d)
	}
	// A replica that comes back turns semi-sync on again.
	r := topo.Replicas[0]
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := topo.Primary.waitStatus(ctx, "Rpl_semi_sync_master_clients", 1); err != nil {
		t.Fatal(err)
	}
	mustExec(t, p, "INSERT INTO test.t VALUES (3)")
	m2, err := topo.Primary.GlobalStatuses(ctx, "Rpl_semi_sync_master_yes_tx", "Rpl_semi_sync_master_status")
	if err != nil {
		t.Fatal(err)
	}
	if m2["Rpl_semi_sync_master_status"] != 1 || m2["Rpl_semi_sync_master_yes_tx"] <= m["Rpl_semi_sync_master_yes_tx"] {
		t.Errorf("after a replica returned: %v (before: %v)", m2, m)
	}
}

func TestExtraUsersExistEverywhereButNotInBinlog(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 1, Users: []User{
		{Name: "reader", Password: "it's"},
		{Name: "limited", Password: "x", Grants: "SELECT ON test.*"},
	}})
	ctx := ctxT(t, 30*time.Second)
	for _, s := range topo.Servers {
		for _, u := range []struct{ name, pw string }{{"reader", "it's"}, {"limited", "x"}} {
			db, _ := sql.Open("mysql", s.DSN(u.name, u.pw, ""))
			if err := db.PingContext(ctx); err != nil {
				t.Errorf("%s as %s: %v", s.Name, u.name, err)
			}
			db.Close()
		}
		if pos, err := s.GTIDPos(ctx); err != nil || pos != "" {
			t.Errorf("%s gtid_current_pos = %q, %v; want empty (users must not be binlogged)", s.Name, pos, err)
		}
	}
	db, _ := sql.Open("mysql", topo.Primary.DSN("limited", "x", ""))
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE nope"); err == nil {
		t.Error("limited user could CREATE DATABASE")
	}
}

func TestCloseLeavesNoProcessesOrFiles(t *testing.T) {
	t.Parallel()
	topo, err := Start(ctxT(t, time.Minute), Options{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range topo.Servers {
		pids = append(pids, s.PID())
	}
	dir := topo.Dir
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	if err := topo.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("mariadbd %d still exists after Close", pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after Close (%v)", dir, err)
	}
}

func TestGivenDirIsKept(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 5))
	topo, err := Start(ctxT(t, time.Minute), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Primary.Socket) > maxSocketPath {
		t.Errorf("socket path %q is too long", topo.Primary.Socket)
	}
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db1", "error.log")); err != nil {
		t.Errorf("given Dir was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(topo.Primary.Socket)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir not removed: %v", err)
	}
}

func TestParallelTopologiesAreIsolated(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		ports = map[int]string{}
	)
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			topo := StartT(t, Options{Replicas: 1})
			mu.Lock()
			for _, s := range topo.Servers {
				if other, dup := ports[s.Port]; dup {
					t.Errorf("port %d used by %s and %s", s.Port, other, s.Name)
				}
				ports[s.Port] = fmt.Sprintf("topology %d %s", i, s.Name)
			}
			mu.Unlock()
			p := openApp(t, topo.Primary)
			mustExec(t, p, "CREATE TABLE test.t (id INT PRIMARY KEY)")
			for j := range i + 1 {
				mustExec(t, p, "INSERT INTO test.t VALUES (?)", j)
			}
			if err := topo.WaitReplicated(ctxT(t, 30*time.Second)); err != nil {
				t.Fatal(err)
			}
			if n := count(t, openApp(t, topo.Replicas[0]), "SELECT COUNT(*) FROM test.t"); n != i+1 {
				t.Errorf("replica has %d rows, want %d", n, i+1)
			}
		})
	}
}

func TestStartFailureReportsErrorLog(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	_, err := Start(ctxT(t, time.Minute), Options{Replicas: 1, ExtraArgs: []string{"--no-such-option=1"}, Log: &logs})
	if err == nil {
		t.Fatal("Start with a bad option succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("error does not show the log tail: %v", err)
	}
	if !strings.Contains(logs.String(), "==== db1") {
		t.Errorf("Options.Log did not get the logs: %q", logs.String())
	}
}

func TestWaitReplicatedReportsBrokenReplica(t *testing.T) {
	t.Parallel()
	topo := StartT(t, Options{Replicas: 1})
	r := topo.Replicas[0]
	if err := r.Exec(ctxT(t, 10*time.Second), "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, openApp(t, topo.Primary), "CREATE DATABASE d")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := topo.WaitReplicated(ctx)
	if err == nil || !strings.Contains(err.Error(), "Slave_SQL_Running=No") {
		t.Fatalf("WaitReplicated = %v, want a report naming the stopped SQL thread", err)
	}
}

// TestServersDieWithTheTestProcess kills a child test binary that holds a
// topology, as `go test -timeout` or a crash would, and checks that its
// servers die with it and the next sweep removes its directory.
func TestServersDieWithTheTestProcess(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe() // closes when this process dies
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %v", err)
	}
	var pid1, pid2 int
	var dir string
	if _, err := fmt.Sscan(line, &pid1, &pid2, &dir); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	if !processAlive(pid1) || !processAlive(pid2) {
		t.Fatalf("helper's servers %d, %d not running", pid1, pid2)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for _, pid := range []int{pid1, pid2} {
		for processAlive(pid) {
			if sleepCtx(ctx, pollInterval) != nil {
				t.Fatalf("mariadbd %d outlived its test process", pid)
			}
		}
	}
	sweepStale()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sweep left %s (%v)", dir, err)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}

func TestParseGTIDList(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[uint32]uint64
		wantErr bool
	}{
		{"", map[uint32]uint64{}, false},
		{"0-1-42", map[uint32]uint64{0: 42}, false},
		{"0-1-42,3-2-7", map[uint32]uint64{0: 42, 3: 7}, false},
		{" 0-1-42 ,\n1-2-3", map[uint32]uint64{0: 42, 1: 3}, false},
		{"0-1", nil, true},
		{"a-b-c", nil, true},
	} {
		got, err := parseGTIDList(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseGTIDList(%q) error = %v", tc.in, err)
			continue
		}
		if !tc.wantErr && fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseGTIDList(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	have := map[uint32]uint64{0: 10, 1: 5}
	for _, tc := range []struct {
		want map[uint32]uint64
		ok   bool
	}{
		{map[uint32]uint64{}, true},
		{map[uint32]uint64{0: 10}, true},
		{map[uint32]uint64{0: 9, 1: 5}, true},
		{map[uint32]uint64{0: 11}, false},
		{map[uint32]uint64{2: 1}, false},
	} {
		if got := covers(have, tc.want); got != tc.ok {
			t.Errorf("covers(%v, %v) = %v", have, tc.want, got)
		}
	}
}

// BenchmarkStartTopology measures Start + Close of one primary and two
// replicas (the template is built before the timer starts).
func BenchmarkStartTopology(b *testing.B) {
	if _, err := template(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		topo, err := Start(context.Background(), Options{Replicas: 2})
		if err != nil {
			b.Fatal(err)
		}
		if err := topo.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStartClustersDistinctDomains: clusters get their own gtid_domain_id
// and server_ids, so one can replicate into another; cluster 0 looks like a
// single topology.
func TestStartClustersDistinctDomains(t *testing.T) {
	cs := StartClustersT(t, 2, Options{Replicas: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for k, c := range cs {
		for i, s := range c.Servers {
			dom, err := s.GlobalVariable(ctx, "gtid_domain_id")
			if err != nil {
				t.Fatal(err)
			}
			id, err := s.GlobalVariable(ctx, "server_id")
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprint(k); dom != want {
				t.Errorf("cluster %d %s: gtid_domain_id %s, want %s", k, s.Name, dom, want)
			}
			if want := fmt.Sprint(k*ClusterServerIDStride + i + 1); id != want || s.ServerID != k*ClusterServerIDStride+i+1 {
				t.Errorf("cluster %d %s: server_id %s (ServerID %d), want %s", k, s.Name, id, s.ServerID, want)
			}
		}
		if err := c.Primary.Exec(ctx, "CREATE TABLE test.t (id INT PRIMARY KEY); INSERT INTO test.t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReplicated(ctx); err != nil {
			t.Fatal(err)
		}
		pos, err := c.Replicas[0].GTIDPos(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(pos, fmt.Sprintf("%d-%d-", k, k*ClusterServerIDStride+1)) {
			t.Errorf("cluster %d replica gtid_current_pos %q, want domain %d from server %d", k, pos, k, k*ClusterServerIDStride+1)
		}
	}
	// Promote moves the primary role to the replica.
	c := cs[1]
	old := c.Primary
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(ctx, c.Replicas[0]); err != nil {
		t.Fatal(err)
	}
	if c.Primary == old || c.Primary.Exec(ctx, "INSERT INTO test.t VALUES (2)") != nil {
		t.Errorf("after Promote the new primary %s is not writable", c.Primary.Name)
	}
}
