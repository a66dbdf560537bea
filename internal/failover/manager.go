package failover

import (
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

	"github.com/sluice-proxy/sluice/internal/gtid"
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
	Time    time.Time `json:"time"`
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

// Manager owns the primary: it keeps the durable epoch, imposes it on the
// monitor's snapshots, detects a lost primary, and runs failovers,
// switchovers and rejoins one at a time.
type Manager struct {
	log     *slog.Logger
	mon     *topology.Monitor
	store   statestore.Store
	traffic Traffic
	cfg     atomic.Pointer[Config]

	op sync.Mutex // one primary change at a time

	mu          sync.Mutex
	state       statestore.State
	alert       string
	lossHandled string // the designated primary whose loss was already acted on (refused, reported)
	hold        *topology.Hold
	inProgress  string
	lastPrimary Status               // of the designated primary, read while it was up
	lags        map[string]lagSample // replicas' lag, measured while the primary was up
	history     []Record
	counts      map[string]uint64
	fencedAt    map[string]time.Time
	lastSample  time.Time
	dbs         map[string]*dbHandle
}

type lagSample struct {
	lag   time.Duration
	known bool
}

type dbHandle struct {
	addr string
	db   *sql.DB
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
		Fenced: append([]string{}, m.state.Fenced...), InProgress: m.inProgress,
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

// publish imposes the state on the monitor's snapshots.
func (m *Manager) publish() {
	m.mu.Lock()
	c := topology.Control{Epoch: m.state.Epoch, Designated: m.state.Primary, Fenced: slices.Clone(m.state.Fenced), Hold: m.hold, Alert: m.alert}
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
	m.mu.Unlock()
	m.log.Info("epoch committed", "epoch", st.Epoch, "primary", st.Primary, "reason", st.Reason, "fenced", st.Fenced)
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

// startHold holds new primary work until the returned function runs (at
// most d). The release publishes a snapshot without the hold before
// waking the held sessions, so they route with the new primary.
func (m *Manager) startHold(reason string, d time.Duration) (release func() time.Duration) {
	done := make(chan struct{})
	start := time.Now()
	m.mu.Lock()
	m.hold = &topology.Hold{Done: done, Deadline: start.Add(d), Reason: reason}
	m.inProgress = reason
	m.mu.Unlock()
	m.publish()
	var once sync.Once
	var pause time.Duration
	return func() time.Duration {
		once.Do(func() {
			m.mu.Lock()
			m.hold, m.inProgress = nil, ""
			m.mu.Unlock()
			m.publish()
			close(done)
			pause = time.Since(start)
		})
		return pause
	}
}

// tick runs after every published snapshot: adopt the first primary,
// fence revived old primaries, follow an external switchover, sample the
// primary while it is up, and fail over when it is lost.
func (m *Manager) tick(ctx context.Context) {
	if !m.op.TryLock() {
		return // a primary change is running; it owns the topology
	}
	defer m.op.Unlock()
	snap := m.mon.Snapshot()
	st := m.current()
	if st.Epoch == 0 {
		if pr, ok := snap.PrimaryServer(); ok {
			if err := m.commit(statestore.State{Epoch: 1, Primary: pr.Name, Address: pr.Addr, Reason: reasonDiscovered}); err != nil {
				m.log.Error("cannot record the discovered primary", "err", err)
				return
			}
			m.publish()
		}
		return
	}
	des, ok := snap.ByName(st.Primary)
	if !ok {
		m.setAlert(fmt.Sprintf("%s, the primary of epoch %d, is not in the configuration", st.Primary, st.Epoch))
		return
	}
	if m.adoptExternal(snap, des, st) {
		return
	}
	m.fenceOnSight(ctx, snap, st)
	switch {
	case des.Up && des.Role == topology.RolePrimary:
		m.mu.Lock()
		m.lossHandled = ""
		m.mu.Unlock()
		m.setAlert("")
		m.sample(ctx, snap, des)
		return
	case des.Up:
		return // reachable but not writable: nothing to fail over from
	}
	m.mu.Lock()
	handled := m.lossHandled == des.Name
	m.mu.Unlock()
	if handled {
		return
	}
	cfg := m.cfg.Load()
	if !cfg.Auto {
		m.lossOnce(des.Name, fmt.Sprintf("primary %s is down and failover.auto is off: an operator must fail over (POST /api/failover)", des.Name))
		return
	}
	if ok, why := confirmLoss(snap, des); !ok {
		m.setAlert(fmt.Sprintf("primary %s is down to sluice but not confirmed lost: %s", des.Name, why))
		return
	}
	if since := time.Since(st.Changed); cfg.MinInterval > 0 && !st.Changed.IsZero() && since < cfg.MinInterval {
		msg := fmt.Sprintf("primary %s is lost; automatic failover refused: the primary last changed %s ago, within failover.min_interval %s (anti-flapping); an operator may fail over (POST /api/failover)",
			des.Name, since.Round(time.Second), cfg.MinInterval)
		m.refused(Record{Kind: "refused", Trigger: "automatic", Old: des.Name, Epoch: st.Epoch, Reasons: []string{msg}}, msg)
		return
	}
	if _, err := m.failover(ctx, "automatic", ""); err != nil {
		m.log.Error("automatic failover did not complete", "err", err)
	}
}

// lossOnce reports a lost primary once per loss.
func (m *Manager) lossOnce(name, msg string) {
	m.mu.Lock()
	m.lossHandled = name
	m.mu.Unlock()
	m.log.Error(msg)
	m.setAlert(msg)
}

// refused records a refusal, raises the alert writers see and tells the
// hooks.
func (m *Manager) refused(r Record, alert string) {
	m.log.Error("failover refused", "old_primary", r.Old, "reasons", strings.Join(r.Reasons, "; "))
	m.record(r)
	m.lossOnce(r.Old, alert)
	cfg := m.cfg.Load()
	go func() {
		ev := hooks.Event{Kind: hooks.KindRefused, Phase: hooks.PhasePost, OldPrimary: r.Old, Epoch: r.Epoch, Reason: alert}
		if err := hooks.Run(context.Background(), cfg.Hooks, ev); err != nil {
			m.log.Warn("hook failed", "event", ev.Kind, "err", err)
		}
	}()
}

// confirmLoss asks the replicas: the primary is lost only when every
// reachable replica of it has lost its replication connection too (IO
// thread not running), so a broken path between sluice and the primary
// alone never triggers a failover. Replicas notice a frozen primary after
// slave_net_timeout (with MASTER_HEARTBEAT_PERIOD below it).
func confirmLoss(snap *topology.Snapshot, pr *topology.Server) (bool, string) {
	seen := 0
	var still []string
	for i := range snap.Servers {
		r := &snap.Servers[i]
		if !r.Up || r.Role != topology.RoleReplica || r.SourceAddr != pr.Addr {
			continue
		}
		seen++
		if r.IORunning {
			still = append(still, r.Name)
		}
	}
	switch {
	case seen == 0:
		return false, "no reachable replica of it can confirm"
	case len(still) > 0:
		return false, fmt.Sprintf("replicas %s still receive from it (sluice's own path to it may be broken)", strings.Join(still, ", "))
	}
	return true, ""
}

// sample records what a failover needs from the time the primary was up:
// its GTID state (for errant-transaction checks) and every replica's lag.
func (m *Manager) sample(ctx context.Context, snap *topology.Snapshot, pr *topology.Server) {
	m.mu.Lock()
	for i := range snap.Servers {
		r := &snap.Servers[i]
		// A replica whose IO thread lost the primary before sluice's own
		// checks did keeps its last sample: that is the lag at the loss.
		if r.Up && r.Role == topology.RoleReplica && r.SourceAddr == pr.Addr && r.IORunning {
			m.lags[r.Name] = lagSample{lag: r.Lag, known: r.LagKnown && r.SQLRunning}
		}
	}
	due := time.Since(m.lastSample) >= time.Second
	if due {
		m.lastSample = time.Now()
	}
	m.mu.Unlock()
	if !due {
		return
	}
	cfg := m.cfg.Load()
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	st, err := ReadStatus(cctx, m.db(pr.Name, pr.Addr), pr.Name)
	if err != nil || !st.Reachable {
		return
	}
	m.mu.Lock()
	m.lastPrimary = st
	m.mu.Unlock()
}

// adoptExternal follows a primary change made by another tool, so that
// sluice does not fight it: the designated primary now replicates from a
// writable server (a switchover), or it is down and the replicas now
// replicate from a writable server (a failover). That server becomes the
// primary of a new epoch.
func (m *Manager) adoptExternal(snap *topology.Snapshot, des *topology.Server, st statestore.State) bool {
	followers := func(addr string) int {
		n := 0
		for i := range snap.Servers {
			r := &snap.Servers[i]
			if r.Up && r.Role == topology.RoleReplica && r.SourceAddr == addr {
				n++
			}
		}
		return n
	}
	for i := range snap.Servers {
		s := &snap.Servers[i]
		if s.Name == des.Name || !s.Up || s.Role != topology.RolePrimary || s.Fenced {
			continue
		}
		var why string
		fenced := appendFenced(st.Fenced, "", s.Name)
		switch {
		case des.Up && des.Role == topology.RoleReplica && des.SourceAddr == s.Addr:
			why = fmt.Sprintf("followed an external change: %s replicates from %s", des.Name, s.Name)
		case !des.Up && followers(s.Addr) > 0 && followers(des.Addr) == 0:
			why = fmt.Sprintf("followed an external change: %s is down and the replicas replicate from %s", des.Name, s.Name)
			fenced = appendFenced(st.Fenced, des.Name, s.Name) // if it comes back writable, it is fenced
		default:
			continue
		}
		next := statestore.State{Epoch: st.Epoch + 1, Primary: s.Name, Address: s.Addr, Reason: why, Fenced: fenced}
		if err := m.commit(next); err != nil {
			m.log.Error("cannot follow the external primary change", "err", err)
			return true
		}
		m.record(Record{Kind: "adopt", Old: des.Name, New: s.Name, Epoch: next.Epoch, OK: true, Reasons: []string{next.Reason}})
		m.log.Warn("primary changed outside sluice; following it", "old", des.Name, "new", s.Name, "epoch", next.Epoch)
		m.publish()
		return true
	}
	return false
}

// fenceOnSight makes a fenced server that is writable again (an old
// primary restarted after a failover) read-only.
func (m *Manager) fenceOnSight(ctx context.Context, snap *topology.Snapshot, st statestore.State) {
	cfg := m.cfg.Load()
	for i := range snap.Servers {
		s := &snap.Servers[i]
		if !s.Fenced || !s.Up || s.ReadOnly || s.Name == st.Primary {
			continue
		}
		m.mu.Lock()
		recent := time.Since(m.fencedAt[s.Name]) < 5*cfg.Timeout
		if !recent {
			m.fencedAt[s.Name] = time.Now()
		}
		m.mu.Unlock()
		if recent {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 4*cfg.Timeout)
		killed, err := Fence(fctx, m.db(s.Name, s.Addr), cfg.MonitorUser)
		cancel()
		r := Record{Kind: "fence", Server: s.Name, Epoch: st.Epoch, OK: err == nil,
			Reasons: []string{fmt.Sprintf("%s is writable but was demoted in an earlier epoch: set read_only=ON, killed %d connections", s.Name, killed)}}
		if err != nil {
			r.Error = err.Error()
			m.log.Error("cannot fence a revived old primary", "server", s.Name, "err", err)
		} else {
			m.log.Warn("fenced a revived old primary", "server", s.Name, "killed", killed)
		}
		m.record(r)
		m.traffic.CloseIdle(s.Name)
	}
}

// Failover promotes a replica while the primary is down, on an operator's
// request: the safety checks apply as for an automatic failover, but
// neither the replicas' confirmation nor min_interval is required. target
// may name the replica to promote.
func (m *Manager) Failover(ctx context.Context, target string) (Record, error) {
	m.op.Lock()
	defer m.op.Unlock()
	st := m.current()
	snap := m.mon.Snapshot()
	if st.Epoch == 0 {
		return Record{}, fmt.Errorf("%w: no primary has been recorded yet", ErrConflict)
	}
	if des, ok := snap.ByName(st.Primary); ok && des.Up {
		return Record{}, fmt.Errorf("%w: primary %s is up; use a switchover (POST /api/switchover)", ErrConflict, st.Primary)
	}
	return m.failover(ctx, "operator", target)
}

// failover runs with m.op held.
func (m *Manager) failover(ctx context.Context, trigger, target string) (Record, error) {
	cfg := m.cfg.Load()
	st := m.current()
	snap := m.mon.Snapshot()
	oldName := st.Primary
	oldAddr := st.Address
	if o, ok := snap.ByName(oldName); ok {
		oldAddr = o.Addr
	}
	rec := Record{Kind: "failover", Trigger: trigger, Old: oldName, Epoch: st.Epoch}
	m.log.Warn("failing over", "old_primary", oldName, "trigger", trigger)
	release := m.startHold("failover from "+oldName, cfg.HoldTimeout)
	defer release()

	statuses := m.readAll(ctx, snap, cfg, oldName)
	var replicas []Status
	for _, s := range statuses {
		if !s.Reachable || s.Replicating {
			replicas = append(replicas, s)
		}
	}
	servers := slices.Clone(cfg.Servers)
	for i := range servers {
		if slices.Contains(st.Fenced, servers[i].Name) {
			servers[i].NoPromotion = true // a demoted old primary waits for an operator's rejoin
		}
	}
	if target != "" {
		found := false
		for i := range servers {
			if servers[i].Name == target {
				found = true
			} else {
				servers[i].NoPromotion = true
			}
		}
		if !found {
			return rec, fmt.Errorf("%w: no server named %q", ErrConflict, target)
		}
	}
	m.mu.Lock()
	last := m.lastPrimary
	m.mu.Unlock()
	if last.Name != oldName {
		last = Status{}
	}
	plan := ChooseCandidate(replicas, servers, last)
	rec.Reasons = plan.Reasons
	if !plan.Refused {
		if why := m.lagTooHigh(plan, statuses, cfg); why != "" {
			plan.Refused = true
			rec.Reasons = append(rec.Reasons, "refused: "+why)
		}
	}
	if plan.Refused {
		rec.Kind = "refused"
		msg := fmt.Sprintf("primary %s is lost and failover was refused: %s", oldName, lastRefusal(rec.Reasons))
		m.refused(rec, msg)
		return rec, fmt.Errorf("%w: %s", ErrConflict, msg)
	}
	cand, _ := snap.ByName(plan.Candidate)
	rec.New = plan.Candidate
	ev := hooks.Event{Kind: hooks.KindFailover, OldPrimary: oldName, NewPrimary: cand.Name, OldAddress: oldAddr, NewAddress: cand.Addr,
		Epoch: st.Epoch + 1, Reason: "primary " + oldName + " lost (" + trigger + ")"}
	m.runHook(ctx, cfg, ev, hooks.PhasePre) // the primary is gone: a failing hook cannot stop a failover

	cdb := m.db(cand.Name, cand.Addr)
	wctx, cancel := context.WithTimeout(ctx, cfg.MaxCatchup)
	err := WaitApplied(wctx, cdb, plan.CatchUpTo)
	cancel()
	if err != nil {
		rec.Kind = "refused"
		rec.Reasons = append(rec.Reasons, "refused: "+err.Error()+" (failover.max_catchup)")
		msg := fmt.Sprintf("primary %s is lost and failover was refused: %s did not apply its relay log within failover.max_catchup %s", oldName, cand.Name, cfg.MaxCatchup)
		m.refused(rec, msg)
		return rec, fmt.Errorf("%w: %s: %v", ErrConflict, msg, err)
	}
	next := statestore.State{Epoch: st.Epoch + 1, Primary: cand.Name, Address: cand.Addr, Reason: ev.Reason,
		Fenced: appendFenced(st.Fenced, oldName, cand.Name)}
	if err := m.commit(next); err != nil {
		rec.Error = err.Error()
		m.record(rec)
		m.setAlert("failover not done: " + err.Error())
		return rec, err
	}
	rec.Epoch = next.Epoch
	m.setAlert("")
	pctx, cancel := context.WithTimeout(ctx, 4*cfg.Timeout)
	err = Promote(pctx, cdb)
	cancel()
	m.publish()
	if err != nil {
		rec.Error = err.Error()
		m.record(rec)
		msg := fmt.Sprintf("failover to %s: promotion failed (%v); epoch %d names it primary: fix it and retry POST /api/failover, or switch over", cand.Name, err, next.Epoch)
		m.lossOnce(oldName, msg)
		return rec, errors.New(msg)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout+time.Second)
	_ = m.mon.Refresh(rctx)
	cancel()
	rec.PauseMS = ms(release())
	rec.OK = true
	m.log.Warn("failover done", "old_primary", oldName, "new_primary", cand.Name, "epoch", next.Epoch, "hold", time.Duration(rec.PauseMS*1e6))

	// After traffic moved: fence the old primary if it is reachable (a
	// frozen one is fenced on sight when it comes back), repoint the other
	// replicas.
	fctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
	if killed, err := Fence(fctx, m.db(oldName, oldAddr), cfg.MonitorUser); err == nil {
		m.log.Warn("old primary fenced", "server", oldName, "killed", killed)
	}
	cancel()
	m.traffic.CloseIdle(oldName)
	rec.Reasons = append(rec.Reasons, m.repointAll(ctx, cfg, snap, statuses, cand, oldName)...)
	m.settle(ctx, cfg)
	m.record(rec)
	m.runHook(ctx, cfg, ev, hooks.PhasePost)
	return rec, nil
}

// settle waits for a check round after a change, so that what the API
// shows once a change returns is the new topology.
func (m *Manager) settle(ctx context.Context, cfg *Config) {
	rctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout+time.Second)
	defer cancel()
	_ = m.mon.Refresh(rctx)
}

// lagTooHigh applies failover.max_lag: a candidate that applied all it
// received is current; otherwise its lag as last measured while the
// primary was up decides, and unknown lag counts as too high.
func (m *Manager) lagTooHigh(plan Plan, statuses []Status, cfg *Config) string {
	if cfg.MaxLag <= 0 {
		return ""
	}
	for _, s := range statuses {
		if s.Name != plan.Candidate {
			continue
		}
		if s.SlavePos.Contains(s.Received()) {
			return ""
		}
	}
	m.mu.Lock()
	l, ok := m.lags[plan.Candidate]
	m.mu.Unlock()
	switch {
	case !ok || !l.known:
		return fmt.Sprintf("%s has not applied all it received and its lag was unknown when the primary was lost (failover.max_lag %s)", plan.Candidate, cfg.MaxLag)
	case l.lag > cfg.MaxLag:
		return fmt.Sprintf("%s was %s behind when the primary was lost, more than failover.max_lag %s", plan.Candidate, l.lag, cfg.MaxLag)
	}
	return ""
}

func lastRefusal(reasons []string) string {
	var out []string
	for _, r := range reasons {
		if strings.HasPrefix(r, "refused: ") {
			out = append(out, strings.TrimPrefix(r, "refused: "))
		}
	}
	if len(out) == 0 {
		return strings.Join(reasons, "; ")
	}
	return strings.Join(out, "; ")
}

func appendFenced(list []string, add, remove string) []string {
	out := slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == remove || s == add })
	if add != "" {
		out = append(out, add)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Switchover moves the primary to target (or the best replica) without
// errors for clients: new writes and transactions are held, those already
// running on the old primary finish (up to drain_timeout), the old primary
// is made read-only, the target catches up, is promoted and the held work
// is released to it. Then the old primary becomes a replica of the new
// one and the other replicas follow. A failing pre-hook aborts it before
// anything changes.
func (m *Manager) Switchover(ctx context.Context, target string) (Record, error) {
	m.op.Lock()
	defer m.op.Unlock()
	cfg := m.cfg.Load()
	st := m.current()
	snap := m.mon.Snapshot()
	rec := Record{Kind: "switchover", Trigger: "operator", Old: st.Primary, Epoch: st.Epoch}
	fail := func(err error) (Record, error) {
		rec.Error = err.Error()
		m.record(rec)
		m.log.Error("switchover failed", "err", err)
		return rec, err
	}
	old, ok := snap.PrimaryServer()
	if !ok || old.Name != st.Primary {
		return rec, fmt.Errorf("%w: no primary is up (epoch %d names %q); use a failover (POST /api/failover)", ErrConflict, st.Epoch, st.Primary)
	}
	if cfg.ReplUser == "" {
		return rec, fmt.Errorf("%w: failover.replication.user is not set: the old primary could not replicate from the new one", ErrConflict)
	}
	tgt, err := m.switchoverTarget(ctx, snap, cfg, old, target)
	if err != nil {
		return rec, err
	}
	rec.New = tgt.Name
	ev := hooks.Event{Kind: hooks.KindSwitchover, OldPrimary: old.Name, NewPrimary: tgt.Name, OldAddress: old.Addr, NewAddress: tgt.Addr,
		Epoch: st.Epoch + 1, Reason: "planned switchover"}
	if err := m.runHook(ctx, cfg, ev, hooks.PhasePre); err != nil {
		return fail(fmt.Errorf("%w: switchover aborted, nothing changed: pre-hook failed: %w", ErrConflict, err))
	}

	deadline := time.Now().Add(cfg.HoldTimeout)
	opctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	release := m.startHold(fmt.Sprintf("switchover %s -> %s", old.Name, tgt.Name), cfg.HoldTimeout)
	defer release()
	odb, tdb := m.db(old.Name, old.Addr), m.db(tgt.Name, tgt.Addr)

	// Transactions already on the old primary finish; past the bound they
	// are rolled back with a clear error.
	drainEnd := time.Now().Add(cfg.DrainTimeout)
	if drainEnd.After(deadline) {
		drainEnd = deadline
	}
	for m.traffic.InFlight(old.Name) > 0 && time.Now().Before(drainEnd) {
		time.Sleep(2 * time.Millisecond)
	}
	if n := m.traffic.InFlight(old.Name); n > 0 {
		msg := fmt.Sprintf("sluice: transaction rolled back: the primary is moving from %s to %s (switchover) and it was still running after failover.drain_timeout %s; run it again",
			old.Name, tgt.Name, cfg.DrainTimeout)
		aborted := m.traffic.AbortPinned(old.Name, msg)
		rec.Reasons = append(rec.Reasons, fmt.Sprintf("%d connection(s) still busy on %s after drain_timeout: %d session(s) rolled back", n, old.Name, aborted))
	}
	killed, err := Fence(opctx, odb, cfg.MonitorUser)
	if err != nil {
		m.undoFence(old, odb)
		return fail(fmt.Errorf("switchover aborted: fence %s: %w", old.Name, err))
	}
	m.traffic.CloseIdle(old.Name)
	rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s set read_only, %d connection(s) killed", old.Name, killed))
	ost, err := ReadStatus(opctx, odb, old.Name)
	if err != nil {
		m.undoFence(old, odb)
		return fail(fmt.Errorf("switchover aborted: %w", err))
	}
	if err := WaitApplied(opctx, tdb, ost.BinlogPos); err != nil {
		m.undoFence(old, odb)
		return fail(fmt.Errorf("switchover aborted within failover.hold_timeout, %s stays primary: %w", old.Name, err))
	}
	// The old primary is read-only now and becomes a replica right after
	// the release; it is recorded as fenced only if that fails.
	next := statestore.State{Epoch: st.Epoch + 1, Primary: tgt.Name, Address: tgt.Addr, Reason: "switchover from " + old.Name,
		Fenced: appendFenced(st.Fenced, "", tgt.Name)}
	if err := m.commit(next); err != nil {
		m.undoFence(old, odb)
		return fail(fmt.Errorf("switchover aborted: %w", err))
	}
	rec.Epoch = next.Epoch
	if err := Promote(opctx, tdb); err != nil {
		// Back to the old primary, in a new epoch.
		back := statestore.State{Epoch: next.Epoch + 1, Primary: old.Name, Address: old.Addr, Reason: "switchover to " + tgt.Name + " failed", Fenced: st.Fenced}
		if cerr := m.commit(back); cerr == nil {
			m.undoFence(old, odb)
		}
		m.publish()
		return fail(fmt.Errorf("switchover aborted: promote %s: %w", tgt.Name, err))
	}
	m.publish()
	_ = m.mon.Refresh(opctx)
	rec.PauseMS = ms(release())
	m.log.Warn("switchover done", "old_primary", old.Name, "new_primary", tgt.Name, "epoch", next.Epoch, "hold", time.Duration(rec.PauseMS*1e6))

	// The old primary becomes a replica of the new one.
	tst, err := ReadStatus(ctx, tdb, tgt.Name)
	if err == nil {
		err = m.rejoin(ctx, cfg, old.Name, old.Addr, ost, tgt, tst.BinlogState)
	}
	if err != nil {
		m.fenceAfterFailedRejoin(old.Name, err)
		rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s stays fenced: %v", old.Name, err))
	} else {
		rec.Reasons = append(rec.Reasons, old.Name+" replicates from "+tgt.Name)
	}
	statuses := m.readAll(ctx, snap, cfg, old.Name)
	rec.Reasons = append(rec.Reasons, m.repointAll(ctx, cfg, snap, statuses, tgt, old.Name)...)
	m.settle(ctx, cfg)
	rec.OK = true
	m.record(rec)
	m.runHook(ctx, cfg, ev, hooks.PhasePost)
	return rec, nil
}

func (m *Manager) switchoverTarget(ctx context.Context, snap *topology.Snapshot, cfg *Config, old *topology.Server, target string) (*topology.Server, error) {
	if target == "" {
		statuses := m.readAll(ctx, snap, cfg, old.Name)
		var replicas []Status
		for _, s := range statuses {
			if s.Reachable && s.Replicating && s.SourceAddr == old.Addr {
				replicas = append(replicas, s)
			}
		}
		plan := ChooseCandidate(replicas, cfg.Servers, Status{})
		if plan.Candidate == "" || plan.Refused {
			return nil, fmt.Errorf("%w: no replica can be switched to: %s", ErrConflict, strings.Join(plan.Reasons, "; "))
		}
		target = plan.Candidate
	}
	t, ok := snap.ByName(target)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: no server named %q", ErrConflict, target)
	case t.Name == old.Name:
		return nil, fmt.Errorf("%w: %s is already the primary", ErrConflict, target)
	case noPromotion(cfg, target):
		return nil, fmt.Errorf("%w: %s has no_promotion", ErrConflict, target)
	case !t.Up || t.Role != topology.RoleReplica || t.SourceAddr != old.Addr || !t.IORunning || !t.SQLRunning:
		return nil, fmt.Errorf("%w: %s is not a healthy replica of %s (state %s)", ErrConflict, target, old.Name, t.State())
	}
	return t, nil
}

func noPromotion(cfg *Config, name string) bool {
	for _, s := range cfg.Servers {
		if s.Name == name {
			return s.NoPromotion
		}
	}
	return false
}

// fenceAfterFailedRejoin records a switchover's old primary as fenced when
// it could not become a replica: it is read-only, and stays out until an
// operator rejoins it.
func (m *Manager) fenceAfterFailedRejoin(name string, cause error) {
	st := m.current()
	next := st
	next.Epoch++
	next.Reason = fmt.Sprintf("%s fenced: rejoin after the switchover failed: %v", name, cause)
	next.Fenced = appendFenced(st.Fenced, name, "")
	if err := m.commit(next); err != nil {
		m.log.Error("cannot record the fence", "server", name, "err", err)
		return
	}
	m.publish()
}

// undoFence gives a switchover's old primary its writes back when the
// switchover stops before the promotion.
func (m *Manager) undoFence(old *topology.Server, db *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*m.cfg.Load().Timeout)
	defer cancel()
	if err := execAll(ctx, db, "undo fence", "SET GLOBAL read_only = OFF"); err != nil {
		m.log.Error("could not make the old primary writable again", "server", old.Name, "err", err)
	}
}

