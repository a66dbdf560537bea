package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-proxy/sluice/internal/move"
)

// TestDashboardShowsMoves draws a move copying and a done one: the moves
// panel appears with a progress bar of rows copied over the total, the
// catch-up lag and the cutover's hold; with no moves it stays hidden.
func TestDashboardShowsMoves(t *testing.T) {
	s := obsStart(t, obsOpts{})
	ctx := dashBrowser(t, 1280, 900)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.api.URL+"/")); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`Number(document.body.dataset.refreshes) >= 1`,
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("the dashboard never refreshed: %v", err)
	}
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('moves-panel').hidden`))
	if err != nil || !hidden {
		t.Errorf("with no moves the moves panel is shown (hidden=%v, %v)", hidden, err)
	}
	list := []move.View{
		{ID: "m1", Objects: []string{"shop"}, Source: "c2", Target: "c1", Phase: move.PhaseDone, RowsCopied: 4000, RowsTotal: 4000, RowsPerSec: 20000, HoldMS: 74.2, Started: time.Now()},
		{ID: "m2", Objects: []string{"buckets.bucket_0000", "buckets.bucket_0001", "buckets.bucket_0002", "buckets.bucket_0003"}, Source: "c1", Target: "c3",
			Phase: move.PhaseCopying, RowsCopied: 250, RowsTotal: 1000, RowsPerSec: 5000, Started: time.Now()},
	}
	lj, _ := json.Marshal(list)
	type shown struct {
		Hidden   bool
		Rows     int
		Value    float64
		Max      float64
		Progress string
		Phase    string
		Hold     string
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[shown](fmt.Sprintf(`(() => {
		window.sluiceDraw.moves(%s);
		const rows = document.querySelectorAll('#moves tbody tr');
		const bar = rows[0].querySelector('progress');
		return {Hidden: document.getElementById('moves-panel').hidden, Rows: rows.length,
			Value: bar.value, Max: bar.max, Progress: rows[0].cells[4].textContent,
			Phase: rows[0].cells[3].textContent, Hold: rows[1].cells[7].textContent};
	})()`, lj)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Hidden || got.Rows != 2 {
		t.Fatalf("moves panel hidden=%v with %d rows, want shown with 2", got.Hidden, got.Rows)
	}
	// Newest first: m2, copying, a quarter done.
	if got.Phase != "copying" || got.Value != 250 || got.Max != 1000 || got.Progress != "250 / 1,000" {
		t.Errorf("the copying move shows phase %q, progress %v/%v %q; want copying, 250/1000", got.Phase, got.Value, got.Max, got.Progress)
	}
	if got.Hold != "74.2" {
		t.Errorf("the done move's hold shows %q, want 74.2", got.Hold)
	}
}
