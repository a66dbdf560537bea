package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/sluice-proxy/sluice/internal/failover"
)

// adminCmd asks a running sluice, over its admin API, for a primary
// change: switchover [--to NAME], failover [--to NAME] or rejoin NAME. The
// API address and token come from the same configuration file, unless
// given.
func adminCmd(action string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	path := fs.String("c", "sluice.yaml", "configuration file of the running sluice (for http_listen and http_token)")
	addr := fs.String("http", "", "admin API address (default: http_listen from the configuration)")
	token := fs.String("token", "", "admin API token (default: http_token from the configuration, or $SLUICE_HTTP_TOKEN with --http)")
	var to *string
	if action == "rejoin" {
		to = new(string) // rejoin names its server; there is nothing to promote
	} else {
		to = fs.String("to", "", "server to promote (default: the most advanced eligible replica)")
	}
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if fs.NArg() > 0 {
		// Flags may follow the cluster or server named: "switchover c2
		// --to c2-db2".
		first := fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return exitError(2)
		}
		if err := fs.Parse(append([]string{"--", first}, fs.Args()...)); err != nil {
			return exitError(2)
		}
	}
	var endpoint string
	switch action {
	case "switchover", "failover":
		// "sluice switchover db2" reads as a target, and "sluice
		// switchover c2" as a cluster (the API tells them apart);
		// "sluice switchover c2 --to c2-db2" names both.
		cluster := ""
		switch {
		case fs.NArg() > 1:
			fmt.Fprintf(os.Stderr, "usage: sluice %s [-c sluice.yaml] [CLUSTER] [--to NAME]\n", action)
			return exitError(2)
		case fs.NArg() == 1 && *to != "" && *to != fs.Arg(0):
			cluster = fs.Arg(0)
		case fs.NArg() == 1:
			*to = fs.Arg(0)
		}
		endpoint = "/api/" + action
		q := url.Values{}
		if cluster != "" {
			q.Set("cluster", cluster)
		}
		if *to != "" {
			q.Set("to", *to)
		}
		if len(q) > 0 {
			endpoint += "?" + q.Encode()
		}
	case "rejoin":
		if fs.NArg() != 1 {
			fmt.Fprintln(os.Stderr, "usage: sluice rejoin [-c sluice.yaml] NAME")
			return exitError(2)
		}
		endpoint = "/api/servers/" + url.PathEscape(fs.Arg(0)) + "/rejoin"
	}
	base, tok, err := adminAPI(*path, *addr, *token)
	if err != nil {
		return err
	}
	// A switchover is bounded by failover.hold_timeout plus the repointing
	// of the replicas; the server bounds the whole at 5 minutes.
	body, code, err := callAPI(http.MethodPost, "http://"+base+endpoint, tok, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if code != http.StatusOK {
		var res struct {
			Error  string          `json:"error"`
			Record failover.Record `json:"record"`
		}
		if err := json.Unmarshal(body, &res); err != nil || res.Error == "" {
			return fmt.Errorf("%s: HTTP %d %s: %s", action, code, http.StatusText(code), strings.TrimSpace(string(body)))
		}
		fmt.Fprintf(out, "%s not done (HTTP %d): %s\n", action, code, res.Error)
		printRecord(out, res.Record)
		return exitError(1)
	}
	var rec failover.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return fmt.Errorf("%s: %w: %s", action, err, strings.TrimSpace(string(body)))
	}
	printRecord(out, rec)
	return nil
}

func printRecord(out io.Writer, r failover.Record) {
	if r.Kind == "" {
		return
	}
	switch {
	case r.Kind == "refused":
		// Nothing changed: say why, then the checks that led there.
		why := r.Error
		var checks []string
		for _, s := range r.Reasons {
			if after, ok := strings.CutPrefix(s, "refused: "); ok {
				if why == "" {
					why = after
				} else if !strings.Contains(why, after) {
					why += "; " + after
				}
				continue
			}
			checks = append(checks, s)
		}
		if why == "" && len(checks) > 0 {
			why, checks = checks[len(checks)-1], checks[:len(checks)-1]
		}
		fmt.Fprintf(out, "refused: %s\n", why)
		if r.Old != "" {
			fmt.Fprintf(out, "  primary %s, epoch %d (unchanged)\n", r.Old, r.Epoch)
		}
		for _, s := range checks {
			fmt.Fprintln(out, "  -", s)
		}
		return
	case r.Server != "":
		fmt.Fprintf(out, "%s %s: ok=%v, primary %s, epoch %d\n", r.Kind, r.Server, r.OK, r.New, r.Epoch)
	case r.New == "":
		fmt.Fprintf(out, "%s from %s: ok=%v, epoch %d", r.Kind, r.Old, r.OK, r.Epoch)
		if r.PauseMS > 0 {
			fmt.Fprintf(out, ", writes held %.0f ms", r.PauseMS)
		}
		fmt.Fprintln(out)
	default:
		fmt.Fprintf(out, "%s %s -> %s: ok=%v, epoch %d", r.Kind, r.Old, r.New, r.OK, r.Epoch)
		if r.PauseMS > 0 {
			fmt.Fprintf(out, ", writes held %.0f ms", r.PauseMS)
		}
		fmt.Fprintln(out)
	}
	for _, s := range r.Reasons {
		fmt.Fprintln(out, "  -", s)
	}
	if r.Error != "" {
		fmt.Fprintln(out, "  error:", r.Error)
	}
}

// dialable turns a listen address into one to connect to: an empty or
// unspecified host means this machine.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