// Rejoin makes name, a fenced or stray server, a replica of the current
// primary when its GTIDs allow, and lifts its fence.
func (m *Manager) Rejoin(ctx context.Context, name string) (Record, error) {
	m.op.Lock()
	defer m.op.Unlock()
	cfg := m.cfg.Load()
	st := m.current()
	snap := m.mon.Snapshot()
	rec := Record{Kind: "rejoin", Server: name, New: st.Primary, Epoch: st.Epoch}
	s, ok := snap.ByName(name)
	pr, pok := snap.PrimaryServer()
	switch {
	case !ok:
		return rec, fmt.Errorf("%w: no server named %q", ErrConflict, name)
	case !pok:
		return rec, fmt.Errorf("%w: there is no primary to rejoin", ErrConflict)
	case pr.Name == name:
		return rec, fmt.Errorf("%w: %s is the primary", ErrConflict, name)
	case !s.Up:
		return rec, fmt.Errorf("%w: %s is down", ErrConflict, name)
	case cfg.ReplUser == "":
		return rec, fmt.Errorf("%w: failover.replication.user is not set", ErrConflict)
	}
	self, err := ReadStatus(ctx, m.db(s.Name, s.Addr), s.Name)
	if err != nil {
		return rec, err
	}
	pst, err := ReadStatus(ctx, m.db(pr.Name, pr.Addr), pr.Name)
	if err != nil {
		return rec, err
	}
	if err := m.rejoin(ctx, cfg, s.Name, s.Addr, self, pr, pst.BinlogState); err != nil {
		rec.Error = err.Error()
		m.record(rec)
		if errors.Is(err, ErrRefused) {
			return rec, fmt.Errorf("%w: %v", ErrConflict, err)
		}
		return rec, err
	}
	rec.OK = true
	rec.Epoch = m.current().Epoch
	m.record(rec)
	m.runHook(ctx, cfg, hooks.Event{Kind: hooks.KindRejoin, Phase: hooks.PhasePost, OldPrimary: name, OldAddress: s.Addr,
		NewPrimary: pr.Name, NewAddress: pr.Addr, Epoch: rec.Epoch, Reason: name + " rejoined as a replica"}, hooks.PhasePost)
	return rec, nil
}

