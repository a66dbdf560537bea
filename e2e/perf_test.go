package e2e

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/stats"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// perfTable creates perfbench.t (id, c) with a few rows on the primary and
// waits until every replica has them.
func perfTable(t testing.TB, topo *testbed.Topology) {
	t.Helper()
	db, err := topo.Primary.Admin()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "CREATE DATABASE IF NOT EXISTS perfbench")
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS perfbench.t (id INT PRIMARY KEY, c CHAR(120) NOT NULL)")
	mustExec(t, db, "REPLACE INTO perfbench.t VALUES (1, REPEAT('a', 120)), (2, REPEAT('b', 120)), (3, REPEAT('c', 120))")
	for _, r := range topo.Replicas {
		rdb, err := r.Admin()
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, r.Name+" has perfbench.t", func() bool {
			var n int
			return rdb.QueryRow("SELECT COUNT(*) FROM perfbench.t").Scan(&n) == nil && n == 3
		})
	}
}

// readResponse reads one response of the text or binary protocol (OK,
// ERR, or a result set with EOF packets) without allocating, and returns
// the number of rows.
func readResponse(c *rawConn) (int, error) {
	p, err := c.ReadPacket(0)
	if err != nil {
		return 0, err
	}
	if wire.IsERR(p) {
		return 0, wire.ParseError(p)
	}
	if wire.IsOK(p) {
		return 0, nil
	}
	cols, _, _, ok := wire.ReadLenEncInt(p)
	if !ok {
		return 0, fmt.Errorf("bad result set header %q", p)
	}
	for i := uint64(0); i <= cols; i++ { // the columns and their EOF
		if _, err := c.ReadPacket(0); err != nil {
			return 0, err
		}
	}
	rows := 0
	for {
		p, err := c.ReadPacket(0)
		if err != nil {
			return rows, err
		}
		if wire.IsEOF(p) {
			return rows, nil
		}
		if wire.IsERR(p) {
			return rows, wire.ParseError(p)
		}
		rows++
	}
}

// BenchmarkSessionRoundTrip measures one point select through a whole
// sluice session over loopback to a real MariaDB replica, statistics on
// (metrics, digests, slow log), as `sluice run` serves it: the client is a
// raw protocol client that allocates nothing, and the monitor checks once
// a minute, so allocs/op are sluice's per statement. text is a
// COM_QUERY; binary a COM_STMT_EXECUTE that, like libmariadb and sysbench,
// sends the parameter types only with its first execute.
func BenchmarkSessionRoundTrip(b *testing.B) {
	perfTable(b, shared)
	p := startSluice(b, sluiceOpts{
		// The monitor's health checks allocate (go-sql-driver): one round
		// a minute keeps them out of the count.
		mutate: func(c *config.Config) { c.Health.Interval = config.Duration(time.Minute) },
		beforeStart: func(p *proxy.Proxy) {
			p.SetObserver(stats.New(p, stats.Options{}))
		},
	})
	b.Run("text", func(b *testing.B) {
		c := rawLogin(b, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "perfbench")
		c.NC.SetDeadline(time.Now().Add(time.Hour))
		q := append([]byte{wire.ComQuery}, "SELECT c FROM t WHERE id = 2"...)
		b.ReportAllocs()
		for b.Loop() {
			c.Seq = 0
			if err := c.WriteFlush(q); err != nil {
				b.Fatal(err)
			}
			if n, err := readResponse(c); err != nil || n != 1 {
				b.Fatalf("point select: %d rows, %v", n, err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		c := rawLogin(b, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "perfbench")
		c.NC.SetDeadline(time.Now().Add(time.Hour))
		if err := c.send(append([]byte{wire.ComStmtPrepare}, "SELECT c FROM t WHERE id = ?"...)); err != nil {
			b.Fatal(err)
		}
		first, err := c.read()
		if err != nil {
			b.Fatal(err)
		}
		pok, ok := wire.ParsePrepareOK(first)
		if !ok || pok.Params != 1 {
			b.Fatalf("prepare answered %q", first)
		}
		for i := 0; i < int(pok.Params)+1+int(pok.Columns)+1; i++ {
			if _, err := c.read(); err != nil {
				b.Fatal(err)
			}
		}
		exec := func(bound byte) []byte {
			e := []byte{wire.ComStmtExecute, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, bound}
			binary.LittleEndian.PutUint32(e[1:], pok.StmtID)
			if bound == 1 {
				e = append(e, 0x08, 0x00) // LONGLONG
			}
			return binary.LittleEndian.AppendUint64(e, 2)
		}
		run := func(pkt []byte) {
			c.Seq = 0
			if err := c.WriteFlush(pkt); err != nil {
				b.Fatal(err)
			}
			if n, err := readResponse(c); err != nil || n != 1 {
				b.Fatalf("execute: %d rows, %v", n, err)
			}
		}
		run(exec(1))
		again := exec(0)
		b.ReportAllocs()
		for b.Loop() {
			run(again)
		}
	})
}
