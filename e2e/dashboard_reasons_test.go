package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/httpapi"
)

// TestDashboardShowsWhyAndWraps draws a refused failover whose first
// reason is only a note and a server whose last check failed with a very
// long error: the reason column shows the check that refused it, and the
// error wraps inside the window instead of widening the page.
func TestDashboardShowsWhyAndWraps(t *testing.T) {
	s := obsStart(t, obsOpts{})
	const width, height = 1024, 768
	ctx := dashBrowser(t, width, height)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.api.URL+"/")); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`document.querySelectorAll('#servers tbody tr').length === 3`,
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("the dashboard does not draw the servers: %v", err)
	}
	// Without the API the page keeps what it is given last.
	s.api.Close()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](`!document.getElementById('stale').hidden`,
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("the page does not notice the API is gone: %v", err)
	}

	decisive := "db2 lagged 12s when db1 was lost, over failover.max_lag 10s"
	rep := failover.Report{Epoch: 2, Primary: "db1", Auto: true, Counts: map[string]uint64{"refused": 1},
		History: []failover.Record{{Time: time.Now(), Kind: "refused", Trigger: "automatic", Old: "db1", Epoch: 2,
			Reasons: []string{"candidate db2: received the most", "db3 passed over: not replicating", "refused: " + decisive}}}}
	longErr := "check 10.0.0.2:3306: dial tcp: lookup " + strings.Repeat("very-long-host-name-", 40) + ": no such host"
	servers := []httpapi.ServerView{
		{Name: "db1", Role: "primary", State: "up", Up: true, Epoch: 2, EpochPrimary: true},
		{Name: "db2", Role: "replica", State: "down", Epoch: 2, LastError: longErr},
		{Name: "db3", Role: "replica", State: "up", Up: true, Epoch: 2, LastError: strings.Repeat("x", 2000)},
	}
	rj, _ := json.Marshal(rep)
	sj, _ := json.Marshal(servers)
	type shown struct {
		Reason      string
		ScrollWidth int
		Width       int
		CheckHeight int
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[shown](fmt.Sprintf(`(() => {
		window.sluiceDraw.failover(%s);
		window.sluiceDraw.servers(%s);
		const ch = document.querySelector('#changes tbody tr');
		const check = [...document.querySelector('#servers tr[data-server="db3"]').cells].find(td => td.textContent.startsWith('xxx'));
		return {Reason: ch.cells[7].textContent, ScrollWidth: document.documentElement.scrollWidth,
			Width: window.innerWidth, CheckHeight: check ? check.offsetHeight : 0};
	})()`, rj, sj)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != decisive {
		t.Errorf("the reason column shows %q, want the decisive %q", got.Reason, decisive)
	}
	if got.ScrollWidth > got.Width {
		t.Errorf("the page is %d px wide in a %d px window: a long check error widens it", got.ScrollWidth, got.Width)
	}
	if got.CheckHeight < 40 {
		t.Errorf("the 2000-character check error is %d px high: it does not wrap", got.CheckHeight)
	}
}
