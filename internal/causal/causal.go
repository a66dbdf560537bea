// Package causal keeps what causal reads need: the GTID positions a read
// must find applied on a replica (a session's own writes, or every write
// that went through this sluice), and what sluice knows of the positions
// the replicas have reached.
//
// A replica has applied a write when its gtid_slave_pos has, in the write's
// replication domain, a seq_no at least the write's: the comparison
// MASTER_GTID_WAIT makes, which is also how a read that finds no replica
// known to be far enough waits for one.
package causal

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// Pos is a set of GTIDs, at most one per domain: what a reader needs. Its
// methods do not allocate once it has room for its domains.
type Pos []gtid.GTID

// Note raises p to include g.
func (p *Pos) Note(g gtid.GTID) {
	for i := range *p {
		if (*p)[i].Domain == g.Domain {
			if g.Seq > (*p)[i].Seq {
				(*p)[i] = g
			}
			return
		}
	}
	*p = append(*p, g)
}

// Merge raises p to include every GTID of q.
func (p *Pos) Merge(q Pos) {
	for _, g := range q {
		p.Note(g)
	}
}

// CoveredBy reports whether q has, in every domain of p, a seq_no at least
// p's.
func (p Pos) CoveredBy(q Pos) bool {
	for _, g := range p {
		found := false
		for _, h := range q {
			if h.Domain == g.Domain {
				found = h.Seq >= g.Seq
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// CoveredByString is CoveredBy for a position as MariaDB prints it
// ("0-1-100,1-2-7", as the monitor reads gtid_current_pos). An unreadable
// element covers nothing.
func (p Pos) CoveredByString(s string) bool {
	for _, g := range p {
		if seq, ok := seqOf(s, g.Domain); !ok || seq < g.Seq {
			return false
		}
	}
	return true
}

// seqOf finds the seq_no of domain d in a printed position.
func seqOf(s string, d uint32) (uint64, bool) {
	for len(s) > 0 {
		item := s
		if i := indexByte(s, ','); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		item = strings.TrimSpace(item) // as gtid.Parse trims: every Unicode space, \f and \v included
		if g, ok := gtid.ParseBytes([]byte(item)); ok && g.Domain == d {
			return g.Seq, true
		}
	}
	return 0, false
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// String formats p as MASTER_GTID_WAIT takes it.
func (p Pos) String() string { return string(p.appendTo(nil)) }

func (p Pos) appendTo(b []byte) []byte {
	for i, g := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(g.Domain), 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(g.Server), 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, g.Seq, 10)
	}
	return b
}

// WaitSQL is the statement that waits, on a replica, until it has applied
// p or timeout has passed. It is a DO, so that it neither returns rows nor
// counts as a SELECT on the server: a replica that caught up answers a
// plain OK, one that did not an OK with a warning (MASTER_GTID_WAIT
// returned -1, and the subquery that then runs returns two rows, which DO
// reports as a warning, not an error).
func (p Pos) WaitSQL(timeout time.Duration) string {
	b := make([]byte, 0, 96+24*len(p))
	b = append(b, "DO IF(MASTER_GTID_WAIT('"...)
	b = p.appendTo(b)
	b = append(b, "', "...)
	b = strconv.AppendFloat(b, max(timeout, time.Millisecond).Seconds(), 'f', 3, 64)
	b = append(b, ") = 0, 0, (SELECT 1 UNION ALL SELECT 1))"...)
	return string(b)
}

// Tracker is shared by every session of one sluice: the highest GTID per
// domain that any session's write produced through it (the global
// consistency mode reads it), and the positions sluice saw replicas reach
// (a successful wait proves the replica has the position; the monitor's
// readings prove older ones). It is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	global  Pos
	reached map[string]Pos
	slow    map[string]time.Time // a wait on this server timed out at

	counts [nOutcomes]atomic.Uint64
}

// Outcome is how a read that had writes to see found its server.
type Outcome uint8

const (
	Ready     Outcome = iota // a replica known to have applied them
	Waited                   // a replica waited on applied them in time
	TimedOut                 // the wait timed out: causal_fallback
	NoReplica                // no replica could be expected to catch up: causal_fallback
	nOutcomes
)

var outcomeNames = [nOutcomes]string{"ready", "waited", "timeout", "no_replica"}

func (o Outcome) String() string { return outcomeNames[o] }

// Count records the outcome of one read.
func (t *Tracker) Count(o Outcome) { t.counts[o].Add(1) }

// Counts returns the reads counted per outcome, by Outcome.String().
func (t *Tracker) Counts() map[string]uint64 {
	m := make(map[string]uint64, nOutcomes)
	for o := range nOutcomes {
		m[o.String()] = t.counts[o].Load()
	}
	return m
}

// NoteGTID records a transaction committed through this sluice. Backend
// connections call it before the client hears of the commit, so a read that
// begins after it includes it.
func (t *Tracker) NoteGTID(g gtid.GTID) {
	t.mu.Lock()
	t.global.Note(g)
	t.mu.Unlock()
}

// Global appends to dst what every committed write through this sluice
// adds up to.
func (t *Tracker) Global(dst Pos) Pos {
	t.mu.Lock()
	dst = append(dst[:0], t.global...)
	t.mu.Unlock()
	return dst
}

// Reached records that server has applied p.
func (t *Tracker) Reached(server string, p Pos) {
	t.mu.Lock()
	if t.reached == nil {
		t.reached = map[string]Pos{}
	}
	r := t.reached[server]
	r.Merge(p)
	t.reached[server] = r
	delete(t.slow, server)
	t.mu.Unlock()
}

// Has reports whether server is known to have applied need: sluice saw it
// reach it, or the monitor's last reading of its position (monitorPos)
// includes it.
func (t *Tracker) Has(server string, need Pos, monitorPos string) bool {
	if need.CoveredByString(monitorPos) {
		return true
	}
	t.mu.Lock()
	ok := need.CoveredBy(t.reached[server])
	t.mu.Unlock()
	return ok
}

// Slow records that a wait on server timed out: it is not waited on again
// for a while (the monitor's lag figure may not show yet why).
func (t *Tracker) Slow(server string, now time.Time) {
	t.mu.Lock()
	if t.slow == nil {
		t.slow = map[string]time.Time{}
	}
	t.slow[server] = now
	t.mu.Unlock()
}

// SlowSince reports whether a wait on server timed out after since.
func (t *Tracker) SlowSince(server string, since time.Time) bool {
	t.mu.Lock()
	at, ok := t.slow[server]
	t.mu.Unlock()
	return ok && at.After(since)
}

// Forget drops what sluice saw of a server: it went down, and may come
// back rebuilt with less than it had.
func (t *Tracker) Forget(server string) {
	t.mu.Lock()
	delete(t.reached, server)
	delete(t.slow, server)
	t.mu.Unlock()
}
