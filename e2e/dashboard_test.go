package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// chromiumPath is Debian's chromium, which scripts/setup.sh installs.
const chromiumPath = "/usr/bin/chromium"

// dashDocsEnv, when set, makes TestDashboardInHeadlessChromium also write
// the README's screenshot, docs/dashboard.png, after a longer workload.
const dashDocsEnv = "SLUICE_DASHBOARD_DOCS"

// dashBrowser starts a headless Chromium for the test and returns a tab's
// context; the browser stops when the test ends.
func dashBrowser(t *testing.T, width, height int) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed at %s (%v): run scripts/setup.sh, which installs Debian's chromium package", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("no-sandbox", true), // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// dashStart is obsStart on a topology of the test's own, with automatic
// failover configured, so that the test may change its primary.
func dashStart(t *testing.T, token string) *obsSluice {
	t.Helper()
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	s := obsStart(t, obsOpts{topo: topo, token: token, yaml: foYAML("")})
	waitFor(t, 10*time.Second, "epoch 1", func() bool { return s.p.Failover().Report().Epoch == 1 })
	return s
}

// dashServerRow is a row of the page's servers table.
type dashServerRow struct {
	Name, Role, State string
	Badges            []string
}

const dashServerRows = `[...document.querySelectorAll('#servers tbody tr')].map(tr => ({
	Name: tr.dataset.server, Role: tr.cells[2].textContent, State: tr.cells[3].textContent,
	Badges: [...tr.cells[0].querySelectorAll('.badge')].map(b => b.textContent)}))`

