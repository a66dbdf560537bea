package backend

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// These tests cover the pool's bookkeeping, which needs no server: which
// idle connection a request gets, what is closed instead of pooled, what
// reaping and eviction close, and the prepared-statement map of a
// connection. A connection here is one end of a net.Pipe; the other end
// records what sluice would have sent the server. How servers answer is
// tested in e2e against real ones.

// peer is the server side of a test connection: it reads (and keeps)
// everything written to it until the connection is closed.
type peer struct {
	mu     sync.Mutex
	got    []byte
	closed chan struct{}
}

func (p *peer) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.got...)
}

// newTestConn returns an authenticated-looking connection for key, in
// state st, whose server side is a peer. mod adjusts it before use.
func newTestConn(t *testing.T, key Key, st State, mod func(*Conn)) (*Conn, *peer) {
	t.Helper()
	a, b := net.Pipe()
	pr := &peer{closed: make(chan struct{})}
	go func() {
		defer close(pr.closed)
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			pr.mu.Lock()
			pr.got = append(pr.got, buf[:n]...)
			pr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { a.Close(); b.Close() })
	now := time.Now()
	c := &Conn{Conn: wire.NewConn(a), Key: key, stmts: map[StmtKey]*Stmt{}, created: now, lastUsed: now}
	c.Adopt(&st)
	if mod != nil {
		mod(c)
	}
	return c, pr
}

// lend makes c a connection lent by p, as Get leaves it: it holds one of
// p's slots and counts as in use.
func lend(t *testing.T, p *Pool, c *Conn) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.acquireSlot(ctx, p.settings.Load()); err != nil {
		t.Fatalf("slot for a test connection: %v", err)
	}
	c.server = p
	p.InUse.Add(1)
	return c
}

func isClosed(pr *peer) bool {
	select {
	case <-pr.closed:
		return true
	case <-time.After(time.Second):
		return false
	}
}

func stateWith(schema string, sets ...string) State {
	st := State{Schema: schema, Collation: 45}
	for _, s := range sets {
		st.Record("", s)
	}
	return st
}

var app = Key{User: "app"}

func TestTakeIdlePrefersAConnectionInTheSessionsState(t *testing.T) {
	plain := stateWith("db")
	ansi := stateWith("db", "SET sql_mode = 'ANSI'")
	tz := stateWith("db", "SET time_zone = '+05:00'")
	bare := stateWith("")
	old := func(c *Conn) { c.created = time.Now().Add(-2 * time.Hour) }
	type idle struct {
		key Key
		st  State
		mod func(*Conn)
	}
	for _, tc := range []struct {
		name string
		idle []idle // oldest first, as Put appends
		key  Key
		want State
		pick int // index into idle, -1 for none
	}{
		{"a matching connection over a newer one in another state", []idle{{app, ansi, nil}, {app, tz, nil}}, app, ansi, 0},
		{"the newest matching one", []idle{{app, ansi, nil}, {app, ansi, nil}}, app, ansi, 1},
		{"without a match, the newest that can be brought to the state", []idle{{app, tz, nil}, {app, plain, nil}}, app, ansi, 1},
		{"never another user's connection", []idle{{Key{User: "other"}, ansi, nil}}, app, ansi, -1},
		{"never a connection with the other found-rows capability", []idle{{Key{User: "app", FoundRows: true}, ansi, nil}}, app, ansi, -1},
		{"not one past max_lifetime", []idle{{app, ansi, old}}, app, ansi, -1},
		{"a session without a schema takes no connection that has one", []idle{{app, plain, nil}}, app, bare, -1},
		{"a session without a schema takes a bare one", []idle{{app, plain, nil}, {app, bare, nil}}, app, bare, 1},
		{"nothing idle", nil, app, ansi, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: 10, MaxLifetime: time.Hour})
			var conns []*Conn
			for _, in := range tc.idle {
				c, _ := newTestConn(t, in.key, in.st, nil)
				conns = append(conns, c)
				p.Put(lend(t, p, c))
				if in.mod != nil {
					in.mod(c) // aged as it sits idle
				}
			}
			if got := p.Stats().Idle; got != len(tc.idle) {
				t.Fatalf("%d idle after Put, want %d", got, len(tc.idle))
			}
			got := p.takeIdle(tc.key, &tc.want, p.settings.Load())
			switch {
			case tc.pick < 0 && got != nil:
				t.Fatalf("took a connection in state %+v, want none", got.SetsHash)
			case tc.pick >= 0 && got != conns[tc.pick]:
				idx := -1
				for i, c := range conns {
					if c == got {
						idx = i
					}
				}
				t.Fatalf("took idle connection %d, want %d", idx, tc.pick)
			}
			if tc.pick >= 0 && p.Stats().Idle != len(tc.idle)-1 {
				t.Fatalf("%d idle after taking one of %d", p.Stats().Idle, len(tc.idle))
			}
		})
	}
}

