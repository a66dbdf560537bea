package testbed

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestKilledPrimaryIsRebuiltAsReplicaOfNewPrimary runs the failover cycle
// of the failover tests twice, so that each server is rebuilt once: kill
// the primary, promote the replica by hand, write on it, restart the old
// primary (it comes back writable and takes a write the new primary never
// gets), then Rebuild it as a replica of the new primary.
func TestKilledPrimaryIsRebuiltAsReplicaOfNewPrimary(t *testing.T) {
	t.Parallel()
	for _, semiSync := range []bool{false, true} {
		name := "async"
		if semiSync {
			name = "semisync"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testFailoverAndRebuild(t, semiSync)
		})
	}
}

func testFailoverAndRebuild(t *testing.T, semiSync bool) {
	reader := User{Name: "reader", Password: "r", Grants: "SELECT ON *.*"}
	topo := StartT(t, Options{Replicas: 1, SemiSync: semiSync, Users: []User{reader}})
	ctx := ctxT(t, 2*time.Minute)

	rows := 0
	insert := func(s *Server, n int) {
		t.Helper()
		for range n {
			rows++
			execApp(t, s, "INSERT INTO test.t VALUES (?, ?)", rows, s.Name)
		}
	}
	execApp(t, topo.Primary, "CREATE TABLE test.t (id INT PRIMARY KEY, origin VARCHAR(8))")
	insert(topo.Primary, 3)
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}

	for round := 1; round <= 2; round++ {
		old, next := topo.Primary, topo.Replicas[0]
		if err := old.Kill(); err != nil {
			t.Fatal(err)
		}
		// Promote by hand, as the proxy would.
		admin, err := next.Admin()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"} {
			mustExec(t, admin, q)
		}
		topo.SetPrimary(next)
		if topo.Primary != next || len(topo.Replicas) != 1 || topo.Replicas[0] != old {
			t.Fatalf("after SetPrimary(%s): Primary %s, Replicas %v", next.Name, topo.Primary.Name, topo.Replicas)
		}
		insert(next, 2)

		// The old primary comes back as it was: writable, a split brain.
		if err := old.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if ro, err := old.GlobalVariable(ctx, "read_only"); err != nil || ro != "OFF" {
			t.Fatalf("round %d: restarted old primary %s read_only = %q, %v; want OFF", round, old.Name, ro, err)
		}
		execApp(t, old, "INSERT INTO test.t VALUES (?, 'lost')", 1000+round)

		start := time.Now()
		if err := old.Rebuild(ctx, next); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: Rebuild of %s as a replica of %s took %v", round, old.Name, next.Name, time.Since(start).Round(time.Millisecond))

		insert(next, 1)
		if err := topo.WaitReplicated(ctx); err != nil {
			t.Fatal(err)
		}
		checkRebuiltReplica(t, old, next, rows, reader)
		if semiSync {
			if err := next.waitStatus(ctx, "Rpl_semi_sync_master_clients", 1); err != nil {
				t.Fatal(err)
			}
			before, err := next.GlobalStatus(ctx, "Rpl_semi_sync_master_yes_tx")
			if err != nil {
				t.Fatal(err)
			}
			insert(next, 1)
			after, err := next.GlobalStatuses(ctx, "Rpl_semi_sync_master_yes_tx", "Rpl_semi_sync_master_status")
			if err != nil {
				t.Fatal(err)
			}
			if after["Rpl_semi_sync_master_status"] != 1 || after["Rpl_semi_sync_master_yes_tx"] != before+1 {
				t.Errorf("round %d: semi-sync on %s after the rebuild: %v (yes_tx before: %d)", round, next.Name, after, before)
			}
		}

		// A rebuilt server restarted after a crash stays a replica.
		if err := old.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := old.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := old.WaitSlaveRunning(ctx); err != nil {
			t.Fatal(err)
		}
		insert(next, 1)
		if err := topo.WaitReplicated(ctx); err != nil {
			t.Fatal(err)
		}
		checkRebuiltReplica(t, old, next, rows, reader)
	}
}

