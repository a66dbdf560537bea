package sqlscan

import (
	"hash/fnv"
	"strings"
	"testing"
)

var digestCases = []struct {
	sql, want string
}{
	// Spacing and case.
	{"SELECT a,b FROM t WHERE id=1", "SELECT a, b FROM t WHERE id = ?"},
	{"select a, b from t where id = 2", "SELECT a, b FROM t WHERE id = ?"},
	{"  select\n\ta ,b\r\nfrom t  where id=3 ; ", "SELECT a, b FROM t WHERE id = ?"},
	{"SELECT c FROM sbtest1 WHERE id=?", "SELECT c FROM sbtest1 WHERE id = ?"},
	{"SELECT MyCol FROM MyTable", "SELECT MyCol FROM MyTable"},
	{"select count(*) from t", "SELECT COUNT(*) FROM t"},
	{"SELECT COUNT ( * ) FROM t", "SELECT COUNT(*) FROM t"},
	{"SELECT f(a, b) FROM t", "SELECT f(a, b) FROM t"},
	{"SELECT * FROM ( SELECT 1 ) x", "SELECT * FROM (SELECT ?) x"},
	{"SELECT t.a, t . b, db.t.c FROM db.t", "SELECT t.a, t.b, db.t.c FROM db.t"},
	{"SELECT t.select, t.FROM FROM t", "SELECT t.select, t.FROM FROM t"},
	{"SELECT a FROM t WHERE a>=1 AND b<>2 OR c<=>3 AND d!=4", "SELECT a FROM t WHERE a >= ? AND b <> ? OR c <=> ? AND d != ?"},
	{"SELECT a->'$.x', a->>'$.y' FROM t", "SELECT a -> ?, a ->> ? FROM t"},
	{"SELECT id, status FROM orders", "SELECT id, status FROM orders"},

	// Comments.
	{"SELECT /* c */ 1", "SELECT ?"},
	{"/* leading */ SELECT 1 -- trailing", "SELECT ?"},
	{"SELECT 1 # trailing\n, 2", "SELECT ?, ?"},
	{"SELECT/*c*/a/*c*/FROM/*c*/t", "SELECT a FROM t"},
	{"/* sluice:primary */ SELECT 1", "SELECT ?"},
	{"SELECT 1--1", "SELECT ? - ?"},
	{"SELECT 1 /* unterminated", "SELECT ?"},

	// Executable comments.
	{"/*!40101 SET NAMES utf8 */;", "SET NAMES utf8"},
	{"SELECT /*! STRAIGHT_JOIN */ a FROM t", "SELECT STRAIGHT_JOIN a FROM t"},
	{"SELECT /*!40001 SQL_NO_CACHE */ * FROM t", "SELECT SQL_NO_CACHE * FROM t"},
	{"/*M!100100 SET @x = 1 */", "SET @x = ?"},
	{"CREATE TABLE t (a INT) /*!50100 PARTITION BY HASH (a) */", "CREATE TABLE t(a INT) PARTITION BY HASH(a)"},
	{"/*!40101 SET x=1", "SET x = ?"},

	// Literals.
	{"SELECT 1, 1.5, .5, 1e10, 1.5E-3, 3.", "SELECT ?, ?, ?, ?, ?, ?"},
	{"SELECT 0x1F, X'1f', x'', 0b101, B'01', b'1'", "SELECT ?, ?, ?, ?, ?, ?"},
	{"SELECT 'a', \"b\", N'c', _utf8mb4'd', _binary\"e\"", "SELECT ?, ?, ?, ?, ?"},
	{"SELECT 'it\\'s', 'it''s', \"say \\\"hi\\\"\"", "SELECT ?, ?, ?"},
	{"SELECT 'unterminated", "SELECT ?"},
	{"SELECT \"unterminated\\", "SELECT ?"},
	{"SELECT 0X1F, 1abc, 12e, 0xZZ FROM t", "SELECT 0X1F, 1abc, 12e, 0xZZ FROM t"},
	{"SELECT NULL, TRUE, false, null", "SELECT NULL, TRUE, FALSE, NULL"},
	{"SELECT a FROM t WHERE b IS NOT NULL", "SELECT a FROM t WHERE b IS NOT NULL"},
	{"SELECT * FROM t LIMIT 10, 20", "SELECT * FROM t LIMIT ?, ?"},
	{"SELECT * FROM t LIMIT 10 OFFSET 5", "SELECT * FROM t LIMIT ? OFFSET ?"},
	{"SELECT DATE_ADD(NOW(), INTERVAL 1 DAY)", "SELECT DATE_ADD(NOW(), INTERVAL ? DAY)"},

	// Unary minus.
	{"SELECT -1", "SELECT ?"},
	{"SELECT * FROM t WHERE a = -1", "SELECT * FROM t WHERE a = ?"},
	{"SELECT * FROM t WHERE a=-1.5e3", "SELECT * FROM t WHERE a = ?"},
	{"SELECT f(-1, +2, - - 3)", "SELECT f(?, ?, ?)"},
	{"SELECT a - 1, a-1, a -1", "SELECT a - ?, a - ?, a - ?"},
	{"SELECT (a) - 1, 2 - 1, @v - 1", "SELECT (a) - ?, ? - ?, @v - ?"},
	{"SELECT -a, - -a FROM t", "SELECT - a, - - a FROM t"},
	{"SELECT NULL - 1", "SELECT NULL - ?"},
	{"SELECT CURRENT_TIMESTAMP - 1", "SELECT CURRENT_TIMESTAMP - ?"},

	// IN lists.
	{"SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (...)"},
	{"SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id IN (...)"},
	{"SELECT * FROM t WHERE id in(1,2)", "SELECT * FROM t WHERE id IN (...)"},
	{"SELECT * FROM t WHERE id IN (?, ?)", "SELECT * FROM t WHERE id IN (...)"},
	{"SELECT * FROM t WHERE id IN ('a', -1, 0x1)", "SELECT * FROM t WHERE id IN (...)"},
	{"SELECT * FROM t WHERE id NOT IN (1,2)", "SELECT * FROM t WHERE id NOT IN (...)"},
	{"SELECT * FROM t WHERE id IN (a, b)", "SELECT * FROM t WHERE id IN (a, b)"},
	{"SELECT * FROM t WHERE id IN (1, a)", "SELECT * FROM t WHERE id IN (?, a)"},
	{"SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = 1)", "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = ?)"},
	{"SELECT * FROM t WHERE id IN ()", "SELECT * FROM t WHERE id IN ()"},
	{"SELECT * FROM t WHERE id IN (1,", "SELECT * FROM t WHERE id IN (?,"},
	{"SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))", "SELECT * FROM t WHERE (a, b) IN ((?, ?), (?, ?))"},

	// VALUES rows.
	{"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (...)"},
	{"INSERT INTO t (a,b) VALUES (1,'x'),(2,'y')", "INSERT INTO t(a, b) VALUES (...)"},
	{"insert into t(a,b) values(1,'x'), (2, 'y'), (3, 'z')", "INSERT INTO t(a, b) VALUES (...)"},
	{"INSERT INTO t VALUE (1, NOW())", "INSERT INTO t VALUE (...)"},
	{"INSERT INTO t VALUES (1, (SELECT 2)), (3, ')')", "INSERT INTO t VALUES (...)"},
	{"INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a=VALUES(a), b = VALUES (b) + 1",
		"INSERT INTO t VALUES (...) ON DUPLICATE KEY UPDATE a = VALUES(a), b = VALUES(b) + ?"},
	{"REPLACE INTO t VALUES (1), (2)", "REPLACE INTO t VALUES (...)"},
	{"VALUES ROW(1, 2), ROW(3, 4)", "VALUES ROW(...)"},
	{"INSERT INTO t VALUES (1", "INSERT INTO t VALUES (...)"},
	{"INSERT INTO t VALUES (1; SELECT 1", "INSERT INTO t VALUES (...); SELECT ?"},

	// Names and variables.
	{"SELECT `my col` FROM `my table`", "SELECT `my col` FROM `my table`"},
	{"SELECT `a``b`, `select` FROM t", "SELECT `a``b`, `select` FROM t"},
	{"SELECT `unterminated", "SELECT `unterminated"},
	{"SELECT @a, @`b c`, @'d', @@session.sql_mode, @@GLOBAL.x", "SELECT @a, @`b c`, @'d', @@session.sql_mode, @@GLOBAL.x"},
	{"SET @x:=1", "SET @x := ?"},
	{"SELECT @a .b", "SELECT @a . b"},
	{". 0A", ". 0A"}, // found by FuzzDigest: printed as .0A, which is the number .0 and A
	{"GRANT SELECT ON db.* TO 'u'@'%'", "GRANT SELECT ON db.* TO ? @ ?"},
	{"SELECT t.1a, t.5 FROM t", "SELECT t.1a, t.5 FROM t"},
	{"SELECT t..5, t. .5", "SELECT t.?, t.?"},

	// Several statements.
	{"SELECT 1; SELECT 2", "SELECT ?; SELECT ?"},
	{"SELECT 1;;SELECT 2;;", "SELECT ?; SELECT ?"},
	{";; SELECT 1", "SELECT ?"},
	{"SELECT ';'; -- c", "SELECT ?"},
	{"BEGIN; UPDATE t SET a=1; COMMIT;", "BEGIN; UPDATE t SET a = ?; COMMIT"},
	{"0;)", "?; )"}, // found by FuzzScan: a statement must digest the same alone

	// Nothing to say.
	{"", ""},
	{"   ", ""},
	{"/* just a comment */", ""},
	{";", ""},
}

