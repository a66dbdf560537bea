package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/gtid"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// openAs opens a pool on s as user over TCP, as sluice does.
func openAs(t *testing.T, s *testbed.Server, user, password string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, password, "tcp", s.Addr()
	cfg.Timeout = 2 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

func monitor(t *testing.T, s *testbed.Server) *sql.DB {
	return openAs(t, s, testbed.MonitorUser, testbed.MonitorPassword)
}

func mustStatus(t *testing.T, ctx context.Context, db *sql.DB, name string) Status {
	t.Helper()
	st, err := ReadStatus(ctx, db, name)
	if err != nil {
		t.Fatalf("ReadStatus %s: %v", name, err)
	}
	return st
}

func writeRows(t *testing.T, ctx context.Context, s *testbed.Server, from, n int) {
	t.Helper()
	if err := s.Exec(ctx, "CREATE TABLE IF NOT EXISTS test.f (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		if err := s.Exec(ctx, fmt.Sprintf("INSERT INTO test.f VALUES (%d)", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func count(t *testing.T, ctx context.Context, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM test.f").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitPos polls until db's gtid_current_pos contains want.
func waitPos(t *testing.T, ctx context.Context, db *sql.DB, name string, want gtid.Pos) {
	t.Helper()
	for {
		st, err := ReadStatus(ctx, db, name)
		if err == nil && st.CurrentPos.Contains(want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not reach %s: %+v, %v", name, want, st, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitIOLost polls until the replica's IO thread lost its source.
func waitIOLost(t *testing.T, ctx context.Context, db *sql.DB, name string) Status {
	t.Helper()
	for {
		st, err := ReadStatus(ctx, db, name)
		if err == nil && !st.IORunning {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s IO thread still running: %v", name, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestReadStatusOnPrimaryAndReplica(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1})
	ctx := ctxT(t, 20*time.Second)
	writeRows(t, ctx, topo.Primary, 0, 3)
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	p := mustStatus(t, ctx, monitor(t, topo.Primary), "db1")
	r := mustStatus(t, ctx, monitor(t, topo.Replicas[0]), "db2")
	t.Logf("primary: read_only=%v replicating=%v server_id=%d current=%s binlog=%s state=%s strict=%v lsu=%v",
		p.ReadOnly, p.Replicating, p.ServerID, p.CurrentPos, p.BinlogPos, p.BinlogState, p.StrictMode, p.LogSlaveUpdates)
	t.Logf("replica: read_only=%v io=%v sql=%v state=%q source=%s slave=%s io_pos=%s binlog=%s",
		r.ReadOnly, r.IORunning, r.SQLRunning, r.IOState, r.SourceAddr, r.SlavePos, r.IOPos, r.BinlogPos)
	if !p.Reachable || p.ReadOnly || p.Replicating || p.ServerID != 1 || !p.StrictMode || !p.LogSlaveUpdates || len(p.BinlogPos) == 0 || len(p.BinlogState) == 0 {
		t.Errorf("primary status: %+v", p)
	}
	if !r.Reachable || !r.ReadOnly || !r.Replicating || !r.IORunning || !r.SQLRunning || r.ServerID != 2 || !r.StrictMode ||
		r.SourceAddr != topo.Primary.Addr() || !r.SlavePos.Contains(p.BinlogPos) || !r.IOPos.Contains(p.BinlogPos) || !r.CurrentPos.Contains(p.BinlogPos) {
		t.Errorf("replica status: %+v", r)
	}
}

func TestFailoverPromoteRepointAndRejoinOldPrimary(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2})
	ctx := ctxT(t, 40*time.Second)
	writeRows(t, ctx, topo.Primary, 0, 20)
	dbs := map[string]*sql.DB{}
	for _, s := range topo.Servers {
		dbs[s.Name] = monitor(t, s)
	}
	last := mustStatus(t, ctx, dbs["db1"], "db1")
	writeRows(t, ctx, topo.Primary, 20, 5) // after the last read of the primary
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	if err := topo.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var sts []Status
	for _, r := range topo.Replicas {
		sts = append(sts, waitIOLost(t, ctx, dbs[r.Name], r.Name))
	}
	servers := []Server{{Name: "db2", Priority: 1}, {Name: "db3", Priority: 2}}
	plan := ChooseCandidate(sts, servers, last)
	t.Logf("plan: %+v", plan)
	if plan.Refused || plan.Candidate != "db3" { // equal positions: priority wins
		t.Fatalf("plan: %+v", plan)
	}
	other := "db2"
	newP, oldP := topo.ByName(plan.Candidate), topo.Primary

	t0 := time.Now()
	if err := WaitApplied(ctxT(t, 5*time.Second), dbs[newP.Name], plan.CatchUpTo); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := Promote(ctx, dbs[newP.Name]); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	if err := Repoint(ctx, dbs[other], newP.Host, newP.Port, testbed.ReplUser, testbed.ReplPassword); err != nil {
		t.Fatal(err)
	}
	t3 := time.Now()
	t.Logf("wait applied %v, promote %v, repoint %v; kill to repointed %v",
		t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t3.Sub(killed))
	if err := Promote(ctx, dbs[newP.Name]); err != nil { // idempotent
		t.Fatalf("second promote: %v", err)
	}

	app := openAs(t, newP, testbed.AppUser, testbed.AppPassword)
	if _, err := app.ExecContext(ctx, "INSERT INTO test.f VALUES (100)"); err != nil {
		t.Fatalf("write on new primary: %v", err)
	}
	np := mustStatus(t, ctx, dbs[newP.Name], newP.Name)
	if np.ReadOnly || np.Replicating {
		t.Errorf("new primary: %+v", np)
	}
	waitPos(t, ctx, dbs[other], other, np.BinlogPos)
	if n := count(t, ctx, app); n != 26 {
		t.Errorf("new primary has %d rows, want 26", n)
	}
	if n := count(t, ctx, openAs(t, topo.ByName(other), testbed.AppUser, testbed.AppPassword)); n != 26 {
		t.Errorf("%s has %d rows, want 26", other, n)
	}
	t.Logf("new primary %s binlog %s state %s", newP.Name, np.BinlogPos, np.BinlogState)

	// The old primary comes back writable and not replicating.
	if err := oldP.Start(ctx); err != nil {
		t.Fatal(err)
	}
	self := mustStatus(t, ctx, dbs["db1"], "db1")
	t.Logf("old primary after restart: read_only=%v replicating=%v binlog state %s", self.ReadOnly, self.Replicating, self.BinlogState)
	if self.ReadOnly || self.Replicating {
		t.Errorf("old primary after restart: %+v", self)
	}
	t4 := time.Now()
	if err := Rejoin(ctx, dbs["db1"], dbs[newP.Name], newP.Host, newP.Port, testbed.ReplUser, testbed.ReplPassword, self); err != nil {
		t.Fatal(err)
	}
	t.Logf("rejoin %v", time.Since(t4))
	if _, err := app.ExecContext(ctx, "INSERT INTO test.f VALUES (101)"); err != nil {
		t.Fatal(err)
	}
	np = mustStatus(t, ctx, dbs[newP.Name], newP.Name)
	waitPos(t, ctx, dbs["db1"], "db1", np.BinlogPos)
	if n := count(t, ctx, openAs(t, oldP, testbed.AppUser, testbed.AppPassword)); n != 27 {
		t.Errorf("rejoined old primary has %d rows, want 27", n)
	}
	if st := mustStatus(t, ctx, dbs["db1"], "db1"); !st.ReadOnly || !st.IORunning || !st.SQLRunning || st.SourceAddr != newP.Addr() {
		t.Errorf("rejoined old primary: %+v", st)
	}
}

func TestRejoinRefusesDivergedOldPrimary(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1})
	ctx := ctxT(t, 30*time.Second)
	writeRows(t, ctx, topo.Primary, 0, 5)
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	oldP, newP := topo.Primary, topo.Replicas[0]
	oldDB, newDB := monitor(t, oldP), monitor(t, newP)
	if err := oldP.Kill(); err != nil {
		t.Fatal(err)
	}
	st := waitIOLost(t, ctx, newDB, newP.Name)
	if err := WaitApplied(ctx, newDB, st.Received()); err != nil {
		t.Fatal(err)
	}
	if err := Promote(ctx, newDB); err != nil {
		t.Fatal(err)
	}
	if err := oldP.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stale := mustStatus(t, ctx, oldDB, "db1") // read before the diverging write
	writeRows(t, ctx, oldP, 50, 1)            // root writes on the revived old primary
	err := Rejoin(ctx, oldDB, newDB, newP.Host, newP.Port, testbed.ReplUser, testbed.ReplPassword, stale)
	t.Logf("rejoin with stale status: %v", err)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("Rejoin = %v, want a refusal about diverged transactions", err)
	}
	self := mustStatus(t, ctx, oldDB, "db1")
	err = Rejoin(ctx, oldDB, newDB, newP.Host, newP.Port, testbed.ReplUser, testbed.ReplPassword, self)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Rejoin = %v, want refusal", err)
	}
	if self = mustStatus(t, ctx, oldDB, "db1"); self.Replicating || !self.ReadOnly {
		t.Errorf("refused old primary: replicating=%v read_only=%v", self.Replicating, self.ReadOnly)
	}
}

func TestChooseCandidateSkipsErrantReplica(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2})
	ctx := ctxT(t, 30*time.Second)
	writeRows(t, ctx, topo.Primary, 0, 5)
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	last := mustStatus(t, ctx, monitor(t, topo.Primary), "db1")
	// db2 gets a write of its own (root has READ_ONLY ADMIN).
	if err := topo.Replicas[0].Exec(ctx, "INSERT INTO test.f VALUES (1000)"); err != nil {
		t.Fatal(err)
	}
	if err := topo.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	var sts []Status
	for _, r := range topo.Replicas {
		sts = append(sts, waitIOLost(t, ctx, monitor(t, r), r.Name))
	}
	servers := []Server{{Name: "db2", Priority: 9}, {Name: "db3"}}
	plan := ChooseCandidate(sts, servers, last)
	t.Logf("db2 current %s slave %s; plan %+v", sts[0].CurrentPos, sts[0].SlavePos, plan)
	if plan.Candidate != "db3" || plan.Refused || !strings.Contains(strings.Join(plan.Reasons, "\n"), "db2 skipped: errant GTIDs 0-2-") {
		t.Fatalf("plan: %+v", plan)
	}
	// Without the primary's state the replica's own positions still show it.
	plan = ChooseCandidate(sts, servers, Status{})
	if plan.Candidate != "db3" || !strings.Contains(strings.Join(plan.Reasons, "\n"), "errant") {
		t.Fatalf("plan without primary state: %+v", plan)
	}
}

