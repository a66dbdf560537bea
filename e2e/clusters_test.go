package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/httpapi"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// threeClusters starts three clusters of a primary and a replica each.
func threeClusters(t *testing.T) []*testbed.Topology {
	t.Helper()
	var out []*testbed.Topology
	for range 3 {
		out = append(out, testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs}))
	}
	return out
}

// clusterName and serverName: testbed names every topology's servers
// db1, db2…; sluice's server names are unique across clusters.
func clusterName(i int) string                   { return fmt.Sprintf("c%d", i+1) }
func serverName(i int, s *testbed.Server) string { return clusterName(i) + "-" + s.Name }

// startClusters runs sluice in front of the clusters with the placement
// given as YAML, on the state file given.
func startClusters(t *testing.T, topos []*testbed.Topology, placementYAML, stateFile string) *proxy.Proxy {
	t.Helper()
	return clusterSluice(t, topos, stateFile, placementYAML, "", "")
}

// clusterSluice starts sluice in front of the clusters: the placement and
// any further top-level YAML (extra) and failover keys (", key: value"…)
// are given. It returns once every cluster has its primary and readable
// replicas.
func clusterSluice(t *testing.T, topos []*testbed.Topology, stateFile, placementYAML, extra, failoverKeys string) *proxy.Proxy {
	t.Helper()
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nhttp_listen: \"\"\n")
	fmt.Fprintf(&b, "users:\n  - {name: %s, password: %s}\n", testbed.AppUser, testbed.AppPassword)
	fmt.Fprintf(&b, "monitor: {user: %s, password: %s}\n", testbed.MonitorUser, testbed.MonitorPassword)
	b.WriteString(extra)
	fmt.Fprintf(&b, "failover: {state_file: %s, replication: {user: %s, password: %s}%s}\n", stateFile, testbed.ReplUser, testbed.ReplPassword, failoverKeys)
	b.WriteString("health: {interval: 200ms, timeout: 1s, rise: 1, fall: 2}\nclusters:\n")
	for i, topo := range topos {
		fmt.Fprintf(&b, "  - name: %s\n    servers:\n", clusterName(i))
		for _, s := range topo.Servers {
			fmt.Fprintf(&b, "      - {name: %s, address: %s}\n", serverName(i, s), s.Addr())
		}
	}
	b.WriteString(placementYAML)
	cfg, err := config.Parse([]byte(b.String()), t.Name()+".yaml", os.Getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := proxy.New(cfg, proxy.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	waitFor(t, 15*time.Second, "sluice sees every cluster's primary and readable replica", func() bool {
		for _, name := range p.ClusterNames() {
			snap := p.ClusterMonitor(name).Snapshot()
			if snap.Primary < 0 {
				return false
			}
			for i, s := range snap.Servers {
				if !s.Up || i != snap.Primary && !s.Readable {
					return false
				}
			}
		}
		return true
	})
	return p
}

const bucketsPlacement = `placement:
  default_cluster: c1
  databases:
    - {name: shop, cluster: c2}
    - {name: blog, cluster: c3}
  tables:
    - {database: buckets, tables: "bucket_{0000..0003}", cluster: c1}
    - {database: buckets, tables: "bucket_{0004..0007}", cluster: c2}
    - {database: buckets, tables: "bucket_{0008..0011}", cluster: c3}
`

// owner is the cluster index of bucket n under bucketsPlacement.
func owner(n int) int { return n / 4 }

func bucket(n int) string { return fmt.Sprintf("bucket_%04d", n) }

// seedClusters creates on each cluster only what it owns (and the
// buckets database everywhere, as a sharded application would).
func seedClusters(t *testing.T, topos []*testbed.Topology) {
	t.Helper()
	ctx := context.Background()
	for i, topo := range topos {
		q := []string{"DROP DATABASE IF EXISTS buckets", "CREATE DATABASE buckets"}
		for n := 0; n < 12; n++ {
			if owner(n) == i {
				q = append(q, "CREATE TABLE buckets."+bucket(n)+" (id BIGINT PRIMARY KEY, doc JSON, updated TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))")
			}
		}
		switch i {
		case 1:
			q = append(q, "DROP DATABASE IF EXISTS shop", "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT)")
		case 2:
			q = append(q, "DROP DATABASE IF EXISTS blog", "CREATE DATABASE blog", "CREATE TABLE blog.posts (id INT PRIMARY KEY, title VARCHAR(100))")
		}
		for _, s := range q {
			if err := topo.Primary.Exec(ctx, s); err != nil {
				t.Fatalf("%s on cluster %d: %v", s, i+1, err)
			}
		}
		syncReplicas(t, topo)
	}
}

func rowsOn(t *testing.T, topo *testbed.Topology, table string) int64 {
	t.Helper()
	return rowsOnServer(t, topo.Primary, table)
}

// rowsOnServer is rowsOn of one server (a promoted replica, say).
func rowsOnServer(t *testing.T, s *testbed.Server, table string) int64 {
	t.Helper()
	db, err := s.Admin()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func isCrossCluster(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 9005
}

// TestClustersRouteByPlacement: databases and bucket tables placed on three
// clusters look like one server to go-sql-driver (text and binary
// protocol); reads go to the owning cluster's replica; statements and
// transactions spanning clusters get 9005 and change nothing; a restarted
// sluice routes by the placement and epochs in its state file.
func TestClustersRouteByPlacement(t *testing.T) {
	topos := threeClusters(t)
	seedClusters(t, topos)
	state := filepath.Join(t.TempDir(), "state.json")
	p := startClusters(t, topos, bucketsPlacement, state)
	ctx := context.Background()

	for _, params := range [][]string{nil, {"interpolateParams=false"}} {
		binary := params != nil
		db := openDB(t, p, "buckets", params...)
		for n := 0; n < 12; n++ {
			var err error
			if binary {
				_, err = db.ExecContext(ctx, "INSERT INTO "+bucket(n)+" (id, doc) VALUES (?, ?) ON DUPLICATE KEY UPDATE doc = VALUES(doc)", n, `{"n": 1}`)
			} else {
				_, err = db.ExecContext(ctx, fmt.Sprintf("INSERT INTO buckets.%s (id, doc) VALUES (%d, '{}') ON DUPLICATE KEY UPDATE doc = '{}'", bucket(n), n))
			}
			if err != nil {
				t.Fatalf("insert into %s (binary %v): %v", bucket(n), binary, err)
			}
		}
		// Explicit transactions land whole on the owning cluster.
		for n := 0; n < 12; n += 5 {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+bucket(n)+" SET doc = ? WHERE id = ?", `{"tx": 1}`, n); err != nil {
				t.Fatalf("update %s in a transaction: %v", bucket(n), err)
			}
			var doc string
			if err := tx.QueryRowContext(ctx, "SELECT doc FROM "+bucket(n)+" WHERE id = ?", n).Scan(&doc); err != nil || !strings.Contains(doc, "tx") {
				t.Fatalf("read back in the transaction: %q, %v", doc, err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		shop := openDB(t, p, "shop", params...)
		mustExec(t, shop, "REPLACE INTO orders VALUES (?, ?)", 1, 10)
		mustExec(t, shop, "REPLACE INTO blog.posts VALUES (?, ?)", 1, "hello")
	}
	for n := 0; n < 12; n++ {
		if got := rowsOn(t, topos[owner(n)], "buckets."+bucket(n)); got != 1 {
			t.Errorf("%s has %d rows on its cluster c%d; want 1", bucket(n), got, owner(n)+1)
		}
	}
	if rowsOn(t, topos[1], "shop.orders") != 1 || rowsOn(t, topos[2], "blog.posts") != 1 {
		t.Error("shop.orders or blog.posts did not land on its cluster")
	}

	// Reads go to the owning cluster's replica: the replicas' own counters.
	for i := range topos {
		syncReplicas(t, topos[i])
	}
	before := make([]map[string]map[string]int64, 3)
	for i, topo := range topos {
		before[i] = userCommands(t, topo)
	}
	db := openDB(t, p, "buckets")
	const reads = 20
	for k := 0; k < reads; k++ {
		for n := 0; n < 12; n += 4 {
			var id int
			if err := db.QueryRowContext(ctx, "SELECT id FROM "+bucket(n)+" WHERE id = ?", n).Scan(&id); err != nil {
				t.Fatalf("read %s: %v", bucket(n), err)
			}
		}
	}
	for i, topo := range topos {
		d := delta(userCommands(t, topo), before[i])
		rep := topo.Replicas[0].Name
		if d[rep]["select"] < reads || d[topo.Primary.Name]["select"] > 2 {
			t.Errorf("cluster c%d: selects on replica %d, on primary %d; want >= %d on the replica", i+1, d[rep]["select"], d[topo.Primary.Name]["select"], reads)
		}
	}

	// A join across clusters, and a transaction touching two, get 9005
	// and change nothing.
	c := conn(t, db)
	if _, err := c.ExecContext(ctx, "UPDATE bucket_0000 a JOIN bucket_0004 b ON a.id = b.id SET a.doc = b.doc"); !isCrossCluster(err) {
		t.Fatalf("cross-cluster join: %v; want error 9005", err)
	}
	var dummy int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM bucket_0001, shop.orders").Scan(&dummy); !isCrossCluster(err) {
		t.Fatalf("cross-cluster select: %v; want error 9005", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO bucket_0002 (id, doc) VALUES (100, '{}')"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO bucket_0009 (id, doc) VALUES (100, '{}')"); !isCrossCluster(err) {
		t.Fatalf("second cluster in a transaction: %v; want error 9005", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if rowsOn(t, topos[0], "buckets.bucket_0002") != 1 || rowsOn(t, topos[2], "buckets.bucket_0009") != 1 {
		t.Error("the refused transaction changed data")
	}

	// The admin API shows the clusters, the placement and each server's
	// cluster.
	api := httpapi.Handler(p, nil)
	get := func(path string, v any) {
		t.Helper()
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var cl struct {
		Clusters  []httpapi.ClusterView `json:"clusters"`
		Placement struct {
			Version uint64 `json:"version"`
		} `json:"placement"`
	}
	get("/api/clusters", &cl)
	if len(cl.Clusters) != 3 || cl.Clusters[1].Name != "c2" || strings.Join(cl.Clusters[1].Databases, ",") != "shop" ||
		!cl.Clusters[0].IsDefault || cl.Placement.Version != 1 || cl.Clusters[2].Primary != serverName(2, topos[2].Primary) {
		t.Errorf("/api/clusters = %+v", cl)
	}
	var servers []httpapi.ServerView
	get("/api/servers", &servers)
	if len(servers) != 6 || servers[0].Cluster != "c1" || servers[5].Cluster != "c3" {
		t.Errorf("/api/servers clusters: %+v", servers)
	}

	// The mariadb CLI (the C client) moves between clusters within one
	// session: USE, then statements on three clusters, and the 9005 text.
	out := mariadbOK(t, sluiceAddr(p), "-N", "-e",
		"USE shop; SELECT total FROM orders WHERE id = 1; SELECT COUNT(*) FROM buckets.bucket_0009; USE blog; SELECT title FROM posts WHERE id = 1; SELECT id FROM buckets.bucket_0001")
	if got := strings.Fields(out); strings.Join(got, ",") != "10,1,hello,1" {
		t.Errorf("mariadb CLI across clusters printed %q; want 10, 1, hello, 1", out)
	}
	if _, errOut, err := mariadbRun(t, sluiceAddr(p), testbed.AppPassword, "-e", "SELECT * FROM buckets.bucket_0001, shop.orders"); err == nil || !strings.Contains(errOut, "ERROR 9005") {
		t.Errorf("mariadb CLI cross-cluster join: %v, %q; want ERROR 9005", err, errOut)
	}

	// SHOW DATABASES and SHOW TABLES of a split database list what every
	// cluster owns, once, in name order (MariaDB's own order);
	// information_schema answers for the statement's cluster.
	if err := topos[1].Primary.Exec(ctx, "CREATE DATABASE IF NOT EXISTS stray"); err != nil {
		t.Fatal(err) // on c2, which does not own it: no statement reaches it
	}
	wantDBs := "blog,buckets,information_schema,mysql,performance_schema,shop,sys,test"
	checkListings(t, db, wantDBs, "buckets")
	if got := queryString(t, db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'buckets'"); got != "4" {
		t.Errorf("information_schema of the session's cluster lists %s bucket tables; want 4 (c1's)", got)
	}
	out = mariadbOK(t, sluiceAddr(p), "-N", "-e", "SHOW DATABASES; SHOW TABLES FROM buckets LIKE 'bucket\\_001%'")
	if got := strings.Join(strings.Fields(out), ","); got != wantDBs+",bucket_0010,bucket_0011" {
		t.Errorf("mariadb CLI listings printed %q", got)
	}

	// Place moves a table's statements; a restarted sluice routes by the
	// stored placement.
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	release, err := p.Hold(ctx2, []placement.Object{{DB: "blog"}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := topos[0].Primary.Exec(ctx, "CREATE DATABASE IF NOT EXISTS blog"); err != nil {
		t.Fatal(err)
	}
	if err := topos[0].Primary.Exec(ctx, "CREATE TABLE blog.posts (id INT PRIMARY KEY, title VARCHAR(100))"); err != nil {
		t.Fatal(err)
	}
	if err := p.Place([]placement.Object{{DB: "blog"}}, "c1"); err != nil {
		t.Fatal(err)
	}
	release()
	mustExec(t, db, "INSERT INTO blog.posts VALUES (2, 'moved')")
	if rowsOn(t, topos[0], "blog.posts") != 1 || rowsOn(t, topos[2], "blog.posts") != 1 {
		t.Fatal("after Place, blog's statements did not go to c1")
	}
	p.Close()
	p2 := startClusters(t, topos, bucketsPlacement, state)
	db2 := openDB(t, p2, "buckets")
	mustExec(t, db2, "INSERT INTO blog.posts VALUES (3, 'after restart')")
	mustExec(t, db2, "INSERT INTO bucket_0010 (id, doc) VALUES (3, '{}')")
	if rowsOn(t, topos[0], "blog.posts") != 2 || rowsOn(t, topos[2], "buckets.bucket_0010") != 2 {
		t.Error("a restarted sluice did not route by the stored placement")
	}
	// blog now lives on c1 and its copy on c3 is not reachable: listed once.
	checkListings(t, db2, wantDBs, "buckets")

	// A frozen replica does not hang a listing: once the monitor finds it
	// down, the listing running there is interrupted and asked of its
	// cluster's primary.
	rep := topos[1].Replicas[0]
	if err := rep.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Resume() })
	start := time.Now()
	checkListings(t, db2, wantDBs, "buckets")
	t.Logf("listings with c2's replica frozen took %v", time.Since(start).Round(time.Millisecond))
	if err := rep.Resume(); err != nil {
		t.Fatal(err)
	}
	for _, name := range p2.ClusterNames() {
		if r := p2.ClusterFailover(name).Report(); r.Epoch != 1 {
			t.Errorf("cluster %s epoch after restart %d; want 1", name, r.Epoch)
		}
	}
	var conflict *sql.DB = db2
	_ = conflict
}

// checkListings asserts what SHOW DATABASES and SHOW [FULL] TABLES of the
// split database buckets list through sluice, on one connection in and
// out of a transaction on another cluster.
func checkListings(t *testing.T, db *sql.DB, wantDBs, schema string) {
	t.Helper()
	ctx := context.Background()
	c := conn(t, db)
	list := func(q string) string {
		t.Helper()
		rows, err := c.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var names []string
		for rows.Next() {
			vals := make([]any, len(cols))
			var name string
			vals[0] = &name
			for i := 1; i < len(cols); i++ {
				vals[i] = new(sql.RawBytes)
			}
			if err := rows.Scan(vals...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			names = append(names, name)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return strings.Join(names, ",")
	}
	var all []string
	for n := 0; n < 12; n++ {
		all = append(all, bucket(n))
	}
	for _, inTxn := range []bool{false, true} {
		if inTxn {
			mustExec(t, c, "BEGIN")
			mustExec(t, c, "UPDATE shop.orders SET total = total WHERE id = 1") // the transaction is on c2
		}
		if got := list("SHOW DATABASES"); got != wantDBs {
			t.Errorf("SHOW DATABASES (in a transaction %v) = %s; want %s", inTxn, got, wantDBs)
		}
		if got := list("SHOW SCHEMAS LIKE 'b%'"); got != "blog,buckets" {
			t.Errorf("SHOW SCHEMAS LIKE 'b%%' = %s", got)
		}
		if got := list("SHOW TABLES FROM " + schema); got != strings.Join(all, ",") {
			t.Errorf("SHOW TABLES FROM %s (in a transaction %v) = %s; want all 12 buckets", schema, inTxn, got)
		}
		if got := list("SHOW FULL TABLES FROM " + schema + " WHERE Tables_in_" + schema + " LIKE 'bucket\\_000%'"); got != strings.Join(all[:10], ",") {
			t.Errorf("SHOW FULL TABLES … WHERE = %s; want buckets 0000-0009", got)
		}
		if inTxn {
			mustExec(t, c, "COMMIT")
		}
	}
	if got := list("SHOW TABLES FROM shop"); got != "orders" {
		t.Errorf("SHOW TABLES FROM shop (one cluster) = %s", got)
	}
}

// TestClustersSysbenchAndSwitchoverOfOne: sysbench on a database placed on
// the second of two clusters works as on one server and only that cluster
// sees its statements; a switchover of the first cluster leaves the
// second untouched (its epoch, its primary, a writer on it without an
// error).
func TestClustersSysbenchAndSwitchoverOfOne(t *testing.T) {
	topos := []*testbed.Topology{
		testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs}),
		testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs}),
	}
	ctx := context.Background()
	for i, topo := range topos {
		if err := topo.Primary.Exec(ctx, "CREATE DATABASE sbtest"); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := topo.Primary.Exec(ctx, "CREATE DATABASE app"); err != nil {
				t.Fatal(err)
			}
			if err := topo.Primary.Exec(ctx, "CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"); err != nil {
				t.Fatal(err)
			}
		}
		syncReplicas(t, topo)
	}
	p := startClusters(t, topos, "placement:\n  default_cluster: c1\n  databases:\n    - {name: sbtest, cluster: c2}\n", filepath.Join(t.TempDir(), "state.json"))
	before := []map[string]map[string]int64{userCommands(t, topos[0]), userCommands(t, topos[1])}
	small := []string{"--tables=2", "--threads=4"} // 10,000 rows a table
	sysbench(t, p.Addr().String(), "oltp_read_write", "prepare", small...)
	// Even 4 threads on 2 tables meet a genuine InnoDB deadlock now and
	// then (the server's 1213, as a direct connection gets it): those are
	// counted, not fatal; any other error still is.
	out := sysbench(t, p.Addr().String(), "oltp_read_write", "run", append(small, "--time=10", "--mysql-ignore-errors=1213")...)
	r, err := parseSysbench(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.IgnoredErrors > r.Transactions/100 || r.Reconnects != 0 || r.Transactions == 0 {
		t.Fatalf("sysbench through two clusters: %d transactions, %d deadlocks, %d reconnects; want work, deadlocks under 1%% and no reconnect\n%s", r.Transactions, r.IgnoredErrors, r.Reconnects, out)
	}
	t.Logf("sysbench oltp_read_write on cluster c2 through sluice: %d transactions (%.1f/s), %d queries, p95 %.2f ms", r.Transactions, r.TPS, r.Total, r.P95)
	d1 := delta(userCommands(t, topos[0]), before[0])
	d2 := delta(userCommands(t, topos[1]), before[1])
	var onC1, onC2 int64
	for _, s := range topos[0].Servers {
		onC1 += d1[s.Name]["select"] + d1[s.Name]["update"]
	}
	for _, s := range topos[1].Servers {
		onC2 += d2[s.Name]["select"] + d2[s.Name]["update"]
	}
	if onC2 < r.Read || onC1 > 10 {
		t.Errorf("sysbench's statements: %d on c2 (want >= %d reads), %d on c1 (want ~0)", onC2, r.Read, onC1)
	}

	// A writer on c2 keeps going while c1 switches over.
	epoch2 := p.ClusterFailover("c2").Report().Epoch
	primary2 := p.ClusterSnapshot("c2").Designated
	db := openDB(t, p, "sbtest")
	stop := make(chan struct{})
	done := make(chan error, 1)
	var writes int
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := db.ExecContext(ctx, "UPDATE sbtest1 SET k = k + 1 WHERE id = 1"); err != nil {
				done <- err
				return
			}
			writes++
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	rec, err := p.ClusterFailover("c1").Switchover(cctx, "")
	cancel()
	close(stop)
	if werr := <-done; werr != nil {
		t.Errorf("a writer on c2 failed during c1's switchover: %v", werr)
	}
	if err != nil {
		t.Fatalf("switchover of c1: %v (%+v)", err, rec)
	}
	if e := p.ClusterFailover("c1").Report().Epoch; e < 2 {
		t.Errorf("c1's epoch after its switchover: %d", e)
	}
	if e, pr := p.ClusterFailover("c2").Report().Epoch, p.ClusterSnapshot("c2").Designated; e != epoch2 || pr != primary2 {
		t.Errorf("c2 changed during c1's switchover: epoch %d -> %d, primary %s -> %s", epoch2, e, primary2, pr)
	}
	t.Logf("%d writes on c2 during c1's switchover, none failed", writes)
	// c1 takes writes on its new primary.
	app := openDB(t, p, "app")
	waitFor(t, 15*time.Second, "a write on c1 after its switchover", func() bool {
		_, err := app.ExecContext(ctx, "INSERT INTO t (v) VALUES (1)")
		return err == nil
	})

	// A restarted sluice reads each cluster's epoch from the state file:
	// c1's new primary, c2's unchanged one.
	epoch1, primary1 := p.ClusterFailover("c1").Report().Epoch, p.ClusterFailover("c1").Report().Primary
	state := p.Config().Failover.StateFile
	p.Close()
	p2 := startClusters(t, topos, "placement:\n  default_cluster: c1\n  databases:\n    - {name: sbtest, cluster: c2}\n", state)
	for _, c := range []struct {
		name, primary string
		epoch         uint64
	}{{"c1", primary1, epoch1}, {"c2", primary2, epoch2}} {
		if r := p2.ClusterFailover(c.name).Report(); r.Epoch != c.epoch || r.Primary != c.primary {
			t.Errorf("after restart cluster %s: epoch %d primary %s; want %d %s", c.name, r.Epoch, r.Primary, c.epoch, c.primary)
		}
	}
	app2 := openDB(t, p2, "app")
	mustExec(t, app2, "INSERT INTO t (v) VALUES (2)")
	var port string
	if err := app2.QueryRowContext(ctx, "SELECT @@port FROM t LIMIT 1 FOR UPDATE").Scan(&port); err != nil {
		t.Fatal(err)
	}
	for _, s := range topos[0].Servers {
		if serverName(0, s) == primary1 && fmt.Sprint(s.Port) != port {
			t.Errorf("after restart c1's writes went to port %s, not its epoch's primary %s (port %d)", port, primary1, s.Port)
		}
	}
}

// TestCausalReadsStayWithinTheCluster: a session that writes on one
// cluster and reads on another must not make the read wait for GTIDs the
// other cluster's replicas never apply (each cluster has its own domain).
// One session alternates a write on c1, a read of it on c1 (which must
// see it) and a read on c2, under session and global consistency, with a
// causal_timeout long enough that a read waiting for the wrong cluster's
// GTID would show up as a timeout.
func TestCausalReadsStayWithinTheCluster(t *testing.T) {
	topos := testbed.StartClustersT(t, 2, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	for i, topo := range topos {
		db := fmt.Sprintf("db%d", i+1)
		for _, q := range []string{"CREATE DATABASE " + db, "CREATE TABLE " + db + ".t (id INT PRIMARY KEY, v INT)", "INSERT INTO " + db + ".t VALUES (1, 1)"} {
			if err := topo.Primary.Exec(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
		syncReplicas(t, topo)
	}
	const placed = "placement:\n  default_cluster: c1\n  databases:\n    - {name: db2, cluster: c2}\n"
	for _, mode := range []string{"session", "global"} {
		t.Run(mode, func(t *testing.T) {
			p := clusterSluice(t, topos, filepath.Join(t.TempDir(), "state.json"), placed,
				"routing: {consistency: "+mode+", causal_timeout: 10s}\n", "")
			c := conn(t, openDB(t, p, "", "interpolateParams=true"))
			base := 1000
			if mode == "global" {
				base = 2000
			}
			start := time.Now()
			const pairs = 20
			for i := range pairs {
				id := base + i
				mustExec(t, c, fmt.Sprintf("INSERT INTO db1.t VALUES (%d, %d)", id, i))
				if got := queryString(t, c, fmt.Sprintf("SELECT COUNT(*) FROM db1.t WHERE id = %d", id)); got != "1" {
					t.Fatalf("read of db1.t id %d right after its insert through the same session: count %s, want 1", id, got)
				}
				if got := queryString(t, c, "SELECT v FROM db2.t WHERE id = 1"); got != "1" {
					t.Fatalf("read of db2.t: %s", got)
				}
			}
			counts := p.CausalCounts()
			t.Logf("consistency %s: %d write/read/read rounds in %s; causal reads by outcome %v", mode, pairs, time.Since(start).Round(time.Millisecond), counts)
			if counts["timeout"] != 0 || counts["no_replica"] != 0 {
				t.Errorf("%d causal reads timed out and %d found no replica: reads on c2 waited for GTIDs of c1", counts["timeout"], counts["no_replica"])
			}
		})
	}
}