// checkRebuiltReplica checks that s is a read-only GTID replica of primary
// with its own server_id, the extra user, and exactly rows rows 1..rows.
func checkRebuiltReplica(t *testing.T, s, primary *Server, rows int, user User) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	for name, want := range map[string]string{"read_only": "ON", "server_id": strconv.Itoa(s.ServerID)} {
		if got, err := s.GlobalVariable(ctx, name); err != nil || got != want {
			t.Errorf("%s %s = %q, %v; want %q", s.Name, name, got, err, want)
		}
	}
	st, err := s.SlaveStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Using_Gtid": "Slave_Pos",
		"Master_Port": strconv.Itoa(primary.Port), "Master_Server_Id": strconv.Itoa(primary.ServerID),
	} {
		if st[k] != want {
			t.Errorf("%s %s = %q, want %q", s.Name, k, st[k], want)
		}
	}
	db, err := sql.Open("mysql", s.DSN(AppUser, AppPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close() // before a later Kill: closing a pool to a dead server makes the driver log
	if n := count(t, db, "SELECT COUNT(*) FROM test.t WHERE id BETWEEN 1 AND "+strconv.Itoa(rows)); n != rows {
		t.Errorf("%s has %d of rows 1..%d", s.Name, n, rows)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM test.t"); n != rows {
		t.Errorf("%s has %d rows, want %d (the old primary's lost writes must be gone)", s.Name, n, rows)
	}
	_, err = db.Exec("INSERT INTO test.t VALUES (0, 'x')")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Errorf("%s: write as app: %v, want error 1290 (read_only)", s.Name, err)
	}
	udb, _ := sql.Open("mysql", s.DSN(user.Name, user.Password, ""))
	defer udb.Close()
	if err := udb.PingContext(ctx); err != nil {
		t.Errorf("%s as %s: %v", s.Name, user.Name, err)
	}
}

// execApp runs q as AppUser on a pool of its own, closed at once: a pool
// still open when its server is killed makes the driver log on Close.
func execApp(t *testing.T, s *Server, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN(AppUser, AppPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec(t, db, q, args...)
}

func TestSetPrimaryRejectsAForeignServer(t *testing.T) {
	topo := &Topology{Servers: []*Server{{Name: "db1"}}}
	defer func() {
		if recover() == nil {
			t.Error("SetPrimary of a server outside the topology did not panic")
		}
	}()
	topo.SetPrimary(&Server{Name: "db1"})
}

// BenchmarkFailoverRebuild measures one failover cycle of a 1+1
// topology: SIGKILL the primary, promote the replica, SetPrimary, and
// Rebuild the old primary as its replica (run with -benchtime=20x for the
// 20 repetitions of a failover test).
func BenchmarkFailoverRebuild(b *testing.B) {
	topo := StartT(b, Options{Replicas: 1})
	ctx := context.Background()
	if err := topo.Primary.Exec(ctx, "CREATE TABLE test.t (id INT PRIMARY KEY)"); err != nil {
		b.Fatal(err)
	}
	id := 0
	for b.Loop() {
		old, next := topo.Primary, topo.Replicas[0]
		if err := old.Kill(); err != nil {
			b.Fatal(err)
		}
		if err := next.Exec(ctx, "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF"); err != nil {
			b.Fatal(err)
		}
		topo.SetPrimary(next)
		id++
		if err := next.Exec(ctx, "INSERT INTO test.t VALUES (?)", id); err != nil {
			b.Fatal(err)
		}
		if err := old.Rebuild(ctx, next); err != nil {
			b.Fatal(err)
		}
	}
	if err := topo.WaitReplicated(ctx); err != nil {
		b.Fatal(err)
	}
	var n int
	db, err := topo.Replicas[0].Admin()
	if err != nil {
		b.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM test.t").Scan(&n); err != nil || n != id {
		b.Fatalf("rebuilt replica has %d rows (%v), want %d", n, err, id)
	}
}