func TestWaitAppliedOnLaggingReplica(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1})
	ctx := ctxT(t, 30*time.Second)
	r := topo.Replicas[0]
	db := monitor(t, r)
	if _, err := db.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	writeRows(t, ctx, topo.Primary, 0, 10)
	p := mustStatus(t, ctx, monitor(t, topo.Primary), "db1")
	var st Status
	for st = mustStatus(t, ctx, db, r.Name); !st.IOPos.Contains(p.BinlogPos); st = mustStatus(t, ctx, db, r.Name) {
		select {
		case <-ctx.Done():
			t.Fatalf("IO thread did not receive %s: %+v", p.BinlogPos, st)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Logf("lagging replica: io_pos %s slave_pos %s behind %d", st.IOPos, st.SlavePos, gtid.Behind(st.SlavePos, st.IOPos))
	if st.SlavePos.Contains(st.IOPos) || st.SQLRunning {
		t.Fatalf("SQL thread not lagging: %+v", st)
	}
	t0 := time.Now()
	err := WaitApplied(ctxT(t, 500*time.Millisecond), db, st.IOPos)
	t.Logf("WaitApplied (500ms) after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "not applied") || !strings.Contains(err.Error(), "Slave_SQL_Running=No") ||
		!strings.Contains(err.Error(), "domain 0 seq 1..") {
		t.Fatalf("WaitApplied = %v, want a timeout naming what is missing", err)
	}
	if _, err := db.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := WaitApplied(ctxT(t, 5*time.Second), db, st.IOPos); err != nil {
		t.Fatal(err)
	}
	t.Logf("caught up in %v", time.Since(t0))
}

func TestFenceKillsClientsAndBlocksWrites(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{})
	ctx := ctxT(t, 20*time.Second)
	writeRows(t, ctx, topo.Primary, 0, 1)
	app := openAs(t, topo.Primary, testbed.AppUser, testbed.AppPassword)
	conn, err := app.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "INSERT INTO test.f VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	mdb := monitor(t, topo.Primary)
	t0 := time.Now()
	n, err := Fence(ctx, mdb, testbed.MonitorUser)
	t.Logf("fence killed %d connection(s) in %v", n, time.Since(t0))
	if err != nil || n < 1 {
		t.Fatalf("Fence = %d, %v", n, err)
	}
	if st := mustStatus(t, ctx, mdb, "db1"); !st.ReadOnly { // the monitor's own pool survived
		t.Errorf("read_only still OFF")
	}
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Errorf("the app connection survived the fence")
	}
	var me *mysql.MySQLError
	_, err = app.ExecContext(ctx, "INSERT INTO test.f VALUES (2)")
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Fatalf("write after fence: %v, want error 1290", err)
	}
	t.Logf("write after fence: %v", err)
}

