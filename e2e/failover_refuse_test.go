package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/gtid"
	"github.com/sluice-proxy/sluice/internal/hooks"
	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// adminAPI serves sluice's admin HTTP API for a test.
func adminAPI(t testing.TB, p *proxy.Proxy) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.Handler(p, nil))
	t.Cleanup(srv.Close)
	return srv
}

// apiCall sends method path to the API and decodes the JSON answer into
// out (when not nil); it returns the status code and the raw body.
func apiCall(t testing.TB, srv *httptest.Server, method, path string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, body, err)
		}
	}
	return resp.StatusCode, string(body)
}

// replicaApplied reports whether s applied everything it received:
// gtid_slave_pos contains Gtid_IO_Pos.
func replicaApplied(t testing.TB, s *testbed.Server) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st map[string]string
	var sp string
	reconnecting(t, "replication state of "+s.Name, func() (err error) {
		if st, err = s.SlaveStatus(ctx); err != nil {
			return err
		}
		sp, err = s.GlobalVariable(ctx, "gtid_slave_pos")
		return err
	})
	if st == nil {
		t.Fatalf("%s is no replica (SHOW SLAVE STATUS is empty)", s.Name)
	}
	applied, err1 := gtid.Parse(sp)
	received, err2 := gtid.Parse(st["Gtid_IO_Pos"])
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: gtid_slave_pos %q (%v), Gtid_IO_Pos %q (%v)", s.Name, sp, err1, st["Gtid_IO_Pos"], err2)
	}
	return applied.Contains(received), fmt.Sprintf("gtid_slave_pos %s, Gtid_IO_Pos %s, SQL state %q", applied, received, st["Slave_SQL_Running_State"])
}

// haltOnce stops writers unless they were stopped already (a test that
// fails halfway leaves none running).
func haltOnce(w *foWriters) {
	select {
	case <-w.stop:
	default:
		w.halt()
	}
}

