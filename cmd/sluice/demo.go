package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// demoConfig is the configuration `sluice demo` runs with; printed so the
// user can copy it for their own servers.
func demoConfig(listen, httpListen string, topo *testbed.Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\n", listen)
	fmt.Fprintf(&b, "http_listen: %q\n", httpListen)
	fmt.Fprintf(&b, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	fmt.Fprintf(&b, "monitor: {user: %s, password: %s}\n", testbed.MonitorUser, testbed.MonitorPassword)
	b.WriteString("servers:\n")
	for _, s := range topo.Servers {
		fmt.Fprintf(&b, "  - {name: %s, address: %s}\n", s.Name, s.Addr())
	}
	b.WriteString("health: {interval: 1s, timeout: 1s, rise: 2, fall: 3}\n")
	b.WriteString("routing: {max_replication_lag: 5s, read_fallback: primary, balance: least-connections}\n")
	// The demo fails over by itself; its state lives with the servers.
	fmt.Fprintf(&b, "failover: {auto: true, min_interval: 30s, state_file: %q, replication: {user: %s, password: %s}}\n",
		filepath.Join(topo.Dir, "sluice-state.json"), testbed.ReplUser, testbed.ReplPassword)
	return b.String()
}

func demoCmd(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:4040", "MySQL protocol address for sluice")
	httpListen := fs.String("http", "127.0.0.1:4041", "HTTP address for the dashboard and API")
	replicas := fs.Int("replicas", 2, "number of replicas")
	envFile := fs.String("env-file", "", "write the servers' addresses to this file (KEY=value lines) once ready")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if err := testbed.Available(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "starting MariaDB: 1 primary + %d replicas...\n", *replicas)
	started := time.Now()
	topo, err := testbed.Start(ctx, testbed.Options{Replicas: *replicas})
	if err != nil {
		return err
	}
	defer topo.Close()
	text := demoConfig(*listen, *httpListen, topo)
	cfg, err := config.Parse([]byte(text), "demo.yaml", os.Getenv)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	routeDriverLogs(log)
	p, err := proxy.New(cfg, proxy.Options{Logger: log})
	if err != nil {
		return err
	}
	obs, err := startObservability(ctx, cfg, p, log)
	if err != nil {
		return err
	}
	defer obs.close()
	if err := p.Start(ctx); err != nil {
		return err
	}
	defer p.Close()
	stopHTTP, err := startHTTP(ctx, cfg, p, obs.st, log)
	if err != nil {
		return err
	}
	defer stopHTTP()

	fmt.Printf("\nsluice demo ready in %s\n\n", time.Since(started).Round(100*time.Millisecond))
	fmt.Printf("  connect:    mariadb -h127.0.0.1 -P%s -u%s -p%s\n", portOf(*listen), testbed.AppUser, testbed.AppPassword)
	if *httpListen != "" {
		fmt.Printf("  dashboard:  http://%s/\n", *httpListen)
	}
	for _, s := range topo.Servers {
		role := "replica"
		if s == topo.Primary {
			role = "primary"
		}
		fmt.Printf("  %-8s    %s (%s, pid %d)  mariadb -h127.0.0.1 -P%d -u%s -p%s\n", s.Name, s.Addr(), role, s.PID(), s.Port, testbed.AppUser, testbed.AppPassword)
	}
	fmt.Printf("\nfailover is automatic: kill -9 %d fails the primary over; planned change: sluice switchover --http %s\n", topo.Primary.PID(), *httpListen)
	fmt.Printf("\nconfiguration in use:\n%s\nCtrl-C stops everything and removes the data.\n", indent(text))
	if *envFile != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "SLUICE_ADDR=%s\nSLUICE_PRIMARY=%s\n", p.Addr(), topo.Primary.Addr())
		for i, r := range topo.Replicas {
			fmt.Fprintf(&b, "SLUICE_REPLICA%d=%s\n", i+1, r.Addr())
		}
		if err := os.WriteFile(*envFile, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping...")
	return nil
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
