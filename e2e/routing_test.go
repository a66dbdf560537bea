package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Both protocols of go-sql-driver: interpolateParams=true sends text
// queries, =false uses server-side prepared statements.
var protocols = []struct {
	name   string
	params []string
}{
	{"binary", []string{"interpolateParams=false"}},
	{"text", []string{"interpolateParams=true"}},
}

func TestCRUDAndTransactionsWithGoDriver(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64), qty INT, note TEXT, price DECIMAL(10,2), seen DATETIME(6))")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			d := openDB(t, p, db, append(proto.params, "parseTime=true")...)
			ctx := context.Background()
			mustExec(t, d, "DELETE FROM items")
			now := time.Date(2026, 11, 22, 10, 11, 12, 345678000, time.UTC)
			var ids []int64
			for i := 0; i < 20; i++ {
				r := mustExec(t, d, "INSERT INTO items (name, qty, note, price, seen) VALUES (?, ?, ?, ?, ?)",
					fmt.Sprintf("item-%d", i), i, nil, 1.25*float64(i), now)
				id, err := r.LastInsertId()
				if err != nil || id == 0 {
					t.Fatalf("LastInsertId = %d, %v", id, err)
				}
				ids = append(ids, id)
			}
			r := mustExec(t, d, "UPDATE items SET qty = qty + 100 WHERE qty >= ?", 10)
			if n, _ := r.RowsAffected(); n != 10 {
				t.Fatalf("UPDATE affected %d rows, want 10", n)
			}
			syncReplicas(t, shared)
			rows, err := d.QueryContext(ctx, "SELECT id, name, qty, note, price, seen FROM items WHERE qty > ? ORDER BY id", 100)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var id, qty int64
				var name string
				var note sql.NullString
				var price float64
				var seen time.Time
				if err := rows.Scan(&id, &name, &qty, &note, &price, &seen); err != nil {
					t.Fatal(err)
				}
				if note.Valid || !seen.Equal(now) || name != fmt.Sprintf("item-%d", qty-100) {
					t.Fatalf("row %d: name=%q qty=%d note=%v seen=%v", id, name, qty, note, seen)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if n != 10 {
				t.Fatalf("got %d rows, want 10", n)
			}
			// A transaction: rollback leaves nothing, commit keeps everything.
			tx, err := d.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, tx, "DELETE FROM items WHERE id = ?", ids[0])
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			tx, err = d.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, tx, "INSERT INTO items (name, qty) VALUES ('tx', -1)")
			if got := queryString(t, tx, "SELECT COUNT(*) FROM items WHERE qty = -1"); got != "1" {
				t.Fatalf("transaction does not see its own insert: %s", got)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			syncReplicas(t, shared)
			if got := queryString(t, d, "SELECT COUNT(*) FROM items"); got != "21" {
				t.Fatalf("COUNT(*) = %s, want 21", got)
			}
			// Prepared statement reused many times.
			stmt, err := d.PrepareContext(ctx, "SELECT name FROM items WHERE id = ?")
			if err != nil {
				t.Fatal(err)
			}
			defer stmt.Close()
			for i, id := range ids {
				var name string
				if err := stmt.QueryRowContext(ctx, id).Scan(&name); err != nil {
					t.Fatal(err)
				}
				if name != fmt.Sprintf("item-%d", i) {
					t.Fatalf("id %d: name %q", id, name)
				}
			}
			// An error is an error, and the session goes on.
			if _, err := d.ExecContext(ctx, "INSERT INTO no_such_table VALUES (1)"); err == nil {
				t.Fatal("insert into a missing table succeeded")
			}
			if got := queryString(t, d, "SELECT 1"); got != "1" {
				t.Fatal("session unusable after an error")
			}
		})
	}
}

