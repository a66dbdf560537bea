package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// bystander is a logged-in session that must not notice what other
// connections do to sluice.
func bystander(t testing.TB, p *proxy.Proxy) *sql.Conn {
	t.Helper()
	c := conn(t, openDB(t, p, ""))
	if got := queryString(t, c, "SELECT 'bystander'"); got != "bystander" {
		t.Fatal(got)
	}
	return c
}

// stillServes checks that a bystander still works and that sluice accepts
// and serves a new connection.
func stillServes(t testing.TB, p *proxy.Proxy, by *sql.Conn) {
	t.Helper()
	if got := queryString(t, by, "SELECT 'bystander'"); got != "bystander" {
		t.Fatalf("bystander: %q", got)
	}
	c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	if v := c.value(t, "SELECT 'new'"); v != "new" {
		t.Fatalf("new session: %q", v)
	}
	c.Close()
}

// waitSessions waits until sluice has exactly n client sessions: a bad
// connection must not leave one behind.
func waitSessions(t testing.TB, p *proxy.Proxy, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("sluice has %d sessions", n), func() bool { return len(p.Sessions()) == n })
}

// packet frames payload as one packet with sequence id seq.
func packet(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// errPacket finds the ERR packet in what a server sent before closing.
func errPacket(b []byte) *wire.Error {
	for len(b) >= 4 {
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if len(b) < 4+n {
			return nil
		}
		if p := b[4 : 4+n]; wire.IsERR(p) {
			return wire.ParseError(p)
		}
		b = b[4+n:]
	}
	return nil
}

func TestGarbageOnThePortIsDropped(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "timeouts: {handshake: 1s}\n"})
	by := bystander(t, p)
	noise := make([]byte, 4096)
	rand.NewChaCha8([32]byte{7}).Read(noise) // the same bytes every run
	cases := []struct {
		name     string
		greeting bool   // read the greeting first
		send     []byte // then send this
		wantErr  uint16 // ERR packet sluice sends before closing; 0: none
	}{
		{"HTTP request", false, []byte("GET / HTTP/1.1\r\nHost: sluice\r\n\r\n"), 0},
		{"random bytes", true, noise, 0},
		{"TLS ClientHello without SSLRequest", true, []byte{0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03}, 0},
		{"packet out of sequence", true, packet(7, make([]byte, 40)), 0},
		{"handshake response too short", true, packet(1, []byte("hello")), 1043},
		{"handshake response of 0xff bytes", true, packet(1, noiseOf(0xff, 64)), 1043},
		{"protocol 3.x handshake response", true, packet(1, make([]byte, 40)), 1043},
		{"length of 16 MiB then nothing", true, []byte{0xff, 0xff, 0xff, 1, 'x'}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &rawConn{timeout: 5 * time.Second}
			nc := dialRaw(t, p)
			c.Conn = wire.NewConn(nc)
			if tc.greeting {
				if _, err := c.read(); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			nc.Write(tc.send) // sluice may close before reading it all
			closed, got := c.closedWithin(5 * time.Second)
			if !closed {
				t.Fatal("sluice keeps the connection open")
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("closed after %s; timeouts.handshake is 1s", d)
			}
			if !tc.greeting {
				got = skipGreeting(got)
			}
			e := errPacket(got)
			switch {
			case tc.wantErr == 0 && e != nil:
				t.Errorf("unexpected error packet %v", e)
			case tc.wantErr != 0 && (e == nil || e.Code != tc.wantErr):
				t.Errorf("got error packet %v, want %d", e, tc.wantErr)
			}
		})
	}
	waitSessions(t, p, 1)
	stillServes(t, p, by)
}

func noiseOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func dialRaw(t testing.TB, p *proxy.Proxy) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", p.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// skipGreeting drops the server's greeting from what it sent.
func skipGreeting(b []byte) []byte {
	if len(b) < 4 {
		return nil
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if len(b) < 4+n {
		return nil
	}
	return b[4+n:]
}

func TestHalfHandshakeTimesOut(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "timeouts: {handshake: 1s}\n"})
	by := bystander(t, p)
	cases := []struct {
		name     string
		greeting bool
		send     []byte
	}{
		{"silent, greeting unread", false, nil},
		{"silent after the greeting", true, nil},
		{"half a packet header", true, []byte{0x40, 0}},
		{"half a handshake response", true, packet(1, make([]byte, 80))[:40]},
	}
	type pending struct {
		c     *rawConn
		start time.Time
	}
	conns := make([]pending, len(cases))
	// All at once: each must be cut by its own deadline.
	for i, tc := range cases {
		nc := dialRaw(t, p)
		c := &rawConn{Conn: wire.NewConn(nc), timeout: 5 * time.Second}
		conns[i] = pending{c, time.Now()}
		if tc.greeting {
			if _, err := c.read(); err != nil {
				t.Fatal(err)
			}
		}
		if tc.send != nil {
			nc.Write(tc.send)
		}
	}
	// Meanwhile the bystander runs a statement longer than the handshake
	// timeout: a logged-in session has no handshake deadline left.
	errc := make(chan error, 1)
	go func() {
		_, err := by.ExecContext(context.Background(), "SELECT SLEEP(1.5)")
		errc <- err
	}()
	for i, tc := range cases {
		closed, _ := conns[i].c.closedWithin(5 * time.Second)
		d := time.Since(conns[i].start)
		if !closed {
			t.Errorf("%s: still open after %s", tc.name, d)
			continue
		}
		// Never before the timeout; after it, within what a loaded
		// machine takes to notice a passed deadline.
		if d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("%s: closed after %s, want about timeouts.handshake (1s)", tc.name, d)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("bystander's 1.5 s statement: %v", err)
	}
	waitSessions(t, p, 1)
	stillServes(t, p, by)
}

func TestWrongPasswordAndUnknownUserGet1045(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	by := bystander(t, p)
	logins := []struct{ user, password string }{
		{testbed.AppUser, "wrong"},
		{"nobody", "secret"},
		{testbed.AppUser, ""},
		{"nobody", ""},
	}
	run := func(addr string) []string {
		var out []string
		for _, l := range logins {
			// go-sql-driver, as an application would see it.
			d, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/?timeout=5s", l.user, l.password, addr))
			if err != nil {
				t.Fatal(err)
			}
			err = d.PingContext(context.Background())
			d.Close()
			out = append(out, fmt.Sprintf("%s/%q: code %d: %v", l.user, l.password, errCode(err), err))
		}
		// The connection is closed after the error.
		c := rawDial(t, addr)
		err := c.login(testbed.AppUser, "wrong", "", rawCaps)
		closed, _ := c.closedWithin(5 * time.Second)
		out = append(out, fmt.Sprintf("raw: %v, then closed: %v", err, closed))
		return out
	}
	server, sluice := run(shared.Primary.Addr()), run(p.Addr().String())
	compareTranscripts(t, server, sluice)
	if !strings.Contains(sluice[0], "code 1045: Error 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)") {
		t.Errorf("wrong password: %s", sluice[0])
	}
	waitSessions(t, p, 1)
	stillServes(t, p, by)
}

