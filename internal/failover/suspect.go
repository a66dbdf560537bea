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
// well after all, or at failover.hold_timeout. It reports whether new
// primary work is held; when it is not, why says what the writer should
// be told ("" when name is not the primary sluice knows of).
func (m *Manager) Suspect(name string) (held bool, why string) {
	cfg := m.cfg.Load()
	m.mu.Lock()
	primary, h := m.state.Primary, m.hold
	handled, known, alert := m.lossHandled == name, m.suspectFor == name && m.suspect == nil, m.alert
	m.mu.Unlock()
	switch {
	case name == "" || name != primary:
		return false, ""
	case !cfg.Auto:
		return false, "failover.auto is off: writes fail until an operator fails over (POST /api/failover)"
	case h != nil:
		m.mon.CheckNow()
		return true, ""
	case handled && alert != "":
		return false, alert
	case known:
		return false, fmt.Sprintf("writes were held for the loss of %s longer than failover.hold_timeout", name)
	}
	m.holdForSuspect(name, cfg.HoldTimeout)
	m.mon.CheckNow()
	return true, ""
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
