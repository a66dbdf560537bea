package session

import (
	"crypto/rsa"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/topology"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// These tests cover the session's bookkeeping, which needs no server:
// which statements pin the session to its backend connection, what frees
// it, what happens to a pinned connection when the session ends, and the
// statements sluice sends before a client's own (SET TRANSACTION,
// last_insert_id). Backend connections are net.Pipe ends; the far end
// records what sluice sent and answers OK. How servers answer is tested in
// e2e against real ones.

type testEnv struct {
	pool *backend.Pool
	lim  Limits // zero: Query 5s
}

func (e *testEnv) Logger() *slog.Logger                     { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (e *testEnv) Account(string) (Account, bool)           { return Account{}, false }
func (e *testEnv) Snapshot() *topology.Snapshot             { return &topology.Snapshot{Primary: -1} }
func (e *testEnv) TLSConfig() *tls.Config                   { return nil }
func (e *testEnv) RSAKey() (*rsa.PrivateKey, []byte, error) { return nil, nil, nil }
func (e *testEnv) ServerVersion() string                    { return "10.11.0-MariaDB" }
func (e *testEnv) NextStmtKey() uint64                      { return 1 }
func (e *testEnv) Lookup(uint32) (*Session, bool)           { return nil, false }
func (e *testEnv) Logins() *LoginGuard                      { return nil }

func (e *testEnv) Runtime() *Runtime {
	lim := e.lim
	if lim == (Limits{}) {
		lim.Query = 5 * time.Second
	}
	rt := &Runtime{Limits: lim, Policy: &router.Policy{}, Balancer: &router.Balancer{}, Observer: NopObserver}
	if e.pool != nil {
		rt.Pools = map[string]*backend.Pool{e.pool.Name: e.pool}
	}
	return rt
}

// server is the far end of a backend connection: it records every
// COM_QUERY and answers each packet with an OK.
type server struct {
	mu      sync.Mutex
	queries []string
	closed  chan struct{}
}

func (s *server) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func (s *server) isClosed() bool {
	select {
	case <-s.closed:
		return true
	case <-time.After(time.Second):
		return false
	}
}

func newBackendConn(t *testing.T) (*backend.Conn, *server) {
	t.Helper()
	a, b := net.Pipe()
	srv := &server{closed: make(chan struct{})}
	go func() {
		defer close(srv.closed)
		wc := wire.NewConn(b)
		for {
			p, err := wc.ReadPacket(0)
			if err != nil {
				return
			}
			if len(p) > 0 && p[0] == wire.ComQuery {
				srv.mu.Lock()
				srv.queries = append(srv.queries, string(p[1:]))
				srv.mu.Unlock()
			}
			// OK: no rows, no insert id, autocommit status, no warnings.
			wc.Seq = 1
			if err := wc.WritePacket([]byte{0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}); err != nil {
				return
			}
			if err := wc.W.Flush(); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &backend.Conn{Conn: wire.NewConn(a)}, srv
}

func newTestSession(t *testing.T) (*engine, *testEnv) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	env := &testEnv{pool: backend.NewPool("db1", "127.0.0.1:1", backend.Settings{MaxIdle: 10})}
	return New(1, a, env).eng.(*engine), env
}

// ok is a server answer: autocommit on, no transaction, unless flags say.
func ok(status uint16) wire.Result {
	return wire.Result{HasStatus: true, Status: status}
}

const autocommit = wire.StatusAutocommit

func run(s *engine, c *backend.Conn, sql string, res wire.Result) {
	s.afterResult(c, "db1", router.Primary, sqlscan.Scan([]byte(sql)), []byte(sql), res)
}

func TestStatementsThatPinTheSession(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		res    wire.Result
		pin    pinReason
		pinned bool
	}{
		{"SELECT 1", ok(autocommit), 0, false},
		{"INSERT INTO t VALUES (1)", ok(autocommit), 0, false},
		{"CREATE TEMPORARY TABLE tmp (x INT)", ok(autocommit), pinTempTable, true},
		{"SELECT GET_LOCK('l', 1)", ok(autocommit), pinUserLock, true},
		{"LOCK TABLES t WRITE", ok(autocommit), pinLockTables, true},
		{"SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1", ok(autocommit), pinNext, true},
		{"PREPARE ps FROM 'SELECT 1'", ok(autocommit), pinTextPrepare, true},
		{"SELECT @x := 1", ok(autocommit), pinUserVar, true},
		{"SELECT 1 INTO @x", ok(autocommit), pinUserVar, true},
		{"SET @id = LAST_INSERT_ID()", ok(autocommit), pinUnknownState, true},
		{"SET @n = @n + 1", ok(autocommit), pinUnknownState, true},
		{"SET @a = 1; SELECT 1", ok(autocommit), pinUnknownState, true},
		{"SELECT 1; SELECT 2", ok(autocommit), 0, false},
		{"SET sql_mode = 'ANSI'", ok(autocommit), 0, false},
		{"SELECT CAST('1x' AS UNSIGNED)", wire.Result{HasStatus: true, Status: autocommit, Warnings: 1}, pinNext, true},
		{"SELECT * FROM missing", wire.Result{Err: &wire.Error{Code: 1146}}, pinNext, true},
		{"BEGIN", ok(autocommit | wire.StatusInTrans), 0, true},
		{"INSERT INTO t VALUES (1)", ok(wire.StatusInTrans), 0, true}, // autocommit=0
	} {
		t.Run(tc.sql, func(t *testing.T) {
			s, env := newTestSession(t)
			c, _ := newBackendConn(t)
			run(s, c, tc.sql, tc.res)
			if s.pins != tc.pin {
				t.Errorf("pins %b, want %b", s.pins, tc.pin)
			}
			if got := s.pinned == c; got != tc.pinned {
				t.Errorf("pinned %v, want %v", got, tc.pinned)
			}
			if idle := env.pool.Stats().Idle; idle != map[bool]int{true: 0, false: 1}[tc.pinned] {
				t.Errorf("%d idle in the pool: an unpinned connection goes back to it, a pinned one stays", idle)
			}
		})
	}
}

// What the server reports ends a pin: the connection goes back to the pool
// at the statement that ends the state, not before.
func TestPinsEndWithTheirState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string // all succeed with autocommit on
		last  string
		res   wire.Result
	}{
		{"RELEASE_ALL_LOCKS ends a user lock", []string{"SELECT GET_LOCK('l', 1)"}, "SELECT RELEASE_ALL_LOCKS()", ok(autocommit)},
		{"UNLOCK TABLES ends LOCK TABLES", []string{"LOCK TABLES t READ"}, "UNLOCK TABLES", ok(autocommit)},
		{"the next statement ends pinNext", []string{"SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1"}, "SELECT FOUND_ROWS()", ok(autocommit)},
		{"COMMIT ends a transaction", []string{"BEGIN"}, "COMMIT", ok(autocommit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, env := newTestSession(t)
			c, _ := newBackendConn(t)
			res := ok(autocommit)
			for _, st := range tc.steps {
				if st == "BEGIN" {
					res = ok(autocommit | wire.StatusInTrans)
				}
				run(s, c, st, res)
			}
			if s.pinned != c {
				t.Fatalf("not pinned after %q", tc.steps)
			}
			run(s, c, tc.last, tc.res)
			if s.pinned != nil || s.pins != 0 || s.inTxn {
				t.Fatalf("after %q: pinned %v, pins %b, in transaction %v; want free", tc.last, s.pinned != nil, s.pins, s.inTxn)
			}
			if env.pool.Stats().Idle != 1 {
				t.Fatalf("the freed connection is not back in the pool: %+v", env.pool.Stats())
			}
		})
	}
	// Diagnostics keep pinNext: SHOW WARNINGS must reach the connection
	// that has the warnings, and so must the statement after it.
	s, _ := newTestSession(t)
	c, _ := newBackendConn(t)
	run(s, c, "SELECT CAST('1x' AS UNSIGNED)", wire.Result{HasStatus: true, Status: autocommit, Warnings: 1})
	run(s, c, "SHOW WARNINGS", ok(autocommit))
	if s.pins != pinNext || s.pinned != c {
		t.Fatalf("after SHOW WARNINGS: pins %b, pinned %v; want still pinNext on the same connection", s.pins, s.pinned == c)
	}
}