func TestUnknownCommandsGet1047AndTheSessionGoesOn(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	cmds := []struct {
		name    string
		payload []byte
		message string // part of the error message
	}{
		{"COM_DAEMON", []byte{wire.ComDaemon}, "Unknown command 29"},
		{"COM_BINLOG_DUMP", append([]byte{wire.ComBinlogDump}, make([]byte, 10)...), "replication"},
		{"COM_BINLOG_DUMP_GTID", append([]byte{wire.ComBinlogDumpGTID}, make([]byte, 10)...), "replication"},
		{"COM_REGISTER_SLAVE", append([]byte{wire.ComRegisterSlave}, make([]byte, 18)...), "COM_REGISTER_SLAVE"},
		{"COM_SHUTDOWN", []byte{wire.ComShutdown, 0}, "SHUTDOWN"},
		{"COM_REFRESH", []byte{wire.ComRefresh, 1}, "FLUSH"},
		{"COM_PROCESS_INFO", []byte{wire.ComProcessInfo}, "SHOW PROCESSLIST"},
		{"COM_DEBUG", []byte{wire.ComDebug}, "COM_DEBUG"},
		{"COM_SLEEP", []byte{wire.ComSleep}, "Unknown command 0"},
		{"COM_TIME", []byte{wire.ComTime}, "Unknown command"},
		{"COM_CONNECT", []byte{wire.ComConnect}, "Unknown command"},
		{"command 0x40", []byte{0x40, 1, 2, 3}, "Unknown command 64"},
		{"command 0xff", []byte{0xff}, "Unknown command 255"},
		{"empty packet", nil, "Unknown command"},
	}
	for _, cmd := range cmds {
		_, err := c.command(cmd.payload)
		wantCode(t, cmd.name, err, 1047)
		if !strings.Contains(err.Error(), cmd.message) {
			t.Errorf("%s: message %q does not mention %q", cmd.name, err, cmd.message)
		}
		if pk, err := c.command([]byte{wire.ComPing}); err != nil || !wire.IsOK(pk) {
			t.Fatalf("COM_PING after %s: %q %v", cmd.name, pk, err)
		}
	}
	if v := c.value(t, "SELECT 'still here'"); v != "still here" {
		t.Fatal(v)
	}
	// sluice answered each itself: no server saw them (one would have shut
	// down, another would have started streaming its binlog).
	for _, s := range shared.Servers {
		if !s.Running() {
			t.Fatalf("%s is down", s.Name)
		}
	}
}

func TestPacketOverMaxAllowedPacketGets1153(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "max_allowed_packet: 1MiB\n"})
	by := bystander(t, p)
	ctx := context.Background()
	big := strings.Repeat("x", 2<<20)

	for _, proto := range wireProtocols {
		t.Run(proto.name, func(t *testing.T) {
			c := conn(t, openDB(t, p, "", proto.params...))
			var n int
			if err := c.QueryRowContext(ctx, "SELECT LENGTH(?)", big[:1<<20-100]).Scan(&n); err != nil || n != 1<<20-100 {
				t.Fatalf("a command just under max_allowed_packet: %d %v", n, err)
			}
			err := c.QueryRowContext(ctx, "SELECT LENGTH(?)", big).Scan(&n)
			wantCode(t, "2 MiB command", err, 1153)
			if !strings.Contains(err.Error(), "max_allowed_packet") {
				t.Errorf("message %q does not name max_allowed_packet", err)
			}
			// As MariaDB does, sluice closes the connection after 1153.
			if _, err := c.ExecContext(ctx, "DO 1"); err == nil {
				t.Fatal("the connection still works after 1153")
			}
		})
	}

	t.Run("17 MiB in two packets", func(t *testing.T) {
		c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
		_, err := c.query("SELECT '" + strings.Repeat("y", 17<<20) + "'")
		wantCode(t, "17 MiB command", err, 1153)
		if closed, _ := c.closedWithin(5 * time.Second); !closed {
			t.Fatal("the connection stays open after 1153")
		}
	})
	waitSessions(t, p, 1)
	stillServes(t, p, by)
}

// serverUp reports what sluice's monitor thinks of a server.
func serverUp(p *proxy.Proxy, name string) bool {
	s, ok := p.Monitor().Snapshot().ByName(name)
	return ok && s.Up
}

