// Package stats counts what sluice does and shows it: Prometheus metrics,
// an optional Graphite push, query digests, a slow query log and the
// per-second series the dashboard draws.
//
// Stats is a session.Observer. Statement runs on every session goroutine
// after every client command, so it never allocates once a digest is known
// and never takes a lock shared by all sessions: counters and histograms
// are split into shards chosen by session id and updated with atomics,
// label values (server names, route, statement kind) resolve to
// pre-built counters through copy-on-write maps, and the digest table is
// sharded by digest hash with lock-free lookups. Figures that already live
// elsewhere (topology, pools, client connections) are read from a Source
// at scrape time and cost nothing per query.
//
// # Metrics
//
// Every metric served by Handler (besides the standard go_* and process_*
// ones):
//
//	sluice_client_connections                      gauge     client connections open now
//	sluice_client_connections_total                counter   client connections accepted
//	sluice_client_connections_refused_total        counter   logins that failed, for any cause
//	sluice_client_login_failures_total{cause}      counter   failed logins by cause (bad_credentials, unknown_user, default_database, default_database_unavailable, too_many_connections, handshake_timeout, bad_handshake, client_left)
//	sluice_client_errors_total{code,cause}         counter   error packets sent to clients, by MySQL error code and cause ("server" for a server's own error)
//	sluice_transaction_replays_total{result}       counter   transactions cut by a primary change, by outcome: ok, mismatch, too_big, not_replayable, failed, commit_unknown
//	sluice_client_connections_over_limit_total     counter   connections refused with 1040 at max_client_connections
//	sluice_backend_queued_requests                 gauge     requests waiting for a backend connection, all servers
//	sluice_server_queued_requests{server}          gauge     the same, per server
//	sluice_server_up{server}                       gauge     1 when the monitor counts the server up
//	sluice_server_role{server,role}                gauge     1 for the server's one current role (primary, replica, down, fenced, writable-ignored, unknown), 0 for the others
//	sluice_server_readable{server}                 gauge     1 when the server may take new reads as a replica
//	sluice_server_replication_lag_seconds{server}  gauge     replication lag; absent while the lag is unknown
//	sluice_server_connections{server,state}        gauge     backend connections, state="in_use" or "idle"
//	sluice_server_queries_total{server,route}      counter   commands run on the server, route="primary" or "replica"
//	sluice_server_errors_total{server}             counter   commands on the server that ended in an error
//	sluice_server_bytes_sent_total{server}         counter   command bytes sluice sent to the server
//	sluice_server_bytes_received_total{server}     counter   response bytes sluice relayed from the server
//	sluice_query_duration_seconds{route,kind}      histogram command latency seen by sluice, 0.1 ms to 10 s buckets
//	sluice_query_errors_total{route,kind}          counter   commands that ended in an error
//	sluice_reloads_total{result}                   counter   configuration reloads, result="ok" or "error"
//	sluice_config_errors_total                     counter   reloads refused because the configuration was invalid
//	sluice_config_last_reload_successful           gauge     1 unless the last reload was refused
//	sluice_failovers_total                         counter   failovers completed (automatic or operator-triggered)
//	sluice_failover_events_total{kind,result}      counter   failover, switchover, rejoin, fence, adopt by result ok/failed; refusals as kind="failover",result="refused"
//	sluice_failover_epoch                          gauge     current failover epoch
//	sluice_failover_alert                          gauge     1 while a primary loss is unhandled or a failover was refused
//	sluice_failover_last_pause_seconds{kind}       gauge     how long writes were held by the last successful switchover / failover
//	sluice_server_fenced{server}                   gauge     1 for a fenced old primary
//	sluice_server_cluster{server,cluster}          gauge     always 1: the server's cluster (join on server for a cluster label)
//	sluice_cluster_epoch{cluster}                  gauge     the cluster's failover epoch
//	sluice_cluster_alert{cluster}                  gauge     1 while the cluster's failover manager reports a problem
//	sluice_cluster_primary_up{cluster}             gauge     1 when the cluster has a primary taking writes
//	sluice_moves_total{result}                     counter   online moves ended: done, failed, cancelled, refused
//	sluice_move_rows_copied_total                  counter   rows the moves' snapshot copies wrote to target clusters
//	sluice_moves_running                           gauge     online moves not yet ended
//	sluice_causal_reads_total{result}              counter   reads that had writes to see, by outcome (ready, waited, timeout, no_replica)
//	sluice_digests                                 gauge     entries in the digest table
//	sluice_digest_evictions_total                  counter   digest entries evicted to make room
//	sluice_slow_queries_total                      counter   commands slower than slow_query.threshold
//	sluice_slow_queries_dropped_total              counter   slow log lines lost (queue full or write failed)
//	sluice_graphite_rounds_total{result}           counter   Graphite pushes, result="sent" or "dropped" (present once RunGraphite started)
//	sluice_build_info{version,revision,goversion}  gauge     always 1: which sluice runs (module version, VCS revision or "unknown", Go version)
//
// route is "primary" or "replica" as the router chose, "sluice" for
// commands sluice answered itself, and "other" for any future target. kind
// is sqlscan.Kind.String(). The per-server figures come from the topology
// snapshot and the pools at scrape time; queued requests have a total
// without labels and a separate per-server metric, so that sum() over
// either never counts twice. sluice_server_up carries only the server
// label: a role label there would start a new series at every failover;
// join sluice_server_role for the role.
package stats

