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
func demoConfig(listen, httpListen string, topo *testbed.Topology, more ...*testbed.Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\n", listen)
	fmt.Fprintf(&b, "http_listen: %q\n", httpListen)
	fmt.Fprintf(&b, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	fmt.Fprintf(&b, "monitor: {user: %s, password: %s}\n", testbed.MonitorUser, testbed.MonitorPassword)
	if len(more) == 0 {
		b.WriteString("servers:\n")
		for _, s := range topo.Servers {
			fmt.Fprintf(&b, "  - {name: %s, address: %s}\n", s.Name, s.Addr())
		}
	} else {
		b.WriteString("clusters:\n")
		for i, t := range append([]*testbed.Topology{topo}, more...) {
			fmt.Fprintf(&b, "  - name: %s\n    servers:\n", demoClusters[i].name)
			for _, s := range t.Servers {
				fmt.Fprintf(&b, "      - {name: %s, address: %s}\n", demoServerName(i, s), s.Addr())
			}
		}
		b.WriteString("placement:\n  default_cluster: main\n  databases:\n")
		for i := range len(more) + 1 {
			for _, db := range demoClusters[i].dbs {
				fmt.Fprintf(&b, "    - {name: %s, cluster: %s}\n", db, demoClusters[i].name)
			}
		}
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
	replicas := fs.Int("replicas", 2, "number of replicas of each cluster")
	clusters := fs.Int("clusters", 2, "number of clusters (1 or 2), each a primary and its replicas")
	envFile := fs.String("env-file", "", "write the servers' addresses to this file (KEY=value lines) once ready")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if err := testbed.Available(); err != nil {
		return err
	}
	// Every way a terminal ends the demo (Ctrl-C, closing the window, kill)
	// goes through the deferred cleanup below, which removes the servers'
	// data. A closed output pipe (sluice demo | head) must not kill the
	// process on its next write either: writes then fail instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop() // last: a second signal during the cleanup does not cut it short
	if *clusters < 1 || *clusters > len(demoClusters) {
		return fmt.Errorf("--clusters must be 1 or %d", len(demoClusters))
	}
	fmt.Fprintf(os.Stderr, "starting MariaDB: %d cluster(s) of 1 primary + %d replicas...\n", *clusters, *replicas)
	started := time.Now()
	topo, err := testbed.Start(ctx, testbed.Options{Replicas: *replicas})
	if err != nil {
		return err
	}
	defer topo.Close()
	var more []*testbed.Topology
	for range *clusters - 1 {
		t, err := testbed.Start(ctx, testbed.Options{Replicas: *replicas})
		if err != nil {
			return err
		}
		defer t.Close()
		more = append(more, t)
	}
	if len(more) > 0 {
		// A few databases on each cluster, placed where they live.
		for i, t := range append([]*testbed.Topology{topo}, more...) {
			for _, db := range demoClusters[i].dbs {
				if err := t.Primary.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+db+"`"); err != nil {
					return err
				}
			}
		}
	}
	text := demoConfig(*listen, *httpListen, topo, more...)
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
	httpAddr, stopHTTP, err := startHTTP(ctx, cfg, demoSource{p, append([]*testbed.Topology{topo}, more...)}, obs.st, log)
	if err != nil {
		return err
	}
	defer stopHTTP()

	fmt.Printf("\nsluice demo ready in %s\n\n", time.Since(started).Round(100*time.Millisecond))
	fmt.Printf("  connect:    mariadb -h127.0.0.1 -P%s -u%s -p%s\n", portOf(p.Addr().String()), testbed.AppUser, testbed.AppPassword)
	if httpAddr != "" {
		fmt.Printf("  dashboard:  http://%s/\n", httpAddr)
	}
	for _, s := range topo.Servers {
		role := "replica"
		if s == topo.Primary {
			role = "primary"
		}
		fmt.Printf("  %-8s    %s (%s at start, pid %d)  mariadb -h127.0.0.1 -P%d -u%s -p%s\n", s.Name, s.Addr(), role, s.PID(), s.Port, testbed.AppUser, testbed.AppPassword)
	}
	for i, t := range more {
		fmt.Printf("\n  cluster %s (databases %s):\n", demoClusters[i+1].name, strings.Join(demoClusters[i+1].dbs, ", "))
		for _, s := range t.Servers {
			role := "replica"
			if s == t.Primary {
				role = "primary"
			}
			fmt.Printf("  %-8s    %s (%s at start, pid %d)\n", demoServerName(i+1, s), s.Addr(), role, s.PID())
		}
	}
	if len(more) > 0 {
		fmt.Printf("\n  cluster main holds %s; statements go to the cluster owning what they touch (curl -s http://%s/api/clusters)\n",
			strings.Join(demoClusters[0].dbs, ", "), httpAddr)
	}
	if httpAddr != "" {
		// The primary moves with every switchover or failover: the commands
		// ask the API which server it is now.
		self := selfCommand()
		fmt.Printf("\nfailover is automatic; kill the current primary with:\n  kill -9 $(%s)\n", primaryPIDCommand(httpAddr))
		fmt.Printf("every server's role and pid: curl -s http://%s/api/servers\n", httpAddr)
		if len(more) > 0 {
			fmt.Printf("planned primary change:      %s switchover --http %s main\n", self, httpAddr)
		} else {
			fmt.Printf("planned primary change:      %s switchover --http %s\n", self, httpAddr)
		}
	}
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

// demoSource is the proxy as the admin API sees it, plus the process ids
// of the servers the demo started.
type demoSource struct {
	*proxy.Proxy
	topos []*testbed.Topology
}

func (d demoSource) ServerPID(name string) int {
	for i, t := range d.topos {
		for _, s := range t.Servers {
			if demoServerName(i, s) == name {
				return s.PID()
			}
		}
	}
	return 0
}

// demoClusters are the demo's clusters and the databases placed on each.
var demoClusters = []struct {
	name string
	dbs  []string
}{
	{"main", []string{"shop", "inventory"}},
	{"second", []string{"blog", "analytics"}},
}

// demoServerName keeps the first cluster's servers named as testbed names
// them (db1, db2…); the second's get a prefix, since server names are
// unique across clusters.
func demoServerName(cluster int, s *testbed.Server) string {
	if cluster == 0 {
		return s.Name
	}
	return demoClusters[cluster].name + "-" + s.Name
}

// primaryPIDCommand is a shell command printing the current primary's pid,
// read from /api/servers (whose JSON puts one field per line, role before
// pid).
func primaryPIDCommand(httpAddr string) string {
	return fmt.Sprintf(`curl -s http://%s/api/servers | awk '/"role": "primary"/{p=1} p&&/"pid"/{gsub(/[^0-9]/,"");print;exit}'`, httpAddr)
}

// selfCommand is how to run this sluice again from a shell: its absolute
// path, or "go run ./cmd/sluice" under go run (make demo), whose binary
// lives in a build cache directory that goes away when it exits.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/sluice"
	}
	return exe
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
