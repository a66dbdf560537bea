package stats

import (
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-proxy/sluice/internal/buildinfo"
	"github.com/sluice-proxy/sluice/internal/topology"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descClientConns      = desc("sluice_client_connections", "Client connections open now.")
	descClientConnsTotal = desc("sluice_client_connections_total", "Client connections accepted.")
	descClientRefused    = desc("sluice_client_connections_refused_total", "Client logins that failed, for any cause (sluice_client_login_failures_total has them by cause).")
	descClientOverLimit  = desc("sluice_client_connections_over_limit_total", "Client connections refused with 1040 because max_client_connections was reached.")
	descQueued           = desc("sluice_backend_queued_requests", "Requests waiting for a backend connection, all servers.")
	descServerQueued     = desc("sluice_server_queued_requests", "Requests waiting for a backend connection to the server.", "server")
	descServerUp         = desc("sluice_server_up", "1 when the monitor counts the server up.", "server")
	descServerRole       = desc("sluice_server_role", "1 for the server's one current role (primary, replica, down, fenced, writable-ignored, unknown), 0 for the others; only sluice's primary has role primary.", "server", "role")
	descServerReadable   = desc("sluice_server_readable", "1 when the server may take new reads as a replica.", "server")
	descServerLag        = desc("sluice_server_replication_lag_seconds", "Replication lag; absent while unknown.", "server")
	descServerConns      = desc("sluice_server_connections", "Backend connections to the server by state.", "server", "state")
	descServerQueries    = desc("sluice_server_queries_total", "Commands run on the server, by route.", "server", "route")
	descServerErrors     = desc("sluice_server_errors_total", "Commands on the server that ended in an error.", "server")
	descServerBytesSent  = desc("sluice_server_bytes_sent_total", "Command bytes sluice sent to the server.", "server")
	descServerBytesRecv  = desc("sluice_server_bytes_received_total", "Response bytes sluice received from the server.", "server")
	descQueryDuration    = desc("sluice_query_duration_seconds", "Command latency seen by sluice, by route and statement kind.", "route", "kind")
	descQueryErrors      = desc("sluice_query_errors_total", "Commands that ended in an error, by route and statement kind.", "route", "kind")
	descReloads          = desc("sluice_reloads_total", "Configuration reloads by result.", "result")
	descConfigErrors     = desc("sluice_config_errors_total", "Reloads refused because the configuration was invalid.")
	descLastReloadOK     = desc("sluice_config_last_reload_successful", "1 unless the last reload was refused.")
	descFailovers        = desc("sluice_failovers_total", "Failovers completed (automatic or operator-triggered).")
	descFailoverEvents   = desc("sluice_failover_events_total", "Primary changes and related actions by kind (failover, switchover, rejoin, fence, adopt) and result (ok, failed, refused).", "kind", "result")
	descFailoverEpoch    = desc("sluice_failover_epoch", "Current failover epoch (0 before the first primary is recorded).")
	descFailoverAlert    = desc("sluice_failover_alert", "1 while the failover manager reports a problem (a refused failover, an unconfirmed or unhandled primary loss).")
	descFailoverPause    = desc("sluice_failover_last_pause_seconds", "How long new writes were held by the last successful change of that kind.", "kind")
	descServerFenced     = desc("sluice_server_fenced", "1 when the server is a fenced old primary, never written to until rejoined.", "server")
	descDigests          = desc("sluice_digests", "Entries in the digest table.")
	descDigestEvictions  = desc("sluice_digest_evictions_total", "Digest entries evicted to make room for new ones.")
	descSlowQueries      = desc("sluice_slow_queries_total", "Commands slower than slow_query.threshold.")
	descSlowDropped      = desc("sluice_slow_queries_dropped_total", "Slow log lines lost because the queue was full or the write failed.")
	descGraphiteRounds   = desc("sluice_graphite_rounds_total", "Graphite pushes by result.", "result")
	descCausalReads      = desc("sluice_causal_reads_total", "Reads that had writes to see (routing.consistency), by how their server was found: ready (a replica known to have applied them), waited (MASTER_GTID_WAIT succeeded), timeout (it did not in causal_timeout), no_replica (no replica could catch up in time); the last two took routing.causal_fallback.", "result")
	descBuildInfo        = desc("sluice_build_info", "Always 1; the labels tell which sluice runs (revision \"unknown\" for a build without VCS information).", "version", "revision", "goversion")
	allDescs             = []*prometheus.Desc{
		descClientConns, descClientConnsTotal, descClientRefused, descClientOverLimit, descQueued,
		descServerQueued, descServerUp, descServerRole, descServerReadable, descServerLag, descServerConns,
		descServerQueries, descServerErrors, descServerBytesSent, descServerBytesRecv,
		descQueryDuration, descQueryErrors,
		descReloads, descConfigErrors, descLastReloadOK, descFailovers,
		descFailoverEvents, descFailoverEpoch, descFailoverAlert, descFailoverPause, descServerFenced,
		descDigests, descDigestEvictions, descSlowQueries, descSlowDropped, descGraphiteRounds,
		descCausalReads, descClientErrors, descLoginFailures, descReplays,
		descBuildInfo,
	}
	build          = buildinfo.Read()
	gauge, counter = prometheus.GaugeValue, prometheus.CounterValue
	boolValue      = map[bool]float64{false: 0, true: 1}
)

