package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	s := obsStart(t, obsOpts{token: token})
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
	// digests and the workload's sessions shown.
	const ready = `(() => {
		const c = window.sluiceCharts;
		if (!c || !c.qps || !c.latency) return false;
		const some = a => Array.isArray(a) && a.some(v => v > 0);
		return document.querySelectorAll('#servers tbody tr').length === 3 &&
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

	type serverRow struct {
		Name, Role, State string
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]serverRow](`[...document.querySelectorAll('#servers tbody tr')].map(tr => ({
		Name: tr.cells[0].textContent, Role: tr.cells[2].textContent, State: tr.cells[3].textContent}))`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
		wantRole := "replica"
		if r.Name == s.topo.Primary.Name {
			wantRole = "primary"
		}
		if r.Role != wantRole || r.State != "up" {
			t.Errorf("server row %+v, want role %s state up", r, wantRole)
		}
	}
	var want []string
	for _, srv := range s.topo.Servers {
		want = append(want, srv.Name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("server table lists %v, want %v", names, want)
	}
	primary, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('h-primary').textContent`))
	if err != nil || primary != s.topo.Primary.Name {
		t.Errorf("header names primary %q (%v), want %s", primary, err, s.topo.Primary.Name)
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
