package stats

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// Counters are split into shards chosen by session id: sessions run on
// their own goroutines, so two sessions rarely write the same cache line
// and no counter is a point of contention for the whole proxy. Scrapes add
// the shards up.
const (
	shards    = 32
	shardMask = shards - 1
	cacheLine = 64
)

// Routes, as label values.
const (
	routePrimary = iota
	routeReplica
	routeSluice // answered by sluice itself
	routeOther  // a target this package does not know yet
	nRoutes
)

var routeNames = [nRoutes]string{"primary", "replica", "sluice", "other"}

func routeIndex(target string) int {
	switch target {
	case "primary":
		return routePrimary
	case "replica":
		return routeReplica
	case "":
		return routeSluice
	}
	return routeOther
}

// kindNames lists sqlscan's kinds; kindIndex maps a name back. A name
// sqlscan does not produce counts as "unknown".
var kindNames, kindIndexes = func() ([]string, map[string]int) {
	names := []string{sqlscan.KindUnknown.String()}
	idx := map[string]int{names[0]: 0}
	for k := sqlscan.KindUnknown + 1; k < 255; k++ {
		s := k.String()
		if _, dup := idx[s]; dup {
			break // past the last kind, String says "unknown" again
		}
		idx[s] = len(names)
		names = append(names, s)
	}
	return names, idx
}()

// kindIndex returns the index of a kind name in kindNames, 0 ("unknown")
// for a name sqlscan does not produce. A switch is several times faster
// than a map here; TestKindsAndRoutes checks it against sqlscan, and the
// map catches a kind added to sqlscan before this list learns it.
func kindIndex(kind string) int {
	var k sqlscan.Kind
	switch kind {
	case "select":
		k = sqlscan.KindSelect
	case "write":
		k = sqlscan.KindWrite
	case "show":
		k = sqlscan.KindShow
	case "set":
		k = sqlscan.KindSet
	case "begin":
		k = sqlscan.KindBegin
	case "commit":
		k = sqlscan.KindCommit
	case "rollback":
		k = sqlscan.KindRollback
	case "begin_read_only":
		k = sqlscan.KindBeginReadOnly
	case "ddl":
		k = sqlscan.KindDDL
	case "savepoint":
		k = sqlscan.KindSavepoint
	case "set_global":
		k = sqlscan.KindSetGlobal
	case "set_transaction":
		k = sqlscan.KindSetTransaction
	case "use":
		k = sqlscan.KindUse
	case "prepare":
		k = sqlscan.KindPrepare
	case "execute":
		k = sqlscan.KindExecute
	case "deallocate":
		k = sqlscan.KindDeallocate
	case "lock_tables":
		k = sqlscan.KindLockTables
	case "unlock_tables":
		k = sqlscan.KindUnlockTables
	case "call":
		k = sqlscan.KindCall
	case "do":
		k = sqlscan.KindDo
	case "kill":
		k = sqlscan.KindKill
	case "other":
		k = sqlscan.KindOther
	case "unknown":
		return 0
	default:
		return kindIndexes[kind]
	}
	if int(k) < len(kindNames) && kindNames[k] == kind {
		return int(k)
	}
	return kindIndexes[kind]
}

// serverShard is one shard of a server's counters, one cache line.
type serverShard struct {
	queries  [nRoutes]atomic.Uint64
	errors   atomic.Uint64
	bytesOut atomic.Uint64 // command bytes sent to the server
	bytesIn  atomic.Uint64 // response bytes received from it
	_        [(cacheLine - (nRoutes+3)*8%cacheLine) % cacheLine]byte
}

func (s *serverShard) add(route int, ev *session.Event) {
	s.queries[route].Add(1)
	if ev.Err {
		s.errors.Add(1)
	}
	if ev.BytesIn > 0 {
		s.bytesOut.Add(uint64(ev.BytesIn))
	}
	if ev.BytesOut > 0 {
		s.bytesIn.Add(uint64(ev.BytesOut))
	}
}

type serverStats struct {
	name   string
	shards [shards]serverShard
}

type serverTotals struct {
	queries                   [nRoutes]uint64
	errors, bytesOut, bytesIn uint64
}