// collector produces sluice's metrics at scrape time from the sharded
// counters and the Source.
type collector Stats

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := (*Stats)(c)
	m := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	if st.src != nil {
		cur, total := st.src.ClientConns()
		m(descClientConns, gauge, float64(cur))
		m(descClientConnsTotal, counter, float64(total))
		var over uint64
		if o, ok := st.src.(interface{ RefusedTooMany() uint64 }); ok {
			over = o.RefusedTooMany()
		}
		m(descClientOverLimit, counter, float64(over))
	}
	m(descClientRefused, counter, float64(st.refused.Load()))
	st.collectClientErrors(m)
	st.collectReplays(m)
	m(descBuildInfo, gauge, 1, build.Version, build.ShortRevision(), build.GoVersion)

	st.collectServers(m)
	if st.src != nil {
		st.collectClusters(m)
		st.collectMoves(m)
	}

	for r := range st.lat {
		for k := range st.lat[r] {
			h := st.lat[r][k].Load()
			if h == nil {
				continue
			}
			cum, count, sum, errs := h.snapshot()
			ch <- prometheus.MustNewConstHistogram(descQueryDuration, count, sum, cum, routeNames[r], kindNames[k])
			m(descQueryErrors, counter, float64(errs), routeNames[r], kindNames[k])
		}
	}

	m(descReloads, counter, float64(st.reloadsOK.Load()), "ok")
	m(descReloads, counter, float64(st.reloadErr.Load()), "error")
	m(descConfigErrors, counter, float64(st.reloadErr.Load()))
	m(descLastReloadOK, gauge, boolValue[st.lastOK.Load()])
	st.collectFailover(m)
	if cs, ok := st.src.(CausalSource); ok {
		counts := cs.CausalCounts()
		for _, k := range sortedKeys(counts) {
			m(descCausalReads, counter, float64(counts[k]), k)
		}
	}
	m(descDigests, gauge, float64(st.digests.n.Load()))
	m(descDigestEvictions, counter, float64(st.digests.evictions.Load()))
	m(descSlowQueries, counter, float64(st.slowCount.Load()))
	m(descSlowDropped, counter, float64(st.slowDropped.Load()))
	if st.graphiteOn.Load() {
		m(descGraphiteRounds, counter, float64(st.graphiteSent.Load()), "sent")
		m(descGraphiteRounds, counter, float64(st.graphiteDropped.Load()), "dropped")
	}
}

// collectServers writes the per-server metrics: state from the topology
// snapshot, connections from the pools, counters from Statement. A server
// in the snapshot always has its counters, at zero until it serves.
func (st *Stats) collectServers(m func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	var snap *topology.Snapshot
	if st.src != nil {
		snap = st.src.Snapshot()
		var queued int
		pools := st.src.PoolStats()
		for _, name := range sortedKeys(pools) {
			p := pools[name]
			queued += p.Waiting
			m(descServerQueued, gauge, float64(p.Waiting), name)
			m(descServerConns, gauge, float64(p.InUse), name, "in_use")
			m(descServerConns, gauge, float64(p.Idle), name, "idle")
		}
		m(descQueued, gauge, float64(queued))
	}
	var snaps []*topology.Snapshot
	if snap != nil {
		snaps = st.clusterSnapshots()
	}
	var names []string
	for _, snap := range snaps {
		for i := range snap.Servers {
			names = append(names, snap.Servers[i].Name)
		}
	}
	if snaps != nil {
		st.servers.ensure(names)
	}
	for _, snap := range snaps {
		for i := range snap.Servers {
			s := &snap.Servers[i]
			m(descServerUp, gauge, boolValue[s.Up], s.Name)
			role := snap.RoleName(i)
			for _, r := range topology.RoleNames {
				m(descServerRole, gauge, boolValue[role == r], s.Name, r)
			}
			m(descServerReadable, gauge, boolValue[s.Readable], s.Name)
			m(descServerFenced, gauge, boolValue[s.Fenced], s.Name)
			if s.LagKnown {
				m(descServerLag, gauge, s.Lag.Seconds(), s.Name)
			}
		}
	}
	servers := st.servers.all()
	for _, name := range sortedKeys(servers) {
		t := servers[name].totals()
		for r, n := range t.queries {
			if n > 0 || r == routePrimary || r == routeReplica {
				m(descServerQueries, counter, float64(n), name, routeNames[r])
			}
		}
		m(descServerErrors, counter, float64(t.errors), name)
		m(descServerBytesSent, counter, float64(t.bytesOut), name)
		m(descServerBytesRecv, counter, float64(t.bytesIn), name)
	}
}

// collectFailover writes the failover manager's figures; a Source without
// one reports no failovers.
func (st *Stats) collectFailover(m func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	fs, ok := st.src.(FailoverSource)
	if !ok {
		m(descFailovers, counter, 0)
		return
	}
	r := fs.FailoverReport()
	m(descFailovers, counter, float64(r.Counts["failover_ok"]))
	m(descFailoverEpoch, gauge, float64(r.Epoch))
	m(descFailoverAlert, gauge, boolValue[r.Alert != ""])
	for _, k := range sortedKeys(r.Counts) {
		kind, result, found := strings.Cut(k, "_")
		if !found {
			kind, result = "failover", k // "refused"
		}
		m(descFailoverEvents, counter, float64(r.Counts[k]), kind, result)
	}
	seen := map[string]bool{}
	for _, h := range r.History { // newest first
		if h.OK && h.PauseMS > 0 && !seen[h.Kind] {
			seen[h.Kind] = true
			m(descFailoverPause, gauge, h.PauseMS/1000, h.Kind)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Handler serves /metrics from Stats' own registry (never the global
// one): sluice's metrics plus the Go runtime and process collectors.
func (st *Stats) Handler() http.Handler {
	// A collector that fails leaves out its own metrics, not the scrape.
	return promhttp.HandlerFor(st.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gather returns the metrics Handler serves, as metric families sorted by
// name.
func (st *Stats) Gather() ([]*dto.MetricFamily, error) { return st.reg.Gather() }
