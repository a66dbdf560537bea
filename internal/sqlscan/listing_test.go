package sqlscan

import "testing"

func TestShowListing(t *testing.T) {
	for _, c := range []struct {
		sql  string
		ok   bool
		want Listing
	}{
		{"SHOW DATABASES", true, Listing{}},
		{"show schemas like 'a%';", true, Listing{}},
		{"SHOW DATABASES WHERE `Database` <> 'mysql'", true, Listing{}},
		{"SHOW TABLES", true, Listing{Tables: true}},
		{"SHOW FULL TABLES FROM shard", true, Listing{Tables: true, DB: "shard"}},
		{"show tables in `my db` like 'bucket\\_%'", true, Listing{Tables: true, DB: "my db"}},
		{"/* x */ SHOW TABLES FROM d WHERE Tables_in_d LIKE 'b%'", true, Listing{Tables: true, DB: "d"}},
		{"SHOW TABLE STATUS", false, Listing{}},
		{"SHOW FULL PROCESSLIST", false, Listing{}},
		{"SHOW CREATE DATABASE d", false, Listing{}},
		{"SHOW TABLES FROM a.b", false, Listing{}},
		{"SHOW TABLES FROM", false, Listing{}},
		{"SHOW DATABASES garbage", false, Listing{}},
		{"SELECT 1", false, Listing{}},
	} {
		got, ok := ShowListing([]byte(c.sql))
		if ok != c.ok || got != c.want {
			t.Errorf("ShowListing(%q) = %+v, %v; want %+v, %v", c.sql, got, ok, c.want, c.ok)
		}
	}
}
