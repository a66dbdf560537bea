package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Health, reload and operator tests run sluice from a configuration file,
// as `sluice run -c` does, so that ReloadFile and POST /api/reload read the
// file again. Every helper of these tests is prefixed h3.

// h3Cfg is the configuration file a test runs sluice with.
type h3Cfg struct {
	topo *testbed.Topology
	// servers are the entries of the servers list as YAML flow maps
	// without braces ("name: db1, address: …"); nil lists every server of
	// the topology.
	servers []string
	// health is the health: value; "" is the harness's
	// {interval: 200ms, timeout: 1s, rise: 1, fall: 2}.
	health string
	yaml   string // further top-level YAML
}

// h3Server is one servers entry for server name of the topology, with
// extra keys ("backup: true", "weight: 3").
func h3Server(topo *testbed.Topology, name string, extra ...string) string {
	s := topo.ByName(name)
	return strings.Join(append([]string{"name: " + name, "address: " + s.Addr()}, extra...), ", ")
}

func (c h3Cfg) render() string {
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nhttp_listen: \"\"\n")
	fmt.Fprintf(&b, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	fmt.Fprintf(&b, "monitor: {user: %s, password: %s}\n", testbed.MonitorUser, testbed.MonitorPassword)
	b.WriteString("servers:\n")
	servers := c.servers
	if servers == nil {
		for _, s := range c.topo.Servers {
			servers = append(servers, h3Server(c.topo, s.Name))
		}
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "  - {%s}\n", s)
	}
	health := c.health
	if health == "" {
		health = "{interval: 200ms, timeout: 1s, rise: 1, fall: 2}"
	}
	fmt.Fprintf(&b, "health: %s\n", health)
	b.WriteString(c.yaml)
	return b.String()
}

// h3Sluice is a sluice started from a file, with its admin API served by
// an httptest server.
type h3Sluice struct {
	p    *proxy.Proxy
	path string
	api  *httptest.Server
	topo *testbed.Topology
}

