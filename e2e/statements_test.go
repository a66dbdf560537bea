package e2e

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/session"
)

// Statements sluice must pass through untouched: compound statements from
// clients without multi-statements, LAST_INSERT_ID(expr) and RETURNING,
// statements about the primary's binary log, and the pins of temporary
// tables and text prepared statements ending with them.

// The exact statement of the issue, and the bodies migration tools send:
// IF/WHILE/REPEAT/CASE/FOR blocks, labels, strings and comments with ';'.
var compoundStatements = []string{
	"CREATE TRIGGER trg BEFORE INSERT ON t1 FOR EACH ROW BEGIN SET NEW.n = NEW.id * 2; SET NEW.n = NEW.n + 1; END",
	`CREATE PROCEDURE fill(IN k INT)
	 main: BEGIN
	   DECLARE i INT DEFAULT 0; -- a comment; with a semicolon
	   /* and a block comment; too */
	   IF k < 0 THEN LEAVE main; END IF;
	   WHILE i < k DO
	     INSERT INTO t2 (note) VALUES (CONCAT('row; ', i));
	     SET i = i + 1;
	   END WHILE;
	   REPEAT SET i = i - 1; UNTIL i <= 0 END REPEAT;
	   CASE WHEN k > 2 THEN INSERT INTO t2 (note) VALUES ('many;'); ELSE BEGIN END; END CASE;
	   FOR j IN 1..2 DO INSERT INTO t2 (note) VALUES (REPEAT(';', j)); END FOR;
	 END main`,
	"CREATE FUNCTION sign_of(x INT) RETURNS INT DETERMINISTIC BEGIN IF x > 0 THEN RETURN 1; ELSEIF x < 0 THEN RETURN -1; END IF; RETURN 0; END",
	"CREATE EVENT ev ON SCHEDULE EVERY 1 DAY DISABLE DO BEGIN DELETE FROM t2 WHERE note = 'x;'; DELETE FROM t2 WHERE note = 'y;'; END",
	"BEGIN NOT ATOMIC DECLARE c INT; SELECT COUNT(*) INTO c FROM t2; IF c >= 0 THEN INSERT INTO t2 (note) VALUES ('anonymous; block'); END IF; END",
	"IF (SELECT COUNT(*) FROM t2 WHERE note = 'if; block') = 0 THEN INSERT INTO t2 (note) VALUES ('if; block'); END IF",
}

func TestCompoundStatementsRunWithoutMultiStatements(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	db := newSchema(t, shared,
		"CREATE TABLE t1 (id INT PRIMARY KEY, n INT)",
		"CREATE TABLE t2 (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40))")
	c := conn(t, openDB(t, p, db)) // go-sql-driver: no multiStatements
	for _, q := range compoundStatements {
		mustExec(t, c, q)
	}
	mustExec(t, c, "INSERT INTO t1 (id) VALUES (5)")
	if n := queryString(t, c, "/* sluice:primary */ SELECT n FROM t1 WHERE id = 5"); n != "11" {
		t.Errorf("the trigger set n = %s, want 11 (5*2+1)", n)
	}
	mustExec(t, c, "CALL fill(3)")
	want := ";,;;,anonymous; block,if; block,many;,row; 0,row; 1,row; 2"
	if got := queryString(t, c, "/* sluice:primary */ SELECT GROUP_CONCAT(note ORDER BY note) FROM t2"); got != want {
		t.Errorf("t2 after the blocks and CALL fill(3): %q, want %q", got, want)
	}
	if got := queryString(t, c, "SELECT sign_of(-7)"); got != "-1" {
		t.Errorf("sign_of(-7) = %s", got)
	}
	// Two statements are still two: refused without the capability.
	_, err := c.ExecContext(context.Background(), "CREATE PROCEDURE p2() BEGIN SELECT 1; END; DROP TABLE t1")
	wantCode(t, "a compound statement followed by another", err, 1064)
	if got := queryString(t, c, "/* sluice:primary */ SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = DATABASE() AND routine_name = 'p2'"); got != "0" {
		t.Errorf("the refused text created p2")
	}
	// sluice misreads this one as a single statement (an alias named
	// begin opens a block for its scanner), but sends it with
	// multi-statements off, so the server refuses the second statement.
	_, err = c.ExecContext(context.Background(), "CREATE PROCEDURE p3() BEGIN SELECT id begin FROM t1; END; DROP TABLE t1")
	wantCode(t, "a second statement the scanner missed", err, 1064)
	if got := queryString(t, c, "/* sluice:primary */ SELECT COUNT(*) FROM t1"); got != "1" {
		t.Errorf("t1 after the refused text: %s rows", got)
	}
	mustExec(t, c, "CREATE PROCEDURE p4() BEGIN SELECT 4; END") // the connection still works, with multi-statements back on for the pool
}

