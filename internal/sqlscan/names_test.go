package sqlscan

import (
	"fmt"
	"testing"
)

func TestCreateTempTarget(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want TableName
		ok   bool
	}{
		{"CREATE TEMPORARY TABLE t (a INT)", TableName{Name: "t"}, true},
		{"create temporary table IF NOT EXISTS `My T` like x", TableName{Name: "My T"}, true},
		{"CREATE OR REPLACE TEMPORARY TABLE db.T AS SELECT 1", TableName{DB: "db", Name: "T"}, true},
		{"CREATE TEMPORARY SEQUENCE `d`.`s`", TableName{DB: "d", Name: "s"}, true},
		{"/* c */ CREATE TEMPORARY TABLE t;", TableName{Name: "t"}, true},
		{"CREATE TABLE t (a INT)", TableName{}, false},
		{"CREATE TEMPORARY TABLE IF EXISTS t", TableName{}, false},
		{"CREATE TEMPORARY TABLE ``", TableName{}, false},
		{"CREATE TEMPORARY TABLE", TableName{}, false},
	} {
		got, ok := CreateTempTarget([]byte(c.sql))
		if got != c.want || ok != c.ok {
			t.Errorf("CreateTempTarget(%q) = %v, %v; want %v, %v", c.sql, got, ok, c.want, c.ok)
		}
	}
}

func TestDropTableTargets(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want string
		ok   bool
	}{
		{"DROP TABLE t", "[{ t}]", true},
		{"drop temporary table if exists a, `b`, db.c RESTRICT;", "[{ a} { b} {db c}]", true},
		{"DROP TABLES a WAIT 5", "[{ a}]", true},
		{"DROP TEMPORARY SEQUENCE s NOWAIT", "[{ s}]", true},
		{"DROP TABLE a,", "[]", false},
		{"DROP TABLE a b", "[]", false},
		{"DROP TABLE a; DROP TABLE b", "[]", false},
		{"DROP VIEW v", "[]", false},
		{"DROP PREPARE p", "[]", false},
	} {
		got, ok := DropTableTargets([]byte(c.sql))
		if s := fmt.Sprint(got); s != c.want || ok != c.ok {
			t.Errorf("DropTableTargets(%q) = %s, %v; want %s, %v", c.sql, s, ok, c.want, c.ok)
		}
	}
}

func TestPreparedName(t *testing.T) {
	for _, c := range []struct {
		sql, want string
		ok        bool
	}{
		{"PREPARE Stmt1 FROM 'SELECT 1'", "stmt1", true},
		{"prepare `My S` from @q", "my s", true},
		{"DEALLOCATE PREPARE STMT1", "stmt1", true},
		{"DROP PREPARE s", "s", true},
		{"DROP TABLE s", "", false},
		{"EXECUTE s", "", false},
		{"PREPARE", "", false},
	} {
		got, ok := PreparedName([]byte(c.sql))
		if got != c.want || ok != c.ok {
			t.Errorf("PreparedName(%q) = %q, %v; want %q, %v", c.sql, got, ok, c.want, c.ok)
		}
	}
}

func TestRenamesTable(t *testing.T) {
	for sql, want := range map[string]bool{
		"RENAME TABLE a TO b":                true,
		"ALTER TABLE a RENAME TO b":          true,
		"alter table a rename column x to y": true,
		"ALTER TABLE a ADD x INT":            false,
		"DROP TABLE a":                       false,
	} {
		if got := RenamesTable([]byte(sql)); got != want {
			t.Errorf("RenamesTable(%q) = %v", sql, got)
		}
	}
}
