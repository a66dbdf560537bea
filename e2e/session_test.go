package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// churn runs reads from many other sessions so that backend connections are
// shared and reshuffled between the statements of the session under test:
// whatever state that session relies on must follow it.
func churn(t *testing.T, d *sql.DB, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				var x int
				if err := d.QueryRow("SELECT 1").Scan(&x); err != nil {
					t.Errorf("churn: SELECT 1: %v", err)
					return
				}
				if _, err := d.Exec("DO 1"); err != nil {
					t.Errorf("churn: DO 1: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// killPrimaryConnOf kills, on the primary, the backend connection that
// served c's last primary statement, and waits until the server has
// dropped it: c's next primary statement must then run on another
// connection, which sluice has to bring to the session's state.
func killPrimaryConnOf(t *testing.T, c *sql.Conn) string {
	t.Helper()
	id := queryString(t, c, "/* sluice:primary */ SELECT @@pseudo_thread_id")
	if err := shared.Primary.Exec(context.Background(), "KILL CONNECTION "+id); err != nil {
		t.Fatalf("KILL CONNECTION %s: %v", id, err)
	}
	admin, err := shared.Primary.Admin()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "backend connection "+id+" gone", func() bool {
		var n int
		if err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	// A pooled connection used within the last second is lent without a
	// liveness probe (backend.probeAfter): a statement sent at once would
	// meet the dead connection itself and, not being a retryable replica
	// read, lose it. Waiting that long is the condition, not a guess.
	time.Sleep(1100 * time.Millisecond)
	return id
}

func TestTransactionStaysOnOneBackend(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	d := openDB(t, p, db)
	other := openDB(t, p, db)
	ctx := context.Background()

	t.Run("explicit", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "BEGIN")
		first := servedBy(t, c, shared, "")
		mustExec(t, c, "INSERT INTO t VALUES (1, 1)")
		churn(t, other, 20)
		for i := 0; i < 10; i++ {
			if s := servedBy(t, c, shared, ""); s != first {
				t.Fatalf("statement %d of the transaction ran on %s, the transaction began on %s", i, s, first)
			}
		}
		if first != shared.Primary.Name {
			t.Fatalf("read-write transaction on %s, want the primary", first)
		}
		mustExec(t, c, "ROLLBACK")
	})

	t.Run("autocommit=0", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "SET autocommit = 0")
		mustExec(t, c, "INSERT INTO t VALUES (2, 2)")
		churn(t, other, 20)
		if got := queryString(t, c, "SELECT COUNT(*) FROM t WHERE id = 2"); got != "1" {
			t.Fatalf("uncommitted row invisible to its own transaction (got %s)", got)
		}
		if s := servedBy(t, c, shared, ""); s != shared.Primary.Name {
			t.Fatalf("autocommit=0 statement ran on %s", s)
		}
		mustExec(t, c, "ROLLBACK")
		if got := queryString(t, c, "SELECT COUNT(*) FROM t WHERE id = 2"); got != "0" {
			t.Fatalf("rolled back row still visible (got %s)", got)
		}
		// The next transaction starts implicitly and must stay put too.
		mustExec(t, c, "INSERT INTO t VALUES (3, 3)")
		mustExec(t, c, "COMMIT")
		mustExec(t, c, "SET autocommit = 1")
	})

	t.Run("read only transaction on a replica", func(t *testing.T) {
		c := conn(t, d)
		syncReplicas(t, shared)
		mustExec(t, c, "START TRANSACTION READ ONLY")
		first := servedBy(t, c, shared, "")
		if !isReplica(shared, first) {
			t.Fatalf("read-only transaction began on %s, want a replica", first)
		}
		churn(t, other, 10)
		for i := 0; i < 5; i++ {
			if s := servedBy(t, c, shared, ""); s != first {
				t.Fatalf("read-only transaction moved from %s to %s", first, s)
			}
		}
		if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES (9, 9)"); err == nil {
			t.Fatal("a write inside a read-only transaction succeeded")
		}
		mustExec(t, c, "COMMIT")
	})

	t.Run("BEGIN ends a read only transaction and starts on the primary", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "START TRANSACTION READ ONLY")
		if s := servedBy(t, c, shared, ""); !isReplica(shared, s) {
			t.Fatalf("read-only transaction on %s", s)
		}
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "INSERT INTO t VALUES (10, 10)")
		if s := servedBy(t, c, shared, ""); s != shared.Primary.Name {
			t.Fatalf("the new read-write transaction runs on %s", s)
		}
		mustExec(t, c, "COMMIT")
	})
}