func TestCompoundStatementsInMultiStatements(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	db := newSchema(t, shared, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))")

	// go-sql-driver with multiStatements: the split must keep the body whole.
	c := conn(t, openDB(t, p, db, "multiStatements=true"))
	mustExec(t, c, "CREATE PROCEDURE add_two() BEGIN INSERT INTO t (note) VALUES ('a;'); INSERT INTO t (note) VALUES ('b;'); END; CALL add_two(); SET @after = 1")
	if got := queryString(t, c, "SELECT CONCAT(COUNT(*), ' ', @after) FROM t"); got != "2 1" {
		t.Errorf("after the multi-statement: %q, want \"2 1\"", got)
	}

	// The mariadb CLI (multi-statements on) with DELIMITER, as dump files do.
	out := mariadbOK(t, sluiceAddr(p), db, "--comments", "-N", "-e",
		"DELIMITER //\nCREATE PROCEDURE add_one() BEGIN INSERT INTO t (note) VALUES ('c;'); END//\nDELIMITER ;\nCALL add_one(); /* sluice:primary */ SELECT COUNT(*) FROM t;")
	if strings.TrimSpace(out) != "3" {
		t.Errorf("mariadb CLI: %q, want 3", out)
	}
}

// TestLastInsertIDExprAndReturningAreTracked moves the session to another
// backend connection after each statement that set LAST_INSERT_ID()
// without an OK packet: the value must follow it.
func TestLastInsertIDExprAndReturningAreTracked(t *testing.T) {
	// One idle connection at most, so the session that logs in to occupy
	// it does not bring its own.
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\npool: {max_idle: 1}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	d := openDB(t, p, db)
	a := conn(t, d)
	// occupy takes the primary's idle backend connection for another
	// session's transaction, so a's next statement runs on a new one.
	occupy := func() {
		t.Helper()
		o := conn(t, openDB(t, p, db))
		mustExec(t, o, "BEGIN")
	}
	backend := func() string { return queryString(t, a, "/* sluice:primary */ SELECT @@pseudo_thread_id") }
	lastID := func(was string) string {
		t.Helper()
		v := queryString(t, a, "SELECT CONCAT(LAST_INSERT_ID(), ' ', @@pseudo_thread_id)")
		id, conn, _ := strings.Cut(v, " ")
		if conn == was {
			t.Fatalf("the session stayed on backend connection %s", was)
		}
		return id
	}

	mustExec(t, a, "INSERT INTO t (v) VALUES (1)")
	if got := queryString(t, a, "SELECT LAST_INSERT_ID(42)"); got != "42" {
		t.Fatalf("SELECT LAST_INSERT_ID(42) = %s", got)
	}
	was := backend()
	occupy()
	if got := lastID(was); got != "42" {
		t.Errorf("after SELECT LAST_INSERT_ID(42), on another connection: %s", got)
	}

	var returned string
	if err := a.QueryRowContext(context.Background(), "INSERT INTO t (v) VALUES (2) RETURNING id").Scan(&returned); err != nil {
		t.Fatal(err)
	}
	was = backend()
	occupy()
	if got := lastID(was); got != returned {
		t.Errorf("after INSERT … RETURNING id = %s, on another connection: %s", returned, got)
	}

	// The binary protocol: go-sql-driver prepares statements with arguments.
	var v int
	if err := a.QueryRowContext(context.Background(), "SELECT LAST_INSERT_ID(?)", 77).Scan(&v); err != nil || v != 77 {
		t.Fatalf("prepared SELECT LAST_INSERT_ID(77): %d, %v", v, err)
	}
	was = backend()
	occupy()
	if got := lastID(was); got != "77" {
		t.Errorf("after a prepared LAST_INSERT_ID(77), on another connection: %s", got)
	}
}

