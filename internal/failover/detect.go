package failover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/hooks"
	"github.com/sluice-proxy/sluice/internal/statestore"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// tick runs after every published snapshot: adopt the first primary,
// fence revived old primaries, follow an external switchover, sample the
// primary while it is up, and fail over when it is lost.
func (m *Manager) tick(ctx context.Context) {
	if !m.op.TryLock() {
		return // a primary change is running; it owns the topology
	}
	defer m.op.Unlock()
	m.expireHold()
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
	if des.Up && m.cleared(des) {
		m.endSuspect(true)
	}
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
	m.holdForSuspect(des.Name, cfg.HoldTimeout)
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
	m.mu.Lock()
	claimed := m.busy != ""
	if !claimed {
		m.busy = "an automatic failover"
	}
	m.mu.Unlock()
	if claimed {
		return // an operator's request waits for op: it goes first
	}
	defer func() {
		m.mu.Lock()
		m.busy = ""
		m.mu.Unlock()
	}()
	if _, err := m.failover(ctx, "automatic", ""); err != nil {
		m.log.Error("automatic failover did not complete", "err", err)
	}
}

// expireHold ends a hold left past its deadline. Changes release their own
// holds; this catches one whose end no tick reaches otherwise (the lost
// primary was removed from the configuration, an external change was
// adopted meanwhile), so writers never wait on it beyond hold_timeout.
func (m *Manager) expireHold() {
	m.mu.Lock()
	h := m.hold
	m.mu.Unlock()
	if h == nil || time.Now().Before(h.hold.Deadline) {
		return
	}
	m.mu.Lock()
	if m.suspect == h {
		m.suspect = nil
	}
	m.mu.Unlock()
	m.endHold(h)
}

// holdForSuspect holds new writes once per loss, from the moment the
// monitor declares the primary down, so that while the replicas confirm
// the loss and the failover runs, writers see a pause rather than errors.
// The hold ends with the failover, with a refusal, or at its deadline.
func (m *Manager) holdForSuspect(primary string, d time.Duration) {
	m.mu.Lock()
	h, taken := m.suspect, m.suspectFor == primary
	m.mu.Unlock()
	switch {
	case !taken:
		m.markSuspect(time.Now())
		m.startHold("primary "+primary+" lost: waiting for the failover", d) // ended by endSuspect
		m.mu.Lock()
		m.suspect, m.suspectFor = m.hold, primary
		m.mu.Unlock()
	case h != nil && time.Now().After(h.hold.Deadline):
		m.endSuspect(false)
	}
}

// endSuspect ends the hold taken for a lost primary, if any; forget also
// forgets the loss (the primary is back), so a new loss holds again.
func (m *Manager) endSuspect(forget bool) {
	m.mu.Lock()
	h := m.suspect
	m.suspect = nil
	if forget {
		m.suspectFor = ""
	}
	m.mu.Unlock()
	if h != nil {
		m.endHold(h)
	}
}

// lossOnce reports a lost primary once per loss.
func (m *Manager) lossOnce(name, msg string) {
	m.endSuspect(false)
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