// h3Start writes the configuration to a file, starts sluice from it with
// Options.Load reading that file, and waits until every configured server
// has been checked up and a primary is known. Everything is closed when the
// test ends.
func h3Start(t testing.TB, c h3Cfg) *h3Sluice {
	t.Helper()
	s := &h3Sluice{path: filepath.Join(t.TempDir(), "sluice.yaml"), topo: c.topo}
	s.write(t, c)
	cfg, err := config.Load(s.path, os.Getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, c.render())
	}
	lw := &h3LogWriter{t: t}
	level := slog.LevelWarn
	if os.Getenv("SLUICE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level}))
	p, err := proxy.New(cfg, proxy.Options{Logger: log, Load: func() (*config.Config, error) { return config.Load(s.path, os.Getenv) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.p = p
	s.api = httptest.NewServer(httpapi.Handler(p, nil))
	t.Cleanup(func() {
		s.api.Close()
		p.Close()
		lw.close()
	})
	h3WaitAllUp(t, p, len(cfg.Servers))
	return s
}

// h3WaitAllUp waits until the snapshot holds n servers, all up, and a
// primary.
func h3WaitAllUp(t testing.TB, p *proxy.Proxy, n int) {
	t.Helper()
	waitFor(t, 15*time.Second, "sluice sees a primary and every server up", func() bool {
		snap := p.Monitor().Snapshot()
		if snap.Primary < 0 || len(snap.Servers) != n {
			return false
		}
		for _, s := range snap.Servers {
			if !s.Up {
				return false
			}
		}
		return true
	})
}

// write replaces the configuration file (atomically, as editors and
// configuration management do).
func (s *h3Sluice) write(t testing.TB, c h3Cfg) {
	t.Helper()
	h3WriteFile(t, s.path, c.render())
}

func h3WriteFile(t testing.TB, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// db opens a client pool through sluice, closed when the test ends.
func (s *h3Sluice) db(t testing.TB, schema string, params ...string) *sql.DB {
	return openDB(t, s.p, schema, params...)
}

// call sends one admin API request and decodes the JSON answer into out
// (when non-nil). It returns the status code.
func (s *h3Sluice) call(t testing.TB, method, path, token string, out any) int {
	t.Helper()
	return h3Call(t, s.api.URL, method, path, token, out)
}

func h3Call(t testing.TB, base, method, path, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want JSON; body %s", method, path, ct, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

// servers is GET /api/servers by name.
func (s *h3Sluice) servers(t testing.TB) map[string]httpapi.ServerView {
	t.Helper()
	var list []httpapi.ServerView
	if code := s.call(t, "GET", "/api/servers", "", &list); code != http.StatusOK {
		t.Fatalf("GET /api/servers: %d", code)
	}
	out := map[string]httpapi.ServerView{}
	for _, v := range list {
		out[v.Name] = v
	}
	return out
}

// h3LogWriter sends sluice's log to the test log until the test ends
// (the monitor may log a last line while sluice closes).
type h3LogWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *h3LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *h3LogWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// h3Code is the MySQL error code of err, 0 when it has none.
func h3Code(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// h3PortNames maps the servers' ports to their names.
func h3PortNames(topo *testbed.Topology) map[string]string {
	m := map[string]string{}
	for _, s := range topo.Servers {
		m[strconv.Itoa(s.Port)] = s.Name
	}
	return m
}

// h3ReadOn runs n reads on d and counts where each ran.
func h3ReadOn(t testing.TB, d queryer, topo *testbed.Topology, n int, query string) map[string]int {
	t.Helper()
	names := h3PortNames(topo)
	out := map[string]int{}
	for range n {
		var port string
		if err := d.QueryRowContext(context.Background(), query).Scan(&port); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		out[names[port]]++
	}
	return out
}

// TestBrokenConfigReloadIsRefusedAndTheOldOneKeepsServing: an invalid file
// is refused by ReloadFile and by POST /api/reload (422 with every reason
// as JSON); queries keep working on the running configuration, which the
// API still shows; the corrected file then reloads.
func TestBrokenConfigReloadIsRefusedAndTheOldOneKeepsServing(t *testing.T) {
	topo := shared
	good := h3Cfg{topo: topo, yaml: "routing: {read_your_writes: false}\n"}
	s := h3Start(t, good)
	d := s.db(t, "")
	before := s.servers(t)
	ctx := context.Background()

	broken := "listen: 127.0.0.1:0\n" +
		"users:\n  - {name: app, password: app}\n" +
		"monitor: {user: sluice_monitor, password: monitor}\n" +
		"servers:\n  - {name: db1, address: " + topo.Primary.Addr() + "}\n  - {name: db1, address: nowhere}\n" +
		"health: {interval: 0s, rise: 0}\n" +
		"routing: {balance: fastest}\n"
	h3WriteFile(t, s.path, broken)

	err := s.p.ReloadFile()
	if err == nil {
		t.Fatal("ReloadFile accepted a broken file")
	}
	t.Logf("ReloadFile: %v", err)

	var body struct {
		Error   string   `json:"error"`
		Reasons []string `json:"reasons"`
	}
	if code := s.call(t, "POST", "/api/reload", "", &body); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /api/reload with a broken file: %d, want 422", code)
	}
	t.Logf("POST /api/reload: %d %q, %d reasons: %q", http.StatusUnprocessableEntity, body.Error, len(body.Reasons), body.Reasons)
	if body.Error == "" || len(body.Reasons) < 4 {
		t.Fatalf("want an error and every problem (duplicate name, bad address, interval, rise, balance); got %+v", body)
	}
	for _, want := range []string{"db1", "interval", "rise", "balance"} {
		found := false
		for _, r := range body.Reasons {
			found = found || strings.Contains(r, want)
		}
		if !found {
			t.Errorf("no reason mentions %q: %q", want, body.Reasons)
		}
	}

	// The running configuration stays: same servers, queries work.
	if got := s.p.Config().Servers; len(got) != len(topo.Servers) {
		t.Fatalf("config in force has %d servers after a refused reload", len(got))
	}
	after := s.servers(t)
	if len(after) != len(before) {
		t.Fatalf("/api/servers changed: %d servers, was %d", len(after), len(before))
	}
	for name, v := range before {
		if a, ok := after[name]; !ok || a.Address != v.Address || a.Role != v.Role || !a.Usable {
			t.Fatalf("/api/servers %s changed: %+v, was %+v", name, a, v)
		}
	}
	var one int
	if err := d.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query after a refused reload: %v", err)
	}
	mustExec(t, d, "DO 1")

	// The fixed file reloads: one replica fewer.
	fixed := good
	fixed.servers = []string{h3Server(topo, "db1"), h3Server(topo, "db2")}
	s.write(t, fixed)
	var ok struct {
		Status  string `json:"status"`
		Servers int    `json:"servers"`
	}
	if code := s.call(t, "POST", "/api/reload", "", &ok); code != http.StatusOK || ok.Servers != 2 {
		t.Fatalf("POST /api/reload with the fixed file: %d %+v", code, ok)
	}
	waitFor(t, 5*time.Second, "the snapshot drops db3", func() bool {
		_, there := s.p.Monitor().Snapshot().ByName("db3")
		return !there
	})
	if got := h3ReadOn(t, d, topo, 30, "SELECT @@port"); got["db3"] != 0 || got["db2"] != 30 {
		t.Fatalf("reads after the fixed reload: %v, want all 30 on db2", got)
	}
}

// TestRemovedServerIsDrained: a reload that removes a replica lets a
// read-only transaction pinned to it finish, while new reads go elsewhere.
func TestRemovedServerIsDrained(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	cfg := h3Cfg{topo: topo, yaml: "routing: {read_your_writes: false, balance: round-robin}\n"}
	s := h3Start(t, cfg)
	d := s.db(t, "")
	c := h3PinnedTo(t, d, topo, "db3")

	cfg.servers = []string{h3Server(topo, "db1"), h3Server(topo, "db2")}
	s.write(t, cfg)
	if err := s.p.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "new reads leave db3", func() bool {
		got := h3ReadOn(t, d, topo, 10, "SELECT @@port")
		return got["db3"] == 0
	})
	// The transaction pinned to db3 goes on and commits there.
	var port string
	if err := c.QueryRowContext(context.Background(), "SELECT @@port").Scan(&port); err != nil {
		t.Fatalf("statement of a transaction pinned to the removed server: %v", err)
	}
	if port != strconv.Itoa(topo.ByName("db3").Port) {
		t.Fatalf("pinned transaction moved to port %s", port)
	}
	if _, err := c.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatalf("COMMIT on the removed server: %v", err)
	}
	if got := h3ReadOn(t, c, topo, 10, "SELECT @@port"); got["db3"] != 0 {
		t.Fatalf("after COMMIT the session still reads from the removed server: %v", got)
	}
}

// h3PinnedTo returns a client session with a read-only transaction open on
// server name (START TRANSACTION READ ONLY goes to a replica the balancer
// picks; sessions that land elsewhere are closed and another is tried).
func h3PinnedTo(t testing.TB, d *sql.DB, topo *testbed.Topology, name string) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	want := strconv.Itoa(topo.ByName(name).Port)
	for range 50 {
		c, err := d.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "START TRANSACTION READ ONLY"); err != nil {
			t.Fatal(err)
		}
		var port string
		if err := c.QueryRowContext(ctx, "SELECT @@port").Scan(&port); err != nil {
			t.Fatal(err)
		}
		if port == want {
			t.Cleanup(func() { c.Close() })
			return c
		}
		c.ExecContext(ctx, "ROLLBACK")
		c.Close()
	}
	t.Fatalf("no read-only transaction landed on %s in 50 tries", name)
	return nil
}

