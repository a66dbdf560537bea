package stats

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

func TestSeries(t *testing.T) {
	c := newClock()
	st := newStats(t, nil, Options{Now: c.Now})
	t0 := c.Now().Unix()

	// Second t0: 100 commands, 1..100 ms, 5 errors.
	for i := 1; i <= 100; i++ {
		ev := query("SELECT 1", time.Duration(i)*time.Millisecond)
		ev.Err = i%20 == 0
		st.Statement(nil, ev)
		if ev.Err {
			st.ClientError(1064, "server")
		}
	}
	// Second t0+1: nothing. Second t0+2: 10 commands of 2 ms.
	c.Add(2 * time.Second)
	for range 10 {
		st.Statement(nil, query("SELECT 1", 2*time.Millisecond))
	}
	c.Add(time.Second) // t0+3 in progress: not in the series
	st.Statement(nil, query("SELECT 1", time.Millisecond))

	pts := st.Series()
	if len(pts) != SeriesSeconds {
		t.Fatalf("%d points, want %d", len(pts), SeriesSeconds)
	}
	last := pts[len(pts)-1]
	if pts[0].T != t0+3-SeriesSeconds || last.T != t0+2 {
		t.Fatalf("series spans %d..%d, want %d..%d", pts[0].T, last.T, t0+3-SeriesSeconds, t0+2)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].T != pts[i-1].T+1 {
			t.Fatalf("point %d at %d after %d", i, pts[i].T, pts[i-1].T)
		}
	}
	p0, p1, p2 := pts[len(pts)-3], pts[len(pts)-2], last
	if p0.QPS != 100 || p0.Errors != 5 {
		t.Errorf("t0: qps %v errors %v, want 100 and 5", p0.QPS, p0.Errors)
	}
	if math.Abs(p0.P50-50)/50 > 0.25 || math.Abs(p0.P99-99)/99 > 0.25 {
		t.Errorf("t0: p50 %v ms p99 %v ms, want about 50 and 99", p0.P50, p0.P99)
	}
	if p1 != (Point{T: t0 + 1}) {
		t.Errorf("an idle second = %+v, want zeros", p1)
	}
	if p2.QPS != 10 || p2.Errors != 0 || math.Abs(p2.P50-2)/2 > 0.5 || math.Abs(p2.P99-2)/2 > 0.5 {
		t.Errorf("t0+2 = %+v, want 10 qps at about 2 ms", p2)
	}

	// Fifteen minutes later t0 has left the window, and its slot is reused.
	c.Add(SeriesSeconds * time.Second)
	for _, p := range st.Series() {
		if p.QPS != 0 && p.T < t0+3 {
			t.Errorf("second %d still in the series: %+v", p.T, p)
		}
	}
	c.Add(ringSize*time.Second - SeriesSeconds*time.Second - 3*time.Second) // the slot of t0 comes round again
	if got := c.Now().Unix(); got%ringSize != t0%ringSize {
		t.Fatalf("clock at %d, want slot of %d", got, t0)
	}
	st.Statement(nil, query("SELECT 1", time.Millisecond))
	c.Add(time.Second)
	if p := st.Series()[SeriesSeconds-1]; p.QPS != 1 {
		t.Errorf("reused slot = %+v, want 1 qps, the old second cleared", p)
	}
}

// TestConcurrentStatements runs the hot path from many goroutines (under
// -race in CI) across second boundaries, new digests and scrapes, and
// checks that no count is lost.
func TestConcurrentStatements(t *testing.T) {
	c := newClock()
	src := testSource()
	st := newStats(t, src, Options{Now: c.Now, MaxDigests: 50, SlowThreshold: 90 * time.Millisecond, SlowLog: &lockedBuffer{}})
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				ev := query(fmt.Sprintf("SELECT * FROM t%d WHERE id = %d", i%80, i), time.Duration(i%100)*time.Millisecond)
				ev.Session = uint32(w)
				ev.Server = []string{"db1", "db2", "db3.example"}[i%3]
				ev.Err = i%10 == 0
				st.Statement(nil, ev)
				if i%500 == 0 {
					c.Add(time.Second)
				}
			}
		}()
	}
	wg.Add(2)
	go func() { // readers, at the same time
		defer wg.Done()
		for range 20 {
			if _, err := st.Gather(); err != nil {
				t.Error(err)
			}
			st.Series()
		}
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			if _, err := st.Digests("p99", 10); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()

	mfs := scrape(t, st)
	var queries float64
	for _, s := range []string{"db1", "db2", "db3.example"} {
		queries += value(t, mfs, "sluice_server_queries_total", "route=replica", "server="+s)
	}
	if queries != workers*per {
		t.Errorf("queries counted %v, want %d", queries, workers*per)
	}
	h := sample(mfs, "sluice_query_duration_seconds", "kind=select", "route=replica").GetHistogram()
	if h.GetSampleCount() != workers*per {
		t.Errorf("histogram count %d, want %d", h.GetSampleCount(), workers*per)
	}
	if got := value(t, mfs, "sluice_query_errors_total", "kind=select", "route=replica"); got != workers*per/10 {
		t.Errorf("errors %v, want %d", got, workers*per/10)
	}
	if n := st.digests.n.Load(); n > 50 {
		t.Errorf("digest table at %d, bound 50", n)
	}
	var inSeries float64
	for _, p := range st.Series() {
		inSeries += p.QPS
	}
	c.Add(time.Second)
	for _, p := range st.Series()[SeriesSeconds-1:] {
		inSeries += p.QPS
	}
	if inSeries != workers*per {
		t.Errorf("series holds %v commands, want %d", inSeries, workers*per)
	}
}
