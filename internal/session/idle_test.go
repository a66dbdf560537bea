package session

import (
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// What a session waiting for its client's next command obeys:
// timeouts.client_idle ends a client that sends nothing, client_read a
// client that stalls mid-packet, and warnings_pin gives back a connection
// kept only for SHOW WARNINGS while the session keeps waiting.

func idleSession(t *testing.T, lim Limits) (*Session, net.Conn, *backend.Pool) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	pool := backend.NewPool("db1", "127.0.0.1:1", backend.Settings{MaxIdle: 10})
	return New(1, a, &testEnv{pool: pool, lim: lim}), b, pool
}

// wait runs awaitCommand and returns its outcome, or fails the test if it
// has not returned within limit.
func wait(t *testing.T, s *Session, lim Limits, limit time.Duration) (error, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.awaitCommand(lim) }()
	select {
	case err := <-done:
		return err, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("awaitCommand did not return within %v", limit)
		return nil, 0
	}
}

func TestClientIdleEndsASilentClient(t *testing.T) {
	lim := Limits{ClientIdle: 150 * time.Millisecond, ClientRead: time.Hour}
	s, _, _ := idleSession(t, lim)
	err, took := wait(t, s, lim, 10*time.Second)
	if !wire.IsTimeout(err) {
		t.Fatalf("a client that sends nothing: %v, want a timeout", err)
	}
	if took < lim.ClientIdle {
		t.Fatalf("ended after %v, before client_idle (%v)", took, lim.ClientIdle)
	}
}

func TestClientReadEndsAClientThatStallsMidPacket(t *testing.T) {
	lim := Limits{ClientIdle: time.Hour, ClientRead: 150 * time.Millisecond}
	s, client, _ := idleSession(t, lim)
	// A header announcing 10 bytes, then 3 of them, then nothing.
	go client.Write([]byte{10, 0, 0, 0, wire.ComQuery, 'S', 'E'})
	err, _ := wait(t, s, lim, 10*time.Second)
	if err != nil {
		t.Fatalf("the command started arriving: %v", err)
	}
	start := time.Now()
	read := make(chan error, 1)
	go func() { _, err := s.c.ReadPacket(0); read <- err }()
	select {
	case err := <-read:
		if !wire.IsTimeout(err) {
			t.Fatalf("rest of the packet: %v, want a timeout", err)
		}
		if took := time.Since(start); took < lim.ClientRead/2 {
			t.Fatalf("cut after %v, client_read is %v", took, lim.ClientRead)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client stalled mid-packet held the session past client_read; only client_idle (1h) would end it")
	}
}

func TestWarningsPinIsGivenBackWhileTheSessionWaits(t *testing.T) {
	lim := Limits{ClientIdle: time.Hour, ClientRead: time.Hour, WarningsPin: 100 * time.Millisecond}
	s, client, pool := idleSession(t, lim)
	e := s.eng.(*engine)
	c, srv := newBackendConn(t)
	// A statement left a warning: the session keeps its connection for a
	// possible SHOW WARNINGS.
	run(e, c, "SELECT CAST('1x' AS UNSIGNED)", wire.Result{HasStatus: true, Status: autocommit, Warnings: 1})
	if !e.warningsPinOnly() {
		t.Fatalf("not pinned for warnings only: pins %b", e.pins)
	}
	done := make(chan error, 1)
	go func() { done <- s.awaitCommand(lim) }()
	deadline := time.Now().Add(10 * time.Second)
	for pool.Stats().Idle != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after warnings_pin the connection is not back in the pool: %+v", pool.Stats())
		}
		select {
		case err := <-done:
			t.Fatalf("the session stopped waiting when it gave the connection back: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if srv.isClosed() {
		t.Fatal("the connection was closed instead of pooled")
	}
	// The session still waits, and takes the next command.
	go client.Write([]byte{1, 0, 0, 0, wire.ComPing})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("next command after the pin was given back: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not take the next command")
	}
	if e.pinned != nil || e.pins != 0 {
		t.Fatalf("still pinned after warnings_pin: %b", e.pins)
	}
}
