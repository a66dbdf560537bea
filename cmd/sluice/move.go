package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/move"
)

// moveCmd asks a running sluice, over its admin API, to move objects to
// another cluster (move DB[.TABLES] --to CLUSTER), to cancel or clean up
// a move (move --cancel ID, move --cleanup ID), or lists the moves
// (moves).
func moveCmd(action string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	path := fs.String("c", "sluice.yaml", "configuration file of the running sluice (for http_listen and http_token)")
	addr := fs.String("http", "", "admin API address (default: http_listen from the configuration)")
	token := fs.String("token", "", "admin API token (default: http_token from the configuration, or $SLUICE_HTTP_TOKEN with --http)")
	to := fs.String("to", "", "cluster to move to")
	cancelID := fs.String("cancel", "", "cancel the move with this id (before its cutover)")
	cleanupID := fs.String("cleanup", "", "drop the source copy of the done move with this id")
	wait := fs.Bool("wait", false, "follow the move until it ends")
	// Flags may follow the objects: "sluice move shop --to c2".
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return exitError(2)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	usage := func() error {
		fmt.Fprintln(os.Stderr, "usage: sluice move [-c sluice.yaml] DB[.TABLES] --to CLUSTER [--wait] | sluice move --cancel ID | sluice move --cleanup ID | sluice moves")
		return exitError(2)
	}
	method, endpoint := http.MethodGet, "/api/moves"
	var body []byte
	switch {
	case action == "moves":
		if len(pos) > 0 || *to != "" || *cancelID != "" || *cleanupID != "" {
			return usage()
		}
	case *cancelID != "" || *cleanupID != "":
		if len(pos) > 0 || *to != "" || *cancelID != "" && *cleanupID != "" {
			return usage()
		}
		method, endpoint = http.MethodPost, "/api/moves/"+url.PathEscape(*cancelID)+"/cancel"
		if *cleanupID != "" {
			endpoint = "/api/moves/" + url.PathEscape(*cleanupID) + "/cleanup"
		}
	default:
		if len(pos) == 0 || *to == "" {
			return usage()
		}
		method = http.MethodPost
		body, _ = json.Marshal(httpapi.MoveRequest{Objects: pos, To: *to})
	}
	base, tok, err := adminAPI(*path, *addr, *token)
	if err != nil {
		return err
	}
	resBody, code, err := callAPI(method, "http://"+base+endpoint, tok, body)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if code/100 != 2 {
		var res struct {
			Error string    `json:"error"`
			Move  move.View `json:"move"`
		}
		if err := json.Unmarshal(resBody, &res); err != nil || res.Error == "" {
			return fmt.Errorf("%s: HTTP %d: %s", action, code, strings.TrimSpace(string(resBody)))
		}
		fmt.Fprintf(out, "refused (HTTP %d): %s\n", code, res.Error)
		if res.Move.ID != "" {
			printMove(out, res.Move)
		}
		return exitError(1)
	}
	if action == "moves" {
		var list []move.View
		if err := json.Unmarshal(resBody, &list); err != nil {
			return fmt.Errorf("moves: %w", err)
		}
		if len(list) == 0 {
			fmt.Fprintln(out, "no moves")
		}
		for _, v := range list {
			printMove(out, v)
		}
		return nil
	}
	var v move.View
	if err := json.Unmarshal(resBody, &v); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	printMove(out, v)
	if !*wait || method == http.MethodGet || *cancelID != "" || *cleanupID != "" {
		return nil
	}
	last := v.Phase
	for !v.Phase.Terminal() {
		time.Sleep(time.Second)
		b, code, err := callAPI(http.MethodGet, "http://"+base+"/api/moves/"+url.PathEscape(v.ID), tok, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("move %s: following it: HTTP %d %v", v.ID, code, err)
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if v.Phase != last || v.Phase == move.PhaseCopying {
			printMove(out, v)
			last = v.Phase
		}
	}
	if v.Phase != move.PhaseDone {
		return exitError(1)
	}
	return nil
}

// adminAPI resolves the admin API's address and token as adminCmd does.
func adminAPI(path, addr, token string) (string, string, error) {
	if addr == "" {
		getenv := os.Getenv
		if token != "" {
			getenv = func(string) string { return token }
		}
		listen, tok, err := config.AdminEndpoint(path, getenv)
		if err != nil {
			return "", "", err
		}
		if listen == "" {
			return "", "", fmt.Errorf("%s has http_listen: \"\"; give the admin API address with --http", path)
		}
		addr = listen
		if token == "" {
			token = tok
		}
	}
	if token == "" {
		token = os.Getenv("SLUICE_HTTP_TOKEN")
	}
	return dialable(addr), token, nil
}

func callAPI(method, u, token string, body []byte) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// A cleanup drops tables: the server bounds it at 5 minutes.
	resp, err := (&http.Client{Timeout: 6 * time.Minute}).Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b, resp.StatusCode, err
}

func printMove(out io.Writer, v move.View) {
	what := strings.Join(v.Objects, ",")
	if len(what) > 60 {
		what = fmt.Sprintf("%s… (%d objects)", what[:57], len(v.Objects))
	}
	fmt.Fprintf(out, "%s %s: %s -> %s, %s", v.ID, what, v.Source, v.Target, v.Phase)
	switch v.Phase {
	case move.PhaseCopying:
		fmt.Fprintf(out, ", %d/%d rows (%.0f rows/s)", v.RowsCopied, v.RowsTotal, v.RowsPerSec)
	case move.PhaseCatchUp, move.PhaseCutover:
		fmt.Fprintf(out, ", %d rows copied, lag %d GTIDs", v.RowsCopied, v.LagGTIDs)
	case move.PhaseDone, move.PhaseCleaned:
		if v.Tables > 0 {
			fmt.Fprintf(out, ", %d rows copied at %.0f rows/s, catch-up %.0f ms, writes held %.0f ms", v.RowsCopied, v.RowsPerSec, v.CatchUpMS, v.HoldMS)
		}
	}
	fmt.Fprintln(out)
	if v.Error != "" {
		fmt.Fprintln(out, "  error:", v.Error)
	}
	for _, w := range v.Warnings {
		fmt.Fprintln(out, "  warning:", w)
	}
}