func TestBackendThatRefusesConnections(t *testing.T) {
	t.Parallel() // own servers (or none): runs beside the other tests that do
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: "routing: {read_your_writes: false}\ntimeouts: {connect: 1s}\n"})
	db := newSchema(t, topo, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	d := openDB(t, p, db)
	d.SetMaxIdleConns(8)
	ctx := context.Background()
	port := func(s *testbed.Server) string { return fmt.Sprint(s.Port) }

	// Readers run all along; count what fails and where reads ran.
	var reads, failures atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var port string
				if err := d.QueryRowContext(ctx, "SELECT @@port").Scan(&port); err != nil {
					failures.Add(1)
					lastErr.Store(err.Error())
				}
				reads.Add(1)
			}
		}()
	}
	stopReaders := func() {
		close(stop)
		wg.Wait()
	}
	waitFor(t, 5*time.Second, "reads flow", func() bool { return reads.Load() > 50 })

	gone := topo.Replicas[0]
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := gone.Stop(sctx); err != nil {
		stopReaders()
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "sluice sees "+gone.Name+" down", func() bool { return !serverUp(p, gone.Name) })
	during := failures.Load()
	before := reads.Load()
	waitFor(t, 10*time.Second, "reads go on", func() bool { return reads.Load() > before+100 })
	stopReaders()
	if after := failures.Load() - during; after != 0 {
		t.Fatalf("%d reads failed after the monitor saw %s down (last: %v)", after, gone.Name, lastErr.Load())
	}
	if during != 0 {
		// Before the monitor notices, a read whose replica refuses it is
		// retried once on another server.
		t.Errorf("%d of %d reads failed while %s shut down (last: %v)", during, before, gone.Name, lastErr.Load())
	}
	for i := 0; i < 20; i++ {
		if got := queryString(t, d, "SELECT @@port"); got == port(gone) {
			t.Fatalf("a read ran on the stopped server")
		}
	}

	// The primary stops: writes fail at once with a clear error; reads go on
	// on the replica left.
	c := conn(t, d)
	mustExec(t, c, "INSERT INTO t (v) VALUES (1)")
	if err := topo.Primary.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	write := func() (error, time.Duration) {
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.ExecContext(wctx, "INSERT INTO t (v) VALUES (2)")
		return err, time.Since(start)
	}
	err, took := write()
	if code := errCode(err); code != 9001 && !lostConnection(err) {
		t.Fatalf("write to a stopped primary: %v, want error 9001 or a lost connection", err)
	}
	if took > 5*time.Second {
		t.Errorf("the write took %s to fail", took)
	}
	if lostConnection(err) {
		// sluice closed the session (the write was running when its
		// primary went away): the next write comes on a new one.
		c = conn(t, d)
	}
	waitFor(t, 10*time.Second, "sluice sees the primary down", func() bool { return !serverUp(p, topo.Primary.Name) })
	err, took = write()
	wantCode(t, "write without a primary", err, 9001)
	// At once: it waits for no timeout (the shortest here is 2 s).
	if !strings.Contains(err.Error(), "no primary") || took > 2*time.Second {
		t.Errorf("write without a primary: %v after %s", err, took)
	}
	// The replica left has lost its primary, so its lag is unknown: reads
	// are answered there or refused at once, never left hanging.
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	var got string
	if err := c.QueryRowContext(rctx, "SELECT @@port").Scan(&got); err != nil {
		wantCode(t, "read without a primary", err, 9001)
		t.Logf("read without a primary: %v", err)
	} else if got != port(topo.Replicas[1]) {
		t.Fatalf("read on port %s, want the replica left (%s)", got, port(topo.Replicas[1]))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("read without a primary took %s", took)
	}
	// The primary comes back: the same session writes again.
	if err := topo.Primary.Start(sctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "sluice sees the primary again", func() bool { return serverUp(p, topo.Primary.Name) })
	mustExec(t, c, "INSERT INTO t (v) VALUES (3)")
}