// At the session's end, a pinned connection whose state sluice cannot see
// the end of is closed, never pooled where another session would find it.
func TestPinnedConnectionAtSessionEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sql    string
		res    wire.Result
		closed bool
	}{
		{"temporary table", "CREATE TEMPORARY TABLE tmp (x INT)", ok(autocommit), true},
		{"user variable assigned in a SELECT", "SELECT @x := 1", ok(autocommit), true},
		{"text prepared statement", "PREPARE ps FROM 'SELECT 1'", ok(autocommit), true},
		{"user lock", "SELECT GET_LOCK('l', 1)", ok(autocommit), true},
		{"table lock", "LOCK TABLES t READ", ok(autocommit), true},
		{"open transaction", "BEGIN", ok(autocommit | wire.StatusInTrans), true},
		{"state of a multi-statement", "SET @a = 1; SELECT 1", ok(autocommit), true},
		{"only kept for SHOW WARNINGS", "SELECT CAST('1x' AS UNSIGNED)", wire.Result{HasStatus: true, Status: autocommit, Warnings: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, env := newTestSession(t)
			c, srv := newBackendConn(t)
			run(s, c, tc.sql, tc.res)
			if s.pinned != c {
				t.Fatalf("not pinned after %q", tc.sql)
			}
			s.unpin(true)
			if s.pinned != nil || s.pins != 0 || s.inTxn {
				t.Fatalf("after unpin: pinned %v pins %b txn %v", s.pinned != nil, s.pins, s.inTxn)
			}
			idle := env.pool.Stats().Idle
			if tc.closed && (idle != 0 || !srv.isClosed()) {
				t.Fatalf("connection pooled (%d idle) instead of closed", idle)
			}
			if !tc.closed && idle != 1 {
				t.Fatalf("connection closed instead of pooled (%d idle)", idle)
			}
		})
	}
}

