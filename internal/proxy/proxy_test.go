package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// TestCloseStopsEverything runs a proxy with sessions in every state
// (idle, pinned in a transaction, mid-statement) and checks that Close
// leaves no goroutine behind: accept loop, monitor, reaper, sessions and
// the KILL QUERY helpers.
func TestCloseStopsEverything(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 1})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		// database/sql's connection opener lives until its DB is closed,
		// which the deferred Close calls below do.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))

	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
http_listen: ""
users: [{name: %s, password: %s}]
monitor: {user: %s, password: %s}
servers:
  - {name: db1, address: %s}
  - {name: db2, address: %s}
health: {interval: 100ms, timeout: 1s, rise: 1, fall: 2}
failover: {state_file: %s}
`, testbed.AppUser, testbed.AppPassword, testbed.MonitorUser, testbed.MonitorPassword, topo.Primary.Addr(), topo.Replicas[0].Addr(),
		filepath.Join(t.TempDir(), "state.json"))
	cfg, err := config.Parse([]byte(yaml), "test.yaml", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/test", testbed.AppUser, testbed.AppPassword, p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	// One session pinned in a transaction, one running a long statement,
	// some idle ones.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	running := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "SELECT SLEEP(30)")
		running <- err
	}()
	for i := 0; i < 5; i++ {
		var n int
		if err := db.QueryRow("SELECT 1").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); len(p.Sessions()) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions after 10 s, want 3", len(p.Sessions()))
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-running:
		if err == nil {
			t.Fatal("a statement running through a closed proxy succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a running statement did not end when the proxy closed")
	}
	tx.Rollback()
	db.Close()
}