// A connection already in the session's state is lent without a byte
// sent to the server: sessions with the same settings pay nothing.
func TestGetOfAMatchingConnectionSendsNothing(t *testing.T) {
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: 10, QueryTimeout: time.Second})
	st := stateWith("db", "SET sql_mode = 'ANSI'")
	c, pr := newTestConn(t, app, st, nil)
	p.Put(lend(t, p, c))
	got, err := p.Get(context.Background(), app, "", &st)
	if err != nil || got != c {
		t.Fatalf("Get: %v, %v; want the idle connection", got, err)
	}
	if b := pr.bytes(); len(b) != 0 {
		t.Fatalf("sent %q to the server for a matching connection", b)
	}
	if s := p.Stats(); s.InUse != 1 || s.Idle != 0 || s.Open != 1 {
		t.Fatalf("stats after Get: %+v", s)
	}
}

func TestPutClosesWhatMustNotBeReused(t *testing.T) {
	st := stateWith("db")
	for _, tc := range []struct {
		name   string
		mod    func(*Conn)
		pooled bool
	}{
		{"a healthy connection is pooled", nil, true},
		{"a broken one is closed", func(c *Conn) { c.MarkBroken() }, false},
		{"one with a KILL QUERY on its way is closed", func(c *Conn) { c.KillPending.Store(true) }, false},
		{"one past max_lifetime is closed", func(c *Conn) { c.created = time.Now().Add(-2 * time.Hour) }, false},
		{"one closed already is not pooled", func(c *Conn) { c.Close() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: 10, MaxLifetime: time.Hour, MaxConns: 4})
			c, pr := newTestConn(t, app, st, nil)
			lend(t, p, c)
			if tc.mod != nil {
				tc.mod(c)
			}
			p.Put(c)
			s := p.Stats()
			if s.InUse != 0 {
				t.Fatalf("in use after Put: %d", s.InUse)
			}
			if tc.pooled {
				if s.Idle != 1 || s.Open != 1 || isClosedNow(pr) {
					t.Fatalf("stats %+v, closed %v; want it idle", s, isClosedNow(pr))
				}
				return
			}
			if s.Idle != 0 || s.Open != 0 || len(p.slots) != 0 || !isClosed(pr) {
				t.Fatalf("stats %+v, slots held %d, closed %v; want it closed and its slot free", s, len(p.slots), isClosedNow(pr))
			}
		})
	}
}

// closedWrongly reports whether the peer's state differs from want,
// waiting for a close only when one is expected.
func closedWrongly(pr *peer, want bool) bool {
	if want {
		return !isClosed(pr)
	}
	return isClosedNow(pr)
}

func isClosedNow(pr *peer) bool {
	select {
	case <-pr.closed:
		return true
	default:
		return false
	}
}

func TestPutKeepsAtMostMaxIdle(t *testing.T) {
	const maxIdle = 2
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: maxIdle})
	st := stateWith("db")
	var peers []*peer
	var conns []*Conn
	for range 4 {
		c, pr := newTestConn(t, app, st, nil)
		conns, peers = append(conns, lend(t, p, c)), append(peers, pr)
	}
	for _, c := range conns {
		p.Put(c)
	}
	if s := p.Stats(); s.Idle != maxIdle || s.Open != maxIdle || s.InUse != 0 {
		t.Fatalf("stats %+v, want %d idle and open", s, maxIdle)
	}
	for i, pr := range peers {
		if want := i >= maxIdle; closedWrongly(pr, want) {
			t.Errorf("connection %d closed = %v, want %v", i, !want, want)
		}
	}
}

