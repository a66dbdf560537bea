// Package gtid parses and compares MariaDB GTID positions, the evidence the
// failover manager uses to choose a candidate, to measure how far behind it
// is, and to detect transactions that exist on one server only.
//
// # MariaDB GTIDs
//
// A GTID is domain_id-server_id-seq_no, e.g. 0-1-100. The sequence number
// orders transactions within a replication domain; the server_id only says
// which server originally wrote the transaction (it is kept when the
// transaction is replicated). Domains are independent streams: there is no
// order between transactions of different domains, so a position is a vector
// (one GTID per domain) and two positions are only partially ordered.
//
// A position lists the last GTID per domain. The server variables differ in
// which transactions they count:
//
//   - @@gtid_binlog_pos: the last GTID written to this server's binary log,
//     per domain. It includes replicated transactions only with
//     log_slave_updates=ON.
//   - @@gtid_slave_pos: the last GTID applied by the replication SQL
//     thread(s), per domain. Local writes never move it; only replication
//     and SET GLOBAL gtid_slave_pos do (RESET SLAVE leaves it), so a promoted
//     primary keeps the slave position it had when promoted.
//   - @@gtid_current_pos: per domain, the binlog GTID when it was written by
//     this server itself (its server_id) and is newer than gtid_slave_pos,
//     else the slave GTID. So it includes local writes: on a primary it is
//     what it wrote, on a replica what it applied plus anything written on it
//     directly. The monitor publishes this one (topology.Server.GTIDPos), and
//     CHANGE MASTER TO ... MASTER_USE_GTID=current_pos sends it.
//   - Gtid_IO_Pos in SHOW SLAVE STATUS: the last GTID the IO thread received
//     into the relay log — what the replica will have once its SQL thread
//     catches up. It is memory only: empty after RESET SLAVE or a restart
//     until the IO thread reconnects, and it is not evidence of applied data.
//   - @@gtid_binlog_state: the last GTID of every (domain, server_id) pair in
//     the binary log; see State.
//
// gtid_strict_mode=ON (the testbed's setting, and the one to require in
// production for automatic failover) makes a server refuse to binlog a GTID
// whose seq_no is not greater than the last one of its domain (error 1950),
// and makes a primary refuse a replica that asks to start from a GTID absent
// from its binary log (error 1236 / ER_GTID_POSITION_NOT_FOUND_IN_BINLOG2)
// instead of guessing. Only under strict mode does "higher seq_no" mean "has
// that history": without it, seq_no can repeat or go backwards and these
// comparisons are a heuristic.
//
// Comparisons here use seq_no per domain, as MASTER_GTID_WAIT does, and in
// addition treat the same seq_no with different server_ids as divergence:
// within one history a seq_no names one transaction, so 0-1-100 and 0-2-100
// are different transactions on different branches. A position cannot show
// divergence that happened before its last GTID (0-2-110 may or may not
// include 0-1-105); State can.
//
// # Using positions in a failover
//
//   - Rank candidates by what they have received (Gtid_IO_Pos, or
//     gtid_slave_pos when it is empty), not by gtid_current_pos, which also
//     counts a replica's own errant writes and would make it look the most
//     advanced. Read every position in one round, after the replicas' IO
//     threads have lost the dead primary.
//   - Catch up with MASTER_GTID_WAIT(received position, timeout) on the
//     candidate: it compares seq_no with gtid_slave_pos, ignoring server_id,
//     and waits forever (until timeout) for a domain that only local writes
//     have, so never pass it a gtid_current_pos.
//   - Refuse a candidate with errant transactions: Errant(its
//     gtid_current_pos, the primary's last known position, the primary's
//     server_id), or exactly with binlog states (State.MissingFrom).
//   - The new primary must have, in its binary log, the GTID every other
//     replica will ask for: candidates need log_slave_updates=ON and must
//     not be behind any replica that will follow them (else error 1236).
//     Repoint replicas with MASTER_USE_GTID=slave_pos; rejoin an old primary
//     with MASTER_USE_GTID=current_pos (its own writes are not in its slave
//     position), and only when its binlog state has nothing the new
//     primary's lacks.
package gtid

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// GTID is one MariaDB global transaction id.
type GTID struct {
	Domain uint32
	Server uint32
	Seq    uint64
}

// String formats g as domain-server-seq.
func (g GTID) String() string {
	b := make([]byte, 0, 32)
	return string(g.appendTo(b))
}

func (g GTID) appendTo(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(g.Domain), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(g.Server), 10)
	b = append(b, '-')
	return strconv.AppendUint(b, g.Seq, 10)
}

// ParseGTID parses one GTID, domain-server-seq, in decimal.
func ParseGTID(s string) (GTID, error) {
	d, rest, ok1 := strings.Cut(s, "-")
	srv, seq, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 {
		return GTID{}, fmt.Errorf("gtid: %q is not domain-server-seq", s)
	}
	domain, err1 := strconv.ParseUint(d, 10, 32)
	server, err2 := strconv.ParseUint(srv, 10, 32)
	n, err3 := strconv.ParseUint(seq, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return GTID{}, fmt.Errorf("gtid: %q is not domain-server-seq: %w", s, err)
	}
	return GTID{Domain: uint32(domain), Server: uint32(server), Seq: n}, nil
}

// Pos is a GTID position: the last GTID of each domain, by domain.
type Pos map[uint32]GTID

// Parse reads a position such as "0-1-100,1-2-7", as MariaDB prints it in
// @@gtid_*_pos or Gtid_IO_Pos. An empty or blank string is the empty
// position. Whitespace (including the newlines of wrapped SHOW output)
// around elements is ignored. A domain listed twice is an error, as it is
// for MariaDB.
func Parse(s string) (Pos, error) {
	p := Pos{}
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("gtid: empty element in position %q", s)
		}
		g, err := ParseGTID(item)
		if err != nil {
			return nil, err
		}
		if prev, dup := p[g.Domain]; dup {
			return nil, fmt.Errorf("gtid: domain %d appears twice in position (%s and %s)", g.Domain, prev, g)
		}
		p[g.Domain] = g
	}
	return p, nil
}

