package failover

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// Plan is the outcome of ChooseCandidate.
type Plan struct {
	// Candidate is the replica chosen (also set when Refused, to name the
	// best one that was refused); "" when no replica is eligible.
	Candidate string
	// Reasons explain the choice, every server skipped and every refusal.
	Reasons []string
	// Refused: promoting Candidate would lose or break data; do not fail
	// over automatically.
	Refused bool
	// CatchUpTo is what the candidate received: pass it to WaitApplied
	// before Promote.
	CatchUpTo gtid.Pos
	// Behind counts transactions in the last known primary binlog position
	// that the candidate did not receive (a lower bound of the loss; the
	// primary may have written more since it was read). For max_lag.
	Behind uint64
}

// ChooseCandidate picks the replica to promote from statuses read in one
// round after the replicas lost the primary.
//
// Eligible: reachable, not NoPromotion, Last_SQL_Errno 0, and no errant
// GTIDs: none of its binlog state is missing from lastPrimary's (origins of
// the primary's own server_id excepted, as the replica may have received
// more of them than the last read showed), and nothing in gtid_current_pos
// beyond what the primary had or what the replica applied from it. Among
// eligible replicas the one that received the most wins: one whose received
// position (Gtid_IO_Pos, else gtid_slave_pos) contains every other's, ties
// by Priority (higher first) then name.
//
// The plan is Refused when the candidate lacks gtid_strict_mode or
// log_slave_updates (it could not serve the others' GTID requests), or when
// any reachable replica, eligible or not, received a transaction the
// candidate lacks (repointed, it would fail with error 1236, or the
// transaction would be lost). lastPrimary may be a zero Status when
// nothing is known of the primary; errant checks then rely on each
// replica's own positions.
func ChooseCandidate(replicas []Status, servers []Server, lastPrimary Status) Plan {
	var p Plan
	cfg := make(map[string]Server, len(servers))
	for _, s := range servers {
		cfg[s.Name] = s
	}
	primaryPos := lastPrimary.BinlogPos
	if len(primaryPos) == 0 {
		primaryPos = lastPrimary.CurrentPos
	}
	primaryKnown := lastPrimary.ServerID != 0 && (len(lastPrimary.BinlogState) > 0 || len(primaryPos) > 0)

	var eligible []Status
	for _, r := range replicas {
		c, ok := cfg[r.Name]
		switch {
		case !r.Reachable:
			p.Reasons = append(p.Reasons, fmt.Sprintf("%s skipped: unreachable (what it received is unknown)", r.Name))
			continue
		case ok && c.NoPromotion:
			p.Reasons = append(p.Reasons, fmt.Sprintf("%s skipped: no_promotion", r.Name))
			continue
		case r.LastSQLErrno != 0:
			p.Reasons = append(p.Reasons, fmt.Sprintf("%s skipped: replication SQL error %d", r.Name, r.LastSQLErrno))
			continue
		}
		if e := errant(r, lastPrimary, primaryPos, primaryKnown); e != "" {
			p.Reasons = append(p.Reasons, fmt.Sprintf("%s skipped: errant GTIDs %s (written outside the primary; rebuild it or reconcile them)", r.Name, e))
			continue
		}
		eligible = append(eligible, r)
	}
	if len(eligible) == 0 {
		p.Refused = true
		p.Reasons = append(p.Reasons, "refused: no eligible replica")
		return p
	}

	// Rank: containing every other eligible replica's received position
	// first, then more received transactions, then priority, then name.
	containsAll := func(s Status) bool {
		for _, o := range eligible {
			if !s.Received().Contains(o.Received()) {
				return false
			}
		}
		return true
	}
	total := func(s Status) uint64 { return gtid.Behind(gtid.Pos{}, s.Received()) }
	slices.SortStableFunc(eligible, func(a, b Status) int {
		ca, cb := containsAll(a), containsAll(b)
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(total(b), total(a)),
			cmp.Compare(cfg[b.Name].Priority, cfg[a.Name].Priority),
			cmp.Compare(a.Name, b.Name))
	})
	best := eligible[0]
	p.Candidate = best.Name
	p.CatchUpTo = best.Received()
	p.Behind = gtid.Behind(best.Received(), primaryPos)
	p.Reasons = append(p.Reasons, fmt.Sprintf("%s chosen: received %s (priority %d, %d behind the last known primary position %s)",
		best.Name, best.Received(), cfg[best.Name].Priority, p.Behind, primaryPos))

	refuse := func(format string, args ...any) {
		p.Refused = true
		p.Reasons = append(p.Reasons, "refused: "+fmt.Sprintf(format, args...))
	}
	if !best.StrictMode {
		refuse("%s has gtid_strict_mode=OFF: GTID comparisons cannot be trusted", best.Name)
	}
	if !best.LogSlaveUpdates {
		refuse("%s has log_slave_updates=OFF: replicated transactions are not in its binary log, the other replicas could not resume from it", best.Name)
	}
	for _, r := range replicas {
		if r.Name == best.Name || !r.Reachable {
			continue
		}
		if !best.Received().Contains(r.Received()) {
			refuse("%s received transactions %s lacks (%s vs %s): promoting it would lose them and break %s (error 1236)",
				r.Name, best.Name, r.Received(), best.Received(), r.Name)
		}
	}
	return p
}

// errant describes r's errant transactions, or "" when it has none.
func errant(r, primary Status, primaryPos gtid.Pos, primaryKnown bool) string {
	var found []string
	if primaryKnown {
		for _, g := range r.BinlogState.MissingFrom(primary.BinlogState, primary.ServerID) {
			found = append(found, g.String())
		}
		if e := gtid.Errant(r.CurrentPos, primaryPos, primary.ServerID); len(e) > 0 {
			found = append(found, e.String())
		}
	}
	// Local writes on the replica itself: gtid_current_pos beyond what the
	// SQL thread applied (a replica's own server_id can only be there from
	// a direct write).
	if e := gtid.Errant(r.CurrentPos, r.SlavePos); len(e) > 0 {
		found = append(found, e.String())
	}
	slices.Sort(found)
	found = slices.Compact(found)
	return strings.Join(found, ",")
}