// checkServerRows checks the servers table against the topology: every
// server listed, up, the primary marked as the epoch's.
func checkServerRows(t *testing.T, ctx context.Context, topo *testbed.Topology, primary string, epoch int) {
	t.Helper()
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]dashServerRow](dashServerRows))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
		wantRole, wantBadges := "replica", []string(nil)
		if r.Name == primary {
			wantRole, wantBadges = "primary", []string{fmt.Sprintf("epoch %d", epoch)}
		}
		if r.Role != wantRole || r.State != "up" || !slices.Equal(r.Badges, wantBadges) {
			t.Errorf("server row %+v, want role %s state up badges %q", r, wantRole, wantBadges)
		}
	}
	var want []string
	for _, srv := range topo.Servers {
		want = append(want, srv.Name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("server table lists %v, want %v", names, want)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('h-primary').textContent + ' ' + document.getElementById('h-epoch').textContent`))
	if want := fmt.Sprintf("%s %d", primary, epoch); err != nil || got != want {
		t.Errorf("header shows primary and epoch %q (%v), want %q", got, err, want)
	}
}

// dashChange is a row of the page's topology changes table.
type dashChange struct {
	Kind, By, Servers, Epoch, Result, Pause, Reason, ReasonTitle string
}

const dashChanges = `[...document.querySelectorAll('#changes tbody tr')].map(tr => ({
	Kind: tr.cells[1].textContent, By: tr.cells[2].textContent, Servers: tr.cells[3].textContent,
	Epoch: tr.cells[4].textContent, Result: tr.cells[5].textContent, Pause: tr.cells[6].textContent,
	Reason: tr.cells[7].textContent, ReasonTitle: tr.cells[7].title}))`

// dashWorkload runs reads, writes, transactions and a few failing
// statements through sluice until ctx is done, from several sessions.
func dashWorkload(ctx context.Context, t *testing.T, s *obsSluice, schema string) (wait func() error) {
	t.Helper()
	// Writers and readers use separate pools, so that read-your-writes
	// does not send every read to the primary.
	wdb, rdb := openDB(t, s.p, schema), openDB(t, s.p, schema)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		if err == nil || ctx.Err() != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	writer := func() {
		defer wg.Done()
		db := wdb
		for i := 0; ctx.Err() == nil; i++ {
			switch {
			case i%50 == 0:
				// A transaction held open a moment: a pinned session.
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					fail(err)
					continue
				}
				_, err = tx.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 1")
				fail(err)
				var x sql.NullString
				fail(tx.QueryRowContext(ctx, "SELECT SLEEP(0.2)").Scan(&x))
				fail(tx.Commit())
			default:
				_, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", i)
				fail(err)
			}
		}
	}
	reader := func() {
		defer wg.Done()
		db := rdb
		for i := 0; ctx.Err() == nil; i++ {
			switch {
			case i%97 == 0:
				// An error for the error series: the table does not exist.
				db.ExecContext(ctx, "SELECT * FROM no_such_table")
			case i%13 == 0:
				var x sql.NullString
				fail(db.QueryRowContext(ctx, "SELECT SLEEP(0.02)").Scan(&x))
			default:
				var n int
				err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM t WHERE id > %d", i%50)).Scan(&n)
				fail(err)
			}
		}
	}
	wg.Add(4)
	go writer()
	for range 3 {
		go reader()
	}
	return func() error {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
}

func TestDashboardInHeadlessChromium(t *testing.T) {
	root := obsRepoRoot(t)
	docs := os.Getenv(dashDocsEnv) != ""
	// The dashboard sends ?token= as a bearer header on every request:
	// run with a token so that a page that forgot it shows nothing.
	const token = "dash-secret"
	s := dashStart(t, token)
	schema := newSchema(t, s.topo, "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)", "INSERT INTO t (v) VALUES (0)")

	load := 10 * time.Second
	if docs {
		load = 20 * time.Second
	}
	wctx, stopLoad := context.WithTimeout(context.Background(), load)
	defer stopLoad()
	wait := dashWorkload(wctx, t, s, schema)
	defer func() {
		stopLoad()
		if err := wait(); err != nil {
			t.Errorf("workload: %v", err)
		}
	}()

	width, height := 1280, 900
	ctx := dashBrowser(t, width, height)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.api.URL+"/?token="+token)); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// Every server listed, both charts drawing non-empty series, the top
	// digests and the workload's sessions shown, and the first epoch.
	const ready = `(() => {
		const c = window.sluiceCharts;
		if (!c || !c.qps || !c.latency) return false;
		const some = a => Array.isArray(a) && a.some(v => v > 0);
		return document.querySelectorAll('#servers tbody tr').length === 3 &&
			document.getElementById('fo-epoch').textContent === '1' &&
			c.qps.data[0].length > 0 && some(c.qps.data[1]) &&
			some(c.latency.data[1]) && some(c.latency.data[2]) &&
			document.querySelectorAll('#digests tbody tr').length > 0 &&
			document.querySelectorAll('#sessions tbody tr').length > 0;
	})()`
	start := time.Now()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](ready, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		dashDump(t, ctx)
		t.Fatalf("the dashboard never showed servers, charts, digests and sessions: %v", err)
	}
	t.Logf("dashboard ready after %s", time.Since(start).Round(time.Millisecond))

	checkServerRows(t, ctx, s.topo, "db1", 1)
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#changes tbody tr').length`)); err != nil || n != 0 {
		t.Errorf("topology changes lists %d rows (%v) before any change", n, err)
	}

	// A switchover under the workload: the page shows the new epoch, its
	// primary and the change with its pause.
	rec, err := s.p.Failover().Switchover(context.Background(), "db2")
	if err != nil {
		t.Fatalf("switchover to db2: %v (%+v)", err, rec)
	}
	const switched = `document.getElementById('fo-epoch').textContent === '2' &&
		document.getElementById('h-primary').textContent === 'db2' &&
		document.querySelectorAll('#changes tbody tr').length === 1`
	sctx, cancelSwitched := context.WithTimeout(ctx, 10*time.Second)
	defer cancelSwitched()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](switched, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		dashDump(t, ctx)
		t.Fatalf("the dashboard never showed epoch 2 with db2 primary after the switchover: %v", err)
	}
	checkServerRows(t, ctx, s.topo, "db2", 2)
	changes, err := chromedp.Run(ctx, chromedp.Evaluate[[]dashChange](dashChanges))
	if err != nil {
		t.Fatal(err)
	}
	c := changes[0]
	pause, err := strconv.ParseFloat(strings.ReplaceAll(c.Pause, ",", ""), 64)
	if c.Kind != "switchover" || c.By != "operator" || c.Servers != "db1 → db2" || c.Epoch != "2" || c.Result != "ok" ||
		err != nil || math.Abs(pause-rec.PauseMS) > 0.051 || len(rec.Reasons) > 0 && c.ReasonTitle != strings.Join(rec.Reasons, "\n") {
		t.Errorf("topology changes row %+v, want the switchover %+v", c, rec)
	}
	facts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`['fo-primary', 'fo-auto', 'fo-fenced', 'fo-counts'].map(id => document.getElementById(id).textContent)`))
	if want := []string{"db2", "on", "none", "switchover ok 1"}; err != nil || !slices.Equal(facts, want) {
		t.Errorf("topology facts %q (%v), want %q", facts, err, want)
	}

	// Let the charts fill a little before the screenshot: a few seconds
	// of series for the artifact, most of the workload for the README's.
	points := 5
	if docs {
		points = 15
	}
	fill := fmt.Sprintf(`window.sluiceCharts.qps.data[1].filter(v => v > 0).length >= %d`, points)
	fctx, cancelFill := context.WithTimeout(ctx, load+5*time.Second)
	defer cancelFill()
	if _, err := chromedp.Run(fctx, chromedp.Poll[bool](fill, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		t.Fatalf("the QPS chart never had %d non-zero seconds: %v", points, err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() < height/2 {
		t.Errorf("screenshot is %dx%d", b.Dx(), b.Dy())
	}
	artifact := filepath.Join(root, "artifacts", "dashboard.png")
	if err := os.MkdirAll(filepath.Dir(artifact), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(artifact, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%dx%d, %d bytes) saved to %s", img.Bounds().Dx(), img.Bounds().Dy(), len(shot), artifact)
	if docs {
		doc := filepath.Join(root, "docs", "dashboard.png")
		if err := os.WriteFile(doc, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("README screenshot saved to %s", doc)
	}

	// The API goes away: the page keeps its last data and says it is
	// stale.
	stopLoad()
	if err := wait(); err != nil {
		t.Errorf("workload: %v", err)
	}
	s.api.Close()
	const stale = `!document.getElementById('stale').hidden &&
		document.querySelectorAll('#servers tbody tr').length === 3 &&
		window.sluiceCharts.qps.data[1].some(v => v > 0)`
	sctx, cancelStale := context.WithTimeout(ctx, 10*time.Second)
	defer cancelStale()
	if _, err := chromedp.Run(sctx, chromedp.Poll[bool](stale, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		dashDump(t, ctx)
		t.Fatalf("with the API gone the page does not show stale data: %v", err)
	}
	dashAlertAndFenced(t, ctx)
}

// dashAlertAndFenced draws a refused failover and a fenced server, which
// the test's topology does not go through, from the API's own types: the
// page shows the alert and in-progress banners and the fenced state, and
// text from the API is never parsed as HTML. The API must be gone, or
// the next refresh would redraw the page.
func dashAlertAndFenced(t *testing.T, ctx context.Context) {
	t.Helper()
	const evil = `<img src=x onerror="window.injected=true">`
	rep := failover.Report{Epoch: 3, Primary: "db1", Auto: true, Alert: "failover refused: db2 lags " + evil,
		Fenced: []string{"db3"}, InProgress: "switchover db1 -> db2", Counts: map[string]uint64{"refused": 1},
		History: []failover.Record{{Time: time.Now(), Kind: "refused", Trigger: "automatic", Old: "db1", Epoch: 3,
			Reasons: []string{"db2 lags " + evil, "second reason"}}}}
	lag := 30.0
	servers := []httpapi.ServerView{
		{Name: "db1", Role: "primary", State: "down", Epoch: 3, EpochPrimary: true, Alert: rep.Alert},
		{Name: "db2", Role: "replica", State: "lagging", Up: true, Epoch: 3, LagSeconds: &lag},
		{Name: "db3", Role: "replica", State: "fenced", Up: true, Epoch: 3, Fenced: true},
	}
	rj, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	sj, err := json.Marshal(servers)
	if err != nil {
		t.Fatal(err)
	}
	type shown struct {
		Alert, AlertColor, InProgress, Fenced, Change, Reason string
		Rows                                                  []dashServerRow
		FencedClass                                           string
		Injected                                              bool
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[shown](fmt.Sprintf(`(() => {
		window.sluiceDraw.failover(%s);
		window.sluiceDraw.servers(%s);
		const $ = id => document.getElementById(id), vis = el => !el.hidden && el.offsetHeight > 0;
		const ch = document.querySelector('#changes tbody tr');
		return {
			Alert: vis($('alert')) ? $('alert').textContent : '', AlertColor: getComputedStyle($('alert')).backgroundColor,
			InProgress: vis($('in-progress')) ? $('in-progress').textContent : '', Fenced: $('fo-fenced').textContent,
			Change: [...ch.cells].slice(1, 6).map(td => td.textContent).join('|'), Reason: ch.cells[7].textContent,
			Rows: %s, FencedClass: document.querySelector('#servers tr[data-server="db3"]').className,
			Injected: !!window.injected || document.querySelector('img') !== null,
		};
	})()`, rj, sj, dashServerRows)))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Failover alert: " + rep.Alert; got.Alert != want || got.AlertColor != "rgb(198, 40, 40)" {
		t.Errorf("alert banner %q in %s, want %q in red", got.Alert, got.AlertColor, want)
	}
	if !strings.Contains(got.InProgress, rep.InProgress) {
		t.Errorf("in-progress banner %q, want it to name %q", got.InProgress, rep.InProgress)
	}
	if got.Fenced != "db3" || got.Change != "refused|automatic|db1 → –|3|refused" || got.Reason != "db2 lags "+evil {
		t.Errorf("topology changes show fenced %q, change %q, reason %q", got.Fenced, got.Change, got.Reason)
	}
	want := []dashServerRow{
		{Name: "db1", Role: "primary", State: "down", Badges: []string{"epoch 3"}},
		{Name: "db2", Role: "replica", State: "lagging"},
		{Name: "db3", Role: "replica", State: "fenced", Badges: []string{"fenced"}},
	}
	if !slices.EqualFunc(got.Rows, want, func(a, b dashServerRow) bool {
		return a.Name == b.Name && a.Role == b.Role && a.State == b.State && slices.Equal(a.Badges, b.Badges)
	}) || got.FencedClass != "st-fenced" {
		t.Errorf("server rows %+v (db3 class %q), want %+v", got.Rows, got.FencedClass, want)
	}
	if got.Injected {
		t.Errorf("text from the API was parsed as HTML")
	}
}

// dashDump logs what the page shows, for a failing test.
func dashDump(t *testing.T, ctx context.Context) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	state, err := chromedp.Run(dctx, chromedp.Evaluate[string](`JSON.stringify({
		refreshes: document.body.dataset.refreshes, stale: document.getElementById('stale').textContent,
		staleWhy: document.getElementById('stale').title,
		servers: document.querySelectorAll('#servers tbody tr').length,
		epoch: document.getElementById('fo-epoch').textContent, alert: document.getElementById('alert').textContent,
		changes: [...document.querySelectorAll('#changes tbody tr')].map(tr => tr.textContent),
		digests: document.querySelectorAll('#digests tbody tr').length,
		sessions: document.querySelectorAll('#sessions tbody tr').length,
		charts: !!window.sluiceCharts && Object.fromEntries(Object.entries(window.sluiceCharts).map(([k, u]) => [k, u.data.map(s => s.filter(v => v > 0).length)])),
	})`))
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("page state: %v", err)
		return
	}
	t.Logf("page state: %s", state)
}