// runningOn returns the server running a statement containing marker.
func runningOn(t testing.TB, topo *testbed.Topology, marker string) *testbed.Server {
	t.Helper()
	for _, s := range topo.Servers {
		if !s.Running() || s.Paused() {
			continue
		}
		db, err := s.Admin()
		if err != nil {
			t.Fatal(err)
		}
		var k int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> @@pseudo_thread_id", "%"+marker+"%").Scan(&k); err != nil {
			t.Fatal(err)
		}
		if k > 0 {
			return s
		}
	}
	return nil
}

// async runs a query on c in the background.
func async(c *sql.Conn, ctx context.Context, query string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		rows, err := c.QueryContext(ctx, query)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		errc <- err
	}()
	return errc
}

func TestBackendDiesMidQuery(t *testing.T) {
	t.Parallel() // own servers (or none): runs beside the other tests that do
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: "routing: {read_your_writes: false}\n"})
	d := openDB(t, p, "")
	by := bystander(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	t.Run("a read outside a transaction is retried on another server", func(t *testing.T) {
		c := conn(t, d)
		start := time.Now()
		var port string
		done := make(chan error, 1)
		go func() {
			done <- c.QueryRowContext(ctx, "SELECT SLEEP(2) AS dies_autocommit, @@port").Scan(new(int), &port)
		}()
		var victim *testbed.Server
		waitFor(t, 5*time.Second, "the read runs", func() bool {
			victim = runningOn(t, topo, "dies_autocommit")
			return victim != nil
		})
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("read whose replica died: %v", err)
		}
		if port == fmt.Sprint(victim.Port) || time.Since(start) > 5*time.Second {
			t.Fatalf("answered by port %s after %s (victim %s on %d)", port, time.Since(start), victim.Name, victim.Port)
		}
	})

	t.Run("a read in a transaction loses the client connection", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "START TRANSACTION READ ONLY")
		errc := async(c, ctx, "SELECT SLEEP(20) AS dies_in_txn")
		var victim *testbed.Server
		waitFor(t, 5*time.Second, "the read runs", func() bool {
			victim = runningOn(t, topo, "dies_in_txn")
			return victim != nil
		})
		if victim == topo.Primary {
			t.Fatal("the read-only transaction runs on the primary")
		}
		start := time.Now()
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			// Closed, so the client library reports its own lost
			// connection (an ERR 2013 becomes 2027 in C clients).
			if !lostConnection(err) {
				t.Fatalf("statement on a killed server: %v, want a lost connection", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no answer 5 s after the server died")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("error after %s", took)
		}
		// The transaction is gone with its server; a new session works.
		if got := queryString(t, d, "SELECT 'alive'"); got != "alive" {
			t.Fatal(got)
		}
	})
	mustExec(t, by, "DO 1")
	stillServes(t, p, by)
}