func TestSessionStateFollowsTheSession(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20))")
	other := newSchema(t, shared)
	d := openDB(t, p, db)
	noise := openDB(t, p, db)
	c := conn(t, d)
	steps := []struct{ set, check, want string }{
		{"SET sql_mode = 'ANSI_QUOTES'", "SELECT @@sql_mode", "ANSI_QUOTES"},
		{"SET SESSION wait_timeout = 1234", "SELECT @@wait_timeout", "1234"},
		{"SET @greeting = 'hello'", "SELECT @greeting", "hello"},
		{"SET NAMES latin1", "SELECT @@character_set_client", "latin1"},
		{"SET @@session.time_zone = '+05:00'", "SELECT @@time_zone", "+05:00"},
		{"SET sql_mode = 'NO_ZERO_DATE'", "SELECT @@sql_mode", "NO_ZERO_DATE"}, // replaces the first one
		{"SET @a = 1, @b = 2", "SELECT @a + @b", "3"},
		{"USE `" + other + "`", "SELECT DATABASE()", other},
	}
	for _, st := range steps {
		mustExec(t, c, st.set)
		churn(t, noise, 10)
		// Reads go to replicas, whichever connection is free; every one of
		// them must see the state, as must the primary.
		for i := 0; i < 6; i++ {
			if got := queryString(t, c, st.check); got != st.want {
				t.Fatalf("after %q: %s = %q on read %d (served by %s), want %q", st.set, st.check, got, i, servedBy(t, c, shared, ""), st.want)
			}
		}
		if got := queryString(t, c, "/* sluice:primary */ "+st.check); got != st.want {
			t.Fatalf("after %q: primary has %s = %q, want %q", st.set, st.check, got, st.want)
		}
		// The connection that ran the SET is gone: the state must be
		// rebuilt on another one.
		killed := killPrimaryConnOf(t, c)
		if got := queryString(t, c, "/* sluice:primary */ "+st.check); got != st.want {
			t.Fatalf("after %q and the kill of its connection: primary has %s = %q, want %q", st.set, st.check, got, st.want)
		}
		if now := queryString(t, c, "/* sluice:primary */ SELECT @@pseudo_thread_id"); now == killed {
			t.Fatalf("statement ran on backend connection %s, which was killed", now)
		}
	}
	// Other sessions never see this session's state.
	for i := 0; i < 10; i++ {
		n := conn(t, noise)
		if got := queryString(t, n, "SELECT CONCAT(@@sql_mode, '|', IFNULL(@greeting, 'null'), '|', @@wait_timeout, '|', DATABASE())"); strings.Contains(got, "NO_ZERO_DATE") || strings.Contains(got, "hello") || strings.Contains(got, "1234") || strings.Contains(got, other) {
			t.Fatalf("another session sees leaked state: %s", got)
		}
		n.Close()
	}
	// A SET the server refuses is an error and is not recorded.
	if _, err := c.ExecContext(context.Background(), "SET no_such_variable = 1"); err == nil {
		t.Fatal("unknown variable accepted")
	}
	if got := queryString(t, c, "SELECT @greeting"); got != "hello" {
		t.Fatalf("session state lost after a failed SET: %q", got)
	}
}

