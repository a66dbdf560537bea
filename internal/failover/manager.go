package failover

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/hooks"
	"github.com/sluice-proxy/sluice/internal/statestore"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Traffic is what the manager needs of the proxy's sessions and pools.
type Traffic interface {
	// InFlight counts the connections to server lent to sessions now
	// (statements running, transactions, pinned sessions).
	InFlight(server string) int64
	// AbortPinned ends sessions' transactions and pinned connections on
	// server with msg as their error; it returns how many it touched.
	AbortPinned(server, msg string) int
	// CloseIdle closes the pooled idle connections to server.
	CloseIdle(server string)
}

// Config drives the manager. It is replaced whole on reload.
type Config struct {
	// Cluster names the cluster this manager serves, for the hooks; empty
	// when sluice fronts one.
	Cluster      string
	Auto         bool
	MaxLag       time.Duration // 0: any lag is accepted
	MaxCatchup   time.Duration
	HoldTimeout  time.Duration
	DrainTimeout time.Duration
	MinInterval  time.Duration

	// MonitorUser/MonitorPassword open the control connections; the
	// monitor user's own connections survive fencing.
	MonitorUser, MonitorPassword string
	// ReplUser/ReplPassword go into CHANGE MASTER TO on repointed servers.
	ReplUser, ReplPassword string
	// Timeout bounds connecting to a server and reading its status (the
	// health check timeout).
	Timeout time.Duration

	Servers []Server
	Hooks   hooks.Config
}