func TestReadsGoToReplicasWritesToPrimary(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			d := openDB(t, p, db, proto.params...)
			d.SetMaxOpenConns(4)
			mustExec(t, d, "DELETE FROM t")
			// USER_STATISTICS is read with a SELECT, so outside the
			// Com_select window.
			beforeUser := userCommands(t, shared)
			before := counters(t, shared, "Com_select", "Com_insert", "Com_update", "Com_delete")
			for i := 0; i < 50; i++ {
				mustExec(t, d, "INSERT INTO t VALUES (?, ?)", i, i)
				mustExec(t, d, "UPDATE t SET v = v + 1 WHERE id = ?", i)
			}
			for i := 0; i < 100; i++ {
				var v sql.NullInt64
				err := d.QueryRow("SELECT v FROM t WHERE id = ?", i%50).Scan(&v)
				if err != nil && err != sql.ErrNoRows {
					t.Fatal(err)
				}
			}
			d2 := delta(counters(t, shared, "Com_select", "Com_insert", "Com_update", "Com_delete"), before)
			du := delta(userCommands(t, shared), beforeUser)
			pr := shared.Primary.Name
			if d2[pr]["Com_insert"] != 50 || d2[pr]["Com_update"] != 50 {
				t.Errorf("primary saw %v, want 50 inserts and 50 updates", d2[pr])
			}
			if d2[pr]["Com_select"] != 0 {
				t.Errorf("primary saw %d selects, want 0", d2[pr]["Com_select"])
			}
			var replicaSelects int64
			for _, r := range shared.Replicas {
				replicaSelects += d2[r.Name]["Com_select"]
				if du[r.Name]["update"] != 0 {
					t.Errorf("replica %s received writes from sluice: %v", r.Name, du[r.Name])
				}
				if d2[r.Name]["Com_select"] == 0 {
					t.Errorf("replica %s took no reads: balancing does not spread them", r.Name)
				}
			}
			if replicaSelects != 100 {
				t.Errorf("replicas saw %d selects, want 100", replicaSelects)
			}
		})
	}
}

func TestHintsForceTarget(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	d := openDB(t, p, "")
	c := conn(t, d)
	if s := servedBy(t, c, shared, "/* sluice:primary */ "); s != shared.Primary.Name {
		t.Errorf("sluice:primary hint served by %s", s)
	}
	if s := servedBy(t, c, shared, ""); !isReplica(shared, s) {
		t.Errorf("plain read served by %s, want a replica", s)
	}
	if s := servedBy(t, c, shared, "/* sluice:replica */ "); !isReplica(shared, s) {
		t.Errorf("sluice:replica hint served by %s", s)
	}
}

