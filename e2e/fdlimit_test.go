package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/wire"
)

func loopbackPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// runSluiceBinary starts the sluice command with extraYAML under a
// descriptor limit of nofile (soft and hard), with a JSON log.
func runSluiceBinary(t *testing.T, nofile int, extraYAML string, extraServers ...string) (mysqlAddr, httpAddr string, log *lockedBuffer) {
	t.Helper()
	bin := buildSluice(t)
	dir := t.TempDir()
	mysqlAddr, httpAddr = loopbackPort(t), loopbackPort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nhttp_listen: %s\n", mysqlAddr, httpAddr)
	fmt.Fprintf(&b, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	fmt.Fprintf(&b, "monitor: {user: %s, password: %s}\nservers:\n", testbed.MonitorUser, testbed.MonitorPassword)
	for _, s := range shared.Servers {
		fmt.Fprintf(&b, "  - {name: %s, address: %s}\n", s.Name, s.Addr())
	}
	for i, addr := range extraServers {
		fmt.Fprintf(&b, "  - {name: extra%d, address: %s}\n", i+1, addr)
	}
	fmt.Fprintf(&b, "health: {interval: 500ms, timeout: 1s, rise: 1, fall: 2}\nlog: {format: json, level: info}\nslow_query: {threshold: 0s}\n")
	fmt.Fprintf(&b, "failover: {state_file: %s}\n", filepath.Join(dir, "state.json"))
	b.WriteString(extraYAML)
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	log = &lockedBuffer{}
	cmd := exec.Command("sh", "-c", fmt.Sprintf("ulimit -n %d && exec %s run -c %s", nofile, bin, cfg))
	cmd.Stderr, cmd.Stdout = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	client := &http.Client{Timeout: time.Second}
	waitFor(t, 20*time.Second, "sluice answers /healthz", func() bool {
		resp, err := client.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return mysqlAddr, httpAddr, log
}

// TestDescriptorExhaustionWithoutCredentials: idle admin API connections
// and a flood of MySQL connections, beyond sluice's descriptor limit, must
// leave /healthz answering, excess logins refused at once with 1040, and
// the log quiet.
func TestDescriptorExhaustionWithoutCredentials(t *testing.T) {
	const nofile = 256
	mysqlAddr, httpAddr, log := runSluiceBinary(t, nofile, "")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// 300 idle keep-alive connections to the admin API.
	for i := 0; i < 300; i++ {
		c, err := net.DialTimeout("tcp", httpAddr, 2*time.Second)
		if err != nil {
			t.Fatalf("HTTP connection %d: %v", i, err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
		}
	}
	// 300 MySQL connections; those greeted log in and stay.
	greeted, refused, other := 0, 0, 0
	var sessions []net.Conn
	for i := 0; i < 300; i++ {
		nc, err := net.DialTimeout("tcp", mysqlAddr, 2*time.Second)
		if err != nil {
			other++
			continue
		}
		held = append(held, nc)
		c := &rawConn{Conn: wire.NewConn(nc), timeout: 2 * time.Second}
		p, err := c.read()
		switch {
		case err != nil:
			other++
		case wire.IsERR(p) && wire.ParseError(p).Code == wire.ErrConCount:
			refused++
		default:
			hs, ok := wire.ParseHandshake(p)
			if !ok {
				other++
				continue
			}
			c.hs = hs
			if err := c.login(testbed.AppUser, testbed.AppPassword, "", rawCaps); err != nil {
				other++
				continue
			}
			greeted++
			sessions = append(sessions, nc)
		}
	}
	t.Logf("fd limit %d: 300 idle HTTP connections; of 300 MySQL connections %d logged in, %d refused with 1040, %d failed otherwise",
		nofile, greeted, refused, other)
	if refused == 0 || other != 0 {
		t.Errorf("MySQL connections: %d logged in, %d refused with 1040, %d failed otherwise; want refusals with 1040 only", greeted, refused, other)
	}
	// A health checker still gets its answer, at once.
	start := time.Now()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + httpAddr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz beside the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	t.Logf("/healthz answered in %s", time.Since(start))
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + httpAddr + "/metrics"); err == nil {
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("sluice_client_connections_over_limit_total %d\n", refused); !strings.Contains(body.String(), want) {
			t.Errorf("/metrics does not count the refusals (want %q)", want)
		}
	} else {
		t.Errorf("/metrics: %v", err)
	}
	// The mariadb client is told why at once, not left hanging.
	start = time.Now()
	_, errOut, err := mariadbRun(t, mysqlAddr, testbed.AppPassword, "-e", "SELECT 1")
	if err == nil || !strings.Contains(errOut, "1040") || time.Since(start) > 3*time.Second {
		t.Errorf("mariadb at the limit: %v after %s: %s", err, time.Since(start), errOut)
	}
	// Logged-in sessions still work, and a freed slot takes a new login.
	for _, c := range sessions[:10] {
		c.Close()
	}
	waitFor(t, 10*time.Second, "a login succeeds once connections close", func() bool {
		out, _, err := mariadbRun(t, mysqlAddr, testbed.AppPassword, "-N", "-e", "SELECT 'in'")
		return err == nil && strings.TrimSpace(out) == "in"
	})
	lines := strings.Count(log.String(), "\n")
	accepts := strings.Count(log.String(), "accept") + strings.Count(log.String(), "max_client_connections reached")
	t.Logf("sluice logged %d lines, %d about accept or refusals", lines, accepts)
	if accepts > 5 {
		t.Errorf("%d log lines about accept failures or refusals, want at most one per 10 s:\n%s", accepts, log.String())
	}
	if !strings.Contains(log.String(), `"fd_limit":256`) {
		t.Errorf("start line does not report the descriptor limit:\n%s", log.String())
	}
}
