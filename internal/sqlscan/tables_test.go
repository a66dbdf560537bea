package sqlscan

import (
	"slices"
	"strings"
	"testing"
)

func objects(sql string) []string {
	var out []string
	Objects([]byte(sql), func(db, table []byte) bool {
		switch {
		case table == nil:
			out = append(out, string(db)+".")
		case db == nil:
			out = append(out, string(table))
		default:
			out = append(out, string(db)+"."+string(table))
		}
		return true
	})
	return out
}

func TestObjects(t *testing.T) {
	tests := []struct {
		sql  string
		want string // comma-separated; "db." is a database alone
	}{
		{"SELECT 1", ""},
		{"SELECT * FROM t", "t"},
		{"select * from shop.orders o join shop.items i on o.id = i.oid", "shop.orders,shop.items"},
		{"SELECT * FROM a, b AS x, `c d` y USE INDEX (i), db.e WHERE a.id = 1", "a,b,c d,db.e"},
		{"SELECT * FROM `s``x`.`t`", "s`x.t"},
		{"SELECT EXTRACT(YEAR FROM d), TRIM(LEADING 'x' FROM s) FROM t", "t"},
		{"SELECT * FROM t WHERE id IN (SELECT id FROM u) AND EXISTS (SELECT 1 FROM v.w)", "t,u,v.w"},
		{"SELECT * FROM (SELECT * FROM t) AS x JOIN y USING (id)", "t,y"},
		{"SELECT * FROM DUAL", ""},
		{"WITH c AS (SELECT * FROM b.bucket_0001) SELECT * FROM c", "b.bucket_0001"},
		{"WITH RECURSIVE c (n) AS (SELECT 1 UNION SELECT n+1 FROM c WHERE n < 3) SELECT * FROM c, d", "d"},
		{"INSERT INTO t (a, b) VALUES (1, 2) ON DUPLICATE KEY UPDATE b = 3", "t"},
		{"INSERT IGNORE db.t SET a = 1", "db.t"},
		{"REPLACE INTO t SELECT * FROM u", "t,u"},
		{"UPDATE t1, db.t2 SET t1.a = t2.b WHERE t1.id = t2.id", "t1,db.t2"},
		{"UPDATE LOW_PRIORITY t SET a = (SELECT max(b) FROM u)", "t,u"},
		{"DELETE FROM t WHERE id = 1", "t"},
		{"DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", "t1,t2"},
		{"DELETE FROM t1 USING t1, t2 WHERE t1.id = t2.id", "t1,t1,t2"},
		{"SELECT * FROM t FOR UPDATE", "t"},
		{"SELECT a INTO @x FROM t", "t"},
		{"CREATE TABLE IF NOT EXISTS db.t (id INT PRIMARY KEY, p INT REFERENCES parent(id))", "db.t,parent"},
		{"CREATE TABLE t LIKE db.u", "t,db.u"},
		{"CREATE TABLE t AS SELECT * FROM u", "t,u"},
		{"ALTER TABLE t ADD COLUMN x INT, ADD INDEX (x)", "t"},
		{"ALTER TABLE t RENAME TO db2.t", "t,db2.t"},
		{"RENAME TABLE a TO b, c TO d.e", "a,b,c,d.e"},
		{"DROP TABLE IF EXISTS a, db.b", "a,db.b"},
		{"TRUNCATE TABLE t", "t"},
		{"TRUNCATE t", "t"},
		{"CREATE INDEX i ON t (a)", "t"},
		{"DROP INDEX i ON db.t", "db.t"},
		{"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", "t"},
		{"CREATE VIEW v AS SELECT * FROM t", "v,t"},
		{"LOCK TABLES t READ, db.u WRITE, v AS x LOW_PRIORITY WRITE", "t,db.u,v"},
		{"LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t", "t"},
		{"DESCRIBE db.t", "db.t"},
		{"EXPLAIN SELECT * FROM t", "t"},
		{"SHOW TABLES", ""},
		{"SHOW FULL TABLES FROM shop LIKE 'o%'", "shop."},
		{"SHOW TABLES IN `shop`", "shop."},
		{"SHOW COLUMNS FROM t FROM shop", "shop.t"},
		{"SHOW INDEX FROM shop.t", "shop.t"},
		{"SHOW TABLE STATUS FROM shop", "shop."},
		{"SHOW CREATE TABLE shop.t", "shop.t"},
		{"SHOW DATABASES", ""},
		{"CREATE DATABASE IF NOT EXISTS shop", "shop."},
		{"DROP SCHEMA shop", "shop."},
		{"SELECT DATABASE()", ""},
		{"CALL shop.refresh(1)", "shop.,shop."},
		{"SELECT shop.price(3), t.a FROM t", "shop.,t"},
		{"TABLE t", "t"},
		{"SELECT * FROM a; SELECT * FROM b", "a,b"},
		{"SELECT 'FROM x' FROM t -- FROM y", "t"},
	}
	for _, tt := range tests {
		got := strings.Join(objects(tt.sql), ",")
		if got != tt.want {
			t.Errorf("Objects(%q) = %q; want %q", tt.sql, got, tt.want)
		}
	}
}

func TestObjectsStops(t *testing.T) {
	n := 0
	Objects([]byte("SELECT * FROM a, b, c"), func(db, table []byte) bool { n++; return false })
	if n != 1 {
		t.Fatalf("called %d times after returning false", n)
	}
}

func TestObjectsDoesNotAllocate(t *testing.T) {
	sql := []byte("SELECT o.id, i.qty FROM shop.orders o JOIN `shop`.`items` i ON o.id = i.oid WHERE o.id IN (SELECT id FROM recent) FOR UPDATE")
	var seen []string
	Objects(sql, func(db, table []byte) bool { seen = append(seen, string(table)); return true })
	if !slices.Equal(seen, []string{"orders", "items", "recent"}) {
		t.Fatalf("objects %v", seen)
	}
	allocs := testing.AllocsPerRun(100, func() {
		Objects(sql, func(db, table []byte) bool { return true })
	})
	if allocs != 0 {
		t.Fatalf("Objects allocates %v times per call", allocs)
	}
}

func BenchmarkObjects(b *testing.B) {
	sql := []byte("SELECT c FROM sbtest1 WHERE id BETWEEN 5 AND 105 ORDER BY c")
	b.ReportAllocs()
	for b.Loop() {
		Objects(sql, func(db, table []byte) bool { return true })
	}
}

func FuzzObjects(f *testing.F) {
	for _, s := range []string{"SELECT * FROM a JOIN b.c", "WITH x AS (SELECT 1 FROM t) UPDATE x SET a=1",
		"SHOW COLUMNS FROM t FROM d", "SELECT * FROM `a``b`.`", "((((SELECT FROM", "CREATE DATABASE `x",
		// Found by the fuzzer: a name with an unterminated quote was reported as neither.
		"SHOW FROM`", "SHOW COLUMNS FROM `t FROM d", "SHOW COLUMNS FROM t FROM `d", "SHOW INDEX FROM `a.`b`"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, sql []byte) {
		Objects(sql, func(db, table []byte) bool {
			if db == nil && table == nil {
				t.Fatalf("Objects(%q) reported neither a database nor a table", sql)
			}
			return true
		})
	})
}
