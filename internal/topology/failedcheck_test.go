package topology

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// A check that fails (a timeout on a loaded machine) counts toward fall,
// as in HAProxy, and says nothing about replication: until the server is
// declared down, it keeps the replication state and lag it last showed,
// and stays readable. Read as "threads stopped", one slow check excluded
// every replica at once and a primary loss then failed every read.
func TestFailedCheckKeepsAReplicaReadableUntilFall(t *testing.T) {
	cfg := &Config{Interval: 200 * time.Millisecond, Timeout: time.Second, Rise: 3, Fall: 2, MaxLag: 5 * time.Second}
	m := NewMonitor(*cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sc := ServerConfig{Name: "db2", Addr: "127.0.0.1:1"}
	p := &probe{}
	readable := func(s Server) bool {
		return s.Up && s.Role == RoleReplica && (s.IORunning || s.SourceLost) && s.SQLRunning && !s.LagExcluded
	}
	good := func() Server {
		return Server{Name: "db2", Addr: sc.Addr, LastCheck: time.Now(), Role: RoleReplica, Replicating: true, ReadOnly: true,
			IORunning: true, SQLRunning: true, Lag: time.Second, LagKnown: true}
	}
	s := good()
	m.record(cfg, sc, p, &s, nil)
	if !readable(s) {
		t.Fatalf("a good first check: %+v, want readable", s)
	}
	timeout := errors.New("check 127.0.0.1:1: i/o timeout")
	s = Server{Name: "db2", Addr: sc.Addr, LastCheck: time.Now()}
	m.record(cfg, sc, p, &s, timeout)
	if !readable(s) || s.Lag != time.Second || !s.LagKnown {
		t.Fatalf("after 1 failed check of fall 2: %+v, want readable at its last lag", s)
	}
	// The next good check finds it as it was: no rise needed to come back.
	s = good()
	m.record(cfg, sc, p, &s, nil)
	if !readable(s) {
		t.Fatalf("a good check after one failure: %+v, want readable", s)
	}
	// Fall failures in a row take it down.
	for range cfg.Fall {
		s = Server{Name: "db2", Addr: sc.Addr, LastCheck: time.Now()}
		m.record(cfg, sc, p, &s, timeout)
	}
	if s.Up || readable(s) {
		t.Fatalf("after fall failed checks: %+v, want down", s)
	}
	// A check that answers and shows stopped threads excludes at once.
	p = &probe{}
	s = good()
	m.record(cfg, sc, p, &s, nil)
	s = good()
	s.SQLRunning = false
	m.record(cfg, sc, p, &s, nil)
	if readable(s) || !s.LagExcluded {
		t.Fatalf("a check showing the SQL thread stopped: %+v, want excluded", s)
	}
}