// TestOperatorStatesThroughTheAPI: drain, maintenance and enable through
// the admin API, unknown servers, states across a reload, and the token.
func TestOperatorStatesThroughTheAPI(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	cfg := h3Cfg{topo: topo, yaml: "routing: {read_your_writes: false, balance: round-robin}\n"}
	s := h3Start(t, cfg)
	d := s.db(t, "")
	ctx := context.Background()
	db2Port := strconv.Itoa(topo.ByName("db2").Port)

	t.Run("drain lets pinned work finish and takes no new reads", func(t *testing.T) {
		c := h3PinnedTo(t, d, topo, "db2")
		var v httpapi.ServerView
		if code := s.call(t, "POST", "/api/servers/db2/drain", "", &v); code != http.StatusOK || v.State != "drain" || v.Usable {
			t.Fatalf("POST drain: %d %+v", code, v)
		}
		var hv httpapi.ServerView
		if code := s.call(t, "GET", "/health/db2", "", &hv); code != http.StatusServiceUnavailable {
			t.Fatalf("/health/db2 while draining: %d, want 503", code)
		}
		if got := h3ReadOn(t, d, topo, 40, "SELECT @@port"); got["db2"] != 0 {
			t.Fatalf("new reads reached the draining db2: %v", got)
		}
		if st := s.p.PoolStats()["db2"]; st.InUse != 1 {
			t.Fatalf("db2 pool in use while the pinned transaction runs: %+v, want 1", st)
		}
		// The pinned transaction goes on on db2 and commits.
		for range 5 {
			if got := queryString(t, c, "SELECT @@port"); got != db2Port {
				t.Fatalf("pinned transaction moved to port %s", got)
			}
		}
		mustExec(t, c, "COMMIT")
		waitFor(t, 5*time.Second, "db2's pool has nothing in use", func() bool { return s.p.PoolStats()["db2"].InUse == 0 })
		if st := s.servers(t)["db2"]; st.State != "drain" || st.InUse != 0 {
			t.Fatalf("/api/servers db2 after the transaction: %+v", st)
		}

		if code := s.call(t, "POST", "/api/servers/db2/enable", "", &v); code != http.StatusOK || v.State != "up" || !v.Usable {
			t.Fatalf("POST enable: %d %+v", code, v)
		}
		if code := s.call(t, "GET", "/health/db2", "", &hv); code != http.StatusOK {
			t.Fatalf("/health/db2 after enable: %d", code)
		}
		if got := h3ReadOn(t, d, topo, 40, "SELECT @@port"); got["db2"] == 0 {
			t.Fatalf("db2 takes no reads after enable: %v", got)
		}
	})

	t.Run("maintenance cuts a pinned session at once and survives a reload", func(t *testing.T) {
		c := h3PinnedTo(t, d, topo, "db2")
		var v httpapi.ServerView
		if code := s.call(t, "POST", "/api/servers/db2/maintenance", "", &v); code != http.StatusOK || v.State != "maintenance" {
			t.Fatalf("POST maintenance: %d %+v", code, v)
		}
		var port string
		err := c.QueryRowContext(ctx, "SELECT @@port").Scan(&port)
		if h3Code(err) != 9001 {
			t.Fatalf("next statement of a session pinned to a server in maintenance: %v (port %s), want error %d", err, port, 9001)
		}
		t.Logf("pinned session got: %v", err)
		// The session goes on, elsewhere.
		if got := queryString(t, c, "SELECT @@port"); got == db2Port {
			t.Fatalf("session still on db2 after maintenance")
		}
		if got := h3ReadOn(t, d, topo, 20, "SELECT @@port"); got["db2"] != 0 {
			t.Fatalf("reads reached db2 in maintenance: %v", got)
		}
		waitFor(t, 5*time.Second, "db2 has no connection in use or idle", func() bool {
			st := s.p.PoolStats()["db2"]
			return st.InUse == 0 && st.Idle == 0
		})

		// A reload keeps operator states (weights change, db2 stays in).
		next := cfg
		next.servers = []string{h3Server(topo, "db1"), h3Server(topo, "db2", "weight: 2"), h3Server(topo, "db3")}
		s.write(t, next)
		if code := s.call(t, "POST", "/api/reload", "", nil); code != http.StatusOK {
			t.Fatalf("reload: %d", code)
		}
		waitFor(t, 5*time.Second, "the monitor has checked after the reload", func() bool {
			sv, _ := s.p.Monitor().Snapshot().ByName("db2")
			return sv.Weight == 2
		})
		if st := s.servers(t)["db2"]; st.State != "maintenance" || st.Usable {
			t.Fatalf("db2 after reload: %+v, want still in maintenance", st)
		}
		if got := h3ReadOn(t, d, topo, 20, "SELECT @@port"); got["db2"] != 0 {
			t.Fatalf("reads reached db2 in maintenance after a reload: %v", got)
		}
		if code := s.call(t, "POST", "/api/servers/db2/enable", "", &v); code != http.StatusOK || !v.Usable {
			t.Fatalf("POST enable: %d %+v", code, v)
		}
		waitFor(t, 5*time.Second, "db2 takes reads again", func() bool {
			return h3ReadOn(t, d, topo, 6, "SELECT @@port")["db2"] > 0
		})
	})

	t.Run("unknown server or action is a JSON 404", func(t *testing.T) {
		var e struct {
			Error string `json:"error"`
		}
		if code := s.call(t, "POST", "/api/servers/db9/drain", "", &e); code != http.StatusNotFound || !strings.Contains(e.Error, "db9") {
			t.Fatalf("POST /api/servers/db9/drain: %d %+v", code, e)
		}
		if code := s.call(t, "GET", "/health/db9", "", &e); code != http.StatusNotFound || e.Error == "" {
			t.Fatalf("GET /health/db9: %d %+v", code, e)
		}
		if code := s.call(t, "POST", "/api/servers/db2/explode", "", &e); code != http.StatusNotFound || e.Error == "" {
			t.Fatalf("POST /api/servers/db2/explode: %d %+v", code, e)
		}
	})

	t.Run("http_token guards the API but not health checks", func(t *testing.T) {
		tok := h3Cfg{topo: topo, yaml: "http_token: s3cret-token\nrouting: {read_your_writes: false}\n"}
		ts := h3Start(t, tok)
		var e struct {
			Error string `json:"error"`
		}
		for _, bad := range []string{"", "wrong"} {
			if code := ts.call(t, "GET", "/api/servers", bad, &e); code != http.StatusUnauthorized || e.Error == "" {
				t.Fatalf("GET /api/servers with token %q: %d %+v", bad, code, e)
			}
			if code := ts.call(t, "POST", "/api/servers/db2/drain", bad, &e); code != http.StatusUnauthorized {
				t.Fatalf("POST drain with token %q: %d", bad, code)
			}
			if code := ts.call(t, "POST", "/api/reload", bad, &e); code != http.StatusUnauthorized {
				t.Fatalf("POST reload with token %q: %d", bad, code)
			}
		}
		if sv, _ := ts.p.Monitor().Snapshot().ByName("db2"); sv.Admin != topology.AdminNone {
			t.Fatalf("an unauthorized request changed db2's state to %q", sv.Admin)
		}
		var list []httpapi.ServerView
		if code := ts.call(t, "GET", "/api/servers", "s3cret-token", &list); code != http.StatusOK || len(list) != 3 {
			t.Fatalf("GET /api/servers with the token: %d, %d servers", code, len(list))
		}
		if code := ts.call(t, "GET", "/healthz", "", nil); code != http.StatusOK {
			t.Fatalf("/healthz without token: %d", code)
		}
		if code := ts.call(t, "GET", "/health/db2", "", nil); code != http.StatusOK {
			t.Fatalf("/health/db2 without token: %d", code)
		}
	})
}

