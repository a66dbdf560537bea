package config

import (
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/confval"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/statestore"
)

// Cluster is one primary and its replicas, with its own monitor,
// read/write split, balancer, failover manager, epoch and hooks. Health,
// Routing and Failover start from the top-level sections; keys written
// in the cluster override them (failover.state_file stays top-level: one
// file holds every cluster's epoch).
type Cluster struct {
	Name     string   `yaml:"name" json:"name"`
	Servers  []Server `yaml:"servers" json:"servers"`
	Health   Health   `yaml:"health" json:"health"`
	Routing  Routing  `yaml:"routing" json:"routing"`
	Failover Failover `yaml:"failover" json:"failover"`
}

// DefaultClusterName is the cluster a flat `servers:` list forms.
const DefaultClusterName = statestore.DefaultCluster

// ClusterList returns the clusters in configuration order: the `clusters:`
// list, or one cluster named "default" holding `servers:` and the
// top-level health, routing and failover.
func (c *Config) ClusterList() []Cluster {
	if len(c.Clusters) > 0 {
		return c.Clusters
	}
	return []Cluster{{Name: DefaultClusterName, Servers: c.Servers, Health: c.Health, Routing: c.Routing, Failover: c.Failover}}
}

// ClusterNames lists the clusters' names in configuration order.
func (c *Config) ClusterNames() []string {
	var out []string
	for _, cl := range c.ClusterList() {
		out = append(out, cl.Name)
	}
	return out
}

// ClusterOf returns the cluster a server belongs to.
func (c *Config) ClusterOf(server string) (string, bool) {
	for _, cl := range c.ClusterList() {
		for _, s := range cl.Servers {
			if s.Name == server {
				return cl.Name, true
			}
		}
	}
	return "", false
}

// InitialPlacement is the placement the configuration gives, used until
// the state store holds one.
func (c *Config) InitialPlacement() *placement.Map {
	return placement.FromConfig(c.Placement, c.ClusterList()[0].Name)
}

// checkClusters validates `clusters:`, resolves each cluster's sections
// over the top-level ones, and fills c.Servers with every cluster's
// servers (names are unique across clusters, so server lookups by name
// keep working).
func (d *decoder) checkClusters(c *Config, getenv func(string) string) {
	if _, flat := d.nodes["servers"]; flat {
		d.report("clusters", "both servers and clusters are set: list the servers under their cluster (servers alone form one cluster named %q)", DefaultClusterName)
		return
	}
	names := map[string]int{}
	serverNames := map[string]string{}
	addrs := map[string]string{}
	var all []Server
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		p := fmt.Sprintf("clusters[%d]", i)
		d.checkName("clusters", "cluster", i, cl.Name, names)
		if len(cl.Servers) == 0 {
			d.report(p+".servers", "no servers in cluster %q; list at least one", cl.Name)
		}
		for k, s := range cl.Servers {
			sp := fmt.Sprintf("%s.servers[%d]", p, k)
			switch {
			case s.Name == "":
				d.report(sp+".name", "required")
			case !confval.PlainName(s.Name):
				d.report(sp+".name", "%q may contain only letters, digits, '.', '_' and '-' (it appears in URLs and metric labels)", s.Name)
			case serverNames[s.Name] != "":
				d.report(sp+".name", "duplicate server name %q (also in cluster %q): server names are unique across clusters", s.Name, serverNames[s.Name])
			default:
				serverNames[s.Name] = cl.Name
			}
			if s.Address == "" {
				d.report(sp+".address", "required (host:port)")
			} else if err := checkAddr(s.Address, 1); err != nil {
				d.report(sp+".address", "%v", err)
			} else if other, dup := addrs[normalizeAddr(s.Address)]; dup {
				d.report(sp+".address", "duplicate address %q: server %q has it already", s.Address, other)
			} else {
				addrs[normalizeAddr(s.Address)] = s.Name
			}
			if s.Weight < 0 {
				d.report(sp+".weight", "must not be negative, got %d", s.Weight)
			}
			if s.MaxConnections < 0 {
				d.report(sp+".max_connections", "must not be negative, got %d (0 means unlimited)", s.MaxConnections)
			}
		}
		all = append(all, cl.Servers...)
	}
	c.Servers = all
}

