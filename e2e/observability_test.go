package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/stats"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// obsSluice is a sluice with statistics wired as `sluice run` wires them,
// and its admin API served by an httptest server.
type obsSluice struct {
	p     *proxy.Proxy
	st    *stats.Stats
	api   *httptest.Server
	topo  *testbed.Topology
	token string // the http_token, "" when none
}

// obsOpts adjust obsStart.
type obsOpts struct {
	stats stats.Options
	users string            // extra user entries (YAML list items)
	token string            // http_token
	topo  *testbed.Topology // nil: the shared one
	yaml  string            // extra top-level YAML
}

// obsStart runs an in-process sluice in front of the shared topology with
// a Stats observer set before the proxy starts (startSluice runs without
// one), and serves httpapi.Handler(p, st). Everything stops when the test
// ends.
func obsStart(t testing.TB, o obsOpts) *obsSluice {
	t.Helper()
	topo := o.topo
	if topo == nil {
		topo = shared
	}
	yaml := o.yaml
	if o.token != "" {
		yaml += fmt.Sprintf("http_token: %s\n", o.token)
	}
	var st *stats.Stats
	p := startSluice(t, sluiceOpts{topo: topo, yaml: yaml, users: o.users, beforeStart: func(p *proxy.Proxy) {
		st = stats.New(p, o.stats)
		p.SetObserver(st)
		// Registered before startSluice's own cleanup, so it runs after
		// the proxy has closed and no session can still report to it.
		t.Cleanup(st.Close)
	}})
	api := httptest.NewServer(httpapi.Handler(p, st))
	t.Cleanup(api.Close)
	waitFor(t, 10*time.Second, "sluice sees a primary and every replica, with their lag", func() bool {
		snap := p.Monitor().Snapshot()
		if snap.Primary < 0 {
			return false
		}
		for i, s := range snap.Servers {
			if !s.Up || (i != snap.Primary && !s.LagKnown) {
				return false
			}
		}
		return true
	})
	return &obsSluice{p: p, st: st, api: api, topo: topo, token: o.token}
}

// request sends an admin API request and returns the status and body.
func (s *obsSluice) request(t testing.TB, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.api.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.api.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, body
}

// getJSON decodes a 200 answer to GET path into v.
func (s *obsSluice) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	code, body := s.request(t, http.MethodGet, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// obsMetrics is one /metrics scrape, parsed by Prometheus' own text parser.
type obsMetrics map[string]*dto.MetricFamily

func (s *obsSluice) scrape(t testing.TB) obsMetrics {
	t.Helper()
	code, body := s.request(t, http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse as the Prometheus text format: %v", err)
	}
	return mfs
}

// metric returns the sample of name whose labels include the given ones
// (name=value pairs); ok is false when there is none.
func (m obsMetrics) metric(name string, labels ...string) (*dto.Metric, bool) {
	mf := m[name]
	if mf == nil {
		return nil, false
	}
next:
	for _, x := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range x.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return x, true
	}
	return nil, false
}

// value returns a counter's or gauge's value (a histogram's count), 0 when
// the sample is absent.
func (m obsMetrics) value(name string, labels ...string) float64 {
	x, ok := m.metric(name, labels...)
	if !ok {
		return 0
	}
	switch {
	case x.Counter != nil:
		return x.GetCounter().GetValue()
	case x.Gauge != nil:
		return x.GetGauge().GetValue()
	case x.Histogram != nil:
		return float64(x.GetHistogram().GetSampleCount())
	}
	return x.GetUntyped().GetValue()
}

// obsReplicas returns the names of the topology's replicas.
func obsReplicas(topo *testbed.Topology) []string {
	var out []string
	for _, s := range topo.Servers {
		if s.Name != topo.Primary.Name {
			out = append(out, s.Name)
		}
	}
	return out
}

