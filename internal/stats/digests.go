package stats

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// Query digests: statements normalized by sqlscan (literals → ?, IN lists
// and VALUES rows collapsed), keyed by digest, user and schema.
//
// Memory is bounded: the table holds at most MaxDigests entries. When a
// new key finds it full, one pass evicts the 5% of entries (at least one)
// with the least total time, then the key is added. This keeps the top of
// the table by total time — the statements worth looking at — while the
// one-off statements of a high-cardinality workload replace each other,
// and it costs one scan of the table per MaxDigests/20 new keys rather than
// one per key. An evicted entry's figures are gone;
// sluice_digest_evictions_total counts them. Lookups never wait for an
// eviction: each shard's map is replaced, not changed in place.
//
// An entry never stores literals: only the digest text, computed once when
// the key is first seen, and cut at MaxDigestText bytes.

// MaxDigestText bounds the stored digest text, in bytes; longer texts end
// in "…".
const MaxDigestText = 4096

type digestKey struct {
	hash         uint64 // sqlscan.DigestHash
	user, schema string
}

type digestEntry struct {
	key   digestKey
	text  string
	first int64 // unix nanoseconds

	last     atomic.Int64 // unix nanoseconds
	count    atomic.Int64
	errors   atomic.Int64
	rows     atomic.Int64
	affected atomic.Int64
	totalNs  atomic.Int64
	minNs    atomic.Int64
	maxNs    atomic.Int64
	hist     logHist
}

func (e *digestEntry) record(ev *session.Event, ns, now int64) {
	e.count.Add(1)
	if ev.Err {
		e.errors.Add(1)
	}
	if ev.Rows > 0 {
		e.rows.Add(ev.Rows)
	}
	if ev.Affected > 0 {
		e.affected.Add(int64(min(ev.Affected, math.MaxInt64)))
	}
	e.totalNs.Add(ns)
	for m := e.minNs.Load(); ns < m && !e.minNs.CompareAndSwap(m, ns); m = e.minNs.Load() {
	}
	for m := e.maxNs.Load(); ns > m && !e.maxNs.CompareAndSwap(m, ns); m = e.maxNs.Load() {
	}
	e.hist[logBucket(ns)].Add(1)
	if e.last.Load() < now {
		e.last.Store(now)
	}
}

// digestShard's map is immutable once published: lookups load it without
// locking, and the rare writer (a new key, an eviction, a reset) copies it
// under mu. It is keyed by a 64-bit hash of the whole key (the fastest
// kind of Go map); the entry holds the key itself, which is compared on
// every lookup, so that two keys whose hashes collide (odds of 2^-64)
// are never counted as one: the later one is simply not recorded.
type digestShard struct {
	m  atomic.Pointer[map[uint64]*digestEntry]
	mu sync.Mutex
	_  [cacheLine - 16]byte
}

type digestTable struct {
	shards    []digestShard
	shift     uint // 64 - log2(len(shards))
	n         atomic.Int64
	max       atomic.Int64
	evictions atomic.Uint64
	evictMu   sync.Mutex // one eviction pass at a time; never taken by lookups
}

func newDigestTable(maxEntries int) *digestTable {
	n := 1 << bits.Len(uint(max(maxEntries/16, 1)-1)) // about 16 entries a shard
	n = min(max(n, 16), 4096)
	t := &digestTable{shards: make([]digestShard, n), shift: uint(64 - bits.TrailingZeros(uint(n)))}
	for i := range t.shards {
		m := map[uint64]*digestEntry{}
		t.shards[i].m.Store(&m)
	}
	t.max.Store(int64(maxEntries))
	return t
}

func (t *digestTable) shard(h uint64) *digestShard {
	return &t.shards[(h*0x9e3779b97f4a7c15)>>t.shift]
}

// observe records ev in its entry, creating the entry the first time the
// key is seen. It returns the entry, or nil when there was no room.
func (t *digestTable) observe(ev *session.Event, ns, now int64) *digestEntry {
	h := ev.Digest
	if h == 0 {
		h = sqlscan.DigestHash(ev.SQL)
	}
	k := digestKey{hash: h, user: ev.User, schema: ev.Schema}
	mk := k.mapKey()
	sh := t.shard(k.hash)
	e := (*sh.m.Load())[mk]
	if e == nil {
		if e = t.insert(sh, k, mk, ev.SQL, now); e == nil {
			return nil
		}
	}
	if e.key != k {
		return nil // a hash collision
	}
	e.record(ev, ns, now)
	return e
}

