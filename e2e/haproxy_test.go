package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// h3HAProxy is an haproxy process started by a test.
type h3HAProxy struct {
	addr string // the listen section's address
	sock string // stats socket
}

// h3StartHAProxy runs /usr/sbin/haproxy in the foreground with a generated
// configuration: one TCP listen section balancing the given replicas,
// health-checked through sluice's /health/{server} on apiPort.
func h3StartHAProxy(t testing.TB, topo *testbed.Topology, apiPort string, replicas ...string) *h3HAProxy {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "h3hap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &h3HAProxy{addr: ln.Addr().String(), sock: filepath.Join(dir, "stats.sock")}
	ln.Close()

	var b strings.Builder
	fmt.Fprintf(&b, "global\n  stats socket %s mode 600 level admin\n", h.sock)
	b.WriteString("defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n")
	fmt.Fprintf(&b, "listen replicas\n  bind %s\n  mode tcp\n  balance roundrobin\n", h.addr)
	// One check line serves every server: the URI names the server checked.
	b.WriteString("  option httpchk\n  http-check send meth GET uri-lf /health/%[srv_name]\n  http-check expect status 200\n")
	for _, name := range replicas {
		fmt.Fprintf(&b, "  server %s %s check addr 127.0.0.1 port %s inter 200 rise 1 fall 2\n", name, topo.ByName(name).Addr(), apiPort)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/usr/sbin/haproxy", "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, b.String())
	}
	cmd := exec.Command("/usr/sbin/haproxy", "-db", "-f", cfg)
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("haproxy log:\n%s", out)
			}
		}
	})
	waitFor(t, 10*time.Second, "haproxy's stats socket answers", func() bool {
		_, err := h.states()
		return err == nil
	})
	return h
}

// states reads "show stat" from the stats socket: the status column (UP,
// DOWN, "UP 1/2"…) of every server of the listen section.
func (h *h3HAProxy) states() (map[string]string, error) {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err
	}
	r := csv.NewReader(bufio.NewReader(c))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, fmt.Errorf("empty show stat answer")
	}
	header := rows[0]
	header[0] = strings.TrimPrefix(header[0], "# ")
	col := map[string]int{}
	for i, name := range header {
		col[name] = i
	}
	px, sv, st := col["pxname"], col["svname"], col["status"]
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > st && row[px] == "replicas" && row[sv] != "FRONTEND" && row[sv] != "BACKEND" {
			out[row[sv]] = row[st]
		}
	}
	return out, nil
}

// waitState waits until haproxy shows server in state (UP or DOWN) and
// returns when it first did.
func (h *h3HAProxy) waitState(t testing.TB, server, state string, limit time.Duration) time.Time {
	t.Helper()
	var last map[string]string
	deadline := time.Now().Add(limit)
	for {
		st, err := h.states()
		if err == nil {
			last = st
			if st[server] == state {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not mark %s %s within %s (states %v, err %v)", server, state, limit, last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHAProxyFollowsSluiceHealthChecks: HAProxy 2.6 balancing the replicas
// with option httpchk against sluice's /health/{server} marks a replica
// DOWN when sluice puts it in maintenance (the server itself still runs)
// and UP when sluice enables it again.
func TestHAProxyFollowsSluiceHealthChecks(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db2 := topo.ByName("db2")
	s := h3Start(t, h3Cfg{topo: topo, yaml: "routing: {read_your_writes: false}\n"})
	u, err := url.Parse(s.api.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := h3StartHAProxy(t, topo, u.Port(), "db2", "db3")
	h.waitState(t, "db2", "UP", 10*time.Second)
	h.waitState(t, "db3", "UP", 10*time.Second)

	// Traffic through haproxy reaches both replicas.
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = testbed.AppUser, testbed.AppPassword, "tcp", h.addr
	mc.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(0) // a new TCP connection, so a new balancing decision, per query
	through := func(n int) map[string]int {
		got := map[string]int{}
		names := h3PortNames(topo)
		for range n {
			var port string
			if err := db.QueryRow("SELECT @@port").Scan(&port); err != nil {
				t.Fatalf("query through haproxy: %v", err)
			}
			got[names[port]]++
		}
		return got
	}
	if got := through(10); got["db2"] == 0 || got["db3"] == 0 {
		t.Fatalf("through haproxy with both replicas up: %v", got)
	}

	// db2 keeps running and answering: only sluice's verdict (db2 in
	// maintenance) can make HAProxy take it out.
	maint := time.Now()
	if code := s.call(t, "POST", "/api/servers/db2/maintenance", "", nil); code != http.StatusOK {
		t.Fatalf("POST /api/servers/db2/maintenance: %d", code)
	}
	down := h.waitState(t, "db2", "DOWN", 10*time.Second)
	if err := db2.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("db2 itself stopped answering: %v", err)
	}
	if got := through(10); got["db2"] != 0 {
		t.Fatalf("haproxy sent connections to db2 in sluice's maintenance: %v", got)
	}
	enabled := time.Now()
	if code := s.call(t, "POST", "/api/servers/db2/enable", "", nil); code != http.StatusOK {
		t.Fatalf("POST /api/servers/db2/enable: %d", code)
	}
	up := h.waitState(t, "db2", "UP", 15*time.Second)
	t.Logf("haproxy (inter 200 rise 1 fall 2 on sluice's /health): db2 DOWN %s after sluice put it in maintenance, UP %s after enable",
		down.Sub(maint).Round(time.Millisecond), up.Sub(enabled).Round(time.Millisecond))
	if got := through(10); got["db2"] == 0 {
		t.Fatalf("haproxy sends nothing to the re-enabled db2: %v", got)
	}
}