// SET TRANSACTION applies to the next transaction only: sluice holds it
// back and sends it once, right before the next statement, on the
// connection that runs it.
func TestHeldBackSetTransactionIsSentOnce(t *testing.T) {
	s, _ := newTestSession(t)
	c, srv := newBackendConn(t)
	s.pendingTxSet = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
	st := sqlscan.Scan([]byte("BEGIN"))
	if e := s.beforeSend(c, st); e != nil {
		t.Fatal(e)
	}
	if e := s.beforeSend(c, sqlscan.Scan([]byte("SELECT 1"))); e != nil {
		t.Fatal(e)
	}
	if got := srv.got(); len(got) != 1 || got[0] != "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE" {
		t.Fatalf("sent %q, want the SET TRANSACTION once", got)
	}
	if s.pendingTxSet != "" {
		t.Fatalf("still pending after it was sent: %q", s.pendingTxSet)
	}
}

// A statement that reads LAST_INSERT_ID() on a connection that does not
// have the session's value is preceded by SET last_insert_id = N, once.
func TestLastInsertIDFollowsTheSession(t *testing.T) {
	s, _ := newTestSession(t)
	c, srv := newBackendConn(t)
	other, _ := newBackendConn(t)
	// The session's insert ran on other; its id is the session's.
	run(s, other, "INSERT INTO t (v) VALUES (1)", wire.Result{HasStatus: true, Status: autocommit, OK: wire.OK{LastInsertID: 42}})
	reads := sqlscan.Scan([]byte("SELECT LAST_INSERT_ID()"))
	if reads.Flags&sqlscan.FlagLastInsertID == 0 {
		t.Fatal("the scanner does not flag LAST_INSERT_ID()")
	}
	for range 2 {
		if e := s.beforeSend(c, reads); e != nil {
			t.Fatal(e)
		}
	}
	if got := srv.got(); len(got) != 1 || got[0] != "SET last_insert_id = 42" {
		t.Fatalf("sent %q, want SET last_insert_id = 42 once", got)
	}
	if e := s.beforeSend(c, sqlscan.Scan([]byte("SELECT 1"))); e != nil || len(srv.got()) != 1 {
		t.Fatalf("a statement that does not read it sent %q", srv.got())
	}
}

func TestReplayableSets(t *testing.T) {
	for sql, want := range map[string]bool{
		"SET sql_mode = 'ANSI'":                                  true,
		"SET NAMES utf8mb4":                                      true,
		"SET SESSION wait_timeout = 1234":                        true,
		"SET @a = 1, @b = 'x'":                                   true,
		"SET time_zone = '+05:00'":                               true,
		"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED": true,
		"SET autocommit = ON":                                    true,
		"SET @id = LAST_INSERT_ID()":                             false,
		"SET @n = @n + 1":                                        false,
		"SET @t = NOW()":                                         false,
		"SET @c = (SELECT COUNT(*) FROM t)":                      false,
		"SET @x = -1":                                            true, // a negative literal is still a literal
	} {
		if got := replayable([]byte(sql)); got != want {
			t.Errorf("replayable(%q) = %v, want %v", sql, got, want)
		}
	}
}
