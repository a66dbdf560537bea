package session

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/causal"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/topology"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// causalState is what a session keeps for causal reads
// (routing.consistency).
type causalState struct {
	own  causal.Pos // GTIDs of the session's own commits
	need causal.Pos // what the read being routed must find applied
	// wait: the replica chosen for this read is not known to have need
	// yet; it is waited on (MASTER_GTID_WAIT) once its connection is lent.
	wait bool
	// untracked is the last write on a connection whose server does not
	// report GTIDs: reads then go to the primary for causal_timeout.
	untracked time.Time

	// own and untracked (and the session's lastWrite, for
	// read_your_writes) are the current cluster's; other holds those of
	// the other clusters the session wrote to. A read on one cluster must
	// not wait for GTIDs of another: its replicas never apply them (with
	// distinct gtid_domain_ids) or apply unrelated ones under the same
	// numbers (with a shared domain); nor go to its primary for a write
	// made elsewhere.
	other map[string]causalOwn
}

// forgetLastWrites clears the read_your_writes time kept for the other
// clusters, as COM_RESET_CONNECTION clears the current one's.
func (c *causalState) forgetLastWrites() {
	for k, o := range c.other {
		o.lastWrite = time.Time{}
		c.other[k] = o
	}
}

// causalOwn is a cluster's part of the session's read-after-write state
// while the session works on another cluster.
type causalOwn struct {
	own                  causal.Pos
	untracked, lastWrite time.Time
}

// switchCluster keeps the session's read-after-write state of cluster
// from (lastWrite is the session's) and takes up that of cluster to.
func (c *causalState) switchCluster(from, to string, lastWrite *time.Time) {
	if len(c.own) == 0 && c.untracked.IsZero() && lastWrite.IsZero() && len(c.other) == 0 {
		return // nothing written anywhere yet
	}
	if c.other == nil {
		c.other = make(map[string]causalOwn)
	}
	if len(c.own) > 0 || !c.untracked.IsZero() || !lastWrite.IsZero() {
		c.other[from] = causalOwn{own: c.own, untracked: c.untracked, lastWrite: *lastWrite}
	} else {
		delete(c.other, from)
	}
	next := c.other[to]
	delete(c.other, to)
	c.own, c.untracked, *lastWrite = next.own, next.untracked, next.lastWrite
}

// pickReplica chooses the server for a read. Without a GTID to honour it
// is the balancer's choice. With one, the balancer chooses among the
// replicas known to have applied it (the monitor read a position past it,
// or a wait proved it) and those that can be expected to catch up within
// causal_timeout (lag within it, no wait on it timed out lately); a chosen
// replica not known to have it is waited on. With none, causal_fallback
// decides.
//
// Known replicas are not preferred outright: the first replica waited on
// after a write would then take every read needing that write (from every
// session, under global consistency) until the monitor's next reading, and
// the others none. Waiting on a caught-up replica costs one round trip, and
// teaches sluice that it, too, has the write.
func (s *engine) pickReplica(snap *topology.Snapshot, pol *router.Policy, skip string) (*topology.Server, *wire.Error) {
	s.causal.wait = false
	need := s.readNeeds(pol)
	if need == nil {
		srv, err := s.rt.Balancer.PickReplica(snap, pol, s.load, skip)
		if err != nil {
			return nil, unavailable(err)
		}
		return srv, nil
	}
	if len(need) == 0 {
		// A write on a server that reports no GTIDs, within causal_timeout.
		srv, err := router.PrimaryOf(snap)
		if err != nil {
			return nil, unavailable(err)
		}
		return srv, nil
	}
	tr := pol.Causal
	since := time.Now().Add(-max(pol.CausalTimeout, time.Second))
	srv := s.rt.Balancer.PickAmong(snap, pol, s.load, skip, func(r *topology.Server) bool {
		return tr.Has(r.Name, need, r.GTIDPos) ||
			(!r.LagKnown || r.Lag <= pol.CausalTimeout) && !tr.SlowSince(r.Name, since)
	})
	if srv == nil {
		tr.Count(causal.NoReplica)
		return s.causalFallback(snap, pol)
	}
	s.causal.wait = !tr.Has(srv.Name, need, srv.GTIDPos)
	if !s.causal.wait {
		tr.Count(causal.Ready)
	}
	return srv, nil
}