func TestStateThatPinsToThePrimary(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
		"INSERT INTO t (v) VALUES (1),(2),(3),(4),(5)")
	d := openDB(t, p, db)
	noise := openDB(t, p, db)
	ctx := context.Background()

	t.Run("temporary table", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "CREATE TEMPORARY TABLE tmp (x INT)")
		mustExec(t, c, "INSERT INTO tmp VALUES (42)")
		churn(t, noise, 10)
		for i := 0; i < 5; i++ {
			if got := queryString(t, c, "SELECT x FROM tmp"); got != "42" {
				t.Fatalf("temporary table read %d: %q", i, got)
			}
		}
	})

	t.Run("GET_LOCK", func(t *testing.T) {
		c := conn(t, d)
		if got := queryString(t, c, "SELECT GET_LOCK('e2e-lock', 5)"); got != "1" {
			t.Fatalf("GET_LOCK = %s", got)
		}
		churn(t, noise, 10)
		for i := 0; i < 5; i++ {
			if got := queryString(t, c, "SELECT IS_USED_LOCK('e2e-lock') = @@pseudo_thread_id"); got != "1" {
				t.Fatalf("lock is not held by the session's connection (read %d)", i)
			}
		}
		c2 := conn(t, d)
		if got := queryString(t, c2, "SELECT GET_LOCK('e2e-lock', 0)"); got != "0" {
			t.Fatalf("another session took the lock: %s", got)
		}
		if got := queryString(t, c, "SELECT RELEASE_ALL_LOCKS()"); got != "1" {
			t.Fatalf("RELEASE_ALL_LOCKS = %s", got)
		}
		if got := queryString(t, c2, "SELECT GET_LOCK('e2e-lock', 0)"); got != "1" {
			t.Fatalf("lock not free after release: %s", got)
		}
		queryString(t, c2, "SELECT RELEASE_LOCK('e2e-lock')")
	})

	t.Run("LOCK TABLES", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "LOCK TABLES t WRITE")
		churn(t, noise, 5)
		mustExec(t, c, "INSERT INTO t (v) VALUES (100)")
		if got := queryString(t, c, "SELECT COUNT(*) FROM t WHERE v = 100"); got != "1" {
			t.Fatalf("read under LOCK TABLES: %s", got)
		}
		mustExec(t, c, "UNLOCK TABLES")
		mustExec(t, c, "DELETE FROM t WHERE v = 100")
	})

	t.Run("SQL_CALC_FOUND_ROWS", func(t *testing.T) {
		c := conn(t, d)
		syncReplicas(t, shared)
		rows, err := c.QueryContext(ctx, "SELECT SQL_CALC_FOUND_ROWS id FROM t ORDER BY id LIMIT 2")
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
		churn(t, noise, 5)
		if got := queryString(t, c, "SELECT FOUND_ROWS()"); got != "5" {
			t.Fatalf("FOUND_ROWS() = %s, want 5", got)
		}
	})

	t.Run("LAST_INSERT_ID", func(t *testing.T) {
		// A session of its own: one reused from d could still be pinned
		// to its connection by an earlier subtest's temporary table.
		c := conn(t, openDB(t, p, db))
		r := mustExec(t, c, "INSERT INTO t (v) VALUES (7)")
		id, _ := r.LastInsertId()
		churn(t, noise, 10)
		// Other sessions insert meanwhile, on the same pooled connections.
		for i := 0; i < 5; i++ {
			mustExec(t, noise, "INSERT INTO t (v) VALUES (8)")
		}
		for i := 0; i < 3; i++ {
			if got := queryString(t, c, "SELECT LAST_INSERT_ID()"); got != fmt.Sprint(id) {
				t.Fatalf("LAST_INSERT_ID() = %s, want %d", got, id)
			}
		}
		// On a connection that never saw the session's insert, only
		// sluice's SET last_insert_id gives the function its value.
		killPrimaryConnOf(t, c)
		if got := queryString(t, c, "SELECT LAST_INSERT_ID()"); got != fmt.Sprint(id) {
			t.Fatalf("LAST_INSERT_ID() = %s after its connection was killed, want %d", got, id)
		}
		// An offset no other row's v can hold (they are 1…8), so only the
		// session's own LAST_INSERT_ID() can produce it.
		const offset = 1_000_000
		r = mustExec(t, c, fmt.Sprintf("INSERT INTO t (v) VALUES (LAST_INSERT_ID() + %d)", offset))
		row, _ := r.LastInsertId()
		if got := queryString(t, c, fmt.Sprintf("/* sluice:primary */ SELECT v FROM t WHERE id = %d", row)); got != fmt.Sprint(id+offset) {
			t.Fatalf("INSERT … VALUES (LAST_INSERT_ID() + %d) stored %s, want %d", offset, got, id+offset)
		}
	})

	t.Run("user variable assigned in SELECT", func(t *testing.T) {
		c := conn(t, d)
		queryString(t, c, "SELECT @counter := 41")
		churn(t, noise, 5)
		if got := queryString(t, c, "SELECT @counter + 1"); got != "42" {
			t.Fatalf("@counter + 1 = %q", got)
		}
	})

	t.Run("text PREPARE and EXECUTE", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "PREPARE ps FROM 'SELECT COUNT(*) FROM t WHERE id > ?'")
		mustExec(t, c, "SET @lim = 0")
		churn(t, noise, 5)
		if got := queryString(t, c, "EXECUTE ps USING @lim"); got == "" || got == "0" {
			t.Fatalf("EXECUTE ps = %q", got)
		}
		mustExec(t, c, "DEALLOCATE PREPARE ps")
	})
}

