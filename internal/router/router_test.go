package router

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/topology"
)

func TestDecide(t *testing.T) {
	now := time.Now()
	pol := &Policy{ReadYourWrites: 2 * time.Second}
	auto := Session{Autocommit: true}
	cases := []struct {
		sql  string
		s    Session
		want Target
	}{
		{"SELECT 1", auto, Replica},
		{"SHOW TABLES", auto, Replica},
		{"SELECT * FROM t FOR UPDATE", auto, Primary},
		{"SELECT * FROM t LOCK IN SHARE MODE", auto, Primary},
		{"SELECT a INTO @x FROM t", auto, Primary},
		{"SELECT GET_LOCK('a', 1)", auto, Primary},
		{"SELECT LAST_INSERT_ID()", auto, Primary},
		{"SELECT NEXTVAL(s)", auto, Primary},
		{"SELECT SQL_CALC_FOUND_ROWS * FROM t", auto, Primary},
		{"SELECT FOUND_ROWS()", auto, Primary},
		{"INSERT INTO t VALUES (1)", auto, Primary},
		{"UPDATE t SET a = 1", auto, Primary},
		{"CALL p()", auto, Primary},
		{"CREATE TABLE x (a INT)", auto, Primary},
		{"FLUSH TABLES", auto, Primary},
		{"", auto, Primary},
		{"START TRANSACTION READ ONLY", auto, Replica},
		{"START TRANSACTION", auto, Primary},
		{"SELECT 1", Session{Autocommit: false}, Primary},
		{"SELECT 1", Session{Autocommit: true, LastWrite: now.Add(-time.Second)}, Primary},
		{"SELECT 1", Session{Autocommit: true, LastWrite: now.Add(-3 * time.Second)}, Replica},
		{"/* sluice:primary */ SELECT 1", auto, Primary},
		{"/* sluice:replica */ SELECT 1", Session{Autocommit: true, LastWrite: now}, Replica},
		{"/* sluice:replica */ UPDATE t SET a = 1", auto, Primary},
		{"SELECT 1; SELECT 2", auto, Primary},
	}
	for _, c := range cases {
		if got := Decide(sqlscan.Scan([]byte(c.sql)), c.s, pol, now); got != c.want {
			t.Errorf("Decide(%q, %+v) = %s, want %s", c.sql, c.s, got, c.want)
		}
	}
}

func server(name string, role topology.Role, up bool, lag time.Duration) topology.Server {
	return topology.Server{Name: name, Role: role, Up: up, IORunning: true, SQLRunning: true,
		Replicating: role == topology.RoleReplica, Lag: lag, LagKnown: true, Weight: 1,
		Readable: up && role == topology.RoleReplica}
}