import (
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Defaults for Options left at zero.
const (
	DefaultMaxDigests     = 1000
	DefaultMaxQueryLength = 1024
)

// Options tune a Stats.
type Options struct {
	// MaxDigests bounds the digest table (config digests.max); 0 means
	// DefaultMaxDigests.
	MaxDigests int
	// SlowThreshold: commands taking at least this long go to the slow
	// log. 0 turns the slow log off.
	SlowThreshold time.Duration
	// SlowLog receives the slow log's JSON lines (a file or os.Stderr);
	// nil turns the slow log off. Lines are written by a goroutine of
	// Stats, one Write call per line, never by the session.
	SlowLog io.Writer
	// MaxQueryLength truncates the query text in the slow log, in bytes;
	// 0 means DefaultMaxQueryLength and a negative value leaves the text
	// out (the digest is still written).
	MaxQueryLength int
	// Now is the clock (for tests); nil means time.Now.
	Now func() time.Time
}

// Source is what Stats reads from the running proxy at scrape time; it
// costs nothing per query.
type Source interface {
	Snapshot() *topology.Snapshot
	PoolStats() map[string]backend.Stats
	// ClientConns returns the client connections open now and accepted
	// since start.
	ClientConns() (current int64, total uint64)
}

// settings are the options that Update may change, published atomically
// so that Statement reads them without locking.
type settings struct {
	slowThreshold time.Duration
	slowLog       io.Writer
	maxQuery      int // < 0: no text
}

// Stats collects sluice's figures. Build it with New and stop it with
// Close.
type Stats struct {
	src Source
	now func() time.Time
	set atomic.Pointer[settings]

	servers serverMap
	lat     [nRoutes][]atomic.Pointer[latHist] // [route][kind], allocated on first use
	latMu   sync.Mutex

	digests *digestTable
	series  series

	refused    atomic.Uint64
	clientErrs errCounts[errKey]
	loginFails errCounts[string]
	replays    errCounts[string] // transactions cut by a primary change, by outcome
	reloadsOK  atomic.Uint64
	reloadErr  atomic.Uint64
	lastOK     atomic.Bool

	slowCount   atomic.Uint64
	slowDropped atomic.Uint64
	slowQ       chan slowEntry
	closeOnce   sync.Once
	done        chan struct{}
	slowDone    chan struct{}

	graphiteOn      atomic.Bool
	graphiteSent    atomic.Uint64
	graphiteDropped atomic.Uint64

	reg *prometheus.Registry // served by Handler: sluice's metrics, Go runtime, process
	own *prometheus.Registry // sluice's metrics only, for Graphite
}

var _ session.Observer = (*Stats)(nil)

// New builds a Stats reading src (which may be nil: the per-server and
// client connection figures are then left out) and starts the goroutine
// that writes the slow log; Close stops it.
func New(src Source, o Options) *Stats {
	if o.Now == nil {
		o.Now = time.Now
	}
	st := &Stats{
		src:      src,
		now:      o.Now,
		digests:  newDigestTable(maxDigests(o.MaxDigests)),
		slowQ:    make(chan slowEntry, slowQueue),
		done:     make(chan struct{}),
		slowDone: make(chan struct{}),
	}
	st.set.Store(newSettings(o))
	st.lastOK.Store(true)
	st.servers.init()
	for r := range st.lat {
		st.lat[r] = make([]atomic.Pointer[latHist], len(kindNames))
	}
	st.reg = prometheus.NewRegistry()
	st.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		(*collector)(st),
	)
	st.own = prometheus.NewRegistry()
	st.own.MustRegister((*collector)(st))
	go st.writeSlowLog()
	return st
}