func TestDiagnosticsReadTheStatementBefore(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY)")
	d := openDB(t, p, db, "interpolateParams=true")
	noise := openDB(t, p, db)
	c := conn(t, d)
	ctx := context.Background()

	// A read with a warning, on a replica: SHOW WARNINGS must come from the
	// same connection even though other sessions use the pool meanwhile.
	queryString(t, c, "SELECT CAST('12abc' AS UNSIGNED)")
	churn(t, noise, 5)
	if got := queryString(t, c, "SELECT @@warning_count"); got != "1" {
		t.Fatalf("@@warning_count = %s after a statement with one warning", got)
	}
	rows, err := c.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if n != 1 {
		t.Fatalf("SHOW WARNINGS returned %d rows, want 1", n)
	}

	// An error, then SHOW ERRORS, then a write: the write must still reach
	// the primary although the failed read ran on a replica.
	if _, err := c.ExecContext(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("select from a missing table succeeded")
	}
	var level, msg string
	var code int
	if err := c.QueryRowContext(ctx, "SHOW ERRORS").Scan(&level, &code, &msg); err != nil || code != 1146 {
		t.Fatalf("SHOW ERRORS = %d %q, %v; want 1146", code, msg, err)
	}
	mustExec(t, c, "INSERT INTO t VALUES (1)")
	if s := servedBy(t, c, shared, ""); !isReplica(shared, s) {
		t.Fatalf("plain read after the diagnostics served by %s, want a replica again", s)
	}
}

func TestComputedSetKeepsItsValue(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	d := openDB(t, p, db)
	noise := openDB(t, p, db)
	c := conn(t, d)
	r := mustExec(t, c, "INSERT INTO t (v) VALUES (1)")
	id, _ := r.LastInsertId()
	mustExec(t, c, "SET @id = LAST_INSERT_ID()")
	mustExec(t, c, "SET @n = 0")
	for i := 0; i < 3; i++ {
		mustExec(t, c, "SET @n = @n + 1")
	}
	for i := 0; i < 5; i++ {
		mustExec(t, noise, "INSERT INTO t (v) VALUES (2)")
	}
	churn(t, noise, 10)
	if got := queryString(t, c, "SELECT @id"); got != fmt.Sprint(id) {
		t.Fatalf("@id = %s, want %d: a computed SET was replayed on another connection", got, id)
	}
	if got := queryString(t, c, "SELECT @n"); got != "3" {
		t.Fatalf("@n = %s, want 3", got)
	}
}

func TestFailedStatementWithAutocommitOffKeepsTheTransaction(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	d := openDB(t, p, db)
	noise := openDB(t, p, db)
	c := conn(t, d)
	mustExec(t, c, "SET autocommit = 0")
	if _, err := c.ExecContext(context.Background(), "INSERT INTO t VALUES (1)"); err == nil {
		t.Fatal("duplicate key accepted")
	}
	churn(t, noise, 10)
	// The failed INSERT left a transaction open on its connection; the
	// session must still be on it, not on a fresh pooled one.
	if got := queryString(t, c, "SELECT @@in_transaction"); got != "1" {
		t.Fatalf("@@in_transaction = %s after a failed statement with autocommit=0, want 1", got)
	}
	mustExec(t, c, "ROLLBACK")
	mustExec(t, c, "SET autocommit = 1")
}