// h3Sysbench runs sysbench with args and returns its output and error.
func h3Sysbench(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "sysbench", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func h3SysbenchArgs(addr net.Addr, threads int, workload string, extra ...string) []string {
	host, port, _ := net.SplitHostPort(addr.String())
	return append([]string{workload,
		"--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + testbed.AppUser, "--mysql-password=" + testbed.AppPassword, "--mysql-db=sbtest",
		"--tables=4", "--table-size=10000", fmt.Sprintf("--threads=%d", threads),
		"--db-ps-mode=auto", "--mysql-ignore-errors=none"}, extra...)
}

// TestReloadsDuringSysbenchCauseNoErrors: ten reloads that add, remove and
// reweight replicas while sysbench reads through sluice with 16 threads;
// sysbench must finish without a single error.
func TestReloadsDuringSysbenchCauseNoErrors(t *testing.T) {
	secs := 60
	if v := os.Getenv("SLUICE_SYSBENCH_TIME"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SLUICE_SYSBENCH_TIME=%q: want a positive number of seconds", v)
		}
		secs = n
	}
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	cfg := h3Cfg{topo: topo, yaml: "routing: {read_your_writes: false, balance: weighted}\n",
		servers: []string{h3Server(topo, "db1"), h3Server(topo, "db2")}}
	s := h3Start(t, cfg)
	// Cancelled when the test ends, so a failed test kills sysbench.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := topo.Primary.Exec(ctx, "CREATE DATABASE sbtest"); err != nil {
		t.Fatal(err)
	}
	if out, err := h3Sysbench(ctx, append(h3SysbenchArgs(s.p.Addr(), 4, "oltp_read_only"), "prepare")...); err != nil {
		t.Fatalf("sysbench prepare: %v\n%s", err, out)
	}
	syncReplicas(t, topo)

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := h3Sysbench(ctx, append(h3SysbenchArgs(s.p.Addr(), 16, "oltp_read_only",
			"--skip_trx=on", fmt.Sprintf("--time=%d", secs), "--report-interval=0"), "run")...)
		done <- result{out, err}
	}()

	db1, db2, db3 := h3Server(topo, "db1"), h3Server(topo, "db2"), h3Server(topo, "db3")
	steps := []struct {
		what    string
		servers []string
	}{
		{"add db3", []string{db1, db2, db3}},
		{"weights 3:1", []string{db1, h3Server(topo, "db2", "weight: 3"), db3}},
		{"remove db2", []string{db1, db3}},
		{"add db2 back with weight 2", []string{db1, h3Server(topo, "db2", "weight: 2"), db3}},
		{"weights 1:4", []string{db1, db2, h3Server(topo, "db3", "weight: 4")}},
		{"remove db3", []string{db1, db2}},
		{"add db3 as backup", []string{db1, db2, h3Server(topo, "db3", "backup: true")}},
		{"db3 normal, db2 max_connections 8", []string{db1, h3Server(topo, "db2", "max_connections: 8"), db3}},
		{"remove db2 again", []string{db1, db3}},
		{"everything back, equal weights", []string{db1, db2, db3}},
	}
	gap := time.Duration(secs) * time.Second / time.Duration(len(steps)+1)
	next := start
	for i, st := range steps {
		next = next.Add(gap)
		// Pace the reloads over the run; a result before the last one is
		// a failure reported below.
		select {
		case r := <-done:
			t.Fatalf("sysbench ended after %s, before reload %d (%s): %v\n%s", time.Since(start), i+1, st.what, r.err, r.out)
		case <-time.After(time.Until(next)):
		}
		c := cfg
		c.servers = st.servers
		s.write(t, c)
		var body map[string]any
		if code := s.call(t, "POST", "/api/reload", "", &body); code != http.StatusOK {
			t.Fatalf("reload %d (%s): %d %v", i+1, st.what, code, body)
		}
		t.Logf("%5.1fs reload %2d: %s; pools %v", time.Since(start).Seconds(), i+1, st.what, s.p.PoolStats())
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("sysbench: %v\n%s", r.err, r.out)
	}
	res, err := parseSysbenchH3(r.out)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	t.Logf("sysbench oltp_read_only --skip_trx=on, 16 threads, %ds, 10 reloads: %s", secs, res)
	if res.errors != 0 || res.reconnects != 0 || res.queries == 0 {
		t.Fatalf("sysbench: %s\n%s", res, r.out)
	}
	// The removed servers' pools were drained: nothing in use is left.
	waitFor(t, 5*time.Second, "no connection in use", func() bool {
		for _, st := range s.p.PoolStats() {
			if st.InUse != 0 {
				return false
			}
		}
		return true
	})
}

type h3SysbenchResult struct {
	queries, errors, reconnects int64
	qps                         float64
}

func (r h3SysbenchResult) String() string {
	return fmt.Sprintf("%d queries (%.0f/s), %d errors, %d reconnects", r.queries, r.qps, r.errors, r.reconnects)
}

func parseSysbenchH3(out string) (h3SysbenchResult, error) {
	var r h3SysbenchResult
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[0] == "queries:":
			r.queries, _ = strconv.ParseInt(f[1], 10, 64)
			r.qps, _ = strconv.ParseFloat(strings.TrimPrefix(f[2], "("), 64)
		case len(f) >= 3 && f[0] == "ignored" && f[1] == "errors:":
			r.errors, _ = strconv.ParseInt(f[2], 10, 64)
		case len(f) >= 2 && f[0] == "reconnects:":
			r.reconnects, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if r.queries == 0 {
		return r, errors.New("no queries line in the sysbench report")
	}
	for _, bad := range []string{"FATAL", "ALERT"} {
		if strings.Contains(out, bad) {
			return r, fmt.Errorf("sysbench reported %s", bad)
		}
	}
	return r, nil
}
