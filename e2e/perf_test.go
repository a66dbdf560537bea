package e2e

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
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

// TestPreparedStatementsBoundedAt256Threads: sysbench oltp_point_select
// with 256 threads, prepared statements, through sluice. Every session
// prepares the same 4 statements (one per table); sluice shares one server
// statement per (connection, schema, text), so each replica holds at most
// 4 per backend connection, instead of a statement per client prepare on
// every connection that session ever ran on, which grew with sessions ×
// connections until the server refused with 1461. No error is allowed.
func TestPreparedStatementsBoundedAt256Threads(t *testing.T) {
	topo, p := sysbenchTopology(t)
	const threads, distinct = 256, 4
	type peak struct{ stmts, conns int64 }
	peaks := map[string]*peak{}
	for _, r := range topo.Replicas {
		peaks[r.Name] = &peak{}
	}
	var mu sync.Mutex
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, r := range topo.Replicas {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				n, err := r.GlobalStatus(ctx, "Prepared_stmt_count")
				cancel()
				open := int64(p.Pool(r.Name).Stats().Open)
				mu.Lock()
				if pk := peaks[r.Name]; err == nil {
					pk.stmts, pk.conns = max(pk.stmts, n), max(pk.conns, open)
				}
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	args := append(sysbenchArgs(p.Addr().String(), threads), "--time="+sysbenchTime(), "oltp_point_select", "run")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sysbench", args...).CombinedOutput()
	close(done)
	<-sampled
	if err != nil {
		t.Fatalf("sysbench oltp_point_select with %d threads: %v\n%s", threads, err, out)
	}
	r, err := parseSysbench(string(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.IgnoredErrors != 0 || r.Reconnects != 0 || r.Total == 0 {
		t.Fatalf("sysbench: %d queries, %d errors, %d reconnects; want work, 0 and 0\n%s", r.Total, r.IgnoredErrors, r.Reconnects, out)
	}
	t.Logf("sysbench oltp_point_select, %d threads: %d queries (%.0f/s), p95 %.2f ms, 0 errors", threads, r.Total, r.QPS, r.P95)
	for _, rep := range topo.Replicas {
		pk := peaks[rep.Name]
		t.Logf("%s: peak Prepared_stmt_count %d, peak backend connections from sluice %d (%.1f statements per connection)",
			rep.Name, pk.stmts, pk.conns, float64(pk.stmts)/float64(max(pk.conns, 1)))
		if pk.conns == 0 {
			t.Errorf("%s: sluice never opened a connection to it", rep.Name)
		}
		if pk.stmts > distinct*pk.conns {
			t.Errorf("%s held %d prepared statements, more than %d distinct statements × %d connections", rep.Name, pk.stmts, distinct, pk.conns)
		}
	}
}

// TestIdleClientsCostLittleMemory: 10,000 clients log in to a sluice
// process, run one read each and stay connected, idle. Each idle client
// holds only its socket, goroutine and session state, no read or write
// buffer, so sluice's whole resident set stays under 100 MB (it was 361 MB
// when each client kept two 16 KiB buffers).
func TestIdleClientsCostLittleMemory(t *testing.T) {
	const clients = 10000
	const limit = 100 << 20
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < clients+1000 {
		rl.Cur = min(rl.Max, 2*clients+1000)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}
	if rl.Cur < clients+1000 {
		t.Fatalf("RLIMIT_NOFILE is %d (hard %d): %d clients need more", rl.Cur, rl.Max, clients)
	}
	bin := buildSluice(t)
	port := perfFreePort(t)
	var y strings.Builder
	fmt.Fprintf(&y, "listen: 127.0.0.1:%d\nhttp_listen: \"\"\n", port)
	// The default limit is half the descriptors left after the reserve:
	// this test wants all of its clients in.
	fmt.Fprintf(&y, "max_client_connections: %d\n", clients+500)
	fmt.Fprintf(&y, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	fmt.Fprintf(&y, "monitor: {user: %s, password: %s}\nservers:\n", testbed.MonitorUser, testbed.MonitorPassword)
	for _, s := range shared.Servers {
		fmt.Fprintf(&y, "  - {name: %s, address: %s}\n", s.Name, s.Addr())
	}
	cfgPath := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 30*time.Second, "sluice answers on "+addr, func() bool {
		c, err := idleClient(addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	base := perfRSS(t, cmd.Process.Pid)

	conns := make([]net.Conn, 0, clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan struct{})
	go func() {
		defer close(next)
		for range clients {
			next <- struct{}{}
		}
	}()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := idleClient(addr)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("%d clients connected, then: %v\nsluice log:\n%s", len(conns), firstErr, logs.String())
	}
	rss := perfRSS(t, cmd.Process.Pid)
	t.Logf("sluice RSS: %.1f MB before the clients, %.1f MB with %d idle clients (%.1f KB each)",
		float64(base)/(1<<20), float64(rss)/(1<<20), len(conns), float64(rss-base)/1024/float64(len(conns)))
	if rss >= limit {
		t.Errorf("sluice RSS with %d idle clients is %.1f MB, want < %d MB", len(conns), float64(rss)/(1<<20), limit>>20)
	}
	// They are idle, not dead: one of them still gets an answer.
	last := wire.NewLendingConn(conns[len(conns)-1])
	last.Seq = 0
	last.NC.SetDeadline(time.Now().Add(30 * time.Second))
	if err := last.WriteFlush(append([]byte{wire.ComQuery}, "SELECT 1"...)); err != nil {
		t.Fatal(err)
	}
	if n, err := readResponse(&rawConn{Conn: last}); err != nil || n != 1 {
		t.Fatalf("an idle client's SELECT 1: %d rows, %v", n, err)
	}
}

// idleClient logs in as the app user with a connection that keeps no
// buffers, runs SELECT 1 (a read: a replica's pooled connection serves it)
// and returns the connection, left idle.
func idleClient(addr string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := wire.NewLendingConn(nc)
	fail := func(err error) (net.Conn, error) {
		nc.Close()
		return nil, err
	}
	p, err := c.ReadPacket(0)
	if err != nil {
		return fail(fmt.Errorf("greeting: %w", err))
	}
	hs, ok := wire.ParseHandshake(p)
	if !ok {
		return fail(fmt.Errorf("bad greeting %q", p))
	}
	resp := wire.HandshakeResponse{
		Capabilities: rawCaps, MaxPacket: wire.MaxPayload, Collation: wire.DefaultCollation,
		User: testbed.AppUser, AuthResponse: wire.NativePasswordHash(hs.Scramble, testbed.AppPassword),
		AuthPlugin: wire.NativePassword,
	}
	if err := c.WriteFlush(wire.AppendHandshakeResponse(nil, resp)); err != nil {
		return fail(err)
	}
	if p, err = c.ReadPacket(0); err != nil || !wire.IsOK(p) {
		return fail(fmt.Errorf("login: %q, %v", p, err))
	}
	c.Seq = 0
	if err := c.WriteFlush(append([]byte{wire.ComQuery}, "SELECT 1"...)); err != nil {
		return fail(err)
	}
	if n, err := readResponse(&rawConn{Conn: c}); err != nil || n != 1 {
		return fail(fmt.Errorf("SELECT 1: %d rows, %v", n, err))
	}
	c.Idle()
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// perfRSS returns a process's resident set size in bytes (VmRSS).
func perfRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// perfFreePort returns a loopback TCP port nothing listens on.
func perfFreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestOutOfPreparedStatements: a server that answers 1461 (Can't create
// more than max_prepared_stmt_count statements). sluice frees the
// statements it holds for idle sessions and tries again, so a new session
// can prepare, and the idle sessions, when they come back, get theirs
// prepared again; when the server is full of statements sluice does not
// hold, the client's error says what sluice did; and once the sessions
// close, the server's count goes back to where it was.
func TestOutOfPreparedStatements(t *testing.T) {
	const limit = 40
	topo := testbed.StartT(t, testbed.Options{Replicas: 0, ExtraArgs: append(append([]string(nil), serverArgs...), fmt.Sprintf("--max-prepared-stmt-count=%d", limit))})
	p := startSluice(t, sluiceOpts{topo: topo})
	schema := newSchema(t, topo, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
	ctx := context.Background()
	count := func() int64 {
		t.Helper()
		n, err := topo.Primary.GlobalStatus(ctx, "Prepared_stmt_count")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := count()
	d := openDB(t, p, schema, "interpolateParams=false")
	type session struct {
		c     *sql.Conn
		stmts []*sql.Stmt
		first int
	}
	open := func(first, n int) *session {
		t.Helper()
		s := &session{c: conn(t, d), first: first}
		for i := range n {
			st, err := s.c.PrepareContext(ctx, fmt.Sprintf("SELECT v + %d FROM t WHERE id = ?", first+i))
			if err != nil {
				t.Fatalf("prepare statement %d: %v", first+i, err)
			}
			s.stmts = append(s.stmts, st)
		}
		return s
	}
	check := func(s *session) error {
		for i, st := range s.stmts {
			var v int
			if err := st.QueryRowContext(ctx, 1).Scan(&v); err != nil {
				return fmt.Errorf("statement %d: %w", s.first+i, err)
			}
			if v != 1+s.first+i {
				return fmt.Errorf("statement %d returned %d, want %d", s.first+i, v, 1+s.first+i)
			}
		}
		return nil
	}
	// 4 sessions with 8 statements each, executed, then idle.
	var idle []*session
	for i := range 4 {
		s := open(i*8, 8)
		if err := check(s); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, s)
	}
	t.Logf("4 idle sessions: Prepared_stmt_count %d (limit %d)", count(), limit)
	// A new session needs 16 more than the server has left.
	fresh := open(100, 16)
	if err := check(fresh); err != nil {
		t.Fatalf("a new session past the server's limit: %v", err)
	}
	// The idle sessions come back: their statements are prepared again.
	for _, s := range idle {
		if err := check(s); err != nil {
			t.Fatalf("an idle session back after its statements were freed: %v", err)
		}
	}
	t.Logf("after the new session and the idle sessions' return: Prepared_stmt_count %d", count())

	// Close sluice's sessions: the server's count goes back to where it was.
	for _, s := range append(idle, fresh) {
		for _, st := range s.stmts {
			st.Close()
		}
		s.c.Close()
	}
	d.Close()
	waitFor(t, 10*time.Second, "Prepared_stmt_count back to its baseline after sluice's sessions closed", func() bool {
		return count() <= base
	})

	// Another client fills the server: sluice has nothing to free, and says so.
	direct, err := sql.Open("mysql", topo.Primary.DSN(testbed.AppUser, testbed.AppPassword, schema)+"&interpolateParams=false")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	dc, err := direct.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	for i := 0; ; i++ {
		st, err := dc.PrepareContext(ctx, fmt.Sprintf("SELECT %d", i))
		if err != nil {
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1461 {
				t.Fatalf("filling the server: %v", err)
			}
			break
		}
		defer st.Close()
	}
	d2 := openDB(t, p, schema, "interpolateParams=false")
	c2 := conn(t, d2)
	_, err = c2.PrepareContext(ctx, "SELECT v FROM t WHERE id = ?")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1461 || !strings.Contains(me.Message, "sluice closed") {
		t.Fatalf("prepare on a server full of another client's statements: %v; want 1461 saying what sluice freed", err)
	}
	t.Logf("client sees: %v", err)
}