// rejoin runs with m.op held: Rejoin, then the fence is lifted in a new
// epoch.
func (m *Manager) rejoin(ctx context.Context, cfg *Config, name, addr string, self Status, pr *topology.Server, prState gtid.State) error {
	host, port, err := splitAddr(pr.Addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*cfg.Timeout)
	defer cancel()
	if err := Rejoin(rctx, m.db(name, addr), host, port, cfg.ReplUser, cfg.ReplPassword, prState, self); err != nil {
		return err
	}
	st := m.current()
	if !slices.Contains(st.Fenced, name) {
		return nil
	}
	next := st
	next.Epoch++
	next.Reason = name + " rejoined as a replica of " + pr.Name
	next.Fenced = appendFenced(st.Fenced, "", name)
	if err := m.commit(next); err != nil {
		return err
	}
	m.publish()
	return nil
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
	ev.Phase = phase
	err := hooks.Run(ctx, cfg.Hooks, ev)
	if err != nil {
		m.log.Warn("hook failed", "event", ev.Kind, "phase", phase, "err", err)
	}
	return err
}

// db returns the control connection pool of a server, opened with the
// monitor account. No read timeout: every action has a context deadline.
func (m *Manager) db(name, addr string) *sql.DB {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.dbs[name]; ok && h.addr == addr {
		return h.db
	} else if ok {
		h.db.Close()
	}
	cfg := m.cfg.Load()
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = cfg.MonitorUser, cfg.MonitorPassword, "tcp", addr
	mc.Timeout = cfg.Timeout
	conn, err := mysql.NewConnector(mc)
	if err != nil { // only for invalid configs, which validation rejects
		panic(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	m.dbs[name] = &dbHandle{addr: addr, db: db}
	return db
}

func (m *Manager) closeDBs() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.dbs {
		h.db.Close()
	}
	m.dbs = map[string]*dbHandle{}
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
