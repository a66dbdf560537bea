package gtid

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Origin is one writer's stream of GTIDs: a domain and the server_id that
// wrote into it.
type Origin struct {
	Domain uint32
	Server uint32
}

// State is a binary log's GTID state, as in @@gtid_binlog_state: the last
// seq_no logged for every (domain, server_id) pair, including the servers
// that were primary before (a position keeps only the last GTID per domain).
// It is what makes divergence visible behind a higher seq_no: after a
// failover that lost 0-1-101..105, the new primary's position 0-2-110 looks
// ahead of the old primary's 0-1-105, but its state says server 1 reached
// only 0-1-100 there.
//
// It survives PURGE BINARY LOGS but not RESET MASTER, so a server rebuilt
// from a backup has an empty state although it has the data: a State check
// then fails safe (reports the history as missing).
type State map[Origin]uint64

// ParseState reads @@gtid_binlog_state, e.g. "0-1-100,0-2-110,1-3-7". The
// same (domain, server_id) twice is an error; blank is the empty state.
func ParseState(s string) (State, error) {
	st := State{}
	if strings.TrimSpace(s) == "" {
		return st, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("gtid: empty element in binlog state %q", s)
		}
		g, err := ParseGTID(item)
		if err != nil {
			return nil, err
		}
		o := Origin{g.Domain, g.Server}
		if prev, dup := st[o]; dup {
			return nil, fmt.Errorf("gtid: domain %d server %d appears twice in binlog state (seq %d and %d)", o.Domain, o.Server, prev, g.Seq)
		}
		st[o] = g.Seq
	}
	return st, nil
}

// GTIDs lists the last GTID of every origin, sorted by domain, then server.
func (s State) GTIDs() []GTID {
	out := make([]GTID, 0, len(s))
	for o, seq := range s {
		out = append(out, GTID{Domain: o.Domain, Server: o.Server, Seq: seq})
	}
	slices.SortFunc(out, func(a, b GTID) int {
		return cmp.Or(cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.Server, b.Server))
	})
	return out
}

// String formats s in canonical form, sorted by domain, then server.
func (s State) String() string {
	b := make([]byte, 0, 24*len(s))
	for i, g := range s.GTIDs() {
		if i > 0 {
			b = append(b, ',')
		}
		b = g.appendTo(b)
	}
	return string(b)
}

// Has reports whether the binary log holds g (or held it before a purge):
// its writer's last seq_no in that domain is at least g's. Under strict mode
// a writer's GTIDs enter a binary log in increasing seq_no order, so this is
// exact unless that writer's stream reached this server with a gap.
func (s State) Has(g GTID) bool {
	seq, ok := s[Origin{g.Domain, g.Server}]
	return ok && seq >= g.Seq
}

// MissingFrom returns the GTIDs of s (the last of each origin) that t does
// not hold, skipping origins written by the servers in except, sorted.
//
//   - Errant transactions on a failover candidate:
//     candidate.MissingFrom(primary, primaryServerID), with the primary's
//     last known state; the primary's own origin is skipped because the
//     candidate may have received more of it than that state shows.
//   - Rejoining an old primary under a new one: old.MissingFrom(newPrimary)
//     must be empty; what it lists are the old primary's transactions that
//     never reached the new one (lost by the failover), and MariaDB would
//     refuse the old primary as a replica (error 1236) or, without strict
//     mode, silently skip past them.
func (s State) MissingFrom(t State, except ...uint32) []GTID {
	var out []GTID
	for _, g := range s.GTIDs() {
		if !slices.Contains(except, g.Server) && !t.Has(g) {
			out = append(out, g)
		}
	}
	return out
}