func pos(s string) gtid.Pos { p, _ := gtid.Parse(s); return p }

func TestChooseCandidateRules(t *testing.T) {
	ok := func(name, io string) Status {
		return Status{Name: name, Reachable: true, StrictMode: true, LogSlaveUpdates: true, IOPos: pos(io), SlavePos: pos(io), CurrentPos: pos(io)}
	}
	primary := Status{ServerID: 1, BinlogPos: pos("0-1-10")}
	tests := []struct {
		name     string
		replicas []Status
		servers  []Server
		want     string
		refused  bool
		reason   string
	}{
		{"most received wins", []Status{ok("a", "0-1-8"), ok("b", "0-1-10")}, []Server{{Name: "a", Priority: 9}}, "b", false, "b chosen"},
		{"diverged refuses", []Status{ok("a", "0-1-8,1-1-5"), ok("b", "0-1-10")}, nil, "a", true, "b received transactions a lacks"},
		{"equal: priority", []Status{ok("a", "0-1-10"), ok("b", "0-1-10")}, []Server{{Name: "a", Priority: 5}}, "a", false, "a chosen"},
		{"equal: name", []Status{ok("b", "0-1-10"), ok("a", "0-1-10")}, nil, "a", false, "a chosen"},
		{"no promotion", []Status{ok("a", "0-1-10"), ok("b", "0-1-10")}, []Server{{Name: "a", NoPromotion: true}}, "b", false, "a skipped: no_promotion"},
		{"no promotion ahead refuses", []Status{ok("a", "0-1-10"), ok("b", "0-1-9")}, []Server{{Name: "a", NoPromotion: true}}, "b", true, "error 1236"},
		{"unreachable", []Status{{Name: "a"}, ok("b", "0-1-9")}, nil, "b", false, "a skipped: unreachable"},
		{"sql error", []Status{func() Status { s := ok("a", "0-1-10"); s.LastSQLErrno = 1062; return s }(), ok("b", "0-1-10")}, nil, "b", false, "SQL error 1062"},
		{"strict off", []Status{func() Status { s := ok("a", "0-1-10"); s.StrictMode = false; return s }()}, nil, "a", true, "gtid_strict_mode=OFF"},
		{"lsu off", []Status{func() Status { s := ok("a", "0-1-10"); s.LogSlaveUpdates = false; return s }()}, nil, "a", true, "log_slave_updates=OFF"},
		{"io pos empty: slave pos", []Status{func() Status { s := ok("a", "0-1-10"); s.IOPos = gtid.Pos{}; return s }(), ok("b", "0-1-9")}, nil, "a", false, "a chosen"},
		{"none", nil, nil, "", true, "no eligible"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ChooseCandidate(tc.replicas, tc.servers, primary)
			if p.Candidate != tc.want || p.Refused != tc.refused || !strings.Contains(strings.Join(p.Reasons, "\n"), tc.reason) {
				t.Errorf("plan %+v, want %s refused=%v reason %q", p, tc.want, tc.refused, tc.reason)
			}
		})
	}
}
