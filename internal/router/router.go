// Package router decides where a statement runs: on the primary or on a
// replica chosen by the balancer, from the statement, the session's state
// and the current topology snapshot.
package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/causal"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Target is where a statement should run.
type Target uint8

const (
	Primary Target = iota
	Replica
)

func (t Target) String() string {
	if t == Replica {
		return "replica"
	}
	return "primary"
}

// Session is what the router needs to know of a session.
type Session struct {
	Autocommit bool      // server status: autocommit on
	LastWrite  time.Time // when the session last wrote (read-your-writes)
}

// Policy is the routing configuration.
type Policy struct {
	ReadYourWrites time.Duration // 0 = off
	FallbackError  bool          // no replica: error instead of primary
	Balance        string        // least-connections | round-robin | weighted

	Consistency         Consistency
	CausalTimeout       time.Duration
	CausalFallbackError bool // no replica caught up within CausalTimeout: error instead of primary
	// Causal is shared by every session of the proxy and outlives
	// reloads: the GTIDs written through it, the positions replicas reached.
	Causal *causal.Tracker
}

// Consistency is which writes a read must see.
type Consistency uint8

const (
	Eventual      Consistency = iota // none in particular
	SessionCausal                    // the session's own writes
	GlobalCausal                     // every write committed through this sluice before the read
)

// ParseConsistency maps the configuration's names.
func ParseConsistency(s string) Consistency {
	switch s {
	case ConsistencyEventual:
		return Eventual
	case ConsistencyGlobal:
		return GlobalCausal
	}
	return SessionCausal
}

// Decide returns where a statement outside any pinned backend should go.
// Anything not known to be read-only goes to the primary.
func Decide(st sqlscan.Statement, s Session, p *Policy, now time.Time) Target {
	if st.Flags&sqlscan.FlagHintPrimary != 0 {
		return Primary
	}
	if st.Kind == sqlscan.KindBeginReadOnly && s.Autocommit {
		return Replica
	}
	if !st.IsRead() || st.Flags&sqlscan.FlagMulti != 0 || !s.Autocommit {
		return Primary
	}
	if st.Flags&sqlscan.FlagHintReplica != 0 {
		return Replica
	}
	if p.ReadYourWrites > 0 && !s.LastWrite.IsZero() && now.Sub(s.LastWrite) < p.ReadYourWrites {
		return Primary
	}
	return Replica
}

// ErrNoPrimary means no server is currently known to be a writable primary.
var ErrNoPrimary = errors.New("no primary available")

// ErrNoReplica means no replica may take reads and read_fallback is error.
var ErrNoReplica = errors.New("no replica available for reads (routing.read_fallback: error)")

// Load reports the lent connections of a server, for least-connections.
type Load func(name string) int64

// Balancer picks a replica. It is safe for concurrent use.
type Balancer struct {
	rr atomic.Uint64
}

// PickReplica chooses a server for a read, excluding names in skip (servers
// that just failed this statement). It falls back to backups, then to the
// primary unless the policy says error.
func (b *Balancer) PickReplica(snap *topology.Snapshot, p *Policy, load Load, skip string) (*topology.Server, error) {
	var cands [16]*topology.Server
	list := cands[:0]
	for _, backup := range []bool{false, true} {
		for i := range snap.Servers {
			s := &snap.Servers[i]
			if s.Backup == backup && s.Name != skip && s.Readable {
				list = append(list, s)
			}
		}
		if len(list) > 0 {
			break
		}
	}
	if len(list) == 0 {
		if p.FallbackError {
			return nil, ErrNoReplica
		}
		pr, err := PrimaryOf(snap)
		if err == nil && pr.Name == skip {
			err = ErrNoPrimary
		}
		if err != nil {
			return nil, fmt.Errorf("no replica can take reads (down, stopped or lagging) and the fallback failed: %w", err)
		}
		return pr, nil
	}
	return b.choose(list, p, load), nil
}

// PickAmong chooses, with the policy's balance, among the servers that may
// take reads as replicas (normal ones first, then backups) and for which
// keep holds, excluding skip. It has no fallback: nil when none qualifies.
func (b *Balancer) PickAmong(snap *topology.Snapshot, p *Policy, load Load, skip string, keep func(*topology.Server) bool) *topology.Server {
	var cands [16]*topology.Server
	list := cands[:0]
	for _, backup := range []bool{false, true} {
		for i := range snap.Servers {
			s := &snap.Servers[i]
			if s.Backup == backup && s.Name != skip && s.Readable && keep(s) {
				list = append(list, s)
			}
		}
		if len(list) > 0 {
			return b.choose(list, p, load)
		}
	}
	return nil
}

func (b *Balancer) choose(list []*topology.Server, p *Policy, load Load) *topology.Server {
	if len(list) == 1 {
		return list[0]
	}
	n := b.rr.Add(1)
	switch p.Balance {
	case BalanceRoundRobin:
		return list[n%uint64(len(list))]
	case BalanceWeighted:
		total := 0
		for _, s := range list {
			total += max(s.Weight, 0)
		}
		if total == 0 {
			return list[n%uint64(len(list))]
		}
		// Deterministic weighted round-robin: slot n of the weight wheel.
		at := int(n % uint64(total))
		for _, s := range list {
			if at < s.Weight {
				return s
			}
			at -= s.Weight
		}
		return list[0]
	default: // least-connections; ties broken at random so that
		// patterns in the caller (prepare then execute) cannot bias a rotation.
		start := rand.IntN(len(list))
		best := list[start]
		bestLoad := load(best.Name)
		for i := 1; i < len(list); i++ {
			s := list[(start+i)%len(list)]
			if l := load(s.Name); l < bestLoad {
				best, bestLoad = s, l
			}
		}
		return best
	}
}

// PrimaryOf returns the snapshot's primary for new work, or an error that
// says why there is none.
func PrimaryOf(snap *topology.Snapshot) (*topology.Server, error) {
	pr, ok := snap.PrimaryServer()
	if !ok {
		switch {
		case snap.Alert != "":
			return nil, fmt.Errorf("%w: %s", ErrNoPrimary, snap.Alert)
		case snap.Designated != "":
			return nil, fmt.Errorf("%w: %s, the primary of epoch %d, is down or not writable", ErrNoPrimary, snap.Designated, snap.Epoch)
		}
		return nil, ErrNoPrimary
	}
	if pr.Admin == topology.AdminDrain {
		return nil, fmt.Errorf("primary %s is draining (operator request): no new writes", pr.Name)
	}
	return pr, nil
}
