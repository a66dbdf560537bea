// Package e2e proves sluice's behaviour end to end: real MariaDB servers
// with GTID replication (internal/testbed), a real sluice, and clients
// nobody here wrote (go-sql-driver/mysql, the mariadb CLI, sysbench).
package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// shared is the topology most tests use: one primary and two replicas.
// Tests that break servers start their own.
var shared *testbed.Topology

func TestMain(m *testing.M) {
	if err := testbed.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1) // a missing server is a failure, never a skip
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	topo, err := testbed.Start(ctx, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start topology:", err)
		os.Exit(1)
	}
	shared = topo
	code := m.Run()
	topo.Close()
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

// serverArgs raise max_allowed_packet so tests can send packets past 16 MiB.
// userstat counts statements per user (information_schema.USER_STATISTICS),
// which tells sluice's statements apart from the replication threads'.
var serverArgs = []string{"--max-allowed-packet=256M", "--userstat=1"}

// sluiceOpts adjust the configuration a test runs sluice with.
type sluiceOpts struct {
	yaml   string // extra top-level YAML appended to the generated config
	users  string // extra user entries (YAML list items)
	topo   *testbed.Topology
	mutate func(*config.Config)
	// beforeStart runs between proxy.New and Start (to set an observer,
	// which sessions read without locking).
	beforeStart func(*proxy.Proxy)
}

// startSluice runs an in-process sluice in front of the topology and
// returns it; it is closed when the test ends.
func startSluice(t testing.TB, o sluiceOpts) *proxy.Proxy {
	t.Helper()
	topo := o.topo
	if topo == nil {
		topo = shared
	}
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nhttp_listen: \"\"\n")
	fmt.Fprintf(&b, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	b.WriteString(o.users)
	fmt.Fprintf(&b, "monitor: {user: %s, password: %s}\n", testbed.MonitorUser, testbed.MonitorPassword)
	b.WriteString("servers:\n")
	for _, s := range topo.Servers {
		fmt.Fprintf(&b, "  - {name: %s, address: %s}\n", s.Name, s.Addr())
	}
	b.WriteString("health: {interval: 200ms, timeout: 1s, rise: 1, fall: 2}\n")
	b.WriteString(o.yaml)
	cfg, err := config.Parse([]byte(b.String()), t.Name()+".yaml", os.Getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	if !strings.Contains(o.yaml, "state_file") {
		cfg.Failover.StateFile = filepath.Join(t.TempDir(), "sluice-state.json")
	}
	if o.mutate != nil {
		o.mutate(cfg)
	}
	level := slog.LevelWarn
	if os.Getenv("SLUICE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	p, err := proxy.New(cfg, proxy.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if o.beforeStart != nil {
		o.beforeStart(p)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	waitFor(t, 10*time.Second, "sluice sees a primary and every replica", func() bool {
		snap := p.Monitor().Snapshot()
		if snap.Primary < 0 {
			return false
		}
		for _, s := range snap.Servers {
			if !s.Up {
				return false
			}
		}
		return true
	})
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// dsn is a go-sql-driver DSN for the app user through sluice.
func dsn(p *proxy.Proxy, db string, params ...string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = testbed.AppUser, testbed.AppPassword, "tcp", p.Addr().String(), db
	c.Timeout = 5 * time.Second
	s := c.FormatDSN()
	for _, kv := range params {
		sep := "?"
		if strings.Contains(s, "?") {
			sep = "&"
		}
		s += sep + kv
	}
	return s
}

// openDB opens a pool through sluice, closed when the test ends.
func openDB(t testing.TB, p *proxy.Proxy, db string, params ...string) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", dsn(p, db, params...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// conn returns one dedicated client connection: a client session.
func conn(t testing.TB, d *sql.DB) *sql.Conn {
	t.Helper()
	c, err := d.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func mustExec(t testing.TB, q queryer, query string, args ...any) sql.Result {
	t.Helper()
	r, err := q.ExecContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return r
}

func queryString(t testing.TB, q queryer, query string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := q.QueryRowContext(context.Background(), query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s.String
}

// servedBy asks which server answers a statement: @@port identifies it.
func servedBy(t testing.TB, q queryer, topo *testbed.Topology, prefix string) string {
	t.Helper()
	port := queryString(t, q, prefix+"SELECT @@port")
	for _, s := range topo.Servers {
		if fmt.Sprint(s.Port) == port {
			return s.Name
		}
	}
	t.Fatalf("port %s is no server of the topology", port)
	return ""
}

func isReplica(topo *testbed.Topology, name string) bool {
	return name != topo.Primary.Name
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counters reads Com_* counters from every server.
func counters(t testing.TB, topo *testbed.Topology, names ...string) map[string]map[string]int64 {
	t.Helper()
	out := map[string]map[string]int64{}
	for _, s := range topo.Servers {
		var m map[string]int64
		reconnecting(t, "status of "+s.Name, func() (err error) {
			m, err = s.GlobalStatuses(context.Background(), names...)
			return err
		})
		out[s.Name] = m
	}
	return out
}

// delta subtracts two counter readings.
func delta(after, before map[string]map[string]int64) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for srv, m := range after {
		out[srv] = map[string]int64{}
		for k, v := range m {
			out[srv][k] = v - before[srv][k]
		}
	}
	return out
}

// newSchema creates a fresh database for one test on the primary and
// waits until the replicas have it.
var schemaSeq atomic.Int64

func newSchema(t testing.TB, topo *testbed.Topology, ddl ...string) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_", "=", "_").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = fmt.Sprintf("%s_%d", name, schemaSeq.Add(1))
	ctx := context.Background()
	if err := topo.Primary.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		t.Fatal(err)
	}
	if err := topo.Primary.Exec(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatal(err)
	}
	for _, q := range ddl {
		if err := topo.Primary.Exec(ctx, "USE `"+name+"`; "+q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	syncReplicas(t, topo)
	return name
}

func syncReplicas(t testing.TB, topo *testbed.Topology) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topo.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
}

// userCommands reads the app user's statement counts on every server:
// SELECT_COMMANDS, UPDATE_COMMANDS (insert/update/delete) and
// OTHER_COMMANDS. Replication threads do not count as the app user, so
// these show exactly what sluice sent.
func userCommands(t testing.TB, topo *testbed.Topology) map[string]map[string]int64 {
	t.Helper()
	out := map[string]map[string]int64{}
	for _, s := range topo.Servers {
		db, err := s.Admin()
		if err != nil {
			t.Fatal(err)
		}
		var sel, upd, oth int64
		reconnecting(t, "USER_STATISTICS on "+s.Name, func() error {
			err := db.QueryRow("SELECT SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS FROM information_schema.USER_STATISTICS WHERE USER = ?", testbed.AppUser).
				Scan(&sel, &upd, &oth)
			if err == sql.ErrNoRows {
				return nil
			}
			return err
		})
		m := map[string]int64{"select": sel, "update": upd, "other": oth}
		out[s.Name] = m
	}
	return out
}

// connLost reports whether err means the server or sluice closed the
// connection under the statement (a fence or KILL did), so sending it
// again on a new connection is the right answer.
func connLost(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1927 || me.Number == 2006 || me.Number == 2013
	}
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn)
}

// reconnecting runs fn until it succeeds or fails for another reason than
// a lost connection, for at most 15 s: a fence kills every client
// connection of a server, the tests' admin pool included, and the first
// statement on a killed pooled connection fails with "invalid connection".
func reconnecting(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if !connLost(err) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