func (s *serverStats) totals() serverTotals {
	var t serverTotals
	for i := range s.shards {
		sh := &s.shards[i]
		for r := range t.queries {
			t.queries[r] += sh.queries[r].Load()
		}
		t.errors += sh.errors.Load()
		t.bytesOut += sh.bytesOut.Load()
		t.bytesIn += sh.bytesIn.Load()
	}
	return t
}

// serverMap finds a server's counters by name. Readers load an immutable
// map; the rare writer (a server seen for the first time) copies it.
// Servers removed from the configuration keep their counters, as
// Prometheus counters should, until sluice restarts.
type serverMap struct {
	m  atomic.Pointer[map[string]*serverStats]
	mu sync.Mutex
}

func (sm *serverMap) init() {
	m := map[string]*serverStats{}
	sm.m.Store(&m)
}

func (sm *serverMap) get(name string) *serverStats {
	if s := (*sm.m.Load())[name]; s != nil {
		return s
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	old := *sm.m.Load()
	if s := old[name]; s != nil {
		return s
	}
	s := &serverStats{name: name}
	m := maps.Clone(old)
	m[name] = s
	sm.m.Store(&m)
	return s
}

// ensure adds every server of names that is missing, with one copy of
// the map.
func (sm *serverMap) ensure(names []string) {
	cur := *sm.m.Load()
	missing := false
	for _, n := range names {
		if cur[n] == nil {
			missing = true
			break
		}
	}
	if !missing {
		return
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	m := maps.Clone(*sm.m.Load())
	for _, n := range names {
		if m[n] == nil {
			m[n] = &serverStats{name: n}
		}
	}
	sm.m.Store(&m)
}

func (sm *serverMap) all() map[string]*serverStats { return *sm.m.Load() }

// Prometheus buckets of sluice_query_duration_seconds: 0.1 ms to 10 s.
var promBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

var promBoundsNs = func() (b [len(promBounds)]int64) {
	for i, s := range promBounds {
		b[i] = int64(s*1e9 + 0.5)
	}
	return b
}()

const nProm = len(promBounds) + 1 // the last bucket is +Inf

func promBucket(ns int64) int {
	for i, b := range promBoundsNs {
		if ns <= b {
			return i
		}
	}
	return nProm - 1
}

// latShard is one shard of a latency histogram, padded to cache lines.
type latShard struct {
	buckets [nProm]atomic.Uint64 // not cumulative
	sumNs   atomic.Uint64
	errors  atomic.Uint64
	_       [(cacheLine - (nProm+2)*8%cacheLine) % cacheLine]byte
}

// latHist is sluice_query_duration_seconds and sluice_query_errors_total
// for one route and kind.
type latHist struct {
	shards [shards]latShard
}

func (h *latHist) observe(shard int, ns int64, err bool) {
	s := &h.shards[shard]
	s.buckets[promBucket(ns)].Add(1)
	s.sumNs.Add(uint64(ns))
	if err {
		s.errors.Add(1)
	}
}

// snapshot returns cumulative bucket counts (as Prometheus wants them),
// the count, the sum in seconds and the errors.
func (h *latHist) snapshot() (cum map[float64]uint64, count uint64, sum float64, errors uint64) {
	var b [nProm]uint64
	var sumNs uint64
	for i := range h.shards {
		s := &h.shards[i]
		for j := range b {
			b[j] += s.buckets[j].Load()
		}
		sumNs += s.sumNs.Load()
		errors += s.errors.Load()
	}
	cum = make(map[float64]uint64, len(promBounds))
	for i, bound := range promBounds {
		count += b[i]
		cum[bound] = count
	}
	count += b[nProm-1]
	return cum, count, seconds(float64(sumNs)), errors
}

// ServerCounts are a server's totals since start, for the dashboard.
type ServerCounts struct {
	Queries uint64 `json:"queries"`
	Errors  uint64 `json:"errors"`
}

// ServerCounts returns every server's totals since start.
func (st *Stats) ServerCounts() map[string]ServerCounts {
	out := map[string]ServerCounts{}
	for name, s := range st.servers.all() {
		t := s.totals()
		var q uint64
		for _, n := range t.queries {
			q += n
		}
		out[name] = ServerCounts{Queries: q, Errors: t.errors}
	}
	return out
}
