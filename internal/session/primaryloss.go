package session

import (
	"context"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/topology"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// PrimaryWatcher is implemented by an Env whose failover manager can be
// told at once that the primary refused, timed out or dropped a
// connection.
type PrimaryWatcher interface {
	// SuspectPrimary returns the hold new primary work waits in for a
	// failover (perhaps not published in a snapshot yet); when there is
	// none, why says what the writer is told.
	SuspectPrimary(server string) (hold *topology.Hold, why string)
}

// maxPrimaryWaits bounds how often one statement waits for a primary that
// keeps refusing connections while checks find it well.
const maxPrimaryWaits = 2

// suspectPrimary tells the failover manager that server, the primary,
// failed a session. It returns the hold work waits in, or the reason to
// give when there is none.
func (s *engine) suspectPrimary(server string) (*topology.Hold, string) {
	w, ok := s.env.(PrimaryWatcher)
	if !ok {
		return nil, ""
	}
	return w.SuspectPrimary(server)
}

// awaitPrimary is acquire's answer to a primary that refused or timed out
// a connection (cause), or that the monitor found down (cause nil: the
// error about it says the rest): the suspicion starts at once and the statement
// waits in the failover's hold; retry is true when it should be routed
// again (a new primary, or the old one found well), else e is the error
// the client gets.
func (s *engine) awaitPrimary(ctx context.Context, server string, cause error) (retry bool, e *wire.Error) {
	if s.noPrimaryWait {
		s.suspectPrimary(server)
		return false, nil
	}
	if s.primaryWaits >= maxPrimaryWaits {
		s.primaryWaits = 0 // this statement fails; the next one may wait again
		return false, nil
	}
	hold, why := s.suspectPrimary(server)
	if hold == nil {
		switch {
		case why == "":
			return false, nil
		case cause == nil:
			// The monitor found it down: the caller's error says so
			// through the snapshot's alert, unless the failover manager
			// has not raised it yet.
			if strings.Contains(s.env.Snapshot().Alert, why) {
				return false, nil
			}
			return false, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: no primary available: primary %s is down; %s", server, why)
		}
		return false, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: cannot reach primary %s: %v; %s", server, cause, why)
	}
	s.primaryWaits++
	// Wait on the hold itself: the snapshot that shows it may not be
	// published yet.
	if e := waitOn(ctx, hold); e != nil {
		return false, e
	}
	_, e = waitHold(ctx, s.env, s.env.Snapshot())
	return e == nil, e
}

// waitOn waits until hold ends or its deadline passes.
func waitOn(ctx context.Context, h *topology.Hold) *wire.Error {
	wait := time.Until(h.Deadline)
	if wait <= 0 {
		return holdTimeout(h)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-h.Done:
		return nil
	case <-t.C:
		return holdTimeout(h)
	case <-ctx.Done():
		return wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: session ended while writes were held")
	}
}

func holdTimeout(h *topology.Hold) *wire.Error {
	return wire.Errorf(wire.ErrUnavailable, "08S01",
		"sluice: writes held for a primary change (%s) longer than failover.hold_timeout; try again", h.Reason)
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