// Record is one decision of the manager, kept for the API.
type Record struct {
	Time    time.Time `json:"time"` // when the change began
	Kind    string    `json:"kind"` // failover, switchover, rejoin, refused, fence, adopt
	Trigger string    `json:"trigger,omitempty"`
	Old     string    `json:"old_primary,omitempty"`
	New     string    `json:"new_primary,omitempty"`
	Server  string    `json:"server,omitempty"`
	Epoch   uint64    `json:"epoch"`
	OK      bool      `json:"ok"`
	// PauseMS is how long new writes were held (switchover, failover).
	PauseMS float64  `json:"pause_ms,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Report is the manager's state for the admin API and metrics.
type Report struct {
	Epoch      uint64            `json:"epoch"`
	Primary    string            `json:"primary"`
	Auto       bool              `json:"auto"`
	Alert      string            `json:"alert,omitempty"`
	Fenced     []string          `json:"fenced"`
	InProgress string            `json:"in_progress,omitempty"`
	Counts     map[string]uint64 `json:"counts"` // by kind and outcome: "failover_ok", "switchover_failed", "refused"…
	History    []Record          `json:"history"`
}

const historySize = 32

// reasonDiscovered is the reason of epoch 1: the primary sluice found.
const reasonDiscovered = "discovered"

// ErrConflict marks requests that the current topology does not allow
// (HTTP 409): a switchover without a live primary, a failover while the
// primary is up, a refused promotion, another change in progress.
var ErrConflict = errors.New("conflict")

// ErrNotFound marks a request naming a server the configuration does not
// have (HTTP 404).
var ErrNotFound = errors.New("not found")

// Manager owns the primary: it keeps the durable epoch, imposes it on the
// monitor's snapshots, detects a lost primary, and runs failovers,
// switchovers and rejoins one at a time.
type Manager struct {
	log     *slog.Logger
	mon     *topology.Monitor
	store   statestore.Store
	traffic Traffic
	cfg     atomic.Pointer[Config]

	op sync.Mutex // one primary change at a time; ticks take it too

	mu          sync.Mutex
	state       statestore.State
	alert       string
	lossHandled string // the designated primary whose loss was already acted on (refused, reported)
	hold        *holdState
	suspect     *holdState // the hold taken when the primary went down, before the failover
	suspectFor  string     // the primary whose loss took it
	suspectAt   time.Time  // when it was taken
	promoted    string     // a server promoted moments ago, until a check round has seen it
	inProgress  string
	busy        string // the change that claimed op (see claim)
	closing     bool
	lastPrimary Status               // of the designated primary, read while it was up
	lags        map[string]lagSample // replicas' lag, measured while the primary was up
	history     []Record
	counts      map[string]uint64
	fencedAt    map[string]time.Time
	lastSample  time.Time
	dbs         map[string]*dbHandle
	retired     []*sql.DB // pools opened with a previous configuration

	beforeSwitchover atomic.Pointer[func(context.Context) error]
}

// SetBeforeSwitchover registers what must stop before a switchover
// demotes this cluster's primary (an online move writing into it or
// replicating from it); an error aborts the switchover with nothing
// changed.
func (m *Manager) SetBeforeSwitchover(f func(context.Context) error) {
	m.beforeSwitchover.Store(&f)
}

type lagSample struct {
	lag   time.Duration
	known bool
}

type dbHandle struct {
	key dbKey
	db  *sql.DB
}

// dbKey is what a control pool was opened with: a reload that changes any
// of it (a new monitor password) gets a new pool.
type dbKey struct {
	addr, user, password string
	timeout              time.Duration
}

// NewManager loads the durable state and imposes it on the monitor before
// the first check, so a restarted sluice never writes to a server that
// lost its place while it was away.
func NewManager(cfg Config, mon *topology.Monitor, store statestore.Store, traffic Traffic, log *slog.Logger) (*Manager, error) {
	st, err := store.Load()
	if err != nil {
		return nil, err
	}
	m := &Manager{log: log, mon: mon, store: store, traffic: traffic, state: st,
		lags: map[string]lagSample{}, counts: map[string]uint64{}, fencedAt: map[string]time.Time{}, dbs: map[string]*dbHandle{}}
	m.cfg.Store(&cfg)
	if st.Epoch > 0 {
		log.Info("failover state loaded", "epoch", st.Epoch, "primary", st.Primary, "fenced", st.Fenced)
	}
	m.publish()
	return m, nil
}

// Update applies a reloaded configuration.
func (m *Manager) Update(cfg Config) { m.cfg.Store(&cfg) }

// Report returns the state for the API.
func (m *Manager) Report() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := Report{Epoch: m.state.Epoch, Primary: m.state.Primary, Auto: m.cfg.Load().Auto, Alert: m.alert,
		Fenced: append([]string{}, m.state.Fenced...), InProgress: cmp.Or(m.inProgress, m.busy), // busy outlasts the hold (repointing)
		Counts: make(map[string]uint64, len(m.counts)), History: slices.Clone(m.history)}
	for k, v := range m.counts {
		r.Counts[k] = v
	}
	slices.Reverse(r.History) // newest first
	if r.History == nil {
		r.History = []Record{}
	}
	return r
}

// Run watches the topology until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	defer m.closeDBs()
	sub := m.mon.Subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub:
			m.tick(ctx)
		}
	}
}

// Close refuses new changes and waits, at most d, for one in progress to
// finish: stopping between two steps of a switchover could leave no
// writable primary. It keeps op, so no tick starts a failover afterwards.
func (m *Manager) Close(d time.Duration) {
	m.mu.Lock()
	again := m.closing
	m.closing = true
	busy := m.busy
	m.mu.Unlock()
	if again {
		return
	}
	deadline := time.Now().Add(d)
	for !m.op.TryLock() {
		if time.Now().After(deadline) {
			m.log.Error("stopping while a primary change runs; check the topology", "change", busy)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ChangeBound is how long a change may run: the hold, the promotion, the
// old primary's rejoin, the replicas' repointing and the hooks.
func (c *Config) ChangeBound() time.Duration {
	hook := c.Hooks.Timeout
	if hook <= 0 {
		hook = hooks.DefaultTimeout
	}
	return c.HoldTimeout + c.MaxCatchup + 20*c.Timeout + 2*hook
}

// claim makes the caller the one change running, or refuses at once: a
// second switchover asked for while one holds the writes should learn it
// is not needed, not queue behind it. The release must run when done.
func (m *Manager) claim(what string) (release func(), err error) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: sluice is shutting down", ErrConflict)
	}
	if m.busy != "" {
		b := m.busy
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s is in progress", ErrConflict, b)
	}
	m.busy = what
	m.mu.Unlock()
	m.op.Lock() // a tick may hold it for a moment
	return func() {
		m.op.Unlock()
		m.mu.Lock()
		m.busy = ""
		m.mu.Unlock()
	}, nil
}

// publish imposes the state on the monitor's snapshots. Callers other than
// NewManager hold m.op, so two publishes never race with stale views.
func (m *Manager) publish() {
	m.mu.Lock()
	c := topology.Control{Epoch: m.state.Epoch, Designated: m.state.Primary, Fenced: slices.Clone(m.state.Fenced), Hold: m.hold.topology(), Alert: m.alert, Promoted: m.promoted}
	m.mu.Unlock()
	m.mon.SetControl(c)
}

func (m *Manager) current() statestore.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state
	st.Fenced = slices.Clone(st.Fenced)
	return st
}

// commit makes st durable, then the state in force. Nothing moves before
// the state store has it.
func (m *Manager) commit(st statestore.State) error {
	st.Time = time.Now().UTC()
	m.mu.Lock()
	prev := m.state
	m.mu.Unlock()
	st.Changed = prev.Changed
	if prev.Epoch > 0 && st.Primary != prev.Primary {
		st.Changed = st.Time
	}
	if err := m.store.Save(st); err != nil {
		return fmt.Errorf("persist epoch %d: %w", st.Epoch, err)
	}
	m.mu.Lock()
	m.state = st
	if st.Primary != prev.Primary {
		// Lags were measured against the old primary: a later failover
		// must not judge candidates by them.
		m.lags = map[string]lagSample{}
	}
	m.mu.Unlock()
	m.log.Info("epoch committed", "epoch", st.Epoch, "primary", st.Primary, "reason", st.Reason, "fenced", st.Fenced)
	return nil
}

// advance commits one more epoch with the same primary and a new fenced
// list (a fence recorded or lifted), then publishes it.
func (m *Manager) advance(reason string, fenced func([]string) []string) error {
	next := m.current()
	next.Epoch++
	next.Reason = reason
	next.Fenced = fenced(next.Fenced)
	if err := m.commit(next); err != nil {
		return err
	}
	m.publish()
	return nil
}

func (m *Manager) setAlert(a string) {
	m.mu.Lock()
	changed := m.alert != a
	m.alert = a
	m.mu.Unlock()
	if changed {
		m.publish()
	}
}

func (m *Manager) record(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	key := r.Kind
	switch {
	case r.Kind == "refused":
	case r.OK:
		key += "_ok"
	default:
		key += "_failed"
	}
	m.mu.Lock()
	m.counts[key]++
	m.history = append(m.history, r)
	if len(m.history) > historySize {
		m.history = m.history[len(m.history)-historySize:]
	}
	m.mu.Unlock()
}

// promotedNow shows name as the primary at once, and settles: after a
// check round the monitor's own view takes over again.
func (m *Manager) promotedNow(name string) {
	m.mu.Lock()
	m.promoted = name
	m.mu.Unlock()
	m.publish()
}

// holdState is one hold of new primary work.
type holdState struct {
	hold  *topology.Hold
	done  chan struct{}
	start time.Time
	once  sync.Once
	pause time.Duration
}

func (h *holdState) topology() *topology.Hold {
	if h == nil {
		return nil
	}
	return h.hold
}

// startHold holds new primary work until the returned function runs (at
// most d). A hold already in force (taken when the primary went down) is
// joined rather than replaced, so sessions waiting on it never see a gap.
// The release publishes a snapshot without the hold before waking the held
// sessions, so they route with the new primary; it returns how long the
// hold lasted.
func (m *Manager) startHold(reason string, d time.Duration) (release func() time.Duration) {
	m.mu.Lock()
	h := m.hold
	if h == nil {
		h = &holdState{done: make(chan struct{}), start: time.Now()}
		h.hold = &topology.Hold{Done: h.done, Deadline: h.start.Add(d), Reason: reason}
		m.hold = h
	}
	m.inProgress = reason
	m.mu.Unlock()
	m.publish()
	return func() time.Duration { return m.endHold(h) }
}

func (m *Manager) endHold(h *holdState) time.Duration {
	h.once.Do(func() {
		m.mu.Lock()
		if m.hold == h {
			m.hold, m.inProgress = nil, ""
		}
		m.mu.Unlock()
		m.publish()
		close(h.done)
		h.pause = time.Since(h.start)
	})
	return h.pause
}

// repointAll makes every replica of the old primary replicate from the new
// one. It returns what happened to each, for the record.
func (m *Manager) repointAll(ctx context.Context, cfg *Config, snap *topology.Snapshot, statuses []Status, to *topology.Server, old string) []string {
	host, port, err := splitAddr(to.Addr)
	if err != nil {
		return []string{err.Error()}
	}
	var mu sync.Mutex
	var out []string
	var wg sync.WaitGroup
	for _, s := range statuses {
		if !s.Reachable || !s.Replicating || s.Name == to.Name || s.Name == old {
			continue
		}
		srv, ok := snap.ByName(s.Name)
		if !ok || s.SourceAddr == to.Addr {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 10*cfg.Timeout)
			defer cancel()
			msg := s.Name + " repointed to " + to.Name
			if err := Repoint(rctx, m.db(srv.Name, srv.Addr), host, port, cfg.ReplUser, cfg.ReplPassword); err != nil {
				msg = fmt.Sprintf("%s not repointed: %v", s.Name, err)
				m.log.Error("repoint failed", "server", s.Name, "err", err)
			}
			mu.Lock()
			out = append(out, msg)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(out)
	return out
}

// readAll reads every server's status but skip, in parallel.
func (m *Manager) readAll(ctx context.Context, snap *topology.Snapshot, cfg *Config, skip string) []Status {
	out := make([]Status, 0, len(snap.Servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range snap.Servers {
		s := snap.Servers[i]
		if s.Name == skip {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
			defer cancel()
			st, err := ReadStatus(rctx, m.db(s.Name, s.Addr), s.Name)
			if err != nil && st.Reachable {
				m.log.Warn("status partly unreadable", "server", s.Name, "err", err)
			}
			mu.Lock()
			out = append(out, st)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (m *Manager) runHook(ctx context.Context, cfg *Config, ev hooks.Event, phase string) error {
	ev.Phase, ev.Cluster = phase, cfg.Cluster
	err := hooks.Run(ctx, cfg.Hooks, ev)
	if err != nil {
		m.log.Warn("hook failed", "event", ev.Kind, "phase", phase, "err", err)
	}
	return err
}

// db returns the control connection pool of a server, opened with the
// monitor account. No read timeout: every action has a context deadline.
func (m *Manager) db(name, addr string) *sql.DB {
	cfg := m.cfg.Load()
	key := dbKey{addr: addr, user: cfg.MonitorUser, password: cfg.MonitorPassword, timeout: cfg.Timeout}
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.dbs[name]
	if ok && h.key == key {
		return h.db
	}
	if ok {
		// A change running now may still use it: keep it, without idle
		// connections, until the manager stops.
		h.db.SetMaxIdleConns(0)
		m.retired = append(m.retired, h.db)
	}
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = key.user, key.password, "tcp", addr
	mc.Timeout = key.timeout
	conn, err := mysql.NewConnector(mc)
	if err != nil { // only for invalid configs, which validation rejects
		panic(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	m.dbs[name] = &dbHandle{key: key, db: db}
	return db
}

func (m *Manager) closeDBs() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.dbs {
		h.db.Close()
	}
	for _, db := range m.retired {
		db.Close()
	}
	m.dbs, m.retired = map[string]*dbHandle{}, nil
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	return host, port, nil
}
