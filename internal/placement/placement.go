// Package placement says which cluster owns each database and table: the
// map the router consults for every statement when sluice fronts more
// than one cluster, the configuration section that seeds it, and the
// objects (a database, or one table of it) an online move hands over.
//
// A Map is immutable. A change (a move's cutover) builds a new Map with
// Place, stores it in the state store by compare-and-swap on its version,
// and only then publishes it; statements read the published Map once.
//
// The running proxy (internal/proxy.Proxy) offers an online move what it
// needs, in these terms:
//
//	// Hold makes new statements that touch objs wait (statements on other
//	// objects flow on) and returns once the statements in flight on objs
//	// (including open transactions touching them) have finished, or ctx
//	// ends. release() lets held statements go, routed by the placement
//	// current at that moment.
//	func (p *Proxy) Hold(ctx context.Context, objs []placement.Object) (release func(), err error)
//	// Place durably assigns objs to cluster (compare-and-swap on the
//	// placement's version in the state store), effective for every
//	// statement routed after it returns.
//	func (p *Proxy) Place(objs []placement.Object, cluster string) error
//
// plus Placement() (the Map in force, nil with one cluster),
// ClusterNames(), ClusterMonitor(name) and ClusterFailover(name).
package placement

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// Object is a database (Table == "") or one table of it.
type Object struct{ DB, Table string }

func (o Object) String() string {
	if o.Table == "" {
		return o.DB
	}
	return o.DB + "." + o.Table
}

// Config is the `placement:` section: the initial map, used until the
// state store holds one.
type Config struct {
	// DefaultCluster owns everything not placed; default: the first
	// cluster listed.
	DefaultCluster string     `yaml:"default_cluster" json:"default_cluster"`
	Databases      []Database `yaml:"databases" json:"databases"`
	Tables         []Tables   `yaml:"tables" json:"tables"`
}

// Database places a whole database.
type Database struct {
	Name    string `yaml:"name" json:"name"`
	Cluster string `yaml:"cluster" json:"cluster"`
}

// Tables places tables of a database: an exact name or a numbered family
// (see Pattern). They take precedence over their database's placement.
type Tables struct {
	Database string `yaml:"database" json:"database"`
	Tables   string `yaml:"tables" json:"tables"`
	Cluster  string `yaml:"cluster" json:"cluster"`
}

// Validate checks the section against the clusters configured.
func (c *Config) Validate(clusters []string) []confval.Problem {
	var out []confval.Problem
	known := func(path, name string) {
		switch {
		case name == "":
			out = append(out, confval.Problemf(path, "required: the name of a cluster"))
		case !slices.Contains(clusters, name):
			out = append(out, confval.Problemf(path, "no cluster named %q (clusters: %v)", name, clusters))
		}
	}
	if c.DefaultCluster != "" {
		known("placement.default_cluster", c.DefaultCluster)
	}
	dbs := map[string]int{}
	for i, d := range c.Databases {
		p := fmt.Sprintf("placement.databases[%d]", i)
		if d.Name == "" {
			out = append(out, confval.Problemf(p+".name", "required"))
		} else if j, dup := dbs[d.Name]; dup {
			out = append(out, confval.Problemf(p+".name", "database %q is placed twice (also placement.databases[%d])", d.Name, j))
		} else {
			dbs[d.Name] = i
		}
		known(p+".cluster", d.Cluster)
	}
	for i, t := range c.Tables {
		p := fmt.Sprintf("placement.tables[%d]", i)
		if t.Database == "" {
			out = append(out, confval.Problemf(p+".database", "required"))
		}
		if _, err := ParsePattern(t.Tables); err != nil {
			out = append(out, confval.Problem{Path: p + ".tables", Message: err.Error()})
		}
		known(p+".cluster", t.Cluster)
	}
	return out
}

// Map is a placement: who owns each database and table. Version is its
// version in the state store (0: not stored yet).
type Map struct {
	Version uint64 `json:"-"`
	Default string `json:"default_cluster"`
	// Databases maps a database to its cluster.
	Databases map[string]string `json:"databases,omitempty"`
	// Tables maps a database to the tables placed apart from it: exact
	// names (moved tables) first, then families in order.
	Tables map[string]*TableRules `json:"tables,omitempty"`
}

// TableRules are the tables of one database placed apart from it.
type TableRules struct {
	Exact    map[string]string `json:"exact,omitempty"`
	Families []Family          `json:"families,omitempty"`
}

// Family is a pattern of tables and their cluster.
type Family struct {
	Pattern Pattern `json:"tables"`
	Cluster string  `json:"cluster"`
}

// MarshalJSON and UnmarshalJSON store a pattern as written.
func (p Pattern) MarshalJSON() ([]byte, error) { return json.Marshal(p.text) }