var keySeed = maphash.MakeSeed()

// mapKey hashes the whole key.
func (k digestKey) mapKey() uint64 {
	return k.hash ^ maphash.String(keySeed, k.user)*0x9e3779b97f4a7c15 ^ maphash.String(keySeed, k.schema)*0xc2b2ae3d27d4eb4f
}

func (t *digestTable) insert(sh *digestShard, k digestKey, mk uint64, sql []byte, now int64) *digestEntry {
	e := &digestEntry{
		key:   digestKey{hash: k.hash, user: strings.Clone(k.user), schema: strings.Clone(k.schema)},
		text:  digestText(sql),
		first: now,
	}
	e.minNs.Store(math.MaxInt64)
	e.last.Store(now)
	for range 3 {
		sh.mu.Lock()
		old := *sh.m.Load()
		if cur := old[mk]; cur != nil {
			sh.mu.Unlock()
			return cur // another session was first (or a collision, which the caller sees)
		}
		if t.reserve() {
			m := make(map[uint64]*digestEntry, len(old)+1)
			maps.Copy(m, old)
			m[mk] = e
			sh.m.Store(&m)
			sh.mu.Unlock()
			return e
		}
		sh.mu.Unlock()
		t.makeRoom()
	}
	return nil // other sessions keep filling the room made: give up on this one
}

// reserve counts one more entry if there is room for it.
func (t *digestTable) reserve() bool {
	for {
		n := t.n.Load()
		if n >= t.max.Load() {
			return false
		}
		if t.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// makeRoom evicts the lightest 5% of a full table (at least one entry).
func (t *digestTable) makeRoom() {
	t.evictMu.Lock()
	defer t.evictMu.Unlock()
	limit, n := t.max.Load(), t.n.Load()
	if n < limit {
		return // another session made room
	}
	t.evictLightest(int(n-limit) + max(int(limit)/20, 1))
}

// setMax changes the bound, evicting the lightest entries at once when it
// shrank.
func (t *digestTable) setMax(maxEntries int) {
	t.evictMu.Lock()
	defer t.evictMu.Unlock()
	t.max.Store(int64(maxEntries))
	if excess := int(t.n.Load()) - maxEntries; excess > 0 {
		t.evictLightest(excess)
	}
}

// evictLightest removes the k entries with the least total time (the
// least recently seen first among equals). The caller holds evictMu.
func (t *digestTable) evictLightest(k int) {
	type cand struct {
		e           *digestEntry
		total, last int64
	}
	all := t.entries()
	cands := make([]cand, len(all))
	for i, e := range all {
		cands[i] = cand{e, e.totalNs.Load(), e.last.Load()}
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Or(cmp.Compare(a.total, b.total), cmp.Compare(a.last, b.last)) })
	victims := map[*digestShard][]uint64{}
	for _, c := range cands[:min(k, len(cands))] {
		sh := t.shard(c.e.key.hash)
		victims[sh] = append(victims[sh], c.e.key.mapKey())
	}
	for sh, keys := range victims {
		sh.mu.Lock()
		m := maps.Clone(*sh.m.Load())
		for _, key := range keys {
			if _, ok := m[key]; ok {
				delete(m, key)
				t.n.Add(-1)
				t.evictions.Add(1)
			}
		}
		sh.m.Store(&m)
		sh.mu.Unlock()
	}
}

func (t *digestTable) entries() []*digestEntry {
	var all []*digestEntry
	for i := range t.shards {
		for _, e := range *t.shards[i].m.Load() {
			all = append(all, e)
		}
	}
	return all
}

func (t *digestTable) reset() {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		t.n.Add(-int64(len(*sh.m.Load())))
		m := map[uint64]*digestEntry{}
		sh.m.Store(&m)
		sh.mu.Unlock()
	}
}

// digestText normalizes sql into a fresh string, cut at MaxDigestText.
func digestText(sql []byte) string {
	b := sqlscan.Digest(make([]byte, 0, min(len(sql), MaxDigestText)), sql)
	if cut, ok := truncate(b, MaxDigestText); ok {
		return string(cut) + "…"
	}
	return string(b)
}

// truncate cuts b to at most n bytes without splitting a UTF-8 sequence,
// and reports whether it cut anything.
func truncate(b []byte, n int) ([]byte, bool) {
	if len(b) <= n {
		return b, false
	}
	i := n
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return b[:i], true
}

