package session

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// placingEnv is a testEnv fronting clusters c1, c2, c3.
type placingEnv struct {
	*testEnv
	mu    sync.Mutex // the test changes m and holds while a session reads them, as a move does
	m     *placement.Map
	holds []*Hold
	envs  map[string]Env
}

func (p *placingEnv) Placement() *placement.Map {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m
}

func (p *placingEnv) ClusterEnv(name string) Env { return p.envs[name] }

func (p *placingEnv) Holds() []*Hold {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holds
}

func newPlacingSession(t *testing.T) (*engine, *placingEnv) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	m := placement.FromConfig(placement.Config{
		DefaultCluster: "c1",
		Databases:      []placement.Database{{Name: "shop", Cluster: "c2"}},
		Tables:         []placement.Tables{{Database: "app", Tables: "bucket_{0000..0009}", Cluster: "c3"}},
	}, "")
	env := &placingEnv{testEnv: &testEnv{pool: backend.NewPool("db1", "127.0.0.1:1", backend.Settings{MaxIdle: 10})}, m: m, envs: map[string]Env{}}
	for _, c := range []string{"c1", "c2", "c3"} {
		env.envs[c] = &testEnv{pool: env.pool}
	}
	return New(1, a, env).eng.(*engine), env
}

func TestClusterDecisions(t *testing.T) {
	for _, tc := range []struct {
		schema, sql, want string
		code              uint16
	}{
		{"", "SELECT 1", "c1", 0},
		{"shop", "SELECT 1", "c2", 0},
		{"shop", "SELECT * FROM orders", "c2", 0},
		{"app", "SELECT * FROM bucket_0003", "c3", 0},
		{"app", "SELECT * FROM bucket_0010", "c1", 0},
		{"app", "SELECT * FROM shop.orders o JOIN shop.items i USING (id)", "c2", 0},
		{"app", "SELECT * FROM information_schema.TABLES", "c1", 0},
		{"shop", "SELECT * FROM orders, app.bucket_0001", "", wire.ErrCrossCluster},
		{"app", "UPDATE bucket_0001 a JOIN bucket_0011 b ON a.id = b.id SET a.x = b.x", "", wire.ErrCrossCluster},
		{"blog", "SELECT * FROM posts", "c1", 0},
	} {
		s, env := newPlacingSession(t)
		s.state.Schema = tc.schema
		got, e := s.clusterFor(env.m, []byte(tc.sql), "")
		switch {
		case tc.code != 0 && (e == nil || e.Code != tc.code):
			t.Errorf("%s (schema %q): %v, %v; want error %d", tc.sql, tc.schema, got, e, tc.code)
		case tc.code == 0 && (e != nil || got != tc.want):
			t.Errorf("%s (schema %q): %q, %v; want %s", tc.sql, tc.schema, got, e, tc.want)
		}
	}
}

func TestTransactionStaysOnItsCluster(t *testing.T) {
	s, env := newPlacingSession(t)
	c, _ := newBackendConn(t)
	s.state.Schema = "app"
	if e := s.placeStmt(context.Background(), []byte("INSERT INTO bucket_0001 VALUES (1)")); e != nil {
		t.Fatal(e)
	}
	if s.place.cluster != "c3" || s.env != env.envs["c3"] {
		t.Fatalf("cluster %q after a statement on bucket_0001; want c3", s.place.cluster)
	}
	run(s, c, "BEGIN", ok(autocommit|wire.StatusInTrans))
	if s.pinned == nil || !s.inTxn {
		t.Fatal("BEGIN did not pin the session")
	}
	if e := s.placeStmt(context.Background(), []byte("SELECT * FROM shop.orders")); e == nil || e.Code != wire.ErrCrossCluster {
		t.Fatalf("a statement on c2 inside a transaction on c3: %v; want 9005", e)
	}
	if e := s.placeStmt(context.Background(), []byte("SELECT 1")); e != nil || s.place.cluster != "c3" {
		t.Fatalf("a statement naming nothing inside the transaction: %v, cluster %q", e, s.place.cluster)
	}
}

func TestHoldWaitsForTouchedObjects(t *testing.T) {
	s, env := newPlacingSession(t)
	s.state.Schema = "app"
	h := &Hold{Objs: []placement.Object{{DB: "app", Table: "bucket_0002"}}, Done: make(chan struct{})}
	env.mu.Lock()
	env.holds = []*Hold{h}
	env.mu.Unlock()
	// Other objects flow on.
	if e := s.placeStmt(context.Background(), []byte("SELECT * FROM bucket_0003")); e != nil {
		t.Fatal(e)
	}
	if !s.Touches([]placement.Object{{DB: "app", Table: "bucket_0003"}}) || s.Touches(h.Objs) {
		t.Fatal("Touches does not report the statement's own objects only")
	}
	if !s.Touches([]placement.Object{{DB: "app"}}) {
		t.Fatal("a database hold does not cover its tables")
	}
	s.placeDone()
	if s.Touches([]placement.Object{{DB: "app"}}) {
		t.Fatal("a finished statement outside a transaction still counts")
	}
	// A held object waits until the hold ends, then routes by the new map.
	moved := env.m.Place(h.Objs, "c2")
	done := make(chan *wire.Error, 1)
	go func() { done <- s.placeStmt(context.Background(), []byte("UPDATE bucket_0002 SET x = 1")) }()
	select {
	case e := <-done:
		t.Fatalf("a statement on a held table ran: %v", e)
	case <-time.After(50 * time.Millisecond):
	}
	env.mu.Lock()
	env.m, env.holds = moved, nil
	env.mu.Unlock()
	close(h.Done)
	select {
	case e := <-done:
		if e != nil || s.place.cluster != "c2" {
			t.Fatalf("after the hold: %v, cluster %q; want c2", e, s.place.cluster)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held statement did not go on after the hold ended")
	}
}

func TestRoutingByPlacementDoesNotAllocate(t *testing.T) {
	s, env := newPlacingSession(t)
	s.state.Schema = "app"
	sql := []byte("SELECT * FROM app.bucket_0001 a JOIN app.bucket_0002 b USING (id)")
	allocs := testing.AllocsPerRun(100, func() {
		if _, e := s.clusterFor(env.m, sql, ""); e != nil {
			t.Fatal(e)
		}
		s.placeDone()
	})
	if allocs > 1 {
		t.Errorf("routing a statement by placement allocates %v times; want at most 1", allocs)
	}
	_ = sqlscan.Scan
}
