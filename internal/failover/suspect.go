package failover

import (
	"fmt"
	"time"

	"github.com/sluice-proxy/sluice/internal/topology"
)

// Suspect is told by a session that name, the primary, refused or timed
// out a connection, or dropped one during a statement. With automatic
// failover it holds new primary work at once, as a down primary does, and
// asks the monitor for a check round now rather than at the next interval;
// the hold ends with the failover, with a check that finds the primary
// well after all, or at failover.hold_timeout. It returns the hold new
// primary work waits in (which may not be in the published snapshot yet);
// when there is none, why says what the writer should be told ("" when
// name is not the primary sluice knows of).
func (m *Manager) Suspect(name string) (hold *topology.Hold, why string) {
	cfg := m.cfg.Load()
	// Publishing needs op (a change publishes under it, and a publish
	// from a stale view would undo it); a tick holds op only briefly, and
	// a change holds a hold already. Close keeps op for good.
	deadline := time.Now().Add(cfg.Timeout)
	for {
		if done, hold, why := m.suspectDecided(cfg, name); done {
			return hold, why
		}
		if m.op.TryLock() {
			break
		}
		if time.Now().After(deadline) {
			return nil, ""
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer m.op.Unlock()
	if done, hold, why := m.suspectDecided(cfg, name); done {
		return hold, why
	}
	m.holdForSuspect(name, cfg.HoldTimeout)
	m.mon.CheckNow()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hold.topology(), ""
}

// suspectDecided answers Suspect when the state decides it without a new
// hold: done is false when a hold should be taken.
func (m *Manager) suspectDecided(cfg *Config, name string) (done bool, hold *topology.Hold, why string) {
	m.mu.Lock()
	primary, h, closing := m.state.Primary, m.hold, m.closing
	handled, known, alert := m.lossHandled == name, m.suspectFor == name && m.suspect == nil, m.alert
	m.mu.Unlock()
	switch {
	case name == "" || name != primary || closing:
		return true, nil, ""
	case !cfg.Auto:
		return true, nil, "failover.auto is off: writes fail until an operator fails over (POST /api/failover)"
	case h != nil:
		m.mon.CheckNow()
		return true, h.topology(), ""
	case handled && alert != "":
		return true, nil, alert
	case known:
		return true, nil, fmt.Sprintf("writes were held for the loss of %s longer than failover.hold_timeout", name)
	}
	return false, nil, ""
}

// cleared reports whether a check that began after the suspicion found
// the primary well, so that a hold taken for it may end.
func (m *Manager) cleared(des *topology.Server) bool {
	m.mu.Lock()
	at := m.suspectAt
	m.mu.Unlock()
	return at.IsZero() || des.LastError == "" && des.LastCheck.After(at)
}

// markSuspect notes when a suspicion began.
func (m *Manager) markSuspect(t time.Time) {
	m.mu.Lock()
	m.suspectAt = t
	m.mu.Unlock()
}