// String formats p in canonical form: sorted by domain, comma separated,
// no spaces; "" for the empty position. Parse(p.String()) equals p.
func (p Pos) String() string {
	domains := make([]uint32, 0, len(p))
	for d := range p {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	b := make([]byte, 0, 24*len(p))
	for i, d := range domains {
		if i > 0 {
			b = append(b, ',')
		}
		b = p[d].appendTo(b)
	}
	return string(b)
}

// Contains reports whether p has everything q has: every domain of q is in
// p with a seq_no at least as high, and when the seq_no is the same, the
// same server_id (else the two last transactions differ: divergence).
func (p Pos) Contains(q Pos) bool {
	for d, g := range q {
		h, ok := p[d]
		if !ok || h.Seq < g.Seq || (h.Seq == g.Seq && h.Server != g.Server) {
			return false
		}
	}
	return true
}

// Compare orders p and q when one contains the other: -1 when q contains p
// and not the reverse, 0 when equal, +1 when p contains q and not the
// reverse. When neither contains the other, diverged is true and c is 0,
// which then does not mean equal: each has transactions the other lacks.
func (p Pos) Compare(q Pos) (c int, diverged bool) {
	pq, qp := p.Contains(q), q.Contains(p)
	switch {
	case pq && qp:
		return 0, false
	case pq:
		return 1, false
	case qp:
		return -1, false
	}
	return 0, true
}

// Diverged reports whether neither position contains the other: ahead in
// one domain and behind in another, a domain only one of them has (each
// having one the other lacks), or the same seq_no written by different
// servers.
func Diverged(a, b Pos) bool {
	return !a.Contains(b) && !b.Contains(a)
}

// Behind counts the transactions q has that p lacks, from seq_no
// differences summed over q's domains (a domain p lacks counts q's whole
// seq_no). It is 0 when p contains q. It assumes seq_no has no gaps, which
// holds for a domain written by one primary at a time; it is a measure of
// lag, not a proof of containment: positions at the same seq_no but from
// different servers give 0 here, yet have diverged.
func Behind(p, q Pos) uint64 {
	var n uint64
	for d, g := range q {
		h := p[d] // zero GTID when absent
		if g.Seq > h.Seq {
			diff := g.Seq - h.Seq
			if n > math.MaxUint64-diff {
				return math.MaxUint64
			}
			n += diff
		}
	}
	return n
}

// Errant returns, per domain, the candidate's last GTID when the candidate
// has transactions that the primary's position does not: the domain is
// absent on the primary, or the candidate's seq_no is higher, or equal with
// a different server_id. These are transactions written on the candidate
// (or received from somewhere other than the primary); promoting it would
// publish them, and the other replicas would diverge or stop (error 1236).
//
// primaryIDs, when given, are the primary's server_id(s). Pass them when
// primary is the last known position of a primary that may have committed
// more since it was read (it is dead): a candidate GTID ahead of that
// position but written by the primary itself is a transaction it received
// after the read, not an errant one. Without them every failover under
// write load would look errant.
//
// Positions show only the last GTID of each domain, so an errant
// transaction followed by replicated ones in the same domain is invisible
// here (strict mode prevents that order: the replica's SQL thread stops with
// error 1950 — check Slave_SQL_Running and Last_SQL_Errno), as is one on a
// lagging candidate whose seq_no is still below the primary's. For those,
// compare binlog states (State.MissingFrom), or the candidate's
// gtid_current_pos against its own gtid_slave_pos.
func Errant(candidate, primary Pos, primaryIDs ...uint32) Pos {
	out := Pos{}
	for d, g := range candidate {
		h, ok := primary[d]
		switch {
		case !ok || g.Seq > h.Seq:
			if !slices.Contains(primaryIDs, g.Server) {
				out[d] = g
			}
		case g.Seq == h.Seq && g.Server != h.Server:
			out[d] = g
		}
	}
	return out
}

// MostAdvanced finds the position that contains all the others. best is the
// first such index; ties lists every such index (best included, ascending),
// all of them equal positions, so len(ties) > 1 means a tie the caller
// breaks (by priority). best is -1 and ties nil when no position contains
// all the others — they have diverged — or when list is empty.
func MostAdvanced(list []Pos) (best int, ties []int) {
	best = -1
	for i, p := range list {
		all := true
		for j, q := range list {
			if i != j && !p.Contains(q) {
				all = false
				break
			}
		}
		if all {
			if best < 0 {
				best = i
			}
			ties = append(ties, i)
		}
	}
	return best, ties
}

// ParseBytes parses one GTID, domain-server-seq in decimal, without
// allocating: it reads the last_gtid value of a server's session-state
// report on the hot path.
func ParseBytes(b []byte) (GTID, bool) {
	var f [3]uint64
	limits := [3]uint64{math.MaxUint32, math.MaxUint32, math.MaxUint64}
	i := 0
	for k := range f {
		if k > 0 {
			if i >= len(b) || b[i] != '-' {
				return GTID{}, false
			}
			i++
		}
		start := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			d := uint64(b[i] - '0')
			if f[k] > (limits[k]-d)/10 {
				return GTID{}, false
			}
			f[k] = f[k]*10 + d
		}
		if i == start {
			return GTID{}, false
		}
	}
	if i != len(b) {
		return GTID{}, false
	}
	return GTID{Domain: uint32(f[0]), Server: uint32(f[1]), Seq: f[2]}, true
}