func TestDigest(t *testing.T) {
	for _, c := range digestCases {
		if got := string(Digest(nil, []byte(c.sql))); got != c.want {
			t.Errorf("Digest(%q)\n got %q\nwant %q", c.sql, got, c.want)
		}
	}
}

func TestDigestAppends(t *testing.T) {
	got := string(Digest([]byte("prefix:"), []byte("select 1")))
	if got != "prefix:SELECT ?" {
		t.Errorf("Digest did not append: %q", got)
	}
}

func allInputs() []string {
	var in []string
	for _, c := range digestCases {
		in = append(in, c.sql, c.want)
	}
	for _, c := range scanCases {
		in = append(in, c.sql)
	}
	return in
}

func TestDigestHashMatchesDigest(t *testing.T) {
	for _, q := range allInputs() {
		checkDigestHash(t, []byte(q))
	}
}

func checkDigestHash(t *testing.T, sql []byte) {
	t.Helper()
	h := fnv.New64a()
	h.Write(Digest(nil, sql))
	if got, want := DigestHash(sql), h.Sum64(); got != want {
		t.Errorf("DigestHash(%q) = %x, want fnv64a(Digest) = %x", sql, got, want)
	}
}

func TestScanDigestMatchesScanAndDigest(t *testing.T) {
	for _, q := range allInputs() {
		checkScanDigest(t, []byte(q))
	}
}