// readNeeds returns the GTIDs the next read must find applied: nil when
// it need not wait for anything, empty when it must go to the primary.
func (s *engine) readNeeds(pol *router.Policy) causal.Pos {
	if pol.Causal == nil || pol.Consistency == router.Eventual {
		return nil
	}
	if !s.causal.untracked.IsZero() {
		if time.Since(s.causal.untracked) < pol.CausalTimeout {
			return causal.Pos{}
		}
		s.causal.untracked = time.Time{}
	}
	need := s.causal.need[:0]
	if pol.Consistency == router.GlobalCausal {
		need = pol.Causal.Global(need)
	}
	need.Merge(s.causal.own)
	s.causal.need = need
	if len(need) == 0 {
		return nil
	}
	return need
}

// causalFallback is where a read goes when no replica has, or can soon
// have, the GTIDs it needs.
func (s *engine) causalFallback(snap *topology.Snapshot, pol *router.Policy) (*topology.Server, *wire.Error) {
	if pol.CausalFallbackError {
		return nil, causalTimeoutError(s.causal.need, pol.CausalTimeout)
	}
	srv, err := router.PrimaryOf(snap)
	if err != nil {
		return nil, unavailable(err)
	}
	return srv, nil
}

func causalTimeoutError(need causal.Pos, timeout time.Duration) *wire.Error {
	return wire.Errorf(wire.ErrCausalTimeout, "HY000",
		"sluice: no replica has applied GTID %s, which this read must see, within routing.causal_timeout (%s) (routing.causal_fallback: error); retry, or read from the primary with /* sluice:primary */",
		need, timeout)
}

// lent finishes acquiring a connection: a primary connection reports the
// GTIDs it commits to the shared tracker (before the client hears of the
// commit, for global consistency), and a replica chosen for a read it was
// not known to be ready for is waited on first. On a timeout the read
// goes to causal_fallback instead.
func (s *engine) lent(ctx context.Context, c *backend.Conn, name string, routed, target router.Target, skip string) (*backend.Conn, string, router.Target, *wire.Error) {
	pol := s.rt.Policy
	if routed == router.Primary && !c.TracksGTID {
		if err := c.TrackGTIDs(s.rt.Limits.Query); err != nil {
			s.dropConn(c, name)
			return nil, name, routed, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: cannot reach %s: %v", name, err)
		}
	}
	if pol.Causal != nil && c.GTIDSink == nil {
		c.GTIDSink = pol.Causal
	}
	if !s.causal.wait {
		return c, name, routed, nil
	}
	s.causal.wait = false
	if routed != router.Replica {
		return c, name, routed, nil
	}
	need := s.causal.need
	res, err := c.Exec(need.WaitSQL(pol.CausalTimeout), pol.CausalTimeout+2*time.Second)
	if err == nil && res.Warnings == 0 {
		pol.Causal.Reached(name, need)
		pol.Causal.Count(causal.Waited)
		return c, name, routed, nil
	}
	pol.Causal.Count(causal.TimedOut)
	var we *wire.Error
	if err == nil || errors.As(err, &we) {
		pol.Causal.Slow(name, time.Now())
		s.release(c, name)
	} else {
		s.dropConn(c, name)
	}
	s.log.Debug("replica did not apply the GTID a read needs in time", "server", name, "gtid", need.String(), "err", err)
	if pol.CausalFallbackError {
		return nil, "", target, causalTimeoutError(need, pol.CausalTimeout)
	}
	return s.acquire(ctx, router.Primary, skip)
}

// noteCommit records the GTID a statement's commit produced, for the
// session's later reads.
func (s *engine) noteCommit(c *backend.Conn, routed router.Target, wrote bool, res *wire.Result) {
	if res.HasGTID {
		s.causal.own.Note(res.GTID)
		return
	}
	if wrote && routed == router.Primary && res.Err == nil && !c.TracksGTID {
		s.causal.untracked = time.Now()
	}
}
