package stats

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/buildinfo"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/topology"
)

func testSource() *fakeSource {
	return &fakeSource{
		snap: &topology.Snapshot{Primary: 0, Servers: []topology.Server{
			{Name: "db1", Up: true, Role: topology.RolePrimary, LagKnown: false},
			{Name: "db2", Up: true, Role: topology.RoleReplica, Lag: 1500 * time.Millisecond, LagKnown: true, Readable: true},
			{Name: "db3.example", Up: false, Role: topology.RoleUnknown, Fenced: true},
		}},
		pools: map[string]backend.Stats{
			"db1":         {Open: 3, Idle: 2, InUse: 1},
			"db2":         {Open: 5, Idle: 1, InUse: 4, Waiting: 2},
			"db3.example": {Waiting: 1},
		},
		current: 7,
		total:   42,
	}
}

func TestMetrics(t *testing.T) {
	st := newStats(t, testSource(), Options{})
	st.Statement(nil, &event{Session: 1, User: "app", SQL: []byte("SELECT 1"), Kind: "select", Target: "replica", Server: "db2",
		Duration: 10 * time.Millisecond, Rows: 5, BytesIn: 30, BytesOut: 200})
	st.Statement(nil, &event{Session: 2, User: "app", SQL: []byte("SELECT 2"), Kind: "select", Target: "replica", Server: "db2",
		Duration: 3 * time.Second, Rows: 1, BytesIn: 10, BytesOut: 100})
	st.Statement(nil, &event{Session: 3, User: "app", SQL: []byte("UPDATE t SET a = 1"), Kind: "write", Target: "primary", Server: "db1",
		Duration: 2 * time.Millisecond, Err: true, BytesIn: 20, BytesOut: 11})
	st.Statement(nil, &event{Session: 3, User: "app", SQL: []byte("SET NAMES utf8mb4"), Kind: "set", Duration: 50 * time.Microsecond})
	st.Statement(nil, &event{Session: 4, Kind: "no-such-kind", Target: "shard", Duration: time.Millisecond})
	st.Login(false)
	st.Login(false)
	st.Login(true)
	st.LoginFailed("bad_credentials")
	st.LoginFailed("default_database_unavailable")
	st.ClientError(9001, "server_unreachable")
	st.ClientError(9001, "server_unreachable")
	st.ClientError(1146, "server")
	st.Reload(true)
	st.Reload(false)

	mfs := scrape(t, st)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_client_connections", nil, 7},
		{"sluice_client_connections_total", nil, 42},
		{"sluice_client_connections_refused_total", nil, 2},
		{"sluice_client_login_failures_total", []string{"cause=bad_credentials"}, 1},
		{"sluice_client_login_failures_total", []string{"cause=default_database_unavailable"}, 1},
		{"sluice_client_errors_total", []string{"cause=server_unreachable", "code=9001"}, 2},
		{"sluice_client_errors_total", []string{"cause=server", "code=1146"}, 1},
		{"sluice_build_info", []string{"goversion=" + runtime.Version(), "revision=" + buildinfo.Read().ShortRevision(), "version=" + buildinfo.Read().Version}, 1},
		{"sluice_backend_queued_requests", nil, 3},
		{"sluice_server_queued_requests", []string{"server=db2"}, 2},
		{"sluice_server_queued_requests", []string{"server=db3.example"}, 1},
		{"sluice_server_up", []string{"server=db1"}, 1},
		{"sluice_server_up", []string{"server=db3.example"}, 0},
		{"sluice_server_role", []string{"role=primary", "server=db1"}, 1},
		{"sluice_server_role", []string{"role=replica", "server=db1"}, 0},
		{"sluice_server_role", []string{"role=replica", "server=db2"}, 1},
		{"sluice_server_role", []string{"role=fenced", "server=db3.example"}, 1},
		{"sluice_server_role", []string{"role=down", "server=db3.example"}, 0},
		{"sluice_server_role", []string{"role=unknown", "server=db3.example"}, 0},
		{"sluice_server_readable", []string{"server=db2"}, 1},
		{"sluice_server_readable", []string{"server=db1"}, 0},
		{"sluice_server_replication_lag_seconds", []string{"server=db2"}, 1.5},
		{"sluice_server_connections", []string{"server=db2", "state=in_use"}, 4},
		{"sluice_server_connections", []string{"server=db2", "state=idle"}, 1},
		{"sluice_server_connections", []string{"server=db1", "state=idle"}, 2},
		{"sluice_server_queries_total", []string{"route=replica", "server=db2"}, 2},
		{"sluice_server_queries_total", []string{"route=primary", "server=db2"}, 0},
		{"sluice_server_queries_total", []string{"route=primary", "server=db1"}, 1},
		{"sluice_server_queries_total", []string{"route=primary", "server=db3.example"}, 0},
		{"sluice_server_errors_total", []string{"server=db1"}, 1},
		{"sluice_server_errors_total", []string{"server=db2"}, 0},
		{"sluice_server_bytes_sent_total", []string{"server=db2"}, 40},
		{"sluice_server_bytes_received_total", []string{"server=db2"}, 300},
		{"sluice_server_bytes_received_total", []string{"server=db1"}, 11},
		{"sluice_query_errors_total", []string{"kind=write", "route=primary"}, 1},
		{"sluice_query_errors_total", []string{"kind=select", "route=replica"}, 0},
		{"sluice_query_errors_total", []string{"kind=unknown", "route=other"}, 0},
		{"sluice_reloads_total", []string{"result=ok"}, 1},
		{"sluice_reloads_total", []string{"result=error"}, 1},
		{"sluice_config_errors_total", nil, 1},
		{"sluice_config_last_reload_successful", nil, 0},
		{"sluice_failovers_total", nil, 1},
		{"sluice_failover_epoch", nil, 4},
		{"sluice_failover_alert", nil, 1},
		{"sluice_failover_events_total", []string{"kind=switchover", "result=ok"}, 2},
		{"sluice_failover_events_total", []string{"kind=failover", "result=refused"}, 1},
		{"sluice_failover_last_pause_seconds", []string{"kind=switchover"}, 0.012},
		{"sluice_failover_last_pause_seconds", []string{"kind=failover"}, 0.25},
		{"sluice_server_fenced", []string{"server=db3.example"}, 1},
		{"sluice_causal_reads_total", []string{"result=ready"}, 7},
		{"sluice_causal_reads_total", []string{"result=waited"}, 3},
		{"sluice_causal_reads_total", []string{"result=timeout"}, 1},
		{"sluice_causal_reads_total", []string{"result=no_replica"}, 0},
		{"sluice_digests", nil, 3}, // SELECT 1 and SELECT 2 share one
		{"sluice_digest_evictions_total", nil, 0},
		{"sluice_slow_queries_total", nil, 0},
	} {
		if got := value(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if m := sample(mfs, "sluice_server_replication_lag_seconds", "server=db1"); m != nil {
		t.Errorf("lag of a server whose lag is unknown = %v, want no sample", m)
	}
	if m := sample(mfs, "sluice_server_queries_total", "route=sluice", "server=db1"); m != nil {
		t.Error("route=sluice reported for a server")
	}
	if mfs["sluice_graphite_rounds_total"] != nil {
		t.Error("graphite rounds reported while RunGraphite never ran")
	}

	h := sample(mfs, "sluice_query_duration_seconds", "kind=select", "route=replica").GetHistogram()
	if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-3.01) > 1e-9 {
		t.Errorf("select/replica histogram count %d sum %v, want 2 and 3.01", h.GetSampleCount(), h.GetSampleSum())
	}
	wantCum := map[float64]uint64{0.005: 0, 0.01: 1, 2.5: 1, 5: 2, 10: 2, math.Inf(1): 2}
	for _, b := range h.GetBucket() {
		if w, ok := wantCum[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if n := len(h.GetBucket()); n != len(promBounds)+1 { // and +Inf
		t.Errorf("%d buckets, want %d", n, len(promBounds))
	}
	if h := sample(mfs, "sluice_query_duration_seconds", "kind=set", "route=sluice"); h.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("commands answered by sluice: %v, want one under route=sluice", h)
	}
	if sample(mfs, "sluice_query_duration_seconds", "kind=delete", "route=primary") != nil ||
		sample(mfs, "sluice_query_duration_seconds", "kind=select", "route=primary") != nil {
		t.Error("a histogram reported for a route and kind that never happened")
	}
	if mfs["go_goroutines"] == nil || mfs["process_cpu_seconds_total"] == nil && mfs["process_start_time_seconds"] == nil && isLinux() {
		t.Error("the Go and process collectors are missing")
	}
}

func isLinux() bool { _, err := os.Stat("/proc/self/stat"); return err == nil }

func TestMetricsWithoutSource(t *testing.T) {
	st := newStats(t, nil, Options{})
	st.Statement(nil, query("SELECT 1", time.Millisecond))
	mfs := scrape(t, st)
	if mfs["sluice_client_connections"] != nil || mfs["sluice_server_up"] != nil {
		t.Error("figures of a missing Source reported")
	}
	if got := value(t, mfs, "sluice_server_queries_total", "route=replica", "server=db2"); got != 1 {
		t.Errorf("queries on db2 = %v, want 1", got)
	}
}

// TestMetricNamesLintAndDocumented runs Prometheus' own linter over every
// sluice_ metric and checks that the package doc lists each one.
func TestMetricNamesLintAndDocumented(t *testing.T) {
	st := newStats(t, testSource(), Options{SlowThreshold: time.Nanosecond})
	st.graphiteOn.Store(true)
	st.Statement(nil, query("SELECT 1", time.Millisecond))
	st.ClientError(9001, "server_unreachable")
	st.LoginFailed("bad_credentials")
	st.TransactionReplay("ok")
	mfs, err := st.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	doc, err := os.ReadFile("stats.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sluice_") {
			continue
		}
		n++
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "//\t"+mf.GetName()) {
			t.Errorf("%s is not listed in the package doc", mf.GetName())
		}
	}
	if n != len(allDescs) {
		t.Errorf("%d sluice_ metric families, want %d (one per Desc)", n, len(allDescs))
	}
	problems, err := promlint.New(&buf).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestKindsAndRoutes(t *testing.T) {
	if kindNames[0] != "unknown" || kindIndex("select") == 0 || kindNames[kindIndex("select")] != "select" {
		t.Errorf("kinds = %v", kindNames)
	}
	if kindIndex("other") == 0 || kindIndex("bogus") != 0 {
		t.Errorf("kindIndex(other) = %d, kindIndex(bogus) = %d", kindIndex("other"), kindIndex("bogus"))
	}
	for i, name := range kindNames {
		if kindIndex(name) != i || kindIndexes[name] != i {
			t.Errorf("kindIndex(%q) = %d, want %d", name, kindIndex(name), i)
		}
	}
	if len(kindNames) < int(sqlscan.KindOther)+1 {
		t.Errorf("%d kinds, sqlscan has %d", len(kindNames), sqlscan.KindOther+1)
	}
	for target, want := range map[string]string{"primary": "primary", "replica": "replica", "": "sluice", "shard": "other"} {
		if got := routeNames[routeIndex(target)]; got != want {
			t.Errorf("route of %q = %s, want %s", target, got, want)
		}
	}
}