func TestReapClosesIdleAndOldConnections(t *testing.T) {
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: 10, IdleTimeout: time.Minute, MaxLifetime: time.Hour})
	st := stateWith("db")
	for _, tc := range []struct {
		name string
		mod  func(*Conn)
		kept bool
	}{
		{"fresh", nil, true},
		{"idle past idle_timeout", func(c *Conn) { c.lastUsed = time.Now().Add(-2 * time.Minute) }, false},
		{"older than max_lifetime", func(c *Conn) { c.created = time.Now().Add(-2 * time.Hour) }, false},
		{"used recently, created long ago but within max_lifetime", func(c *Conn) { c.created = time.Now().Add(-50 * time.Minute) }, true},
	} {
		c, pr := newTestConn(t, app, st, nil)
		p.Put(lend(t, p, c))
		// Put stamps lastUsed; age the connection as it sits idle.
		if tc.mod != nil {
			tc.mod(c)
		}
		defer func() {
			if closedWrongly(pr, !tc.kept) {
				t.Errorf("%s: closed = %v after Reap, want %v", tc.name, tc.kept, !tc.kept)
			}
		}()
	}
	p.Reap()
	if s := p.Stats(); s.Idle != 2 || s.Open != 2 {
		t.Errorf("after Reap: %+v, want the 2 kept connections idle and open", s)
	}

	// 0 means never.
	q := NewPool("db2", "127.0.0.1:1", Settings{MaxIdle: 10})
	c, pr := newTestConn(t, app, st, nil)
	q.Put(lend(t, q, c))
	c.lastUsed, c.created = time.Now().Add(-100*time.Hour), time.Now().Add(-100*time.Hour)
	q.Reap()
	if q.Stats().Idle != 1 || isClosedNow(pr) {
		t.Errorf("idle_timeout and max_lifetime 0 reaped a connection: %+v", q.Stats())
	}
}

// With max_connections reached by idle connections that suit nobody, a
// request closes the oldest idle one to take its slot; with every slot
// lent, it waits for pool_wait and gets ErrPoolFull.
func TestFullPoolEvictsIdleThenRefuses(t *testing.T) {
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxConns: 2, MaxIdle: 10, WaitTimeout: 50 * time.Millisecond})
	st := stateWith("db")
	c1, pr1 := newTestConn(t, Key{User: "other"}, st, nil)
	c2, pr2 := newTestConn(t, Key{User: "other"}, st, nil)
	p.Put(lend(t, p, c1))
	p.Put(lend(t, p, c2))
	ctx := context.Background()
	if err := p.acquireSlot(ctx, p.settings.Load()); err != nil {
		t.Fatalf("slot with the pool full of idle connections: %v", err)
	}
	if !isClosed(pr1) || isClosedNow(pr2) {
		t.Fatalf("evicted: first %v, second %v; want the oldest idle one only", isClosedNow(pr1), isClosedNow(pr2))
	}
	if s := p.Stats(); s.Idle != 1 || s.Open != 2 {
		t.Fatalf("after the eviction: %+v", s)
	}
	// Now: one slot taken above, one idle. Take that one too, then ask
	// for a third.
	if err := p.acquireSlot(ctx, p.settings.Load()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := p.acquireSlot(ctx, p.settings.Load())
	if !errors.Is(err, ErrPoolFull) {
		t.Fatalf("third slot of 2: %v, want ErrPoolFull", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("refused after %s, before pool_wait (50ms)", waited)
	}
	if s := p.Stats(); s.Open != 2 || s.Waiting != 0 {
		t.Fatalf("after the refusal: %+v, want 2 open and nobody waiting", s)
	}
}

// A connection coming back while requests wait for a slot is closed, so
// the slot goes to them rather than into the idle list.
func TestPutWhileRequestsWaitFreesTheSlot(t *testing.T) {
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxConns: 1, MaxIdle: 10, WaitTimeout: 10 * time.Second})
	c, pr := newTestConn(t, app, stateWith("db"), nil)
	lend(t, p, c)
	got := make(chan error, 1)
	go func() { got <- p.acquireSlot(context.Background(), p.settings.Load()) }()
	for deadline := time.Now().Add(5 * time.Second); p.Waiting.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never queued")
		}
	}
	p.Put(c)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request did not get the slot back from Put")
	}
	if !isClosed(pr) || p.Stats().Idle != 0 {
		t.Fatalf("returned connection closed %v, idle %d; want it closed", isClosedNow(pr), p.Stats().Idle)
	}
}