func TestBackendFreezesMidQuery(t *testing.T) {
	t.Parallel() // own servers (or none): runs beside the other tests that do
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	replica := topo.Replicas[0]
	t.Cleanup(func() {
		if replica.Paused() {
			replica.Resume()
		}
	})
	// The monitor must not see the freeze before timeouts.query (2 s) ends
	// the statement: checks that take 3 s to time out, two of them to call
	// the server down, leave the query timeout alone to answer.
	p := startSluice(t, sluiceOpts{topo: topo, yaml: "routing: {read_your_writes: false}\ntimeouts: {query: 2s}\n", mutate: func(c *config.Config) {
		c.Health.Timeout = config.Duration(3 * time.Second)
	}})
	d := openDB(t, p, "")
	by := bystander(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // catches a hang
	defer cancel()

	t.Run("a read in a transaction gets 1969", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "START TRANSACTION READ ONLY")
		if got := queryString(t, c, "SELECT @@port"); got != fmt.Sprint(replica.Port) {
			t.Fatalf("read-only transaction on port %s, not the replica", got)
		}
		start := time.Now()
		errc := async(c, ctx, "SELECT SLEEP(1) AS freezes_in_txn")
		waitFor(t, 5*time.Second, "the read runs", func() bool { return runningOn(t, topo, "freezes_in_txn") == replica })
		if err := replica.Pause(); err != nil {
			t.Fatal(err)
		}
		err := <-errc
		took := time.Since(start)
		wantCode(t, "statement on a frozen server", err, 1969)
		if took < 2*time.Second || took > 5*time.Second {
			t.Errorf("error after %s, want timeouts.query (2s) after the statement was sent", took)
		}
		if !strings.Contains(err.Error(), "timeouts.query") {
			t.Errorf("message %q does not name the setting", err)
		}
		if got := queryString(t, c, "SELECT 'alive'"); got != "alive" {
			t.Fatal(got)
		}
	})

	// Writes on the primary never notice.
	mustExec(t, by, "DO 1")
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reads reach the replica again", func() bool {
		return queryString(t, d, "SELECT @@port") == fmt.Sprint(replica.Port)
	})

	t.Run("a read outside a transaction is retried on the primary", func(t *testing.T) {
		c := conn(t, d)
		queryString(t, c, "SELECT 1")
		if err := replica.Pause(); err != nil {
			t.Fatal(err)
		}
		// The monitor needs more than a second to see the freeze, so the
		// read goes to the replica, times out, and is retried.
		start := time.Now()
		var port string
		if err := c.QueryRowContext(ctx, "SELECT @@port").Scan(&port); err != nil {
			t.Fatalf("read while the replica is frozen: %v", err)
		}
		took := time.Since(start)
		if port != fmt.Sprint(topo.Primary.Port) || took < 1900*time.Millisecond || took > 5*time.Second {
			t.Fatalf("answered by port %s after %s, want the primary after timeouts.query (2s)", port, took)
		}
	})
	stillServes(t, p, by)
}