func TestMetricsCountAKnownWorkload(t *testing.T) {
	s := obsStart(t, obsOpts{})
	schema := newSchema(t, s.topo, "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
	primary, replicas := s.topo.Primary.Name, obsReplicas(s.topo)

	before := s.scrape(t)
	const inserts, selects = 20, 30
	// Writes and reads on separate sessions, so that read-your-writes does
	// not send the reads to the primary.
	w := conn(t, openDB(t, s.p, schema))
	for i := range inserts {
		mustExec(t, w, fmt.Sprintf("INSERT INTO t (v) VALUES (%d)", i))
	}
	r := conn(t, openDB(t, s.p, schema))
	for range selects {
		queryString(t, r, "SELECT COUNT(*) FROM t")
	}
	// A wrong password is refused and counted.
	bad := mysql.NewConfig()
	bad.User, bad.Passwd, bad.Net, bad.Addr = testbed.AppUser, "wrong-"+testbed.AppPassword, "tcp", s.p.Addr().String()
	badDB, err := sql.Open("mysql", bad.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	if err := badDB.Ping(); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	badDB.Close()

	var after obsMetrics
	// The refused login is counted when the session ends, which may be a
	// moment after the client saw the error.
	waitFor(t, 5*time.Second, "the refused login is counted", func() bool {
		after = s.scrape(t)
		return after.value("sluice_client_connections_refused_total") > before.value("sluice_client_connections_refused_total")
	})
	d := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}

	if got := d("sluice_server_queries_total", "server", primary, "route", "primary"); got != inserts {
		t.Errorf("primary's route=primary queries grew by %v, want %d", got, inserts)
	}
	var replicaReads float64
	for _, name := range replicas {
		replicaReads += d("sluice_server_queries_total", "server", name, "route", "replica")
	}
	if replicaReads != selects {
		t.Errorf("replicas' route=replica queries grew by %v in total, want %d", replicaReads, selects)
	}
	if got := d("sluice_query_duration_seconds", "route", "primary", "kind", "write"); got != inserts {
		t.Errorf("sluice_query_duration_seconds_count{route=primary,kind=write} grew by %v, want %d", got, inserts)
	}
	if got := d("sluice_query_duration_seconds", "route", "replica", "kind", "select"); got != selects {
		t.Errorf("sluice_query_duration_seconds_count{route=replica,kind=select} grew by %v, want %d", got, selects)
	}
	if h, ok := after.metric("sluice_query_duration_seconds", "route", "primary", "kind", "write"); !ok {
		t.Error("no latency histogram for route=primary kind=write")
	} else {
		hist := h.GetHistogram()
		if hist.GetSampleSum() <= 0 {
			t.Errorf("latency histogram sum %v, want > 0", hist.GetSampleSum())
		}
		prev := uint64(0)
		for _, b := range hist.GetBucket() {
			if b.GetCumulativeCount() < prev {
				t.Errorf("histogram buckets not cumulative at le=%v", b.GetUpperBound())
			}
			prev = b.GetCumulativeCount()
		}
		if prev > hist.GetSampleCount() {
			t.Errorf("last finite bucket %d > count %d", prev, hist.GetSampleCount())
		}
	}
	if got := d("sluice_client_connections_total"); got < 3 {
		t.Errorf("sluice_client_connections_total grew by %v, want >= 3 (two sessions and a refused login)", got)
	}
	if got := d("sluice_client_connections_refused_total"); got != 1 {
		t.Errorf("sluice_client_connections_refused_total grew by %v, want 1", got)
	}
	if got := after.value("sluice_client_connections"); got < 2 {
		t.Errorf("sluice_client_connections = %v with two sessions open", got)
	}
	if got := d("sluice_server_bytes_sent_total", "server", primary); got <= 0 {
		t.Errorf("bytes sent to the primary grew by %v", got)
	}
	if got := d("sluice_server_bytes_received_total", "server", primary); got <= 0 {
		t.Errorf("bytes received from the primary grew by %v", got)
	}
	for _, srv := range s.topo.Servers {
		if got := after.value("sluice_server_up", "server", srv.Name); got != 1 {
			t.Errorf("sluice_server_up{server=%s} = %v, want 1", srv.Name, got)
		}
		role := "replica"
		if srv.Name == primary {
			role = "primary"
		}
		for _, r := range []string{"primary", "replica", "unknown"} {
			want := 0.0
			if r == role {
				want = 1
			}
			if got, ok := after.metric("sluice_server_role", "server", srv.Name, "role", r); !ok || got.GetGauge().GetValue() != want {
				t.Errorf("sluice_server_role{server=%s,role=%s} = %v (present %v), want %v", srv.Name, r, got.GetGauge().GetValue(), ok, want)
			}
		}
		_, hasLag := after.metric("sluice_server_replication_lag_seconds", "server", srv.Name)
		if role == "replica" && !hasLag {
			t.Errorf("no sluice_server_replication_lag_seconds for replica %s", srv.Name)
		}
		if _, ok := after.metric("sluice_server_connections", "server", srv.Name, "state", "idle"); !ok {
			t.Errorf("no sluice_server_connections{server=%s,state=idle}", srv.Name)
		}
	}
	if mf := after["sluice_server_queries_total"]; mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("sluice_server_queries_total has type %v", mf.GetType())
	}
	if mf := after["sluice_query_duration_seconds"]; mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("sluice_query_duration_seconds has type %v", mf.GetType())
	}
}