// checkScanDigest checks that the one-pass ScanDigest tells what Scan and
// Digest tell on their own, without allocating.
func checkScanDigest(t *testing.T, sql []byte) {
	t.Helper()
	h := fnv.New64a()
	h.Write(Digest(nil, sql))
	st, got := ScanDigest(sql)
	if want := Scan(sql); st != want {
		t.Errorf("ScanDigest(%q) classified %v [%v], Scan %v [%v]", sql, st.Kind, st.Flags, want.Kind, want.Flags)
	}
	if want := h.Sum64(); got != want {
		t.Errorf("ScanDigest(%q) hash %x, want fnv64a(Digest) = %x", sql, got, want)
	}
	if n := testing.AllocsPerRun(1, func() { ScanDigest(sql) }); n != 0 {
		t.Errorf("ScanDigest(%q): %v allocations", sql, n)
	}
}

func TestDigestIdempotent(t *testing.T) {
	for _, q := range allInputs() {
		checkIdempotent(t, []byte(q))
	}
}

func checkIdempotent(t *testing.T, sql []byte) {
	t.Helper()
	once := Digest(nil, sql)
	if twice := Digest(nil, once); string(twice) != string(once) {
		t.Errorf("Digest is not idempotent on %q:\n once %q\ntwice %q", sql, once, twice)
	}
}

func TestDigestDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, q := range allInputs() {
		sql := []byte(q)
		if n := testing.AllocsPerRun(10, func() { buf = Digest(buf[:0], sql) }); n != 0 {
			t.Errorf("Digest(%q): %v allocations", q, n)
		}
		if n := testing.AllocsPerRun(10, func() { DigestHash(sql) }); n != 0 {
			t.Errorf("DigestHash(%q): %v allocations", q, n)
		}
	}
}

// TestDigestLongRuns guards against lookahead that rescans: each of these
// would take minutes if a token were looked through once per token before
// it.
func TestDigestLongRuns(t *testing.T) {
	for _, q := range []string{
		"SELECT " + strings.Repeat("- ", 200000) + "a",
		"SELECT " + strings.Repeat("-", 200000) + "1",
		"SELECT * FROM t WHERE a IN (" + strings.Repeat("1, ", 200000) + "b)",
		"SELECT " + strings.Repeat("a IN (", 100000),
		"INSERT INTO t VALUES " + strings.Repeat("(1, 'x'), ", 100000) + "(2, 'y')",
		strings.Repeat("(", 200000) + "SELECT 1",
		strings.Repeat("EXPLAIN ANALYZE ", 100000) + "SELECT 1",
		"WITH " + strings.Repeat("a AS (SELECT 1), ", 100000) + "b AS (SELECT 2) SELECT 1",
	} {
		sql := []byte(q)
		Digest(nil, sql)
		Scan(sql)
	}
}