func maxDigests(n int) int {
	if n <= 0 {
		return DefaultMaxDigests
	}
	return n
}

func newSettings(o Options) *settings {
	s := &settings{slowThreshold: o.SlowThreshold, slowLog: o.SlowLog, maxQuery: o.MaxQueryLength}
	if s.maxQuery == 0 {
		s.maxQuery = DefaultMaxQueryLength
	}
	return s
}

// Update applies new options after a reload: the digest table's bound
// (trimming it at once when it shrank) and the slow log's threshold,
// writer and text limit. Options.Now is ignored. When Update returns, the
// lines queued for the previous SlowLog writer have been written, so the
// caller may close it (a command finishing during the swap may still
// lose its line to the closed writer; it is counted as dropped).
func (st *Stats) Update(o Options) {
	old := st.set.Swap(newSettings(o))
	st.digests.setMax(maxDigests(o.MaxDigests))
	if old.slowLog == nil {
		return
	}
	// Wait until the writer has written what was queued before the swap
	// (at most 5 seconds, for a writer that blocks).
	ack := make(chan struct{})
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	select {
	case st.slowQ <- slowEntry{flush: ack}:
	case <-st.slowDone:
		return
	case <-timeout.C:
		return
	}
	select {
	case <-ack:
	case <-st.slowDone:
	case <-timeout.C:
	}
}

// Close stops the slow log writer after it has written the lines already
// queued (waiting at most 5 seconds for a writer that blocks). Statement
// may still be called afterwards; slow queries are then only counted.
func (st *Stats) Close() {
	st.closeOnce.Do(func() {
		close(st.done)
		select {
		case <-st.slowDone:
		case <-time.After(5 * time.Second):
		}
	})
}

// Statement records one finished client command. It is the hot path: no
// allocation once the digest is known, no lock shared between sessions.
func (st *Stats) Statement(_ *session.Session, ev *session.Event) {
	// When the command finished: from the event's own clock reading when
	// it has one (saving a clock read per command), else from Now.
	var now time.Time
	if ev.Start.IsZero() {
		now = st.now()
	} else {
		now = ev.Start.Add(ev.Duration)
	}
	shard := int(ev.Session) & shardMask
	route := routeIndex(ev.Target)
	kind := kindIndex(ev.Kind)
	ns := int64(ev.Duration)
	if ns < 0 {
		ns = 0
	}

	st.latency(route, kind).observe(shard, ns, ev.Err)
	if ev.Server != "" {
		st.servers.get(ev.Server).shards[shard].add(route, ev)
	}
	// The series' errors are counted by ClientError: every error a client
	// got, whether or not it ended a statement.
	st.series.add(now.Unix(), ns, false)

	var e *digestEntry
	if len(ev.SQL) > 0 {
		e = st.digests.observe(ev, ns, now.UnixNano())
	}
	if set := st.set.Load(); set.slowThreshold > 0 && ev.Duration >= set.slowThreshold {
		st.slow(set, ev, e, now)
	}
}

// Login counts failed logins (ok false), whatever the cause (LoginFailed
// counts them by cause). Accepted connections are counted by the Source.
func (st *Stats) Login(ok bool) {
	if !ok {
		st.refused.Add(1)
	}
}

// Reload counts a configuration reload; ok is false when the new
// configuration was refused.
func (st *Stats) Reload(ok bool) {
	if ok {
		st.reloadsOK.Add(1)
	} else {
		st.reloadErr.Add(1)
	}
	st.lastOK.Store(ok)
}

// CausalSource is implemented by a Source that routes causal reads: reads
// counted by outcome.
type CausalSource interface {
	CausalCounts() map[string]uint64
}

// FailoverSource is implemented by a Source that runs a failover manager.
type FailoverSource interface {
	FailoverReport() failover.Report
}

// latency returns the histogram for route and kind, creating it on first
// use so that /metrics shows only combinations that happened.
func (st *Stats) latency(route, kind int) *latHist {
	p := &st.lat[route][kind]
	if h := p.Load(); h != nil {
		return h
	}
	st.latMu.Lock()
	defer st.latMu.Unlock()
	if h := p.Load(); h != nil {
		return h
	}
	h := new(latHist)
	p.Store(h)
	return h
}

// seconds converts nanoseconds to seconds.
func seconds(ns float64) float64 { return ns / 1e9 }

// finite reports whether v can be written as a sample.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