// obsGraphiteLine is one line the test Graphite receiver got.
type obsGraphiteLine struct {
	path  string
	value float64
	ts    int64
	at    time.Time // when it arrived
	conn  int       // which accepted connection carried it
}

// obsGraphite is a carbon plaintext receiver: a TCP listener that parses
// every line it gets and reports malformed ones.
type obsGraphite struct {
	t     testing.TB
	addr  string
	lines chan obsGraphiteLine

	mu      sync.Mutex
	ln      net.Listener
	conns   []net.Conn
	nconn   int
	bad     []string
	readers sync.WaitGroup
}

var obsGraphiteRe = regexp.MustCompile(`^([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*) (\S+) ([0-9]+)$`)

func obsListenGraphite(t testing.TB, addr string) *obsGraphite {
	t.Helper()
	g := &obsGraphite{t: t, lines: make(chan obsGraphiteLine, 100000)}
	g.listen(addr)
	t.Cleanup(g.stop)
	return g
}

func (g *obsGraphite) listen(addr string) {
	g.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		g.t.Fatalf("graphite receiver listen %s: %v", addr, err)
	}
	g.mu.Lock()
	g.ln, g.addr = ln, ln.Addr().String()
	g.mu.Unlock()
	g.readers.Add(1)
	go func() {
		defer g.readers.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			g.nconn++
			id := g.nconn
			g.conns = append(g.conns, c)
			g.mu.Unlock()
			g.readers.Add(1)
			go g.read(c, id)
		}
	}()
}

func (g *obsGraphite) read(c net.Conn, id int) {
	defer g.readers.Done()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		m := obsGraphiteRe.FindStringSubmatch(line)
		var v float64
		var ts int64
		var err error
		if m != nil {
			v, err = strconv.ParseFloat(m[2], 64)
			if err == nil {
				ts, err = strconv.ParseInt(m[3], 10, 64)
			}
		}
		if m == nil || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			g.mu.Lock()
			g.bad = append(g.bad, line)
			g.mu.Unlock()
			continue
		}
		g.lines <- obsGraphiteLine{path: m[1], value: v, ts: ts, at: time.Now(), conn: id}
	}
}

// stop closes the listener and every connection it accepted: a receiver
// that goes away.
func (g *obsGraphite) stop() {
	g.mu.Lock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
	g.mu.Unlock()
	g.readers.Wait()
}

func (g *obsGraphite) malformed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.bad)
}

// obsRound is one push: the lines that carried one timestamp.
type obsRound struct {
	ts    int64
	first time.Time
	conn  int
	paths map[string]float64
}