func (p *Pattern) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	q, err := ParsePattern(s)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// FromConfig builds the initial map of a valid section; defaultCluster is
// used when the section names none.
func FromConfig(c Config, defaultCluster string) *Map {
	m := &Map{Default: defaultCluster, Databases: map[string]string{}, Tables: map[string]*TableRules{}}
	if c.DefaultCluster != "" {
		m.Default = c.DefaultCluster
	}
	for _, d := range c.Databases {
		m.Databases[d.Name] = d.Cluster
	}
	for _, t := range c.Tables {
		p, err := ParsePattern(t.Tables)
		if err != nil {
			continue // Validate refused it
		}
		r := m.rules(t.Database)
		if p.Exact() {
			if r.Exact == nil {
				r.Exact = map[string]string{}
			}
			r.Exact[p.String()] = t.Cluster
		} else {
			r.Families = append(r.Families, Family{p, t.Cluster})
		}
	}
	return m
}

func (m *Map) rules(db string) *TableRules {
	r := m.Tables[db]
	if r == nil {
		r = &TableRules{}
		m.Tables[db] = r
	}
	return r
}

// Decode reads a map stored by Encode.
func Decode(b []byte, version uint64) (*Map, error) {
	m := &Map{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	if m.Databases == nil {
		m.Databases = map[string]string{}
	}
	if m.Tables == nil {
		m.Tables = map[string]*TableRules{}
	}
	m.Version = version
	return m, nil
}

// Encode returns the map as stored in the state store.
func (m *Map) Encode() []byte {
	b, _ := json.Marshal(m)
	return b
}

// Database returns the cluster owning database db as a whole: the one a
// statement naming no table of it runs on.
func (m *Map) Database(db []byte) string {
	if c, ok := m.Databases[string(db)]; ok {
		return c
	}
	return m.Default
}

// Table returns the cluster owning table of database db. It does not
// allocate.
func (m *Map) Table(db, table []byte) string {
	if r := m.Tables[string(db)]; r != nil {
		if c, ok := r.Exact[string(table)]; ok {
			return c
		}
		for i := range r.Families {
			if r.Families[i].Pattern.Match(table) {
				return r.Families[i].Cluster
			}
		}
	}
	return m.Database(db)
}

// Owner returns the cluster owning o.
func (m *Map) Owner(o Object) string {
	if o.Table == "" {
		return m.Database([]byte(o.DB))
	}
	return m.Table([]byte(o.DB), []byte(o.Table))
}

// Clusters lists every cluster the map names, sorted.
func (m *Map) Clusters() []string {
	set := map[string]bool{m.Default: true}
	for _, c := range m.Databases {
		set[c] = true
	}
	for _, r := range m.Tables {
		for _, c := range r.Exact {
			set[c] = true
		}
		for _, f := range r.Families {
			set[f.Cluster] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Place returns a copy of m with objs owned by cluster: a database as a
// whole (its tables placed apart stay where they are), a table by its
// exact name, ahead of any family it belongs to. The version is not
// changed: the state store gives the new one.
func (m *Map) Place(objs []Object, cluster string) *Map {
	n := &Map{Version: m.Version, Default: m.Default, Databases: maps.Clone(m.Databases), Tables: make(map[string]*TableRules, len(m.Tables))}
	if n.Databases == nil {
		n.Databases = map[string]string{}
	}
	for db, r := range m.Tables {
		n.Tables[db] = &TableRules{Exact: maps.Clone(r.Exact), Families: slices.Clone(r.Families)}
	}
	for _, o := range objs {
		if o.Table == "" {
			n.Databases[o.DB] = cluster
			continue
		}
		r := n.rules(o.DB)
		if r.Exact == nil {
			r.Exact = map[string]string{}
		}
		r.Exact[o.Table] = cluster
	}
	return n
}

// Split reports whether database db has tables placed apart from it.
func (m *Map) Split(db []byte) bool {
	r := m.Tables[string(db)]
	return r != nil && (len(r.Exact) > 0 || len(r.Families) > 0)
}

// Holders lists the clusters a database exists on through sluice: the one
// owning it as a whole, then those owning some of its tables, sorted.
func (m *Map) Holders(db string) []string {
	own := m.Database([]byte(db))
	out := []string{own}
	if r := m.Tables[db]; r != nil {
		for _, c := range r.Exact {
			out = append(out, c)
		}
		for _, f := range r.Families {
			out = append(out, f.Cluster)
		}
	}
	rest := out[1:]
	slices.Sort(rest)
	rest = slices.Compact(rest)
	rest = slices.DeleteFunc(rest, func(c string) bool { return c == own })
	return out[:1+len(rest)]
}
