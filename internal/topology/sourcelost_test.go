package topology

import (
	"log/slog"
	"testing"
)

// A replica whose IO thread reconnects stays readable only while its
// source fails sluice's checks too; one stopped by an operator, or whose
// source is well, leaves rotation.
func TestReplicaThatLostAFailingSourceStaysReadable(t *testing.T) {
	cases := []struct {
		name         string
		reconnecting bool
		io           bool
		sourceErr    string
		sourceUp     bool
		want         bool
	}{
		{"replicating", false, true, "", true, true},
		{"lost a failing source", true, false, "connection refused", true, true},
		{"lost a source that is down", true, false, "", false, true},
		{"lost a source that is well", true, false, "", true, false},
		{"stopped by an operator", false, false, "connection refused", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := NewMonitor(Config{Servers: []ServerConfig{{Name: "db1", Addr: "db1:3306"}, {Name: "db2", Addr: "db2:3306"}}}, slog.New(slog.DiscardHandler))
			m.publish([]Server{
				{Name: "db1", Addr: "db1:3306", Up: c.sourceUp, Role: RolePrimary, LastError: c.sourceErr},
				{Name: "db2", Addr: "db2:3306", Up: true, Role: RoleReplica, Replicating: true, SourceAddr: "db1:3306",
					IORunning: c.io, IOReconnecting: c.reconnecting, SQLRunning: true, LagKnown: true},
			})
			r, _ := m.Snapshot().ByName("db2")
			if r.Readable != c.want {
				t.Errorf("Readable = %v, want %v (%+v)", r.Readable, c.want, *r)
			}
			if want := map[bool]string{true: "up", false: "stopped"}[c.want]; r.State() != want {
				t.Errorf("State() = %q, want %q", r.State(), want)
			}
		})
	}
}

// Exactly one server has the role primary: the epoch's, even while down;
// a dead or fenced old primary never keeps it.
func TestRoleNameShowsOnePrimary(t *testing.T) {
	snap := &Snapshot{Primary: -1, Designated: "db2", Servers: []Server{
		{Name: "db1", Up: false, Role: RolePrimary, Fenced: true},
		{Name: "db2", Up: false, Role: RolePrimary},
		{Name: "db3", Up: true, Role: RoleReplica},
		{Name: "db4", Up: true, Role: RolePrimary},
		{Name: "db5", Up: false, Role: RoleReplica},
		{Name: "db6", Up: true, Role: RoleUnknown},
	}}
	want := []string{"fenced", "primary", "replica", "writable-ignored", "down", "unknown"}
	for i, w := range want {
		if got := snap.RoleName(i); got != w {
			t.Errorf("%s: role %q, want %q", snap.Servers[i].Name, got, w)
		}
	}
	// Without an epoch, the discovered primary.
	snap = &Snapshot{Primary: 1, Servers: []Server{{Name: "db1", Up: true, Role: RoleReplica}, {Name: "db2", Up: true, Role: RolePrimary}}}
	if snap.RoleName(0) != "replica" || snap.RoleName(1) != "primary" {
		t.Errorf("discovered: %q %q", snap.RoleName(0), snap.RoleName(1))
	}
}