// rounds collects lines until n complete rounds have arrived after (a
// round is complete once a line of a later round arrives).
func (g *obsGraphite) rounds(t testing.TB, n int, after time.Time, timeout time.Duration) []obsRound {
	t.Helper()
	deadline := time.After(timeout)
	var out []obsRound
	for {
		select {
		case l := <-g.lines:
			if l.at.Before(after) {
				continue
			}
			if len(out) == 0 || out[len(out)-1].ts != l.ts {
				if len(out) == n {
					return out
				}
				out = append(out, obsRound{ts: l.ts, first: l.at, conn: l.conn, paths: map[string]float64{}})
			}
			out[len(out)-1].paths[l.path] = l.value
		case <-deadline:
			t.Fatalf("graphite receiver: %d complete rounds after %s, want %d", max(len(out)-1, 0), timeout, n)
		}
	}
}

func TestGraphitePushesOnScheduleAndAfterReceiverRestart(t *testing.T) {
	s := obsStart(t, obsOpts{})
	g := obsListenGraphite(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.st.RunGraphite(ctx, g.addr, "sluice", time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Some traffic, so that the per-second figures are there.
	db := openDB(t, s.p, "")
	for range 5 {
		queryString(t, db, "SELECT 1")
	}
	primary := s.topo.Primary.Name

	check := func(rounds []obsRound) {
		t.Helper()
		for i, r := range rounds {
			if now := time.Now().Unix(); r.ts < now-10 || r.ts > now+1 {
				t.Errorf("round %d has timestamp %d, now is %d", i, r.ts, now)
			}
			for _, p := range []string{"sluice.server_up." + primary, "sluice.queries_per_second", "sluice.client_connections",
				"sluice.server_queries_total." + primary + ".primary", "sluice.server_role." + primary + ".primary"} {
				if _, ok := r.paths[p]; !ok {
					t.Errorf("round %d (ts %d) has no %s; got %v", i, r.ts, p, slices.Sorted(maps.Keys(r.paths)))
				}
			}
			if v := r.paths["sluice.server_up."+primary]; v != 1 {
				t.Errorf("round %d: sluice.server_up.%s = %v, want 1", i, primary, v)
			}
			if i == 0 {
				continue
			}
			// On schedule: one round a second (a late tick may skip a
			// timestamp, never repeat one).
			prev := rounds[i-1]
			if gap := r.ts - prev.ts; gap < 1 || gap > 2 {
				t.Errorf("rounds %d and %d are %d s apart by their timestamps, want 1 (2 at most)", i-1, i, gap)
			}
			// A late round is followed by one on time, so only the
			// upper bound holds on a loaded machine.
			if gap := r.first.Sub(prev.first); r.conn == prev.conn && gap > 2500*time.Millisecond {
				t.Errorf("rounds %d and %d arrived %s apart, want about 1s", i-1, i, gap)
			}
		}
	}

	start := time.Now()
	first := g.rounds(t, 3, start, 10*time.Second)
	check(first)
	if el := first[2].first.Sub(first[0].first); el > 4*time.Second {
		t.Errorf("3 rounds took %s at a 1s interval", el)
	}

	// The receiver restarts on the same port: the pusher notices the
	// closed connection, reconnects, and the lines come again.
	addr := g.addr
	g.stop()
	restarted := time.Now()
	g.listen(addr)
	again := g.rounds(t, 2, restarted, 15*time.Second)
	check(again)
	for _, r := range again {
		if r.conn < 2 {
			t.Errorf("round at ts %d came on connection %d, want a new connection after the restart", r.ts, r.conn)
		}
	}
	t.Logf("graphite: 3 rounds in %s, first round after the restart %s later, %d paths a round",
		first[2].first.Sub(first[0].first).Round(time.Millisecond), again[0].first.Sub(restarted).Round(time.Millisecond), len(again[0].paths))
	if bad := g.malformed(); len(bad) > 0 {
		t.Errorf("%d malformed lines, e.g. %q", len(bad), bad[0])
	}
	if m := s.scrape(t); m.value("sluice_graphite_rounds_total", "result", "sent") < 5 {
		t.Errorf("sluice_graphite_rounds_total{result=sent} = %v, want >= 5", m.value("sluice_graphite_rounds_total", "result", "sent"))
	}
}

// obsCreateAccount creates a MariaDB account that may read everything,
// dropped when the test ends.
func obsCreateAccount(t testing.TB, topo *testbed.Topology, name, password string) {
	t.Helper()
	acct := fmt.Sprintf("'%s'@'%%'", name)
	if err := topo.Primary.Exec(context.Background(), fmt.Sprintf("CREATE OR REPLACE USER %s IDENTIFIED BY '%s'; GRANT SELECT ON *.* TO %s", acct, password, acct)); err != nil {
		t.Fatal(err)
	}
	syncReplicas(t, topo)
	t.Cleanup(func() { topo.Primary.Exec(context.Background(), "DROP USER IF EXISTS "+acct) })
}

// obsQuerier is a *sql.DB or a *sql.Conn.
type obsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func TestDigestsOfAKnownWorkload(t *testing.T) {
	obsCreateAccount(t, shared, "obs_reporter", "rep-secret")
	s := obsStart(t, obsOpts{users: "  - {name: obs_reporter, password: rep-secret}\n"})
	var ddl []string
	ddl = append(ddl, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	for i := 1; i <= 10; i++ {
		ddl = append(ddl, fmt.Sprintf("INSERT INTO t VALUES (%d, 0)", i))
	}
	schema := newSchema(t, s.topo, ddl...)
	other := newSchema(t, s.topo, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	if code, body := s.request(t, http.MethodPost, "/api/digests/reset"); code != http.StatusOK {
		t.Fatalf("reset: %d %s", code, body)
	}

	c := conn(t, openDB(t, s.p, schema))
	rows := func(q obsQuerier, query string, args ...any) int64 {
		t.Helper()
		rs, err := q.QueryContext(context.Background(), query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rs.Close()
		var n int64
		for rs.Next() {
			n++
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Text protocol: literals in the statement.
	var wantRowsByID, wantRowsIn int64
	for i := 1; i <= 10; i++ {
		wantRowsByID += rows(c, fmt.Sprintf("SELECT * FROM t WHERE id = %d", i))
	}
	for k := 1; k <= 5; k++ {
		ids := make([]string, k)
		for j := range ids {
			ids[j] = strconv.Itoa(j + 1)
		}
		wantRowsIn += rows(c, "select *   from t where id in ("+strings.Join(ids, ",")+")")
	}
	for i := 1; i <= 3; i++ {
		mustExec(t, c, fmt.Sprintf("UPDATE t SET v = v + 1 WHERE id = %d", i))
	}
	// Binary protocol: go-sql-driver prepares statements with arguments.
	for i := 1; i <= 4; i++ {
		wantRowsByID += rows(c, "SELECT * FROM t WHERE id = ?", i)
	}
	wantRowsIn += rows(c, "SELECT * FROM t WHERE id IN (?, ?)", 1, 2)
	wantRowsIn += rows(c, "SELECT * FROM t WHERE id IN (?, ?, ?, ?)", 1, 2, 3, 4)
	mustExec(t, c, "UPDATE t SET v = v + ? WHERE id = ?", 1, 4)
	mustExec(t, c, "UPDATE t SET v = v + ? WHERE id = ?", 1, 5)
	// The same statement for another schema and another user: entries of
	// their own.
	o := conn(t, openDB(t, s.p, other))
	for i := 1; i <= 3; i++ {
		rows(o, fmt.Sprintf("SELECT * FROM t WHERE id = %d", i))
	}
	rc := mysql.NewConfig()
	rc.User, rc.Passwd, rc.Net, rc.Addr, rc.DBName = "obs_reporter", "rep-secret", "tcp", s.p.Addr().String(), schema
	rdb, err := sql.Open("mysql", rc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for i := 1; i <= 2; i++ {
		rows(rdb, fmt.Sprintf("SELECT * FROM t WHERE id = %d", i))
	}

	type key struct{ digest, user, schema string }
	type want struct {
		count, rows, affected int64
	}
	app := testbed.AppUser
	expect := map[key]want{
		{"SELECT * FROM t WHERE id = ?", app, schema}:            {14, wantRowsByID, 0},
		{"SELECT * FROM t WHERE id IN (...)", app, schema}:       {7, wantRowsIn, 0},
		{"UPDATE t SET v = v + ? WHERE id = ?", app, schema}:     {5, 0, 5},
		{"SELECT * FROM t WHERE id = ?", app, other}:             {3, 0, 0},
		{"SELECT * FROM t WHERE id = ?", "obs_reporter", schema}: {2, 2, 0},
	}
	if wantRowsByID != 14 || wantRowsIn != 21 {
		t.Fatalf("the workload read %d and %d rows, want 14 and 21 (are the replicas behind?)", wantRowsByID, wantRowsIn)
	}

	var got []stats.DigestView
	s.getJSON(t, "/api/digests", &got)
	seen := map[key]stats.DigestView{}
	for _, d := range got {
		seen[key{d.Digest, d.User, d.Schema}] = d
	}
	for k, w := range expect {
		d, ok := seen[k]
		if !ok {
			t.Errorf("no digest %q for user %s schema %s", k.digest, k.user, k.schema)
			continue
		}
		if d.Count != w.count || d.RowsSent != w.rows || d.RowsAffected != w.affected || d.Errors != 0 {
			t.Errorf("%q %s/%s: count %d rows %d affected %d errors %d; want count %d rows %d affected %d errors 0",
				k.digest, k.user, k.schema, d.Count, d.RowsSent, d.RowsAffected, d.Errors, w.count, w.rows, w.affected)
		}
		if d.TotalTime <= 0 || d.MinTime > d.MaxTime || d.P99 < d.P50 || len(d.Hash) != 16 {
			t.Errorf("%q: implausible figures %+v", k.digest, d)
		}
		if strings.ContainsAny(d.Digest, "0123456789") {
			t.Errorf("digest %q keeps a literal", d.Digest)
		}
	}
	for k := range seen {
		if _, ok := expect[k]; !ok {
			t.Errorf("unexpected digest %q for user %s schema %s", k.digest, k.user, k.schema)
		}
	}
	if a, b := seen[key{"SELECT * FROM t WHERE id = ?", app, schema}], seen[key{"SELECT * FROM t WHERE id = ?", app, other}]; a.Hash != b.Hash {
		t.Errorf("one statement, two hashes: %s and %s", a.Hash, b.Hash)
	}

	// sort and limit.
	var top []stats.DigestView
	s.getJSON(t, "/api/digests?sort=count&limit=2", &top)
	if len(top) != 2 || top[0].Count != 14 || top[1].Count != 7 {
		t.Errorf("sort=count&limit=2 gave %d entries: %+v", len(top), top)
	}
	s.getJSON(t, "/api/digests?sort=rows_affected&limit=1", &top)
	if len(top) != 1 || !strings.HasPrefix(top[0].Digest, "UPDATE") {
		t.Errorf("sort=rows_affected&limit=1 gave %+v", top)
	}
	var all []stats.DigestView
	s.getJSON(t, "/api/digests?sort=total_time", &all)
	for i := 1; i < len(all); i++ {
		if all[i].TotalTime > all[i-1].TotalTime {
			t.Errorf("sort=total_time: entry %d (%v) above entry %d (%v)", i, all[i].TotalTime, i-1, all[i-1].TotalTime)
		}
	}
	for _, bad := range []string{"?sort=bogus", "?limit=-1", "?limit=x"} {
		if code, body := s.request(t, http.MethodGet, "/api/digests"+bad); code != http.StatusBadRequest {
			t.Errorf("GET /api/digests%s: %d %s, want 400", bad, code, body)
		}
	}
	if m := s.scrape(t); m.value("sluice_digests") != float64(len(expect)) {
		t.Errorf("sluice_digests = %v, want %d", m.value("sluice_digests"), len(expect))
	}

	// reset empties the table.
	if code, body := s.request(t, http.MethodPost, "/api/digests/reset"); code != http.StatusOK {
		t.Fatalf("reset: %d %s", code, body)
	}
	s.getJSON(t, "/api/digests", &got)
	if len(got) != 0 {
		t.Errorf("after reset: %d digests", len(got))
	}
	if m := s.scrape(t); m.value("sluice_digests") != 0 {
		t.Errorf("sluice_digests = %v after reset", m.value("sluice_digests"))
	}
}

// obsSyncBuffer is a writer the slow log may write from its own goroutine.
type obsSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *obsSyncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *obsSyncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestSlowQueryLogWritesOneJSONLine(t *testing.T) {
	var log obsSyncBuffer
	s := obsStart(t, obsOpts{stats: stats.Options{SlowThreshold: 100 * time.Millisecond, SlowLog: &log}})
	schema := newSchema(t, s.topo)
	c := conn(t, openDB(t, s.p, schema))
	for range 5 {
		queryString(t, c, "SELECT 1") // fast: not logged
	}
	start := time.Now()
	queryString(t, c, "SELECT SLEEP(0.3)")
	queryString(t, c, "SELECT 2")
	s.st.Close() // writes what is queued, then stops the writer

	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("slow log has %d lines, want 1:\n%s", len(lines), log.String())
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &raw); err != nil {
		t.Fatalf("slow log line is not JSON: %v\n%s", err, lines[0])
	}
	for _, f := range []string{"time", "session", "user", "schema", "server", "route", "kind", "duration", "rows", "error", "digest", "digest_hash", "query"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("slow log line has no %q: %s", f, lines[0])
		}
	}
	var l struct {
		Time     time.Time
		Session  uint32
		User     string
		Schema   string
		Server   string
		Route    string
		Duration float64
		Rows     int64
		Error    bool
		Digest   string
		Query    string
	}
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	if l.Time.Before(start.Add(-time.Second)) || l.Time.After(time.Now()) {
		t.Errorf("time %s, the statement started at %s", l.Time, start)
	}
	if l.Session == 0 || l.User != testbed.AppUser || l.Schema != schema || l.Rows != 1 || l.Error {
		t.Errorf("line %s: session %d user %q schema %q rows %d error %v", lines[0], l.Session, l.User, l.Schema, l.Rows, l.Error)
	}
	if s.topo.ByName(l.Server) == nil || l.Route != "replica" || !isReplica(s.topo, l.Server) {
		t.Errorf("server %q route %q, want a replica", l.Server, l.Route)
	}
	if l.Duration < 0.3 || l.Duration > 5 {
		t.Errorf("duration %v, want about 0.3", l.Duration)
	}
	if l.Digest != "SELECT SLEEP(?)" || l.Query != "SELECT SLEEP(0.3)" {
		t.Errorf("digest %q query %q", l.Digest, l.Query)
	}
	if m := s.scrape(t); m.value("sluice_slow_queries_total") != 1 || m.value("sluice_slow_queries_dropped_total") != 0 {
		t.Errorf("sluice_slow_queries_total %v, dropped %v; want 1 and 0", m.value("sluice_slow_queries_total"), m.value("sluice_slow_queries_dropped_total"))
	}
}

func TestSessionsAPIShowsOpenSessions(t *testing.T) {
	s := obsStart(t, obsOpts{})
	schema := newSchema(t, s.topo, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	busySchema := newSchema(t, s.topo)
	primary := s.topo.Primary.Name

	find := func(schema string) (session.Info, bool) {
		var list []session.Info
		s.getJSON(t, "/api/sessions", &list)
		for _, in := range list {
			if in.Schema == schema {
				return in, true
			}
		}
		return session.Info{}, false
	}
	opened := time.Now()
	db := openDB(t, s.p, schema)
	c := conn(t, db)
	queryString(t, c, "SELECT 1")
	in, ok := find(schema)
	if !ok {
		t.Fatal("/api/sessions does not list the open session")
	}
	host, _, err := net.SplitHostPort(in.Client)
	if in.ID == 0 || in.User != testbed.AppUser || err != nil || host != "127.0.0.1" || in.InTxn || in.Pinned != "" {
		t.Errorf("idle session: %+v", in)
	}
	if in.Started.Before(opened.Add(-time.Second)) || in.Started.After(time.Now()) {
		t.Errorf("started %s, the session opened at %s", in.Started, opened)
	}

	// In a transaction: pinned to the primary.
	mustExec(t, c, "BEGIN")
	mustExec(t, c, "INSERT INTO t VALUES (1, 1)")
	waitFor(t, 5*time.Second, "the session shows its transaction", func() bool {
		in, _ = find(schema)
		return in.InTxn && in.Pinned == primary
	})

	// The statement running now, and where.
	busyDB := openDB(t, s.p, busySchema)
	busy := conn(t, busyDB)
	errc := make(chan error, 1)
	go func() {
		var v sql.NullString
		errc <- busy.QueryRowContext(context.Background(), "SELECT SLEEP(2)").Scan(&v)
	}()
	waitFor(t, 5*time.Second, "the running statement is listed", func() bool {
		b, ok := find(busySchema)
		return ok && strings.Contains(b.Statement, "SLEEP(2)") && b.Server != ""
	})
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	mustExec(t, c, "COMMIT")
	waitFor(t, 5*time.Second, "the session shows the transaction ended", func() bool {
		in, _ = find(schema)
		return !in.InTxn && in.Pinned == ""
	})
	c.Close()
	db.Close() // closes the connection the pool got back
	busy.Close()
	busyDB.Close()
	waitFor(t, 5*time.Second, "the closed sessions leave the list", func() bool {
		_, ok := find(schema)
		_, busyOK := find(busySchema)
		return !ok && !busyOK
	})
	// Once the pools have let go of their connections too, the list is
	// empty: [], not null.
	waitFor(t, 5*time.Second, "no session left", func() bool {
		_, body := s.request(t, http.MethodGet, "/api/sessions")
		return strings.TrimSpace(string(body)) == "[]"
	})
}

// obsRepoRoot is the repository root: tests run in <repo>/e2e.
func obsRepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: the e2e tests must run from <repo>/e2e", root)
	}
	return root
}

// obsBalanced reports whether a PromQL expression's brackets pair up and
// its quotes close: a cheap guard against a broken query in the JSON.
func obsBalanced(expr string) bool {
	var stack []rune
	inQuote := false
	for _, r := range expr {
		switch {
		case r == '"':
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '{' || r == '[':
			stack = append(stack, r)
		case r == ')' || r == '}' || r == ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return !inQuote && len(stack) == 0
}

var obsMetricNameRe = regexp.MustCompile(`\bsluice_[a-z_]+`)

func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(obsRepoRoot(t), "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Inputs []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			PluginID string `json:"pluginId"`
		} `json:"__inputs"`
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []struct {
			Title      string          `json:"title"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			GridPos    struct{ H, W, X, Y int }
			Targets    []struct {
				Expr       string          `json:"expr"`
				Datasource json.RawMessage `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want one Prometheus data source DS_PROMETHEUS", dash.Inputs)
	}
	if dash.Title == "" || dash.UID == "" || dash.SchemaVersion < 36 {
		t.Errorf("title %q uid %q schemaVersion %d", dash.Title, dash.UID, dash.SchemaVersion)
	}

	s := obsStart(t, obsOpts{})
	db := openDB(t, s.p, "")
	for range 3 {
		queryString(t, db, "SELECT 1")
	}
	m := s.scrape(t)
	used := map[string]bool{}
	panels := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		panels++
		if !strings.Contains(string(p.Datasource), "${DS_PROMETHEUS}") {
			t.Errorf("panel %q: datasource %s, want ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !obsBalanced(q.Expr) {
				t.Errorf("panel %q: unbalanced brackets or quotes in %q", p.Title, q.Expr)
			}
			names := obsMetricNameRe.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q uses no sluice metric", p.Title, q.Expr)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	if panels < 10 {
		t.Errorf("%d panels", panels)
	}
	for n := range used {
		base := n
		if mf := m[n]; mf == nil {
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(n, suf); ok && m[b].GetType() == dto.MetricType_HISTOGRAM {
					base = b
				}
			}
		}
		if m[base] == nil {
			t.Errorf("the Grafana dashboard uses %s, which /metrics does not serve", n)
		}
	}
	t.Logf("grafana dashboard: %d panels over %d metric names, all served by /metrics", panels, len(used))
}
