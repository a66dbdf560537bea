// Command sluice is a MySQL/MariaDB proxy that splits reads from writes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sluice-proxy/sluice/internal/buildinfo"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/proxy"
)

const usage = `sluice — a MySQL/MariaDB proxy that splits reads from writes

Usage:
  sluice run -c sluice.yaml     serve with this configuration (SIGHUP reloads it)
  sluice check -c sluice.yaml   validate a configuration, print every problem
  sluice check --example        print a complete, commented example configuration
  sluice demo                   start a local primary + 2 replicas + sluice to try it out
  sluice switchover [CLUSTER] [--to NAME]
                                move the primary of a running sluice (-c sluice.yaml, or --http ADDR --token T);
                                with several clusters, name the cluster or the server to promote
  sluice failover [CLUSTER] [--to NAME]
                                promote a replica of a running sluice whose primary is down
  sluice rejoin NAME            make a fenced old primary a replica of the current primary
  sluice move DB[.TABLES] --to CLUSTER [--wait]
                                move a database or tables (t1,t2 or bucket_{0000..0255}) to another cluster online
  sluice move --cancel ID | --cleanup ID
                                cancel a move before its cutover, or drop a done move's source copy
  sluice moves                  list the moves with their progress
  sluice version                print the module version, VCS revision and Go version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "check":
		err = checkCmd(os.Args[2:], os.Stdout)
	case "demo":
		err = demoCmd(os.Args[2:])
	case "switchover", "failover", "rejoin":
		err = adminCmd(os.Args[1], os.Args[2:], os.Stdout)
	case "move", "moves":
		err = moveCmd(os.Args[1], os.Args[2:], os.Stdout)
	case "version", "--version", "-v":
		fmt.Println(buildinfo.Read())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(cfg.Log.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func checkCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("c", "sluice.yaml", "configuration file")
	example := fs.Bool("example", false, "print an example configuration")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *example {
		fmt.Fprint(out, config.Example())
		return nil
	}
	cfg, err := config.Load(*path, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitError(1)
	}
	if len(cfg.Clusters) > 0 {
		fmt.Fprintf(out, "%s: OK (%d clusters, %d servers, %d users, listen %s)\n", *path, len(cfg.Clusters), len(cfg.Servers), len(cfg.Users), cfg.Listen)
	} else {
		fmt.Fprintf(out, "%s: OK (%d servers, %d users, listen %s)\n", *path, len(cfg.Servers), len(cfg.Users), cfg.Listen)
	}
	return nil
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "sluice.yaml", "configuration file")
	noStats := fs.Bool("no-stats", false, "run without metrics, digests and slow log (to measure what they cost)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	cfg, err := config.Load(*path, os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	routeDriverLogs(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	load := func() (*config.Config, error) { return config.Load(*path, os.Getenv) }
	var obs *observability
	p, err := proxy.New(cfg, proxy.Options{Logger: log, Load: load,
		OnReload: func(c *config.Config, err error) {
			if obs != nil {
				obs.reloaded(c, err)
			}
		}})
	if err != nil {
		return err
	}
	var api httpapi.Observability // stays nil without statistics
	if !*noStats {
		if obs, err = startObservability(ctx, cfg, p, log); err != nil {
			return err
		}
		defer obs.close()
		api = obs.st
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	_, stopHTTP, err := startHTTP(ctx, cfg, p, api, log)
	if err != nil {
		p.Close()
		return err
	}
	defer stopHTTP()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			stopHTTP() // no new admin requests while a change may finish
			return p.Close()
		case <-hup:
			p.ReloadFile() // logs the outcome; a broken file keeps the running config
		}
	}
}