// overlay makes the cluster's health, routing and failover the top-level
// ones with the keys the cluster writes applied on top, and checks them.
func (d *decoder) overlay(p string, cl *Cluster, c *Config, getenv func(string) string) {
	cl.Health, cl.Routing, cl.Failover = c.Health, c.Routing, c.Failover
	cl.Failover.Hooks.Command = slices.Clone(c.Failover.Hooks.Command)
	// The sections were decoded once already, into zero values, which
	// reported any mistake in them; this second pass only applies the
	// keys written, so its problems are dropped.
	quiet := &decoder{file: d.file, nodes: map[string]*yaml.Node{}, failed: map[string]bool{}}
	if n := d.nodes[p+".health"]; n != nil {
		quiet.value(n, reflect.ValueOf(&cl.Health).Elem(), "health")
		d.reportAll(cl.Health.Validate(p + ".health"))
	}
	if n := d.nodes[p+".routing"]; n != nil {
		quiet.value(n, reflect.ValueOf(&cl.Routing).Elem(), "routing")
		d.checkClusterRouting(p, cl.Routing)
	}
	if n := d.nodes[p+".failover"]; n != nil {
		quiet.value(n, reflect.ValueOf(&cl.Failover).Elem(), "failover")
		if _, set := d.nodes[p+".failover.state_file"]; set {
			d.report(p+".failover.state_file", "is set once, at the top level: one state file holds every cluster's epoch")
		}
		// A session's transaction may be replayed on whichever cluster
		// it runs on; what it keeps is decided before that is known.
		for _, k := range []string{"transaction_replay", "replay_max_size"} {
			if _, set := d.nodes[p+".failover."+k]; set {
				d.report(p+".failover."+k, "is set once, at the top level: it applies to every session, whichever cluster serves it")
			}
		}
		cl.Failover.StateFile = c.Failover.StateFile
		d.checkClusterFailover(p, cl, getenv)
	}
}

func (d *decoder) checkClusterRouting(p string, r Routing) {
	d.reportAll(r.Validate(p + ".routing"))
}

// checkClusterFailover places the cluster's failover.Section problems and
// resolves the secrets the cluster writes itself; those it does not write
// came resolved with the copy of the top level's.
func (d *decoder) checkClusterFailover(p string, cl *Cluster, getenv func(string) string) {
	f := &cl.Failover
	for _, pr := range f.Section.Validate(p + ".failover") {
		// replay_max_size is the top level's (a cluster may not write
		// it): a bad one is reported there, once.
		if pr.Path != p+".failover.replay_max_size" {
			d.report(pr.Path, "%s", pr.Message)
		}
	}
	if _, set := d.nodes[p+".failover.replication"]; set && f.Replication.User != "" {
		f.Replication.secret = d.password(p+".failover.replication", "the replication account", f.Replication.Password, f.Replication.PasswordEnv, getenv)
	}
	if f.Auto && f.Replication.User == "" {
		d.report(p+".failover.auto", "needs failover.replication.user (here or at the top level)")
	}
	if f.Hooks.TokenEnv != "" {
		if _, set := d.nodes[p+".failover.hooks.token_env"]; set {
			if v := getenvOrEmpty(getenv, f.Hooks.TokenEnv); v != "" {
				f.Hooks.secret = &v
			} else {
				d.report(p+".failover.hooks.token_env", "environment variable %q is not set or is empty", f.Hooks.TokenEnv)
			}
		}
	}
}

// checkPlacement validates `placement:` against the clusters.
func (d *decoder) checkPlacement(c *Config) {
	d.reportAll(c.Placement.Validate(c.ClusterNames()))
}