func TestReadYourWrites(t *testing.T) {
	// consistency: eventual: the old knob alone, as it always behaved.
	p := startSluice(t, sluiceOpts{yaml: "routing: {consistency: eventual, read_your_writes: 1s, max_replication_lag: 0s}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY)")
	ctx := context.Background()
	d := openDB(t, p, db)
	c := conn(t, d)
	// A table lock on each replica holds its SQL thread back: the replicas
	// stay healthy in sluice's eyes but go stale.
	// Cleanups run last-in first-out: this one after every UNLOCK TABLES.
	t.Cleanup(func() { syncReplicas(t, shared) })
	for _, r := range shared.Replicas {
		rdb, err := sql.Open("mysql", r.DSN("app", "app", db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		lc, err := rdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Released whatever happens: a lock left on the shared replicas
		// would stall replication for every later test.
		t.Cleanup(func() {
			if _, err := lc.ExecContext(context.Background(), "UNLOCK TABLES"); err != nil {
				t.Errorf("UNLOCK TABLES on %s: %v", r.Name, err)
			}
			lc.Close()
		})
		if _, err := lc.ExecContext(ctx, "LOCK TABLES t READ"); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, c, "INSERT INTO t VALUES (1)")
	if got := queryString(t, c, "SELECT COUNT(*) FROM t"); got != "1" {
		t.Fatalf("read right after the write sees %s rows, want 1 (read-your-writes)", got)
	}
	if s := servedBy(t, c, shared, ""); s != shared.Primary.Name {
		t.Fatalf("read within the window served by %s, want the primary", s)
	}
	waitFor(t, 5*time.Second, "reads return to the replicas after the window", func() bool {
		return isReplica(shared, servedBy(t, c, shared, ""))
	})
	if got := queryString(t, c, "SELECT COUNT(*) FROM t"); got != "0" {
		t.Fatalf("replica read after the window sees %s rows; the replica was expected to be stale (test setup)", got)
	}
}

// TestDrainedPrimaryRefusesNewWritesAndLetsTransactionsFinish: with the
// primary in drain, a transaction already open on it commits, new writes
// get 9001, and reads go on; enabled again, writes are accepted.
func TestDrainedPrimaryRefusesNewWritesAndLetsTransactionsFinish(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY)")
	d := openDB(t, p, db)
	inTxn := conn(t, d)
	mustExec(t, inTxn, "BEGIN")
	mustExec(t, inTxn, "INSERT INTO t VALUES (1)")

	if err := p.SetAdmin(shared.Primary.Name, topology.AdminDrain); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.SetAdmin(shared.Primary.Name, topology.AdminNone) })
	_, err := d.ExecContext(context.Background(), "INSERT INTO t VALUES (2)")
	wantCode(t, "write to a drained primary", err, 9001)
	if me := (*mysql.MySQLError)(nil); errors.As(err, &me) && string(me.SQLState[:]) != "08S01" {
		t.Errorf("write to a drained primary: SQLSTATE %s, want 08S01", me.SQLState)
	}
	// The transaction in flight finishes on it.
	mustExec(t, inTxn, "INSERT INTO t VALUES (3)")
	mustExec(t, inTxn, "COMMIT")
	if s := servedBy(t, conn(t, d), shared, ""); !isReplica(shared, s) {
		t.Errorf("read with the primary drained served by %s, want a replica", s)
	}

	if err := p.SetAdmin(shared.Primary.Name, topology.AdminNone); err != nil {
		t.Fatal(err)
	}
	mustExec(t, d, "INSERT INTO t VALUES (4)")
	if got := queryString(t, d, "/* sluice:primary */ SELECT GROUP_CONCAT(id ORDER BY id) FROM t"); got != "1,3,4" {
		t.Fatalf("rows %q, want 1,3,4 (the refused write absent)", got)
	}
}

// TestWriteIsNeverRetried: the backend connection under a running write
// dies (KILL CONNECTION on the primary). The client gets an error and
// sluice does not run the write again on another connection: once the
// primary runs nothing of the session's, the row is absent.
func TestWriteIsNeverRetried(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	db := newSchema(t, shared, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	c := conn(t, openDB(t, p, db))
	ctx := context.Background()
	errc := async(c, ctx, "INSERT INTO t (v) SELECT SLEEP(1) + 7 AS write_never_retried")
	var id string
	admin, err := shared.Primary.Admin()
	if err != nil {
		t.Fatal(err)
	}
	running := func() (string, bool) {
		var tid sql.NullString
		err := admin.QueryRow("SELECT MAX(ID) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%write_never_retried%' AND INFO NOT LIKE '%PROCESSLIST%'").Scan(&tid)
		if err != nil {
			t.Fatal(err)
		}
		return tid.String, tid.Valid
	}
	waitFor(t, 5*time.Second, "the write runs on the primary", func() bool {
		var ok bool
		id, ok = running()
		return ok
	})
	if err := shared.Primary.Exec(ctx, "KILL CONNECTION "+id); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if code := errCode(err); code != 1927 && !lostConnection(err) {
		t.Fatalf("write whose backend connection was killed: %v, want a closed connection (or the server's 1927)", err)
	}
	waitFor(t, 5*time.Second, "nothing of the write runs any more", func() bool {
		_, ok := running()
		return !ok
	})
	if got := queryString(t, mustAdmin(t, shared.Primary), "SELECT COUNT(*) FROM `"+db+"`.t"); got != "0" {
		t.Fatalf("%s rows after the killed write: sluice ran it again", got)
	}
}
