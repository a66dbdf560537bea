package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Key separates connections that can never serve each other's sessions:
// the login user and the CLIENT_FOUND_ROWS capability, both fixed at
// handshake time.
type Key struct {
	User      string
	FoundRows bool
}

// Settings tune a pool.
type Settings struct {
	MaxConns       int // 0 = unlimited
	MaxIdle        int
	IdleTimeout    time.Duration
	MaxLifetime    time.Duration
	ConnectTimeout time.Duration
	WaitTimeout    time.Duration // wait for a slot when MaxConns is reached
	QueryTimeout   time.Duration // bounds state sync round trips
}

// ErrPoolFull is returned when no connection slot frees up within WaitTimeout.
var ErrPoolFull = errors.New("too many connections to this server (max_connections reached)")

// ErrClosed is returned by a closed pool.
var ErrClosed = errors.New("server removed from configuration")

// Pool lends connections to one server.
type Pool struct {
	Name string
	Addr string

	settings atomic.Pointer[Settings]

	mu     sync.Mutex
	idle   []*Conn
	open   int
	closed bool
	slots  chan struct{} // non-nil when MaxConns > 0

	InUse   atomic.Int64 // lent connections, for least-connections balancing
	Waiting atomic.Int64 // requests queued for a slot
	Dials   atomic.Int64
	Errors  atomic.Int64

	versionMu sync.Mutex
	version   string
}

// NewPool creates an empty pool.
func NewPool(name, addr string, s Settings) *Pool {
	p := &Pool{Name: name, Addr: addr}
	if s.MaxConns > 0 {
		p.slots = make(chan struct{}, s.MaxConns)
	}
	p.settings.Store(&s)
	return p
}

// ServerVersion is the version string of the last handshake, "" before any.
func (p *Pool) ServerVersion() string {
	p.versionMu.Lock()
	defer p.versionMu.Unlock()
	return p.version
}

// Get lends a connection for key brought to state st. It prefers an idle
// connection already in that state, so sessions with common settings pay no
// replay cost.
func (p *Pool) Get(ctx context.Context, key Key, password string, st *State) (*Conn, error) {
	s := p.settings.Load()
	for {
		c := p.takeIdle(key, st, s)
		if c == nil {
			break
		}
		if time.Since(c.lastUsed) > probeAfter && !c.alive() {
			p.discard(c)
			continue
		}
		c.flushPendingCloses()
		if err := c.Sync(st, s.QueryTimeout); err != nil {
			p.discard(c)
			p.Errors.Add(1)
			continue
		}
		p.InUse.Add(1)
		return c, nil
	}
	if err := p.acquireSlot(ctx, s); err != nil {
		return nil, err
	}
	p.Dials.Add(1)
	c, err := Dial(ctx, DialOptions{
		Addr: p.Addr, User: key.User, Password: password, Schema: st.Schema,
		Collation: st.Collation, FoundRows: key.FoundRows, Timeout: s.ConnectTimeout,
	})
	if err != nil {
		p.releaseSlot()
		p.Errors.Add(1)
		return nil, err
	}
	p.versionMu.Lock()
	p.version = c.ServerVersion
	p.versionMu.Unlock()
	c.Key, c.server = key, p
	if err := c.Sync(st, s.QueryTimeout); err != nil {
		c.Close()
		p.releaseSlot()
		p.Errors.Add(1)
		return nil, err
	}
	p.InUse.Add(1)
	return c, nil
}

func (p *Pool) takeIdle(key Key, st *State, s *Settings) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := -1
	now := time.Now()
	for i := len(p.idle) - 1; i >= 0; i-- {
		c := p.idle[i]
		if c.Key != key || !usable(c, st) {
			continue
		}
		if s.MaxLifetime > 0 && now.Sub(c.created) > s.MaxLifetime {
			continue
		}
		if c.Matches(st) {
			best = i
			break
		}
		if best < 0 {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	c := p.idle[best]
	p.idle = append(p.idle[:best], p.idle[best+1:]...)
	return c
}

// usable reports whether c can be brought to st at all: a connection that
// has a default schema cannot be made to have none again, so sessions
// without a schema only take connections without one.
func usable(c *Conn, st *State) bool {
	if st.Schema != "" {
		return true
	}
	return c.schemaKnown && c.Schema == "" && (c.SetsHash == 0 || c.SetsHash == st.SetsHash)
}

// probeAfter is how long a connection must have been idle before a lend
// checks that the server still holds it. One used moments ago is lent
// without a system call: if the server closed it since, the statement's
// read fails and a read is retried elsewhere, as for any lost connection;
// only a server that drops a busy connection in that window (a KILL, a
// crash) costs a write its answer, which the probe could not prevent
// either for a connection dropped while it is lent.
const probeAfter = time.Second

// alive checks, without blocking, that the server has not closed an idle
// connection (wait_timeout, restart) since it was pooled.
//
// It costs one non-blocking syscall per reuse; without it, the first
// statement after a server restart would fail on a dead pooled connection,
// and a write cannot be retried.
func (c *Conn) alive() bool {
	if c.R.Buffered() > 0 {
		return false // nothing should be pending on an idle connection
	}
	return peerOpen(c.NC)
}

func (p *Pool) acquireSlot(ctx context.Context, s *Settings) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.open++
	slots := p.slots
	p.mu.Unlock()
	if slots == nil {
		return nil
	}
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	p.Waiting.Add(1)
	defer p.Waiting.Add(-1)
	// Idle connections hold slots too, and none of them suits this request
	// (Get looked first): close one to make room. Connections returned
	// while requests wait are closed by Put for the same reason, after
	// Waiting is raised above, so none can slip into idle unnoticed.
	p.mu.Lock()
	var evict *Conn
	if len(p.idle) > 0 {
		evict = p.idle[0]
		p.idle = p.idle[1:]
	}
	p.mu.Unlock()
	if evict != nil {
		p.discard(evict)
	}
	t := time.NewTimer(s.WaitTimeout)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
	return fmt.Errorf("%s: %w", p.Name, ErrPoolFull)
}

