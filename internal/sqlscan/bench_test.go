package sqlscan

import (
	"strings"
	"testing"
)

var benchQueries = []struct {
	name string
	sql  []byte
}{
	{"point_select", []byte("SELECT c FROM sbtest1 WHERE id=?")},
	{"long_update", []byte("UPDATE sbtest1 SET k=k+1, c='83868641912-28773972837-60736120486-75162659906-27563526494-20381887404-41576422241-93426793964-56405065102-33518432330', pad='67847967377-48000963322-62604785301-91415491898-96926520291' WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) AND k BETWEEN 100 AND 200 AND c <> 'x'")},
	{"commented_2k", commented2K()},
}

// commented2K builds a 2 KB report-style query with comments of every kind.
func commented2K() []byte {
	var b strings.Builder
	b.WriteString("/* report: daily revenue, owner: analytics */\nSELECT /*+ MAX_EXECUTION_TIME(1000) */ o.id, -- order\n")
	for i := 0; b.Len() < 1800; i++ {
		b.WriteString("  SUM(CASE WHEN o.status = 'paid' THEN o.amount ELSE 0 END) AS paid, # total\n")
		b.WriteString("  COUNT(DISTINCT o.customer_id) /* customers */ AS customers,\n")
	}
	b.WriteString("  1 FROM orders o JOIN customers c ON c.id = o.customer_id\nWHERE o.created_at >= '2024-01-01' AND o.region IN ('eu', 'us', 'apac')\nGROUP BY o.id ORDER BY paid DESC LIMIT 100")
	return []byte(b.String())
}

func BenchmarkScan(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for b.Loop() {
				Scan(q.sql)
			}
		})
	}
}

func BenchmarkDigest(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				buf = Digest(buf[:0], q.sql)
			}
		})
	}
}

func BenchmarkDigestHash(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for b.Loop() {
				DigestHash(q.sql)
			}
		})
	}
}

// BenchmarkScanThenDigestHash is what a text query cost before ScanDigest:
// two passes over the text.
func BenchmarkScanThenDigestHash(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for b.Loop() {
				Scan(q.sql)
				DigestHash(q.sql)
			}
		})
	}
}

func BenchmarkScanDigest(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for b.Loop() {
				ScanDigest(q.sql)
			}
		})
	}
}
