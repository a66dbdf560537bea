package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// socketDir is a short directory for Unix sockets: their paths are
// limited to 107 bytes, and t.TempDir() paths carry the test's name.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenOnTCPAndUnixSockets(t *testing.T) {
	dir := socketDir(t)
	sock := filepath.Join(dir, "sluice.sock")
	second := filepath.Join(dir, "other.sock")
	// A socket file left by a sluice that was killed: replaced at start.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the stale socket file should exist: %v", err)
	}

	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n", mutate: func(c *config.Config) {
		c.Listen = config.Listeners{"127.0.0.1:0", sock, second}
	}})
	if n := len(p.Addrs()); n != 3 {
		t.Fatalf("sluice listens on %d addresses, want 3: %v", n, p.Addrs())
	}
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY)")

	// go-sql-driver over unix(...), text and binary protocol.
	for _, path := range []string{sock, second} {
		c := mysql.NewConfig()
		c.User, c.Passwd, c.Net, c.Addr, c.DBName = testbed.AppUser, testbed.AppPassword, "unix", path, db
		d, err := sql.Open("mysql", c.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		// Before the session writes, so that nothing holds its reads back.
		if srv := servedBy(t, d, shared, ""); !isReplica(shared, srv) {
			t.Errorf("a read over %s ran on %s, want a replica", path, srv)
		}
		mustExec(t, d, "INSERT INTO t VALUES (?)", len(path))
		var n int
		if err := d.QueryRowContext(context.Background(), "/* sluice:primary */ SELECT COUNT(*) FROM t WHERE id = ?", len(path)).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: %d rows, %v", path, n, err)
		}
		found := false
		for _, in := range p.Sessions() {
			found = found || in.Client == "unix:"+path
		}
		if !found {
			t.Errorf("no session shows client unix:%s: %+v", path, p.Sessions())
		}
	}
	// The mariadb CLI with --socket; and TCP still works.
	out, errOut, err := mariadbRunArgs(t, "--no-defaults", "--socket="+sock, "-u"+testbed.AppUser, "-p"+testbed.AppPassword, "--comments", "-N", "-e", "/* sluice:primary */ SELECT COUNT(*) FROM t", db)
	if err != nil || strings.TrimSpace(out) != "2" {
		t.Errorf("mariadb --socket: %q %q %v", out, errOut, err)
	}
	if got := strings.TrimSpace(mariadbOK(t, sluiceAddr(p), db, "--comments", "-N", "-e", "/* sluice:primary */ SELECT COUNT(*) FROM t")); got != "2" {
		t.Errorf("mariadb over TCP: %q", got)
	}

	// A second sluice must not take over the sockets of a running one.
	cfg := *p.Config()
	cfg.Failover.StateFile = filepath.Join(t.TempDir(), "other-state.json")
	other, err := proxy.New(&cfg, proxy.Options{Logger: p.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second sluice on the same sockets: %v, want an error saying the socket is in use", err)
	}
	other.Close()
	if out, errOut, err := mariadbRunArgs(t, "--no-defaults", "--socket="+sock, "-u"+testbed.AppUser, "-p"+testbed.AppPassword, "-N", "-e", "SELECT 1"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("the first sluice's socket after the second one was refused: %q %q %v", out, errOut, err)
	}

	p.Close()
	for _, path := range []string{sock, second} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s after shutdown: %v, want it removed", path, err)
		}
	}
}

func TestListenRefusesAFileThatIsNotASocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "data")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(
		"listen: ["+path+"]\nhttp_listen: \"\"\nusers: [{name: app, password: app}]\nmonitor: {user: m, password: m}\n"+
			"servers: [{name: db1, address: "+shared.Primary.Addr()+"}]\n"), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Failover.StateFile = filepath.Join(t.TempDir(), "state.json")
	p, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listening on a regular file: %v, want a refusal", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Errorf("the file was touched: %q %v", b, err)
	}
}

// mariadbRunArgs runs the mariadb client with exactly these arguments.
func mariadbRunArgs(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mariadb", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mariadb %v: no answer within %s", args, clientTimeout)
	}
	return out.String(), errb.String(), err
}
