package e2e

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// TestSwitchoverEndsSessionStateClearly: sessions holding state on the old
// primary hear why it is gone (error 1927 naming the switchover, not a lost
// connection) and carry on; a session pinned only for a possible SHOW
// WARNINGS does not notice; an open transaction past drain_timeout is
// rolled back. The API answers 404 for an unknown target and 409 for a
// second switchover while one runs.
func TestSwitchoverEndsSessionStateClearly(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	// drain_timeout 3s; with transaction replay the open transaction would
	// go on on the new primary (see replay_test.go): this is the answer
	// without it.
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(", transaction_replay: false")})
	api := adminAPI(t, p)
	schema := foSchema(t, topo)
	primaryIs(t, p, "db1", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if code, body := apiCall(t, api, http.MethodPost, "/api/switchover?to=nosuch", nil); code != http.StatusNotFound {
		t.Errorf("switchover to an unknown server: %d %s, want 404", code, body)
	}
	// A browser's cross-site POST (a page the operator visits) is refused.
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/api/switchover?to=db2", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := api.Client().Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /api/switchover: %s, want 403", resp.Status)
	}
	if r := p.Failover().Report(); r.Epoch != 1 || r.Counts["switchover_failed"] != 0 {
		t.Errorf("after a rejected request: epoch %d, counts %v; want epoch 1 and nothing recorded", r.Epoch, r.Counts)
	}

	d := openDB(t, p, "")
	d.SetMaxOpenConns(8)
	conn := func(stmts ...string) *sql.Conn {
		t.Helper()
		c, err := d.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		for _, q := range stmts {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return c
	}
	tbl := "`" + schema + "`.t"
	tmp := conn("CREATE TEMPORARY TABLE `"+schema+"`.tt (i INT)", "INSERT INTO `"+schema+"`.tt VALUES (1)")
	warn := conn("INSERT INTO " + tbl + " VALUES (1, 'a')")
	if _, err := warn.ExecContext(ctx, "INSERT IGNORE INTO "+tbl+" VALUES (1, 'dup')"); err != nil {
		t.Fatal(err) // a duplicate ignored: one warning, the session stays on db1 for SHOW WARNINGS
	}
	txn := conn("BEGIN", "INSERT INTO "+tbl+" VALUES (100, 'txn')")
	waitFor(t, 5*time.Second, "three sessions pinned to db1", func() bool {
		n := 0
		for _, s := range p.Sessions() {
			if s.Pinned == "db1" {
				n++
			}
		}
		return n == 3
	})

	type answer struct {
		code int
		body string
		rec  failover.Record
	}
	first := make(chan answer, 1)
	go func() {
		var a answer
		a.code, a.body = apiCall(t, api, http.MethodPost, "/api/switchover?to=db2", &a.rec)
		first <- a
	}()
	// The open transaction keeps the drain going for drain_timeout.
	waitFor(t, 5*time.Second, "the switchover holds writes", func() bool { return p.Snapshot().Hold != nil })
	code, body := apiCall(t, api, http.MethodPost, "/api/switchover?to=db2", nil)
	if code != http.StatusConflict || !strings.Contains(body, "in progress") {
		t.Errorf("second switchover while one runs: %d %s, want 409 \"in progress\"", code, body)
	}
	a := <-first
	if a.code != http.StatusOK {
		t.Fatalf("switchover: %d %s", a.code, a.body)
	}
	t.Logf("switchover with a transaction open past drain_timeout: writes held %.0f ms; %s", a.rec.PauseMS, strings.Join(a.rec.Reasons, "; "))
	if a.rec.PauseMS < 2500 {
		t.Errorf("writes held %.0f ms: the drain should have waited for the open transaction (drain_timeout 3s)", a.rec.PauseMS)
	}
	primaryIs(t, p, "db2", 5*time.Second)

	cut := func(name string, c *sql.Conn, q string, want ...string) {
		t.Helper()
		_, err := c.ExecContext(ctx, q)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1927 {
			t.Errorf("%s: %s after the switchover: %v, want error %d", name, q, err, 1927)
			return
		}
		for _, w := range want {
			if !strings.Contains(me.Message, w) {
				t.Errorf("%s: error %q does not say %q", name, me.Message, w)
			}
		}
		t.Logf("%s: %d %s", name, me.Number, me.Message)
		var one int
		if err := c.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Errorf("%s: the session does not carry on after the error: %v", name, err)
		}
	}
	cut("open transaction", txn, "INSERT INTO "+tbl+" VALUES (101, 'txn')", "switchover", "rolled back")
	cut("temporary table", tmp, "SELECT * FROM `"+schema+"`.tt", "switchover", "temporary tables")
	if _, err := warn.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (2, 'b')"); err != nil {
		t.Errorf("a session pinned only for SHOW WARNINGS failed after the switchover: %v", err)
	}

	ids := tableIDs(t, topo.ByName("db2"), schema)
	if ids[100] || ids[101] {
		t.Errorf("the cut transaction's rows are on the new primary: %v", ids)
	}
	if !ids[1] || !ids[2] {
		t.Errorf("rows 1 and 2 missing on the new primary: %v", ids)
	}
}