// DigestView is one digest entry as the admin API shows it. Times are in
// seconds.
type DigestView struct {
	Digest       string    `json:"digest"` // normalized text, never literals
	Hash         string    `json:"hash"`   // 16 hex digits of the digest's 64-bit hash (the same for every user and schema)
	User         string    `json:"user"`
	Schema       string    `json:"schema"`
	Count        int64     `json:"count"`
	Errors       int64     `json:"errors"`
	RowsSent     int64     `json:"rows_sent"`
	RowsAffected int64     `json:"rows_affected"`
	TotalTime    float64   `json:"total_time"`
	AvgTime      float64   `json:"avg_time"`
	MinTime      float64   `json:"min_time"`
	MaxTime      float64   `json:"max_time"`
	P50          float64   `json:"p50"` // estimated: see the package notes on precision
	P99          float64   `json:"p99"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
}

func (e *digestEntry) view() DigestView {
	v := DigestView{
		Digest:       e.text,
		Hash:         fmt.Sprintf("%016x", e.key.hash),
		User:         e.key.user,
		Schema:       e.key.schema,
		Count:        e.count.Load(),
		Errors:       e.errors.Load(),
		RowsSent:     e.rows.Load(),
		RowsAffected: e.affected.Load(),
		FirstSeen:    time.Unix(0, e.first).UTC(),
		LastSeen:     time.Unix(0, e.last.Load()).UTC(),
	}
	total := float64(e.totalNs.Load())
	v.TotalTime = seconds(total)
	if v.Count == 0 {
		return v // created, not yet recorded
	}
	lo, hi := float64(e.minNs.Load()), float64(e.maxNs.Load())
	v.AvgTime = seconds(total / float64(v.Count))
	v.MinTime, v.MaxTime = seconds(lo), seconds(hi)
	var b [logBuckets]uint64
	e.hist.load(&b)
	v.P50 = seconds(quantile(&b, 0.5, lo, hi))
	v.P99 = seconds(quantile(&b, 0.99, lo, hi))
	return v
}

// DigestSorts are the orders Digests accepts, all descending; the first
// is the default.
var DigestSorts = []string{"total_time", "count", "avg_time", "max_time", "p50", "p99", "errors", "rows_sent", "rows_affected"}

func sortKey(sort string) (func(*DigestView) float64, error) {
	switch sort {
	case "", "total_time":
		return func(v *DigestView) float64 { return v.TotalTime }, nil
	case "count":
		return func(v *DigestView) float64 { return float64(v.Count) }, nil
	case "avg_time":
		return func(v *DigestView) float64 { return v.AvgTime }, nil
	case "max_time":
		return func(v *DigestView) float64 { return v.MaxTime }, nil
	case "p50":
		return func(v *DigestView) float64 { return v.P50 }, nil
	case "p99":
		return func(v *DigestView) float64 { return v.P99 }, nil
	case "errors":
		return func(v *DigestView) float64 { return float64(v.Errors) }, nil
	case "rows_sent":
		return func(v *DigestView) float64 { return float64(v.RowsSent) }, nil
	case "rows_affected":
		return func(v *DigestView) float64 { return float64(v.RowsAffected) }, nil
	}
	return nil, fmt.Errorf("unknown sort %s; allowed: %s", strconv.Quote(sort), strings.Join(DigestSorts, ", "))
}

// Digests returns the digest entries ordered by sort, largest first (""
// means total_time), at most limit of them (limit ≤ 0: all). An unknown
// sort is an error that names the allowed ones.
func (st *Stats) Digests(sort string, limit int) ([]DigestView, error) {
	key, err := sortKey(sort)
	if err != nil {
		return nil, err
	}
	entries := st.digests.entries()
	views := make([]DigestView, 0, len(entries))
	for _, e := range entries {
		if v := e.view(); v.Count > 0 {
			views = append(views, v)
		}
	}
	slices.SortFunc(views, func(a, b DigestView) int {
		return cmp.Or(cmp.Compare(key(&b), key(&a)), cmp.Compare(b.TotalTime, a.TotalTime),
			strings.Compare(a.Digest, b.Digest), strings.Compare(a.User, b.User), strings.Compare(a.Schema, b.Schema))
	})
	if limit > 0 && len(views) > limit {
		views = views[:limit]
	}
	return views, nil
}

// ResetDigests empties the digest table.
func (st *Stats) ResetDigests() { st.digests.reset() }