func TestBinaryLogStatementsGoToThePrimary(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	c := conn(t, openDB(t, p, ""))
	names := []string{"Com_show_binlog_status", "Com_show_binlogs", "Com_show_binlog_events"}
	before := counters(t, shared, names...)
	var file string
	rows, err := c.QueryContext(context.Background(), "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(sql.RawBytes)
	}
	if !rows.Next() {
		t.Fatal("SHOW MASTER STATUS returned no row")
	}
	if err := rows.Scan(vals...); err != nil {
		t.Fatal(err)
	}
	file = string(*vals[0].(*sql.RawBytes))
	rows.Close()
	for _, q := range []string{"SHOW BINARY LOGS", "SHOW BINLOG EVENTS IN '" + file + "' LIMIT 2"} {
		rows, err := c.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		rows.Close()
	}
	d := delta(counters(t, shared, names...), before)
	for _, s := range shared.Servers {
		want := int64(0)
		if s == shared.Primary {
			want = 1
		}
		for _, n := range names {
			if got := d[s.Name][n]; got != want {
				t.Errorf("%s: %s went up by %d, want %d (the statement runs on the primary only)", s.Name, n, got, want)
			}
		}
	}
}

// sessionIn returns the session whose schema is db.
func sessionIn(p *proxy.Proxy, db string) (session.Info, bool) {
	for _, in := range p.Sessions() {
		if in.Schema == db {
			return in, true
		}
	}
	return session.Info{}, false
}

func waitPinned(t *testing.T, p *proxy.Proxy, db, server, what string) {
	t.Helper()
	waitFor(t, 5*time.Second, what, func() bool {
		in, ok := sessionIn(p, db)
		return ok && in.Pinned == server
	})
}

func TestTemporaryTableAndPreparePinsEndWithTheirState(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT)")
	other := newSchema(t, shared)
	c := conn(t, openDB(t, p, db))
	primary := shared.Primary.Name

	mustExec(t, c, "CREATE TEMPORARY TABLE tmp1 (a INT)")
	mustExec(t, c, "CREATE TEMPORARY TABLE `Tmp2` (a INT)")
	waitPinned(t, p, db, primary, "pinned by two temporary tables")
	mustExec(t, c, "DROP TEMPORARY TABLE tmp1")
	mustExec(t, c, "SELECT 1")
	waitPinned(t, p, db, primary, "still pinned: Tmp2 is left")
	// tmp2 is another table on a case-sensitive server (lower_case_table_names=0).
	if _, err := c.ExecContext(context.Background(), "DROP TABLE tmp2"); err == nil {
		t.Fatal("DROP TABLE tmp2 dropped something")
	}
	// In another schema, the unqualified name is another table.
	mustExec(t, c, "USE `"+other+"`")
	mustExec(t, c, "CREATE TABLE Tmp2 (a INT)")
	mustExec(t, c, "DROP TABLE Tmp2")
	mustExec(t, c, "USE `"+db+"`")
	waitPinned(t, p, db, primary, "still pinned: the dropped Tmp2 was another schema's")
	// DROP TABLE without TEMPORARY drops the temporary table first.
	mustExec(t, c, "DROP TABLE `Tmp2`")
	waitPinned(t, p, db, "", "the pin ends with the last temporary table")

	mustExec(t, c, "PREPARE s1 FROM 'SELECT 1'")
	mustExec(t, c, "PREPARE S2 FROM 'SELECT 2'")
	waitPinned(t, p, db, primary, "pinned by two prepared statements")
	mustExec(t, c, "DEALLOCATE PREPARE S1") // names are case-insensitive
	mustExec(t, c, "SELECT 1")
	waitPinned(t, p, db, primary, "still pinned: s2 is left")
	if got := queryString(t, c, "EXECUTE s2"); got != "2" {
		t.Errorf("EXECUTE s2 = %s", got)
	}
	mustExec(t, c, "DROP PREPARE s2")
	waitPinned(t, p, db, "", "the pin ends with the last prepared statement")
	if srv := servedBy(t, c, shared, ""); !isReplica(shared, srv) {
		t.Errorf("a read after the pin ended ran on %s, want a replica", srv)
	}

	// What sluice cannot follow keeps the pin: a rename.
	mustExec(t, c, "CREATE TEMPORARY TABLE tmp3 (a INT)")
	mustExec(t, c, "ALTER TABLE tmp3 RENAME TO tmp4")
	mustExec(t, c, "DROP TABLE tmp4")
	mustExec(t, c, "SELECT 1")
	waitPinned(t, p, db, primary, "a renamed temporary table keeps the pin")
}