func TestCheckReportsEveryConfigProblem(t *testing.T) {
	t.Parallel() // reads the shared topology only
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(gocmd, "build", "-o", bin, "github.com/sluice-proxy/sluice/cmd/sluice").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	good := fmt.Sprintf(`listen: 127.0.0.1:0
http_listen: ""
users:
  - {name: %s, password: %s}
monitor: {user: %s, password: %s}
servers:
`, testbed.AppUser, testbed.AppPassword, testbed.MonitorUser, testbed.MonitorPassword)
	for _, s := range shared.Servers {
		good += fmt.Sprintf("  - {name: %s, address: %s}\n", s.Name, s.Addr())
	}
	good += "health: {interval: 200ms, timeout: 1s, rise: 1, fall: 2}\n"
	// Three mistakes: a typo'd key (line 7), a bad duration (line 8) and
	// a server name used twice (line 11).
	bad := `listen: 127.0.0.1:0
http_listen: ""
users:
  - {name: app, password: app}
monitor: {user: sluice_monitor, password: monitor}
routing:
  read_falback: primary
timeouts: {query: 10 seconds}
servers:
  - {name: db1, address: 127.0.0.1:3306}
  - {name: db1, address: 127.0.0.1:3307}
`
	goodFile, badFile := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(goodFile, []byte(good), 0o600)
	os.WriteFile(badFile, []byte(bad), 0o600)

	out, err := exec.Command(bin, "check", "-c", badFile).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check of a bad file: %v, want exit code 1\n%s", err, out)
	}
	for _, want := range []string{
		badFile + `:7:3: unknown key "read_falback"`,
		badFile + `:8:19: timeouts.query: invalid duration "10 seconds"`,
		badFile + `:11:12: servers[1].name: duplicate server name "db1" (first at line 10)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; lines != 3 {
		t.Errorf("check printed %d lines, want one per problem:\n%s", lines, out)
	}
	out, err = exec.Command(bin, "check", "-c", goodFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("check of a good file: %v\n%s", err, out)
	}

	// A running sluice whose file gets a typo refuses the reload and keeps
	// serving with the configuration it has.
	cmd := exec.Command(bin, "run", "-c", goodFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 100)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
		// stderr is at its end: Wait may close it now.
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Error("sluice did not stop within 15 s of SIGTERM")
		}
	})
	addrRE := regexp.MustCompile(`msg="sluice listening" addr=(\S+)`)
	next := func(what string, re *regexp.Regexp) []string {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case line, ok := <-logs:
				if !ok {
					t.Fatalf("sluice exited before logging %s", what)
				}
				if m := re.FindStringSubmatch(line); m != nil {
					return m
				}
			case <-timeout:
				t.Fatalf("sluice did not log %s", what)
			}
		}
	}
	addr := next("its address", addrRE)[1]
	query := func() string {
		d, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/?timeout=5s", testbed.AppUser, testbed.AppPassword, addr))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		return queryString(t, d, "SELECT 'served'")
	}
	if got := query(); got != "served" {
		t.Fatal(got)
	}
	os.WriteFile(goodFile, []byte(strings.Replace(good, "health:", "helth:", 1)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	m := next("the refused reload", regexp.MustCompile(`reload refused.*(helth)`))
	t.Logf("sluice logged: %s", m[0])
	if got := query(); got != "served" {
		t.Fatalf("after a refused reload: %q", got)
	}
	select {
	case err := <-exited:
		t.Fatalf("sluice exited after a refused reload: %v", err)
	default:
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("sluice's process after a refused reload: %v", err)
	}
}

// TestRunWithAndWithoutStats: `sluice run --no-stats` serves clients and
// the admin API but has no metrics, digests or series; without the flag
// it has them.
func TestRunWithAndWithoutStats(t *testing.T) {
	bin := buildSluice(t)
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nhttp_listen: 127.0.0.1:0\nusers:\n  - {name: %s, password: %s}\nmonitor: {user: %s, password: %s}\nservers:\n",
		testbed.AppUser, testbed.AppPassword, testbed.MonitorUser, testbed.MonitorPassword)
	for _, s := range shared.Servers {
		cfg += fmt.Sprintf("  - {name: %s, address: %s}\n", s.Name, s.Addr())
	}
	cfg += "health: {interval: 200ms, timeout: 1s, rise: 1, fall: 2}\nfailover: {state_file: " + filepath.Join(t.TempDir(), "state.json") + "}\n"
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		stats bool
	}{
		{"--no-stats", []string{"run", "-c", file, "--no-stats"}, false},
		{"with stats", []string{"run", "-c", file}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					default: // nobody reads any more
					}
				}
				close(lines)
				exited <- cmd.Wait()
			}()
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(15 * time.Second):
					cmd.Process.Kill()
					t.Error("sluice did not stop within 15 s of SIGTERM")
				}
			})
			sqlRE := regexp.MustCompile(`msg="sluice listening" addr=(\S+)`)
			httpRE := regexp.MustCompile(`msg="admin HTTP listening" addr=(\S+)`)
			var sqlAddr, httpAddr string
			timeout := time.After(15 * time.Second)
			for sqlAddr == "" || httpAddr == "" {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatal("sluice exited before listening")
					}
					if m := sqlRE.FindStringSubmatch(l); m != nil {
						sqlAddr = m[1]
					}
					if m := httpRE.FindStringSubmatch(l); m != nil {
						httpAddr = m[1]
					}
				case <-timeout:
					t.Fatal("sluice did not log its listeners")
				}
			}
			d, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/?timeout=5s", testbed.AppUser, testbed.AppPassword, sqlAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			waitFor(t, 10*time.Second, "sluice serves", func() bool {
				var s string
				return d.QueryRow("SELECT 'served'").Scan(&s) == nil && s == "served"
			})
			for _, path := range []string{"/metrics", "/api/digests", "/api/series"} {
				resp, err := http.Get("http://" + httpAddr + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if want := map[bool]int{true: 200, false: 404}[tc.stats]; resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
				}
			}
			resp, err := http.Get("http://" + httpAddr + "/api/servers")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET /api/servers: %d, want 200 either way", resp.StatusCode)
			}
		})
	}
}
