package stats

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSource is a Source with fixed figures.
type fakeSource struct {
	mu      sync.Mutex
	snap    *topology.Snapshot
	pools   map[string]backend.Stats
	current int64
	total   uint64
}

func (f *fakeSource) Snapshot() *topology.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) PoolStats() map[string]backend.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pools
}

func (f *fakeSource) ClientConns() (int64, uint64) { return f.current, f.total }

// FailoverReport makes fakeSource a FailoverSource.
func (f *fakeSource) FailoverReport() failover.Report {
	return failover.Report{Epoch: 4, Alert: "primary db1 is lost and failover was refused",
		Counts: map[string]uint64{"failover_ok": 1, "switchover_ok": 2, "refused": 1},
		History: []failover.Record{
			{Kind: "switchover", OK: true, PauseMS: 12},
			{Kind: "failover", OK: true, PauseMS: 250},
			{Kind: "switchover", OK: true, PauseMS: 99},
		}}
}

// CausalCounts makes fakeSource a CausalSource.
func (f *fakeSource) CausalCounts() map[string]uint64 {
	return map[string]uint64{"ready": 7, "waited": 3, "timeout": 1, "no_replica": 0}
}

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newStats builds a Stats closed at the end of the test.
func newStats(t testing.TB, src Source, o Options) *Stats {
	t.Helper()
	st := New(src, o)
	t.Cleanup(st.Close)
	return st
}

// event builds a finished command.
type event = session.Event

func query(sql string, d time.Duration) *event {
	return &event{Session: 1, User: "app", Schema: "shop", SQL: []byte(sql), Kind: "select",
		Target: "replica", Server: "db2", Duration: d}
}

// scrape fetches /metrics through Handler and parses the text format.
func scrape(t *testing.T, st *Stats) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type = %q, want the text format", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// sample finds the metric of family name whose labels are exactly
// labels ("k=v" pairs).
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		ok := true
		for i, l := range m.GetLabel() { // the parser sorts labels by name
			if l.GetName()+"="+l.GetValue() != labels[i] {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

// value returns a counter's, gauge's or untyped metric's value.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := sample(mfs, name, labels...)
	if m == nil {
		t.Errorf("no sample %s%v", name, labels)
		return -1
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// poll waits for cond, failing the test after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
