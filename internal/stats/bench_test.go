package stats

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

var benchSQL = map[string]string{
	"point_select": "SELECT c FROM sbtest1 WHERE id=4821",
	"long_update": "UPDATE sbtest1 SET k=k+1, c='83868641912-28773972837-60736120486-75162659906-27563526494-20381887404-41576422241-93426793964-56405065102-33518432330' " +
		"WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) AND k BETWEEN 100 AND 200",
}

// BenchmarkStatement is the per-command cost of metrics and digests on
// the data path, from many sessions at once, for a digest already known.
func BenchmarkStatement(b *testing.B) {
	for _, name := range []string{"point_select", "long_update"} {
		b.Run(name, func(b *testing.B) {
			st := New(testSource(), Options{SlowThreshold: time.Second})
			defer st.Close()
			sql := []byte(benchSQL[name])
			st.Statement(nil, &event{User: "app", Schema: "sbtest", SQL: sql, Kind: "select", Target: "replica", Server: "db2"})
			var sessions atomic.Uint32
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ev := &event{Session: sessions.Add(1), User: "app", Schema: "sbtest", SQL: sql, Kind: "select",
					Target: "replica", Server: "db2", Start: time.Now(), Duration: 300 * time.Microsecond, Rows: 1, BytesIn: 40, BytesOut: 180}
				for pb.Next() {
					st.Statement(nil, ev)
				}
			})
		})
	}
	// Metrics only: a command without SQL (COM_PING and the like) makes no
	// digest, which shows what the digest costs above.
	b.Run("no_digest", func(b *testing.B) {
		st := New(testSource(), Options{SlowThreshold: time.Second})
		defer st.Close()
		var sessions atomic.Uint32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ev := &event{Session: sessions.Add(1), User: "app", Schema: "sbtest", Kind: "select", Target: "replica",
				Server: "db2", Start: time.Now(), Duration: 300 * time.Microsecond, Rows: 1, BytesIn: 40, BytesOut: 180}
			for pb.Next() {
				st.Statement(nil, ev)
			}
		})
	})
	// Many digests and servers, as in a real workload.
	b.Run("mixed", func(b *testing.B) {
		st := New(testSource(), Options{SlowThreshold: time.Second})
		defer st.Close()
		const n = 64
		var sqls [n][]byte
		for i := range sqls {
			sqls[i] = fmt.Appendf(nil, "SELECT c, pad FROM sbtest%d WHERE id BETWEEN %d AND %d", i, i, i+100)
		}
		servers := []string{"db1", "db2", "db3.example"}
		var sessions atomic.Uint32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			id := sessions.Add(1)
			ev := &event{Session: id, User: "app", Schema: "sbtest", Kind: "select", Target: "replica",
				Start: time.Now(), Duration: 300 * time.Microsecond, Rows: 100, BytesIn: 60, BytesOut: 18000}
			i := int(id)
			for pb.Next() {
				i++
				ev.SQL, ev.Server = sqls[i%n], servers[i%3]
				st.Statement(nil, ev)
			}
		})
	})
}

// BenchmarkStatementSerial is the cost for one session alone, without
// contention.
func BenchmarkStatementSerial(b *testing.B) {
	st := New(testSource(), Options{SlowThreshold: time.Second})
	defer st.Close()
	ev := &event{Session: 1, User: "app", Schema: "sbtest", SQL: []byte(benchSQL["point_select"]), Kind: "select",
		Target: "replica", Server: "db2", Start: time.Now(), Duration: 300 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		st.Statement(nil, ev)
	}
}

func TestStatementDoesNotAllocate(t *testing.T) {
	st := newStats(t, testSource(), Options{SlowThreshold: time.Second, SlowLog: &lockedBuffer{}})
	ev := &event{Session: 3, User: "app", Schema: "sbtest", SQL: []byte(benchSQL["long_update"]), Kind: "write",
		Target: "primary", Server: "db1", Duration: time.Millisecond, Rows: 1}
	st.Statement(nil, ev) // first sight: the digest and the counters are created
	if n := testing.AllocsPerRun(1000, func() { st.Statement(nil, ev) }); n != 0 {
		t.Errorf("Statement allocates %v times per call for a known digest", n)
	}
}

func BenchmarkScrape(b *testing.B) {
	st := New(testSource(), Options{})
	defer st.Close()
	for i := range 200 {
		st.Statement(nil, query(fmt.Sprintf("SELECT * FROM t%d", i), time.Millisecond))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