func serverView(t testing.TB, list []httpapi.ServerView, name string) httpapi.ServerView {
	t.Helper()
	for _, v := range list {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("GET /api/servers has no %s: %+v", name, list)
	return httpapi.ServerView{}
}

// TestLaggingCandidateIsRefusedThenOperatorFailsOver: with failover.max_lag
// 1s, a replica that was 2s+ behind when the primary died is not promoted
// automatically; the refusal is counted, alerted (API, and the 9001 error
// writers get), and once the replica caught up an operator's POST
// /api/failover promotes it.
func TestLaggingCandidateIsRefusedThenOperatorFailsOver(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	db1, db2 := topo.ByName("db1"), topo.ByName("db2")
	// foYAML already sets max_lag, and the config rejects a repeated key.
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(""), mutate: func(c *config.Config) {
		c.Failover.MaxLag = config.Duration(time.Second)
	}})
	api := adminAPI(t, p)
	schema := foSchema(t, topo)
	waitFor(t, 10*time.Second, "epoch 1 names db1", func() bool {
		r := p.Failover().Report()
		return r.Epoch == 1 && r.Primary == "db1"
	})

	// An operator failover while the primary is up is a conflict.
	code, body := apiCall(t, api, http.MethodPost, "/api/failover", nil)
	if code != http.StatusConflict {
		t.Fatalf("POST /api/failover with db1 up: %d %s, want 409", code, body)
	}
	t.Logf("POST /api/failover with db1 up: %d %s", code, strings.Join(strings.Fields(body), " "))

	d := openDB(t, p, "")
	w := startWriters(t, d, schema, 4)
	defer haltOnce(w)
	waitFor(t, 10*time.Second, "writes flow", func() bool { return w.count() > 50 })

	// Freeze the replica's SQL thread: FLUSH TABLES WITH READ LOCK on one
	// root connection, held while the writers go on.
	adb, err := db2.Admin()
	if err != nil {
		t.Fatal(err)
	}
	lock, err := adb.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlocked := false
	t.Cleanup(func() {
		if !unlocked {
			lock.ExecContext(context.Background(), "UNLOCK TABLES")
		}
		lock.Close()
	})
	mustExec(t, lock, "FLUSH TABLES WITH READ LOCK")
	locked := time.Now()
	var lag time.Duration
	waitFor(t, 30*time.Second, "sluice sees db2 2s+ behind", func() bool {
		s, ok := p.Snapshot().ByName("db2")
		lag = s.Lag
		return ok && s.LagKnown && s.Lag >= 2*time.Second
	})
	if applied, state := replicaApplied(t, db2); applied {
		t.Fatalf("db2 applied everything it received although its SQL thread is blocked: %s", state)
	}
	t.Logf("db2 under FLUSH TABLES WITH READ LOCK: lag %s after %s, %d commits acknowledged so far",
		lag, time.Since(locked).Round(time.Millisecond), w.count())

	// SIGKILL the primary: the replica confirms the loss, but it is too
	// far behind to be promoted automatically.
	killed := time.Now()
	if err := db1.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the failover is refused", func() bool {
		return p.Failover().Report().Counts["refused"] >= 1 && strings.Contains(p.Snapshot().Alert, "max_lag")
	})
	refusedSeen := time.Now()
	refusedAfter := refusedSeen.Sub(killed)
	rep := p.Failover().Report()
	t.Logf("refused %s after the kill; alert: %s", refusedAfter.Round(time.Millisecond), rep.Alert)
	if rep.Primary != "db1" || rep.Epoch != 1 || rep.Counts["failover_ok"] != 0 {
		t.Errorf("report after refusal: primary %s epoch %d counts %v; want db1, 1, no failover", rep.Primary, rep.Epoch, rep.Counts)
	}
	// Either reason names max_lag: "db2 was 2s behind" (the lag sampled
	// while db1 was up) or "its lag was unknown" (db2's IO thread lost db1
	// before sluice's checks did, and that sample replaced the 2s one).
	if !strings.Contains(rep.Alert, "failover.max_lag 1s") || !strings.Contains(rep.Alert, "db2") || !strings.Contains(rep.Alert, "refused") {
		t.Errorf("alert %q: want the refusal of db2 naming failover.max_lag 1s", rep.Alert)
	}
	if len(rep.History) == 0 || rep.History[0].Kind != "refused" || rep.History[0].Old != "db1" {
		t.Errorf("newest history record %+v, want a refusal of the loss of db1", rep.History)
	}
	if _, ok := p.Snapshot().PrimaryServer(); ok {
		t.Errorf("sluice routes writes to a primary after the refusal: %+v", p.Snapshot())
	}

	// Writers get the refusal in a 9001 error.
	_, err = d.ExecContext(context.Background(), "INSERT INTO `"+schema+"`.t (id, v) VALUES (?, 'refused')", int64(-1))
	var me *mysql.MySQLError
	switch {
	case !errors.As(err, &me):
		t.Errorf("write after the refusal: %v, want a MySQL error 9001", err)
	case me.Number != 9001 || string(me.SQLState[:]) != "08S01" || !strings.Contains(me.Message, rep.Alert):
		t.Errorf("write after the refusal: error %d (%s) %q, want 9001 (08S01) with the alert %q", me.Number, me.SQLState, me.Message, rep.Alert)
	default:
		t.Logf("write after the refusal: error %d (SQLSTATE %s): %s", me.Number, me.SQLState, me.Message)
	}

	// The API shows the alert on the epoch's primary, and in the report.
	var list []httpapi.ServerView
	if code, body := apiCall(t, api, http.MethodGet, "/api/servers", &list); code != http.StatusOK {
		t.Fatalf("GET /api/servers: %d %s", code, body)
	}
	v1, v2 := serverView(t, list, "db1"), serverView(t, list, "db2")
	if !v1.EpochPrimary || v1.Epoch != 1 || v1.Alert != rep.Alert || v1.Up {
		t.Errorf("GET /api/servers db1: epoch_primary %v epoch %d up %v alert %q; want true, 1, down, the alert", v1.EpochPrimary, v1.Epoch, v1.Up, v1.Alert)
	}
	if v2.EpochPrimary || v2.Alert != "" || v2.Role != "replica" {
		t.Errorf("GET /api/servers db2: epoch_primary %v role %s alert %q; want a replica without the alert", v2.EpochPrimary, v2.Role, v2.Alert)
	}
	var apiRep failover.Report
	if code, body := apiCall(t, api, http.MethodGet, "/api/failover", &apiRep); code != http.StatusOK {
		t.Fatalf("GET /api/failover: %d %s", code, body)
	}
	if apiRep.Alert != rep.Alert || apiRep.Counts["refused"] < 1 || apiRep.Primary != "db1" {
		t.Errorf("GET /api/failover: alert %q counts %v primary %s; want the alert, a refusal, db1", apiRep.Alert, apiRep.Counts, apiRep.Primary)
	}

	// The replica catches up once its lock is gone; then an operator
	// fails over.
	unlocked = true
	mustExec(t, lock, "UNLOCK TABLES")
	unlockedAt := time.Now()
	var applied string
	waitFor(t, 60*time.Second, "db2 applied its relay log", func() bool {
		var ok bool
		ok, applied = replicaApplied(t, db2)
		return ok
	})
	t.Logf("db2 applied its relay log %s after UNLOCK TABLES: %s", time.Since(unlockedAt).Round(time.Millisecond), applied)
	if r := p.Failover().Report(); r.Counts["failover_ok"] != 0 || r.Primary != "db1" {
		t.Fatalf("an automatic failover happened after the refusal: %+v", r)
	}

	var rec failover.Record
	start := time.Now()
	code, body = apiCall(t, api, http.MethodPost, "/api/failover", &rec)
	if code != http.StatusOK {
		t.Fatalf("POST /api/failover: %d %s", code, body)
	}
	took := time.Since(start)
	if !rec.OK || rec.Kind != "failover" || rec.Trigger != "operator" || rec.Old != "db1" || rec.New != "db2" || rec.Epoch != 2 {
		t.Errorf("failover record %+v; want an operator failover db1 -> db2 in epoch 2", rec)
	}
	t.Logf("POST /api/failover: 200 in %s, pause %.1f ms, reasons %s", took.Round(time.Millisecond), rec.PauseMS, strings.Join(rec.Reasons, "; "))
	primaryIs(t, p, "db2", 10*time.Second)
	mustExec(t, d, "INSERT INTO `"+schema+"`.t (id, v) VALUES (?, 'operator')", int64(-2))
	waitFor(t, 10*time.Second, "writers' commits acknowledged by db2", func() bool {
		_, ok := w.okAfter(start.Add(took))
		return ok
	})
	w.halt()

	rep = p.Failover().Report()
	if rep.Alert != "" || p.Snapshot().Alert != "" {
		t.Errorf("alert not cleared after the failover: report %q, snapshot %q", rep.Alert, p.Snapshot().Alert)
	}
	if rep.Primary != "db2" || rep.Epoch != 2 || rep.Counts["failover_ok"] != 1 {
		t.Errorf("report after the operator failover: primary %s epoch %d counts %v", rep.Primary, rep.Epoch, rep.Counts)
	}
	list = nil
	apiCall(t, api, http.MethodGet, "/api/servers", &list)
	if v := serverView(t, list, "db2"); !v.EpochPrimary || v.Epoch != 2 || v.Alert != "" || v.Role != "primary" || v.ReadOnly {
		t.Errorf("GET /api/servers db2 after the failover: %+v", v)
	}
	if v := serverView(t, list, "db1"); !v.Fenced {
		t.Errorf("GET /api/servers db1 after the failover: fenced %v, want true", v.Fenced)
	}
	// A failover while the (new) primary is up is a conflict again.
	if code, body := apiCall(t, api, http.MethodPost, "/api/failover", nil); code != http.StatusConflict {
		t.Errorf("POST /api/failover with db2 up: %d %s, want 409", code, body)
	}

	// Asynchronous replication may lose what db1 acknowledged last before
	// the SIGKILL; every write that began after it was acknowledged by db2.
	lost := w.missing(t, db2, schema)
	began := map[int64]time.Time{}
	w.mu.Lock()
	for i, id := range w.acked {
		began[id] = w.okBegan[i]
	}
	errs := slices.Clone(w.errs)
	w.mu.Unlock()
	for _, id := range lost {
		if !began[id].Before(killed) {
			t.Errorf("insert %d, begun %s after the kill and acknowledged, is not on db2", id, began[id].Sub(killed).Round(time.Millisecond))
		}
	}
	for _, err := range unexpectedPrimaryLossErrors(errs) {
		t.Errorf("client error outside the contract of a lost primary: %v", err)
	}
	// In order: 2013 for what ran on db1, 9001 "cannot reach" until the
	// monitor declared it down, then held writes, then the refusal. Once
	// the refusal stands, every write begun gets the 9001 that gives its
	// reason.
	w.mu.Lock()
	var afterRefusal int
	for i, err := range w.errs {
		if w.errBegan[i].Before(refusedSeen) {
			continue
		}
		afterRefusal++
		if errCode(err) != 9001 || !strings.Contains(err.Error(), "failover was refused") {
			t.Errorf("write begun %s after the refusal: %v, want 9001 with the refusal's reason", w.errBegan[i].Sub(refusedSeen).Round(time.Millisecond), err)
		}
	}
	w.mu.Unlock()
	if afterRefusal == 0 {
		t.Errorf("no writer error after the refusal: the writers should have been refused until the operator failed over")
	}
	t.Logf("writers: %d commits acknowledged, %d errors (while no primary: %s); %d commits db1 acknowledged before the kill missing on db2 (async replication, SIGKILL); counts %v",
		w.count(), len(errs), fenceErrorKinds(w), len(lost), rep.Counts)
}

