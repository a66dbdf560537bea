package session

import (
	"context"

	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/topology"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// PrimaryWatcher is implemented by an Env whose failover manager can be
// told at once that the primary refused, timed out or dropped a
// connection.
type PrimaryWatcher interface {
	// SuspectPrimary reports whether new primary work is held for a
	// failover now; when it is not, why says what the writer is told.
	SuspectPrimary(server string) (held bool, why string)
}

// maxPrimaryWaits bounds how often one statement waits for a primary that
// keeps refusing connections while checks find it well.
const maxPrimaryWaits = 2

// suspectPrimary tells the failover manager that server, the primary,
// failed a session. It returns whether work is held, and the reason to
// give when not.
func (s *Session) suspectPrimary(server string) (bool, string) {
	w, ok := s.env.(PrimaryWatcher)
	if !ok {
		return false, ""
	}
	return w.SuspectPrimary(server)
}

// awaitPrimary is acquire's answer to a primary that refused or timed out
// a connection (cause), or that the monitor found down (cause nil: the
// error about it says the rest): the suspicion starts at once and the statement
// waits in the failover's hold; retry is true when it should be routed
// again (a new primary, or the old one found well), else e is the error
// the client gets.
func (s *Session) awaitPrimary(ctx context.Context, server string, cause error) (retry bool, e *wire.Error) {
	if s.noPrimaryWait {
		s.suspectPrimary(server)
		return false, nil
	}
	if s.primaryWaits >= maxPrimaryWaits {
		s.primaryWaits = 0 // this statement fails; the next one may wait again
		return false, nil
	}
	held, why := s.suspectPrimary(server)
	if !held {
		if why == "" || cause == nil {
			return false, nil
		}
		return false, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: cannot reach primary %s: %v; %s", server, cause, why)
	}
	s.primaryWaits++
	snap := s.env.Snapshot()
	if snap.Hold == nil {
		// The hold may be published a moment after Suspect returns on
		// another goroutine's tick; the manager published it before
		// returning, so a nil hold means it already ended.
		return true, nil
	}
	if _, e := waitHold(ctx, s.env, snap); e != nil {
		return false, e
	}
	return true, nil
}

// schemaTarget is where a default schema is checked: the primary while it
// serves, else (no primary, or writes held for a primary change) any
// healthy server, so that a login with a database does not depend on the
// primary being alive.
func schemaTarget(snap *topology.Snapshot) router.Target {
	if _, err := router.PrimaryOf(snap); err != nil || snap.Hold != nil {
		return router.Replica
	}
	return router.Primary
}
