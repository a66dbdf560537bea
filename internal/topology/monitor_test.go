package topology

import (
	"log/slog"
	"testing"
)

func TestPickPrimaryHonoursTheEpoch(t *testing.T) {
	primary := func(name, src string) Server {
		return Server{Name: name, Addr: name + ":3306", Up: true, Role: RolePrimary}
	}
	replicaOf := func(name, src string) Server {
		return Server{Name: name, Addr: name + ":3306", Up: true, Role: RoleReplica, Replicating: true, SourceAddr: src + ":3306"}
	}
	for _, c := range []struct {
		name       string
		servers    []Server
		designated string
		want       int
	}{
		{"discovered", []Server{primary("db1", ""), replicaOf("db2", "db1")}, "", 0},
		{"split brain without an epoch: the one replicas follow", []Server{primary("db1", ""), primary("db2", ""), replicaOf("db3", "db2")}, "", 1},
		{"split brain with an epoch: only the designated", []Server{primary("db1", ""), primary("db2", ""), replicaOf("db3", "db2")}, "db1", 0},
		{"designated not writable: none", []Server{replicaOf("db1", "db2"), primary("db2", "")}, "db1", -1},
		{"designated down: none", []Server{{Name: "db1", Role: RolePrimary}, primary("db2", "")}, "db1", -1},
		{"fenced never", []Server{{Name: "db1", Up: true, Role: RolePrimary, Fenced: true}, replicaOf("db2", "db1")}, "", -1},
	} {
		if got := pickPrimary(c.servers, c.designated); got != c.want {
			t.Errorf("%s: pickPrimary = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestControlIsAppliedToSnapshots(t *testing.T) {
	m := NewMonitor(Config{Servers: []ServerConfig{{Name: "db1", Addr: "db1:3306"}, {Name: "db2", Addr: "db2:3306"}}}, slog.New(slog.DiscardHandler))
	m.publish([]Server{
		{Name: "db1", Addr: "db1:3306", Up: true, Role: RolePrimary},
		{Name: "db2", Addr: "db2:3306", Up: true, Role: RoleReplica, Replicating: true, IORunning: true, SQLRunning: true, SourceAddr: "db1:3306"},
	})
	if pr, ok := m.Snapshot().PrimaryServer(); !ok || pr.Name != "db1" {
		t.Fatalf("primary before any control: %v", pr)
	}
	// A failover promoted db2 and fenced db1: db2 is the primary at once,
	// before a check round has seen it writable.
	m.SetControl(Control{Epoch: 2, Designated: "db2", Fenced: []string{"db1"}, Promoted: "db2"})
	snap := m.Snapshot()
	pr, ok := snap.PrimaryServer()
	if !ok || pr.Name != "db2" || pr.Readable || snap.Epoch != 2 {
		t.Fatalf("after the promotion: primary %v ok %v epoch %d", pr, ok, snap.Epoch)
	}
	if db1, _ := snap.ByName("db1"); !db1.Fenced {
		t.Error("db1 is not marked fenced")
	}
	h := &Hold{Reason: "switchover"}
	m.SetControl(Control{Epoch: 2, Designated: "db2", Hold: h, Alert: "x"})
	if snap := m.Snapshot(); snap.Hold != h || snap.Alert != "x" {
		t.Errorf("hold/alert not published: %+v", snap)
	}
}
