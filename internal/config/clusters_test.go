package config

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/placement"
)

const twoClusters = `clusters:
  - name: east
    servers:
      - {name: e1, address: 127.0.0.1:3306}
      - {name: e2, address: 127.0.0.1:3307, weight: 3}
    health: {interval: 250ms}
    routing: {read_fallback: error}
    failover: {auto: true, replication: {user: repl2, password: r2}}
  - name: west
    servers:
      - {name: w1, address: 127.0.0.1:3308}
health: {interval: 2s, rise: 4}
failover: {replication: {user: repl, password: r1}}
placement:
  default_cluster: west
  databases:
    - {name: shop, cluster: east}
  tables:
    - {database: app, tables: "bucket_{0000..0511}", cluster: east}
`

func TestClustersOverrideTopLevel(t *testing.T) {
	c := mustParse(t, doc(U, M, twoClusters), nil)
	cl := c.ClusterList()
	if len(cl) != 2 || cl[0].Name != "east" || cl[1].Name != "west" {
		t.Fatalf("clusters %+v", cl)
	}
	e, w := cl[0], cl[1]
	if e.Health.Interval.D() != 250*time.Millisecond || e.Health.Rise != 4 || e.Health.Fall != 3 {
		t.Errorf("east health %+v: want interval 250ms from the cluster, rise 4 from the top level, fall 3 by default", e.Health)
	}
	if w.Health.Interval.D() != 2*time.Second || w.Routing.ReadFallback != FallbackPrimary || e.Routing.ReadFallback != FallbackError {
		t.Errorf("west health %+v routing %+v; east routing %+v", w.Health, w.Routing, e.Routing)
	}
	if !e.Failover.Auto || e.Failover.Replication.Secret() != "r2" || w.Failover.Auto || w.Failover.Replication.Secret() != "r1" {
		t.Errorf("failover east %+v west %+v", e.Failover, w.Failover)
	}
	if e.Failover.StateFile != c.Failover.StateFile || e.Servers[1].Weight != 3 || e.Servers[0].Weight != 1 {
		t.Errorf("state file %q weights %+v", e.Failover.StateFile, e.Servers)
	}
	if len(c.Servers) != 3 {
		t.Errorf("Servers = %+v; want the three servers of both clusters", c.Servers)
	}
	if n, ok := c.ClusterOf("w1"); !ok || n != "west" {
		t.Errorf("ClusterOf(w1) = %q, %v", n, ok)
	}
	m := c.InitialPlacement()
	if m.Owner(placement.Object{DB: "shop"}) != "east" || m.Owner(placement.Object{DB: "app", Table: "bucket_0001"}) != "east" ||
		m.Owner(placement.Object{DB: "app", Table: "bucket_0512"}) != "west" || m.Owner(placement.Object{DB: "blog"}) != "west" {
		t.Errorf("placement %+v", m)
	}
	r := c.Redacted()
	if r.Clusters[0].Failover.Replication.Password != "***" || c.Clusters[0].Failover.Replication.Password != "r2" {
		t.Errorf("redacted cluster password %q, original %q", r.Clusters[0].Failover.Replication.Password, c.Clusters[0].Failover.Replication.Password)
	}
}

func TestFlatServersAreTheDefaultCluster(t *testing.T) {
	c := mustParse(t, doc(U, M, S), nil)
	cl := c.ClusterList()
	if len(cl) != 1 || cl[0].Name != "default" || cl[0].Servers[0].Name != "db1" || cl[0].Health != c.Health {
		t.Fatalf("clusters of a flat file: %+v", cl)
	}
	if m := c.InitialPlacement(); m.Default != "default" {
		t.Errorf("default cluster %q", m.Default)
	}
}

func TestClusterProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{S + "\n" + twoClusters, "both servers and clusters are set"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}]}, {name: a, servers: [{name: y, address: 127.0.0.1:2}]}]", "duplicate cluster name"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}]}, {name: b, servers: [{name: x, address: 127.0.0.1:2}]}]", "server names are unique across clusters"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}]}, {name: b, servers: [{name: y, address: 127.0.0.1:1}]}]", "duplicate address"},
		{"clusters: [{name: a, servers: []}]", "no servers in cluster"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], health: {rise: 0}}]", "clusters[0].health.rise"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], routing: {balance: random}}]", "clusters[0].routing.balance"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], failover: {state_file: x.json}}]", "is set once, at the top level"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], failover: {transaction_replay: false}}]", "clusters[0].failover.transaction_replay: is set once, at the top level"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], failover: {replay_max_size: 4MiB}}]", "clusters[0].failover.replay_max_size: is set once, at the top level"},
		// The monitor writes the name into its SQL: a cluster's is checked as the top level's is.
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], routing: {heartbeat_table: \"hb.t; DROP DATABASE x\"}}]", "clusters[0].routing.heartbeat_table"},
		{"clusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], failover: {auto: true}}]", "clusters[0].failover.auto"},
		{S + "\nplacement: {databases: [{name: shop, cluster: east}]}", `no cluster named "east"`},
		{S + "\nplacement: {tables: [{database: a, tables: \"b_{1..\", cluster: default}]}", "placement.tables[0].tables"},
	} {
		_, err := Parse([]byte(doc(U, M, tc.yaml)), "t.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\nerror %v\nwant one containing %q", tc.yaml, err, tc.want)
		}
	}
}

// A cluster that overrides failover inherits the top level's
// replay_max_size: a bad one is one problem, not one per cluster.
func TestReplayMaxSizeReportedOnce(t *testing.T) {
	_, err := Parse([]byte(doc(U, M, "failover: {replay_max_size: 10}\nclusters: [{name: a, servers: [{name: x, address: 127.0.0.1:1}], failover: {max_lag: 1s}}]")), "t.yaml", nil)
	if err == nil || strings.Count(err.Error(), "replay_max_size") != 1 {
		t.Fatalf("a bad top-level replay_max_size: %v; want it reported once, at the top level", err)
	}
}
