package sqlscan

import "testing"

func TestUseTarget(t *testing.T) {
	for _, c := range []struct {
		sql string
		db  string
		ok  bool
	}{
		{"USE db", "db", true},
		{"use DB1", "DB1", true},
		{"use `my db`", "my db", true},
		{"USE /*c*/ db;", "db", true},
		{"USE db ; ;", "db", true},
		{"  USE\n`a``b`  -- c", "a`b", true},
		{"/* sluice:primary */ USE db", "db", true},
		{"USE `unterminated", "", false},
		{"USE", "", false},
		{"USE ;", "", false},
		{"USE 'db'", "", false},
		{"USE db extra", "", false},
		{"USE db; SELECT 1", "", false},
		{"SELECT 1", "", false},
		{"USER db", "", false},
		{"", "", false},
	} {
		db, ok := UseTarget([]byte(c.sql))
		if db != c.db || ok != c.ok {
			t.Errorf("UseTarget(%q) = %q, %v; want %q, %v", c.sql, db, ok, c.db, c.ok)
		}
	}
}

func TestSetTarget(t *testing.T) {
	for _, c := range []struct {
		sql    string
		key    string
		single bool
	}{
		{"SET autocommit=0", "autocommit", true},
		{"set AUTOCOMMIT = 1;", "autocommit", true},
		{"SET @@session.sql_mode='x'", "sql_mode", true},
		{"SET @@SESSION.SQL_MODE = 'a,b'", "sql_mode", true},
		{"SET @@local.x = 1", "x", true},
		{"SET @@wait_timeout=1", "wait_timeout", true},
		{"SET SESSION wait_timeout=1", "wait_timeout", true},
		{"SET LOCAL x=1", "x", true},
		{"SET `sql_mode` = ''", "sql_mode", true},
		{"SET @a := 1", "@a", true},
		{"SET @A = 1", "@a", true},
		{"SET @`a b`=1", "@a b", true},
		{"SET @'x' = 2", "@x", true},
		{"SET @\"x\" = 2", "@x", true},
		{"SET @a = (SELECT MAX(id) FROM t WHERE a IN (1, 2))", "@a", true},
		{"SET @a = IF(1, 2, 3)", "@a", true},
		{"SET NAMES utf8mb4", "names", true},
		{"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", "names", true},
		{"SET CHARACTER SET latin1", "names", true},
		{"SET CHARSET x", "names", true},
		{"/*!40101 SET NAMES utf8 */", "names", true},
		{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "transaction_isolation", true},
		{"SET LOCAL TRANSACTION ISOLATION LEVEL SERIALIZABLE", "transaction_isolation", true},
		{"SET SESSION TRANSACTION READ ONLY", "transaction_read_only", true},
		{"SET SESSION TRANSACTION READ WRITE", "transaction_read_only", true},
		{"SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED, READ ONLY", "", false},
		{"SET tx_isolation = 'READ-COMMITTED'", "transaction_isolation", true},
		{"SET @@session.tx_read_only = 1", "transaction_read_only", true},
		{"SET transaction_isolation = 'READ-COMMITTED'", "transaction_isolation", true},
		{"SET ROLE r1", "role", true},
		{"SET ROLE r1, r2", "role", true},
		{"SET a=1, b=2", "", false},
		{"SET @a=1, @b=2", "", false},
		{"SET NAMES utf8, autocommit=0", "", false},
		{"SET GLOBAL x=1", "", false},
		{"SET @@global.x=1", "", false},
		{"SET PERSIST x=1", "", false},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "", false},
		{"SET GLOBAL TRANSACTION READ ONLY", "", false},
		{"SET PASSWORD = 'x'", "", false},
		{"SET DEFAULT ROLE r TO u", "", false},
		{"SET STATEMENT x=1 FOR SELECT 1", "", false},
		{"SET autocommit", "", false},
		{"SET", "", false},
		{"SET @`unterminated = 1", "", false},
		{"SET a=1; SET b=2", "", false},
		{"SELECT 1", "", false},
		{"", "", false},
	} {
		key, single := SetTarget([]byte(c.sql))
		if key != c.key || single != c.single {
			t.Errorf("SetTarget(%q) = %q, %v; want %q, %v", c.sql, key, single, c.key, c.single)
		}
	}
}

func TestKillTarget(t *testing.T) {
	for _, c := range []struct {
		sql       string
		id        uint64
		queryOnly bool
		ok        bool
	}{
		{"KILL 5", 5, false, true},
		{"kill 5;", 5, false, true},
		{"KILL QUERY 5", 5, true, true},
		{"KILL CONNECTION 5", 5, false, true},
		{"KILL HARD QUERY 5", 5, true, true},
		{"KILL SOFT 5", 5, false, true},
		{"KILL SOFT CONNECTION 7", 7, false, true},
		{"KILL /* c */ 18446744073709551615", 18446744073709551615, false, true},
		{"KILL 18446744073709551616", 0, false, false},
		{"KILL QUERY ID 5", 0, false, false},
		{"KILL USER bob", 0, false, false},
		{"KILL CONNECTION_ID()", 0, false, false},
		{"KILL 5.0", 0, false, false},
		{"KILL 1e3", 0, false, false},
		{"KILL ?", 0, false, false},
		{"KILL 5 6", 0, false, false},
		{"KILL 5; SELECT 1", 0, false, false},
		{"KILL", 0, false, false},
		{"SELECT 5", 0, false, false},
	} {
		id, q, ok := KillTarget([]byte(c.sql))
		if id != c.id || q != c.queryOnly || ok != c.ok {
			t.Errorf("KillTarget(%q) = %d, %v, %v; want %d, %v, %v", c.sql, id, q, ok, c.id, c.queryOnly, c.ok)
		}
	}
}