// A reload that replaces a server's pool (new address or limit) leaves
// connections lent by the old one: they go back to the pool that lent
// them, whose slots and counts they hold.
func TestPutAcrossAReloadedPool(t *testing.T) {
	old := NewPool("db1", "127.0.0.1:1", Settings{MaxConns: 2, MaxIdle: 10})
	repl := NewPool("db1", "127.0.0.1:2", Settings{MaxConns: 5, MaxIdle: 10})
	c, _ := newTestConn(t, app, stateWith("db"), nil)
	lend(t, old, c)
	repl.Put(c)
	if s := old.Stats(); s.InUse != 0 || s.Idle != 1 || s.Open != 1 {
		t.Errorf("lending pool after Put through its replacement: %+v, want the connection idle there", s)
	}
	if s := repl.Stats(); s.InUse != 0 || s.Idle != 0 || s.Open != 0 {
		t.Errorf("replacement pool: %+v, want it untouched", s)
	}
	c2, pr := newTestConn(t, app, stateWith("db"), nil)
	lend(t, old, c2)
	old.Close()
	repl.Discard(c2)
	if s := old.Stats(); s.InUse != 0 || s.Open != 0 || !isClosed(pr) {
		t.Errorf("lending pool after Discard through its replacement: %+v", s)
	}
}

func TestClosedPoolRefusesAndClosesReturns(t *testing.T) {
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: 10})
	c, pr := newTestConn(t, app, stateWith("db"), nil)
	lend(t, p, c)
	p.Close()
	p.Put(c)
	if !isClosed(pr) || p.Stats().Idle != 0 {
		t.Fatal("a connection returned to a closed pool was kept")
	}
	if _, err := p.Get(context.Background(), app, "", &State{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed pool: %v, want ErrClosed", err)
	}
}

// stmtCloses parses the COM_STMT_CLOSE packets in what the peer received.
func stmtCloses(t *testing.T, b []byte) []uint32 {
	t.Helper()
	var ids []uint32
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("truncated packet header %x", b)
		}
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		p := b[4 : 4+n]
		if len(p) != 5 || p[0] != wire.ComStmtClose {
			t.Fatalf("unexpected packet %x", p)
		}
		ids = append(ids, binary.LittleEndian.Uint32(p[1:]))
		b = b[4+n:]
	}
	return ids
}

// flush sends what the connection buffered and returns everything the
// peer has received so far.
func flush(t *testing.T, c *Conn, pr *peer, want int) []byte {
	t.Helper()
	if err := c.W.Flush(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(pr.bytes()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("peer got %d bytes, want %d", len(pr.bytes()), want)
		}
		time.Sleep(time.Millisecond)
	}
	return pr.bytes()
}

// A statement a session let go of while its connection was lent to another
// session is closed on the server when that connection comes back, not
// left until its next lend.
func TestQueuedStatementCloseIsSentWhenTheConnectionComesBack(t *testing.T) {
	p := NewPool("db1", "127.0.0.1:1", Settings{MaxIdle: 10, QueryTimeout: time.Second})
	c, pr := newTestConn(t, app, stateWith("db"), nil)
	gone := c.AddStmt(StmtKey{Schema: "db", SQL: "SELECT 1"}, 7)
	c.AddStmt(StmtKey{Schema: "db", SQL: "SELECT 2"}, 8)
	lent := lend(t, p, c)
	lent.QueueUnref(gone)
	if b := pr.bytes(); len(b) != 0 {
		t.Fatalf("sent %x while the connection was lent elsewhere", b)
	}
	p.Put(lent)
	if ids := stmtCloses(t, flush(t, c, pr, 9)); len(ids) != 1 || ids[0] != 7 {
		t.Fatalf("COM_STMT_CLOSE for %v, want [7]", ids)
	}
	if c.Stmts() != 1 {
		t.Fatalf("%d statements cached, want the other one only", c.Stmts())
	}
}
