package stats

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDigestWorkload(t *testing.T) {
	c := newClock()
	st := newStats(t, nil, Options{Now: c.Now})
	run := func(user, schema, sql string, d time.Duration, rows int64, err bool) {
		ev := query(sql, d)
		ev.User, ev.Schema, ev.Rows, ev.Err = user, schema, rows, err
		st.Statement(nil, ev)
		c.Add(time.Second)
	}
	run("app", "shop", "SELECT * FROM t WHERE id = 1", 1*time.Millisecond, 1, false)
	run("app", "shop", "select * from t where id=2", 3*time.Millisecond, 1, false)
	run("app", "shop", "SELECT * FROM t WHERE id IN (1,2,3)", 10*time.Millisecond, 3, false)
	run("app", "shop", "SELECT * FROM t WHERE id IN (4)", 20*time.Millisecond, 0, true)
	run("report", "shop", "SELECT * FROM t WHERE id = 9", 100*time.Millisecond, 1, false)
	run("app", "other", "SELECT * FROM t WHERE id = 9", 2*time.Millisecond, 1, false)
	upd := query("UPDATE t SET a = 'x' WHERE id = 5", 5*time.Millisecond)
	upd.Affected, upd.Kind, upd.Target = 7, "write", "primary"
	st.Statement(nil, upd)

	got, err := st.Digests("", 0)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		digest, user, schema string
		count, errors, rows  int64
		total                time.Duration
	}
	want := []row{ // by total time
		{"SELECT * FROM t WHERE id = ?", "report", "shop", 1, 0, 1, 100 * time.Millisecond},
		{"SELECT * FROM t WHERE id IN (...)", "app", "shop", 2, 1, 3, 30 * time.Millisecond},
		{"UPDATE t SET a = ? WHERE id = ?", "app", "shop", 1, 0, 0, 5 * time.Millisecond},
		{"SELECT * FROM t WHERE id = ?", "app", "shop", 2, 0, 2, 4 * time.Millisecond},
		{"SELECT * FROM t WHERE id = ?", "app", "other", 1, 0, 1, 2 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("%d digests, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Digest != w.digest || g.User != w.user || g.Schema != w.schema || g.Count != w.count ||
			g.Errors != w.errors || g.RowsSent != w.rows || !near(g.TotalTime, w.total.Seconds()) {
			t.Errorf("digest %d = %+v\nwant %+v", i, g, w)
		}
		if strings.ContainsAny(g.Digest, "123456789'x") {
			t.Errorf("digest %q holds a literal", g.Digest)
		}
		if len(g.Hash) != 16 {
			t.Errorf("hash %q, want 16 hex digits", g.Hash)
		}
	}
	if got[2].RowsAffected != 7 {
		t.Errorf("rows affected = %d, want 7", got[2].RowsAffected)
	}
	in := got[1]
	if !near(in.MinTime, 0.010) || !near(in.MaxTime, 0.020) || !near(in.AvgTime, 0.015) {
		t.Errorf("IN digest min/avg/max = %v/%v/%v, want 10ms/15ms/20ms", in.MinTime, in.AvgTime, in.MaxTime)
	}
	if in.P50 < in.MinTime || in.P99 > in.MaxTime || in.P50 > in.P99 {
		t.Errorf("IN digest p50 %v p99 %v, want within [min, max] and ordered", in.P50, in.P99)
	}
	if want := time.Unix(1_700_000_002, 0); !in.FirstSeen.Equal(want) {
		t.Errorf("first seen %v, want %v", in.FirstSeen, want)
	}
	if want := time.Unix(1_700_000_003, 0); !in.LastSeen.Equal(want) {
		t.Errorf("last seen %v, want %v", in.LastSeen, want)
	}
	if got[1].Hash == got[0].Hash || got[0].Hash != got[3].Hash {
		t.Errorf("hashes %s %s %s: the hash must follow the digest text only", got[0].Hash, got[1].Hash, got[3].Hash)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestDigestSortAndLimit(t *testing.T) {
	st := newStats(t, nil, Options{})
	// a: many fast; b: one slow; c: two medium with errors and rows.
	for range 10 {
		st.Statement(nil, query("SELECT a FROM t", time.Millisecond))
	}
	st.Statement(nil, query("SELECT b FROM t", 50*time.Millisecond))
	for range 2 {
		ev := query("SELECT c FROM t", 20*time.Millisecond)
		ev.Err, ev.Rows = true, 100
		st.Statement(nil, ev)
	}
	first := func(sort string, limit int) string {
		t.Helper()
		v, err := st.Digests(sort, limit)
		if err != nil {
			t.Fatalf("sort %s: %v", sort, err)
		}
		var s []string
		for _, d := range v {
			s = append(s, strings.TrimSuffix(strings.TrimPrefix(d.Digest, "SELECT "), " FROM t"))
		}
		return strings.Join(s, "")
	}
	for sort, want := range map[string]string{
		"":           "bca",
		"total_time": "bca",
		"count":      "acb",
		"avg_time":   "bca",
		"max_time":   "bca",
		"p50":        "bca",
		"p99":        "bca",
		"errors":     "cba", // b and a tie at 0: the larger total time first
		"rows_sent":  "cba",
	} {
		if got := first(sort, 0); got != want {
			t.Errorf("sort %q: %s, want %s", sort, got, want)
		}
	}
	if got := first("count", 2); got != "ac" {
		t.Errorf("count, limit 2: %s, want ac", got)
	}
	if got := first("count", 99); got != "acb" {
		t.Errorf("limit above the size: %s, want acb", got)
	}
	_, err := st.Digests("slowest", 10)
	if err == nil || !strings.Contains(err.Error(), `unknown sort "slowest"; allowed: total_time, count, avg_time, max_time, p50, p99, errors, rows_sent, rows_affected`) {
		t.Errorf("unknown sort: %v", err)
	}
}

func TestDigestReset(t *testing.T) {
	st := newStats(t, nil, Options{})
	st.Statement(nil, query("SELECT 1", time.Millisecond))
	st.Statement(nil, query("SELECT a FROM t", time.Millisecond))
	st.ResetDigests()
	if v, _ := st.Digests("", 0); len(v) != 0 || st.digests.n.Load() != 0 {
		t.Errorf("after reset: %d digests, n=%d", len(v), st.digests.n.Load())
	}
	st.Statement(nil, query("SELECT 2", time.Millisecond))
	if v, _ := st.Digests("", 0); len(v) != 1 || v[0].Count != 1 || v[0].Digest != "SELECT ?" {
		t.Errorf("after reset and one query: %+v", v)
	}
}

// TestDigestEviction: a flood of one-off statements keeps the table within
// its bound and does not push out the heavy statements.
func TestDigestEviction(t *testing.T) {
	const max = 100
	st := newStats(t, nil, Options{MaxDigests: max})
	for i := range 50 {
		st.Statement(nil, query(fmt.Sprintf("SELECT * FROM heavy%d", i), time.Second))
	}
	for i := range 5000 {
		st.Statement(nil, query(fmt.Sprintf("SELECT * FROM light%d", i), time.Microsecond))
		if n := st.digests.n.Load(); n > max {
			t.Fatalf("table holds %d entries, bound %d", n, max)
		}
	}
	v, _ := st.Digests("", 0)
	if len(v) > max || len(v) < max*9/10 {
		t.Errorf("%d entries, want close to %d", len(v), max)
	}
	heavy := 0
	for _, d := range v {
		if strings.Contains(d.Digest, "heavy") {
			heavy++
		}
	}
	if heavy != 50 {
		t.Errorf("%d of 50 heavy digests kept", heavy)
	}
	if st.digests.evictions.Load() < 4900 {
		t.Errorf("evictions = %d, want one per light entry that left", st.digests.evictions.Load())
	}
	// Lowering the bound trims the table at once, lightest first.
	st.Update(Options{MaxDigests: 30})
	v, _ = st.Digests("", 0)
	if len(v) != 30 || st.digests.n.Load() != 30 {
		t.Fatalf("after Update(30): %d entries (n=%d)", len(v), st.digests.n.Load())
	}
	for _, d := range v {
		if !strings.Contains(d.Digest, "heavy") {
			t.Errorf("light digest %q kept over heavy ones", d.Digest)
		}
	}
}

func TestDigestTextBounded(t *testing.T) {
	st := newStats(t, nil, Options{})
	long := "SELECT " + strings.Repeat("some_column_é, ", 1000) + "x FROM t"
	st.Statement(nil, query(long, time.Millisecond))
	v, _ := st.Digests("", 1)
	if len(v) != 1 || len(v[0].Digest) > MaxDigestText+len("…") || !strings.HasSuffix(v[0].Digest, "…") {
		t.Fatalf("digest of %d bytes: %d bytes, want at most %d ending in …", len(long), len(v[0].Digest), MaxDigestText)
	}
	if !strings.HasPrefix(v[0].Digest, "SELECT some_column_é, ") || !strings.Contains(v[0].Digest, "é") {
		t.Errorf("digest = %.60q…", v[0].Digest)
	}
}

func TestNoDigestWithoutSQL(t *testing.T) {
	st := newStats(t, nil, Options{})
	st.Statement(nil, &event{Session: 1, Kind: "other", Target: "primary", Server: "db1", Duration: time.Millisecond})
	if v, _ := st.Digests("", 0); len(v) != 0 {
		t.Errorf("a command without SQL made a digest: %+v", v)
	}
}

func TestQuantileEstimate(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []time.Duration
		p50    time.Duration
		p99    time.Duration
	}{
		{"constant", []time.Duration{7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond}, 7 * time.Millisecond, 7 * time.Millisecond},
		{"spread", spread(1000, time.Millisecond), 500 * time.Millisecond, 990 * time.Millisecond},
		{"micro", spread(1000, time.Microsecond), 500 * time.Microsecond, 990 * time.Microsecond},
		{"bimodal", append(repeat(98, 100*time.Microsecond), repeat(2, time.Second)...), 100 * time.Microsecond, time.Second},
	} {
		e := &digestEntry{}
		e.minNs.Store(math.MaxInt64)
		for _, v := range c.values {
			e.record(&event{}, int64(v), 0)
		}
		v := e.view()
		for _, q := range []struct {
			name      string
			got, want float64
		}{{"p50", v.P50, c.p50.Seconds()}, {"p99", v.P99, c.p99.Seconds()}} {
			// The documented bound is the bucket width, 50%; in practice
			// it is much tighter.
			if rel := math.Abs(q.got-q.want) / q.want; rel > 0.25 {
				t.Errorf("%s %s = %v, want %v (off by %.0f%%)", c.name, q.name, q.got, q.want, rel*100)
			}
		}
	}
}

func spread(n int, step time.Duration) []time.Duration {
	v := make([]time.Duration, n)
	for i := range v {
		v[i] = time.Duration(i+1) * step
	}
	return v
}

func repeat(n int, d time.Duration) []time.Duration {
	v := make([]time.Duration, n)
	for i := range v {
		v[i] = d
	}
	return v
}

func TestLogBuckets(t *testing.T) {
	for i := range logBuckets {
		lo, hi := logLower(i), logUpper(i)
		if i > 0 && logBucket(int64(lo)) != i {
			t.Errorf("logBucket(lower(%d) = %v) = %d", i, lo, logBucket(int64(lo)))
		}
		if i < logBuckets-1 {
			if logBucket(int64(hi)-1) != i {
				t.Errorf("logBucket(upper(%d)-1) = %d", i, logBucket(int64(hi)-1))
			}
			if i > 0 && hi/lo > 1.5+1e-9 {
				t.Errorf("bucket %d is %.2f times as wide as its lower bound", i, hi/lo)
			}
		}
	}
	if logBucket(0) != 0 || logBucket(math.MaxInt64) != logBuckets-1 {
		t.Error("extremes misplaced")
	}
	if lo := logLower(logBuckets - 1); lo < 60e9 {
		t.Errorf("last bucket starts at %v s, want above a minute", lo/1e9)
	}
}