func TestPickReplica(t *testing.T) {
	noLoad := func(string) int64 { return 0 }
	snap := &topology.Snapshot{Primary: 0, Servers: []topology.Server{
		server("p", topology.RolePrimary, true, 0),
		server("r1", topology.RoleReplica, true, 0),
		server("r2", topology.RoleReplica, true, 0),
	}}
	var b Balancer
	pol := &Policy{}

	t.Run("least connections prefers the idle replica", func(t *testing.T) {
		load := func(n string) int64 {
			if n == "r1" {
				return 10
			}
			return 1
		}
		for i := 0; i < 20; i++ {
			s, err := b.PickReplica(snap, pol, load, "")
			if err != nil || s.Name != "r2" {
				t.Fatalf("picked %v, %v; want r2", s, err)
			}
		}
	})
	t.Run("spreads equal load", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 200; i++ {
			s, _ := b.PickReplica(snap, pol, noLoad, "")
			seen[s.Name]++
		}
		if seen["r1"] < 50 || seen["r2"] < 50 || seen["p"] != 0 {
			t.Fatalf("distribution %v", seen)
		}
	})
	t.Run("round robin alternates", func(t *testing.T) {
		rr := &Policy{Balance: "round-robin"}
		a, _ := b.PickReplica(snap, rr, noLoad, "")
		c, _ := b.PickReplica(snap, rr, noLoad, "")
		if a.Name == c.Name {
			t.Fatalf("round-robin picked %s twice", a.Name)
		}
	})
	t.Run("weighted follows weights", func(t *testing.T) {
		w := *snap
		w.Servers = append([]topology.Server(nil), snap.Servers...)
		w.Servers[1].Weight, w.Servers[2].Weight = 3, 1
		seen := map[string]int{}
		for i := 0; i < 400; i++ {
			s, _ := b.PickReplica(&w, &Policy{Balance: "weighted"}, noLoad, "")
			seen[s.Name]++
		}
		if seen["r1"] != 300 || seen["r2"] != 100 {
			t.Fatalf("weighted distribution %v, want 300/100", seen)
		}
	})
	t.Run("unreadable replicas take no reads", func(t *testing.T) {
		bad := *snap
		bad.Servers = append([]topology.Server(nil), snap.Servers...)
		bad.Servers[1].Readable = false
		bad.Servers[2].Readable = false
		s, err := b.PickReplica(&bad, pol, noLoad, "")
		if err != nil || s.Name != "p" {
			t.Fatalf("picked %v, %v; want fallback to the primary", s, err)
		}
		if _, err := b.PickReplica(&bad, &Policy{FallbackError: true}, noLoad, ""); err != ErrNoReplica {
			t.Fatalf("read_fallback error: got %v", err)
		}
		bad.Servers[0].Admin = topology.AdminDrain
		if _, err := b.PickReplica(&bad, pol, noLoad, ""); err == nil {
			t.Fatalf("a draining primary took a fallback read")
		}
	})
	t.Run("backup only when no normal replica", func(t *testing.T) {
		bk := *snap
		bk.Servers = append([]topology.Server(nil), snap.Servers...)
		bk.Servers[2].Backup = true
		for i := 0; i < 20; i++ {
			if s, _ := b.PickReplica(&bk, pol, noLoad, ""); s.Name != "r1" {
				t.Fatalf("backup %s took a read while r1 is usable", s.Name)
			}
		}
		if s, _ := b.PickReplica(&bk, pol, noLoad, "r1"); s.Name != "r2" {
			t.Fatalf("with r1 skipped, want the backup r2, got %s", s.Name)
		}
	})
	t.Run("skip excludes the failed server", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			if s, _ := b.PickReplica(snap, pol, noLoad, "r1"); s.Name != "r2" {
				t.Fatalf("picked %s, skipped r1", s.Name)
			}
		}
	})
}

func TestPickAmong(t *testing.T) {
	noLoad := func(string) int64 { return 0 }
	backup := server("b", topology.RoleReplica, true, 0)
	backup.Backup = true
	snap := &topology.Snapshot{Primary: 0, Servers: []topology.Server{
		server("p", topology.RolePrimary, true, 0),
		server("r1", topology.RoleReplica, true, 0),
		server("r2", topology.RoleReplica, true, 4*time.Second),
		server("down", topology.RoleReplica, false, 0),
		backup,
	}}
	var b Balancer
	pol := &Policy{Balance: "round-robin"}
	fresh := func(s *topology.Server) bool { return s.Lag < time.Second }
	for range 10 {
		if s := b.PickAmong(snap, pol, noLoad, "", fresh); s == nil || s.Name != "r1" {
			t.Fatalf("picked %v, want r1 (the only normal replica kept)", s)
		}
	}
	if s := b.PickAmong(snap, pol, noLoad, "r1", fresh); s == nil || s.Name != "b" {
		t.Fatalf("without r1 picked %v, want the backup", s)
	}
	if s := b.PickAmong(snap, pol, noLoad, "", func(*topology.Server) bool { return false }); s != nil {
		t.Fatalf("nothing kept, picked %v: PickAmong has no fallback", s.Name)
	}
	seen := map[string]int{}
	for range 10 {
		seen[b.PickAmong(snap, pol, noLoad, "", func(*topology.Server) bool { return true }).Name]++
	}
	if seen["r1"] != 5 || seen["r2"] != 5 {
		t.Fatalf("round robin over r1, r2: %v", seen)
	}
}

func TestParseConsistency(t *testing.T) {
	for in, want := range map[string]Consistency{"eventual": Eventual, "session": SessionCausal, "global": GlobalCausal, "": SessionCausal} {
		if got := ParseConsistency(in); got != want {
			t.Errorf("ParseConsistency(%q) = %v, want %v", in, got, want)
		}
	}
}