// hookEnv is one run of the hook command: its SLUICE_* variables.
type hookEnv map[string]string

// readHookLog parses the file the hook script appends to: blocks of
// KEY=VALUE lines separated by "----".
func readHookLog(t testing.TB, path string) []hookEnv {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []hookEnv
	cur := hookEnv{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "----" {
			out = append(out, cur)
			cur = hookEnv{}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			cur[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// webhookSink records the events POSTed to it, with what the test saw of
// the topology when each arrived.
type webhookSink struct {
	mu     sync.Mutex
	events []hooks.Event
	seen   []string // per event: sluice's epoch and primary, the old primary's read_only
}

func (s *webhookSink) list() ([]hooks.Event, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hooks.Event(nil), s.events...), append([]string(nil), s.seen...)
}

// TestHooksSeeTheChangeAndAFailingPreHookAbortsSwitchover: a switchover
// runs the hook command and the webhook before (pre) and after (post) the
// change with the event's facts; a pre-hook that fails stops the next
// switchover before anything moves, without a client error.
func TestHooksSeeTheChangeAndAFailingPreHookAbortsSwitchover(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	db1, db2 := topo.ByName("db1"), topo.ByName("db2")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "hook.log")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n{ env | grep '^SLUICE_' | sort; echo ----; } >> '"+logPath+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	sink := &webhookSink{}
	var p *proxy.Proxy
	readOnly := func(s *testbed.Server) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v, err := s.GlobalVariable(ctx, "read_only")
		if err != nil {
			return "error: " + err.Error()
		}
		return v
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev hooks.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// What the world looks like while the hook runs.
		rep := p.Failover().Report()
		pr, _ := p.Snapshot().PrimaryServer()
		prName := ""
		if pr != nil {
			prName = pr.Name
		}
		seen := fmt.Sprintf("epoch=%d primary=%s routed=%s %s.read_only=%s", rep.Epoch, rep.Primary, prName, ev.OldPrimary, readOnly(topo.ByName(ev.OldPrimary)))
		sink.mu.Lock()
		sink.events = append(sink.events, ev)
		sink.seen = append(sink.seen, seen)
		sink.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	p = startSluice(t, sluiceOpts{topo: topo,
		yaml: foYAML(fmt.Sprintf(", hooks: {command: [/bin/sh, %q], webhook: %q, timeout: 10s}", script, hook.URL+"/sluice"))})
	api := adminAPI(t, p)
	waitFor(t, 10*time.Second, "epoch 1 names db1", func() bool {
		r := p.Failover().Report()
		return r.Epoch == 1 && r.Primary == "db1"
	})

	// Part A: a switchover to db2 over HTTP.
	var rec failover.Record
	start := time.Now()
	code, body := apiCall(t, api, http.MethodPost, "/api/switchover?to=db2", &rec)
	if code != http.StatusOK {
		t.Fatalf("POST /api/switchover?to=db2: %d %s", code, body)
	}
	took := time.Since(start)
	rep := p.Failover().Report()
	t.Logf("switchover db1 -> db2: %s (pause %.1f ms), record epoch %d, report epoch %d; reasons %s",
		took.Round(time.Millisecond), rec.PauseMS, rec.Epoch, rep.Epoch, strings.Join(rec.Reasons, "; "))
	// Epoch 1 was db1's. The switchover commits epoch 2 naming db2 (the
	// epoch the hooks announce, pre and post, and the record's); db1 then
	// becomes a replica without being fenced, so no further epoch, before the
	// post hooks run.
	if !rec.OK || rec.Epoch != 2 || rep.Epoch != 2 || rep.Primary != "db2" || len(rep.Fenced) != 0 || rep.Counts["switchover_ok"] != 1 {
		t.Errorf("after the switchover: record %+v, report epoch %d primary %s fenced %v counts %v; want epoch 2 in the record and the report, db2, none fenced",
			rec, rep.Epoch, rep.Primary, rep.Fenced, rep.Counts)
	}
	primaryIs(t, p, "db2", 5*time.Second)
	topo.SetPrimary(db2)

	want := func(phase string) map[string]string {
		return map[string]string{
			"SLUICE_EVENT": "switchover", "SLUICE_PHASE": phase,
			"SLUICE_OLD_PRIMARY": "db1", "SLUICE_NEW_PRIMARY": "db2",
			"SLUICE_OLD_ADDRESS": db1.Addr(), "SLUICE_NEW_ADDRESS": db2.Addr(),
			"SLUICE_EPOCH": "2", "SLUICE_REASON": "planned switchover",
		}
	}
	runs := readHookLog(t, logPath)
	if len(runs) != 2 {
		t.Fatalf("hook command ran %d times, want 2 (pre, post): %v", len(runs), runs)
	}
	var times []time.Time
	for i, phase := range []string{"pre", "post"} {
		for k, v := range want(phase) {
			if runs[i][k] != v {
				t.Errorf("hook command run %d: %s=%q, want %q", i+1, k, runs[i][k], v)
			}
		}
		at, err := time.Parse(time.RFC3339Nano, runs[i]["SLUICE_TIME"])
		if err != nil || at.Before(start.Add(-time.Second)) || at.After(time.Now()) {
			t.Errorf("hook command run %d: SLUICE_TIME %q (%v) not within the switchover", i+1, runs[i]["SLUICE_TIME"], err)
		}
		times = append(times, at)
		t.Logf("hook command %s: %v", phase, runs[i])
	}
	events, seen := sink.list()
	if len(events) != 2 {
		t.Fatalf("webhook got %d events, want 2 (pre, post): %+v", len(events), events)
	}
	for i, phase := range []string{"pre", "post"} {
		ev := events[i]
		got := map[string]string{
			"SLUICE_EVENT": ev.Kind, "SLUICE_PHASE": ev.Phase,
			"SLUICE_OLD_PRIMARY": ev.OldPrimary, "SLUICE_NEW_PRIMARY": ev.NewPrimary,
			"SLUICE_OLD_ADDRESS": ev.OldAddress, "SLUICE_NEW_ADDRESS": ev.NewAddress,
			"SLUICE_EPOCH": strconv.FormatUint(ev.Epoch, 10), "SLUICE_REASON": ev.Reason,
		}
		for k, v := range want(phase) {
			if got[k] != v {
				t.Errorf("webhook event %d: %s is %q, want %q (%+v)", i+1, strings.ToLower(strings.TrimPrefix(k, "SLUICE_")), got[k], v, ev)
			}
		}
		// Command and webhook of one phase get the same event.
		if !ev.Time.Equal(times[i]) {
			t.Errorf("webhook %s event time %s, command's %s", phase, ev.Time, times[i])
		}
		t.Logf("webhook %s: %+v; seen meanwhile: %s", phase, ev, seen[i])
	}
	// pre runs before anything moved, post after the whole change.
	if w := "epoch=1 primary=db1 routed=db1 db1.read_only=OFF"; seen[0] != w {
		t.Errorf("during the pre webhook: %s, want %s", seen[0], w)
	}
	if w := "epoch=2 primary=db2 routed=db2 db1.read_only=ON"; seen[1] != w {
		t.Errorf("during the post webhook: %s, want %s", seen[1], w)
	}
	if !times[1].After(times[0]) {
		t.Errorf("post at %s is not after pre at %s", times[1], times[0])
	}

	// Part B: the operator installs a pre-hook that vetoes switchovers
	// (a reload of the configuration), then asks for one under writes.
	vetoLog := filepath.Join(dir, "veto.log")
	veto := filepath.Join(dir, "veto.sh")
	if err := os.WriteFile(veto, []byte("#!/bin/sh\necho \"$SLUICE_PHASE $SLUICE_EVENT $SLUICE_OLD_PRIMARY $SLUICE_NEW_PRIMARY $SLUICE_EPOCH\" >> '"+vetoLog+"'\n"+
		"if [ \"$SLUICE_PHASE\" = pre ]; then echo 'change freeze: no switchover now' >&2; exit 1; fi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := *p.Config()
	cfg.Failover.Hooks.Command = []string{"/bin/sh", veto}
	if err := p.Reload(&cfg); err != nil {
		t.Fatal(err)
	}

	schema := foSchema(t, topo)
	d := openDB(t, p, "")
	w := startWriters(t, d, schema, 4)
	defer haltOnce(w)
	waitFor(t, 10*time.Second, "writes flow", func() bool { return w.count() > 50 })
	before := w.count()
	repBefore := p.Failover().Report()
	start = time.Now()
	rec, err := p.Failover().Switchover(context.Background(), "db1")
	took = time.Since(start)
	if err == nil {
		t.Fatalf("switchover with a failing pre-hook succeeded: %+v", rec)
	}
	t.Logf("switchover to db1 with a vetoing pre-hook: failed in %s: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "pre-hook") || !strings.Contains(err.Error(), "change freeze") || !strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("error %q: want it to name the failing pre-hook and its output", err)
	}
	if rec.OK || rec.Error == "" || rec.Epoch != repBefore.Epoch {
		t.Errorf("record %+v: want a failed switchover in epoch %d", rec, repBefore.Epoch)
	}
	waitFor(t, 10*time.Second, "writes go on after the vetoed switchover", func() bool { return w.count() > before+100 })
	w.halt()
	syncReplicas(t, topo)
	for _, s := range topo.Servers {
		if m := w.missing(t, s, schema); len(m) > 0 {
			t.Errorf("%s lacks %d acknowledged inserts: %v", s.Name, len(m), m[:min(len(m), 10)])
		}
	}

	rep = p.Failover().Report()
	if rep.Epoch != repBefore.Epoch || rep.Primary != "db2" || rep.Counts["switchover_failed"] != 1 || rep.Counts["switchover_ok"] != 1 || rep.InProgress != "" {
		t.Errorf("after the vetoed switchover: epoch %d (was %d) primary %s in progress %q counts %v; want unchanged, db2, switchover_failed 1",
			rep.Epoch, repBefore.Epoch, rep.Primary, rep.InProgress, rep.Counts)
	}
	if pr, ok := p.Snapshot().PrimaryServer(); !ok || pr.Name != "db2" {
		t.Errorf("sluice's primary after the vetoed switchover: %v %v, want db2", pr, ok)
	}
	if ro := readOnly(db2); ro != "OFF" {
		t.Errorf("db2 read_only=%s after the vetoed switchover, want OFF", ro)
	}
	if ro := readOnly(db1); ro != "ON" {
		t.Errorf("db1 read_only=%s after the vetoed switchover, want ON (still a replica)", ro)
	}
	if st, err := db1.SlaveStatus(context.Background()); err != nil || st == nil || st["Master_Port"] != strconv.Itoa(db2.Port) || st["Slave_SQL_Running"] != "Yes" {
		t.Errorf("db1 after the vetoed switchover: slave status %v (%v), want a replica of db2", st, err)
	}
	vetoRuns, err := os.ReadFile(vetoLog)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(vetoRuns)), "pre switchover db2 db1 3"; got != want {
		t.Errorf("veto hook runs: %q, want only %q (no post after an aborted switchover)", got, want)
	}
	events, _ = sink.list()
	if len(events) != 3 || events[2].Phase != "pre" || events[2].Kind != "switchover" || events[2].NewPrimary != "db1" || events[2].Epoch != 3 {
		t.Errorf("webhook events after the vetoed switchover: %+v; want a third, pre switchover db2 -> db1 epoch 3, and no post", events)
	}
	t.Logf("vetoed switchover under 4 writers: %d commits, %d client errors; counts %v", w.count(), len(w.errs), rep.Counts)
	for i, err := range w.errs {
		if i < 10 {
			t.Errorf("client error during the vetoed switchover: %v", err)
		}
	}
}

// TestCandidateThatCannotCatchUpIsRefused: the only replica received the
// primary's last writes but cannot apply them (its SQL thread waits behind
// FLUSH TABLES WITH READ LOCK); when the primary dies the failover waits
// failover.max_catchup for it, then is refused with that reason, which
// writers get in their 9001. Once the replica can apply, an operator's
// failover promotes it with every write it received.
func TestCandidateThatCannotCatchUpIsRefused(t *testing.T) {
	const maxCatchup = time.Second
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	db1, db2 := topo.ByName("db1"), topo.ByName("db2")
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(""), mutate: func(c *config.Config) {
		c.Failover.MaxLag = 0 // any lag: only the catch-up decides
		c.Failover.MaxCatchup = config.Duration(maxCatchup)
	}})
	schema := foSchema(t, topo)
	d := openDB(t, p, "")
	w := startWriters(t, d, schema, 2)
	defer haltOnce(w)
	waitFor(t, 10*time.Second, "writes flow", func() bool { return w.count() > 20 })

	adb, err := db2.Admin()
	if err != nil {
		t.Fatal(err)
	}
	lock, err := adb.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlocked := false
	t.Cleanup(func() {
		if !unlocked {
			lock.ExecContext(context.Background(), "UNLOCK TABLES")
		}
		lock.Close()
	})
	mustExec(t, lock, "FLUSH TABLES WITH READ LOCK")
	base := w.count()
	waitFor(t, 10*time.Second, "writes db2 receives but cannot apply", func() bool {
		applied, _ := replicaApplied(t, db2)
		return w.count() > base+20 && !applied
	})
	killed := time.Now()
	if err := db1.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the refusal", func() bool { return p.Failover().Report().Counts["refused"] >= 1 })
	refusedSeen := time.Now()
	rep := p.Failover().Report()
	t.Logf("refused %s after the kill: %s", refusedSeen.Sub(killed).Round(time.Millisecond), rep.Alert)
	if !strings.Contains(rep.Alert, "failover.max_catchup 1s") || !strings.Contains(rep.Alert, "db2") {
		t.Fatalf("alert %q: want db2 refused for failover.max_catchup 1s", rep.Alert)
	}
	if rep.Primary != "db1" || rep.Epoch != 1 || rep.Counts["failover_ok"] != 0 {
		t.Fatalf("report after the refusal: %+v", rep)
	}
	// The failover waited max_catchup for the candidate, not less.
	if waited := refusedSeen.Sub(killed); waited < maxCatchup {
		t.Errorf("refused %s after the kill, before failover.max_catchup (%s) could pass", waited.Round(time.Millisecond), maxCatchup)
	}
	if len(rep.History) == 0 || rep.History[0].Kind != "refused" {
		t.Fatalf("newest record %+v, want the refusal", rep.History)
	}
	_, err = d.ExecContext(context.Background(), "INSERT INTO `"+schema+"`.t (id, v) VALUES (-1, 'refused')")
	if errCode(err) != 9001 || !strings.Contains(err.Error(), "max_catchup") {
		t.Fatalf("write after the refusal: %v, want 9001 naming failover.max_catchup", err)
	}

	unlocked = true
	mustExec(t, lock, "UNLOCK TABLES")
	waitFor(t, 30*time.Second, "db2 applied its relay log", func() bool { ok, _ := replicaApplied(t, db2); return ok })
	rec, err := p.Failover().Failover(context.Background(), "")
	if err != nil || rec.New != "db2" {
		t.Fatalf("operator failover: %+v %v", rec, err)
	}
	primaryIs(t, p, "db2", 10*time.Second)
	base = w.count()
	waitFor(t, 10*time.Second, "writes on db2", func() bool { return w.count() > base+20 })
	haltOnce(w)
	w.mu.Lock()
	errs := slices.Clone(w.errs)
	w.mu.Unlock()
	for _, err := range unexpectedPrimaryLossErrors(errs) {
		t.Errorf("client error outside the contract of a lost primary: %v", err)
	}
	// db2 received every write db1 acknowledged while it was locked; the
	// SIGKILL can lose only the last ones db1 never sent.
	t.Logf("%d acknowledged commits missing on db2; writers' errors: %s", len(w.missing(t, db2, schema)), fenceErrorKinds(w))
}