func (p *Pool) releaseSlot() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
	if p.slots != nil {
		<-p.slots
	}
}

// Put returns a lent connection. Broken connections, and any beyond the
// idle limits, are closed.
func (p *Pool) Put(c *Conn) {
	if c.server != nil && c.server != p {
		// Lent before a reload replaced this server's pool (new address or
		// limit): the pool that lent it takes it back, so slots and counts
		// stay with the pool they belong to.
		c.server.Put(c)
		return
	}
	p.InUse.Add(-1)
	s := p.settings.Load()
	c.lastUsed = time.Now()
	if c.hasQueued() && !c.broken && !c.Closed() {
		// Closes queued while it was lent: sent now, not with its next
		// lend, which an idle connection may not get for a while.
		c.flushPendingCloses()
		if c.Flush() != nil {
			c.broken = true
		}
	}
	if c.broken || c.Closed() || c.KillPending.Load() || (s.MaxLifetime > 0 && time.Since(c.created) > s.MaxLifetime) || c.R.Buffered() > 0 {
		p.discard(c)
		return
	}
	// Deadlines are left as they are: every use arms its own before it
	// reads or writes, and clearing them here would cost two timer updates
	// per statement.
	p.mu.Lock()
	// A connection kept idle keeps its slot: with requests queued for one
	// (max_connections reached), close it so that the slot goes to them.
	if p.closed || len(p.idle) >= s.MaxIdle || (p.slots != nil && p.Waiting.Load() > 0) {
		p.mu.Unlock()
		p.discard(c)
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Discard closes a lent connection instead of returning it.
func (p *Pool) Discard(c *Conn) {
	if c.server != nil && c.server != p {
		c.server.Discard(c) // see Put
		return
	}
	p.InUse.Add(-1)
	p.discard(c)
}

func (p *Pool) discard(c *Conn) {
	c.Close()
	p.releaseSlot()
}

// Reap closes idle connections past their idle timeout or lifetime.
func (p *Pool) Reap() {
	s := p.settings.Load()
	now := time.Now()
	dead := p.takeIdleWhere(func(c *Conn) bool {
		return (s.IdleTimeout > 0 && now.Sub(c.lastUsed) > s.IdleTimeout) || (s.MaxLifetime > 0 && now.Sub(c.created) > s.MaxLifetime)
	})
	for _, c := range dead {
		p.discard(c)
	}
}

// takeIdleWhere removes from the idle list, and returns, the connections
// for which take is true; the caller owns them from then on.
func (p *Pool) takeIdleWhere(take func(*Conn) bool) []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var taken []*Conn
	kept := p.idle[:0]
	for _, c := range p.idle {
		if take(c) {
			taken = append(taken, c)
		} else {
			kept = append(kept, c)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	return taken
}

// Stats is a point-in-time view of a pool.
type Stats struct {
	Open, Idle, InUse, Waiting int
}

// Stats returns current counts.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Open: p.open, Idle: len(p.idle), InUse: int(p.InUse.Load()), Waiting: int(p.Waiting.Load())}
}

// Close closes idle connections and refuses new ones; lent connections are
// closed when they come back.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdle()
}

// Closed reports whether Close was called.
func (p *Pool) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// SameLimit reports whether s keeps the pool's connection limit, the one
// setting an existing pool cannot change in place.
func (p *Pool) SameLimit(s Settings) bool { return p.settings.Load().MaxConns == s.MaxConns }

// Update applies new settings (reload) to later Get and Put calls.
func (p *Pool) Update(s Settings) { p.settings.Store(&s) }

// CloseIdle closes every idle connection (maintenance), keeping the pool
// open for connections that are lent.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		p.discard(c)
	}
}

// ShedIdleStmts closes the idle connections that hold prepared statements
// and returns how many statements that freed on the server. It is the
// last resort of a session whose server is out of statements (error
// 1461): statements of sessions that are not running anything are
// prepared again, on another connection, when next executed.
func (p *Pool) ShedIdleStmts() int {
	shed := p.takeIdleWhere(func(c *Conn) bool { return len(c.stmts) > 0 })
	n := 0
	for _, c := range shed {
		n += len(c.stmts)
		p.discard(c)
	}
	return n
}

// SendQueuedCloses sends, on idle connections, the statement closes queued
// for them while they were lent (QueueUnref), instead of with their next
// lend: a session that ends leaves its statements on the server no longer
// than that. It costs a write per idle connection with queued closes.
func (p *Pool) SendQueuedCloses() {
	todo := p.takeIdleWhere((*Conn).hasQueued)
	for _, c := range todo {
		c.flushPendingCloses()
		p.InUse.Add(1) // Put counts it back
		if err := c.Flush(); err != nil {
			c.MarkBroken()
		}
		p.Put(c)
	}
}
