package httpapi

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// ClusterSource is implemented by a Source that knows its clusters (the
// proxy does; with one cluster it has one, named "default").
type ClusterSource interface {
	ClusterNames() []string
	ClusterMonitor(name string) *topology.Monitor
	ClusterFailover(name string) *failover.Manager
	// Placement is the map in force; nil with one cluster.
	Placement() *placement.Map
}

// ClusterView is a cluster as GET /api/clusters shows it.
type ClusterView struct {
	Name       string          `json:"name"`
	Primary    string          `json:"primary"`
	Epoch      uint64          `json:"epoch"`
	Alert      string          `json:"alert,omitempty"`
	Servers    []string        `json:"servers"`
	Failover   failover.Report `json:"failover"`
	Databases  []string        `json:"databases,omitempty"` // placed on it as a whole
	IsDefault  bool            `json:"default_cluster"`
	TableRules int             `json:"table_rules,omitempty"` // table placements (exact names and families) on it
}

// snapshots returns every cluster's snapshot, in order, with its name.
func snapshots(src Source) ([]string, []*topology.Snapshot) {
	cs, ok := src.(ClusterSource)
	if !ok {
		return []string{"default"}, []*topology.Snapshot{src.Snapshot()}
	}
	names := cs.ClusterNames()
	snaps := make([]*topology.Snapshot, len(names))
	for i, n := range names {
		snaps[i] = cs.ClusterMonitor(n).Snapshot()
	}
	return names, snaps
}

// failoverFor picks the failover manager a request means: the cluster
// named, else the cluster of the server named, else the only cluster.
// A name given as the target that is a cluster's stands for the cluster
// ("sluice switchover c2").
func failoverFor(src Source, cluster, server string) (*failover.Manager, string, error) {
	cs, ok := src.(ClusterSource)
	if !ok {
		return src.Failover(), server, nil
	}
	names := cs.ClusterNames()
	if cluster == "" && slices.Contains(names, server) {
		cluster, server = server, ""
	}
	if cluster != "" {
		if !slices.Contains(names, cluster) {
			return nil, "", fmt.Errorf("%w: no cluster named %q (clusters: %v)", failover.ErrNotFound, cluster, names)
		}
		return cs.ClusterFailover(cluster), server, nil
	}
	if server != "" {
		for _, n := range names {
			if _, ok := cs.ClusterMonitor(n).Snapshot().ByName(server); ok {
				return cs.ClusterFailover(n), server, nil
			}
		}
	}
	if len(names) == 1 {
		return cs.ClusterFailover(names[0]), server, nil
	}
	return nil, "", fmt.Errorf("%w: sluice fronts %d clusters (%v): name one (?cluster=NAME, or sluice switchover CLUSTER)", failover.ErrConflict, len(names), names)
}

func clusterViews(src Source) []ClusterView {
	names, snaps := snapshots(src)
	var m *placement.Map
	if cs, ok := src.(ClusterSource); ok {
		m = cs.Placement()
	}
	out := make([]ClusterView, len(names))
	for i, n := range names {
		snap := snaps[i]
		v := ClusterView{Name: n, Epoch: snap.Epoch, Alert: snap.Alert, Servers: []string{}, Primary: snap.Designated}
		if pr, ok := snap.PrimaryServer(); ok {
			v.Primary = pr.Name
		}
		for _, s := range snap.Servers {
			v.Servers = append(v.Servers, s.Name)
		}
		if fm, _, err := failoverFor(src, n, ""); err == nil && fm != nil {
			v.Failover = fm.Report()
		}
		if m != nil {
			v.IsDefault = m.Default == n
			for db, c := range m.Databases {
				if c == n {
					v.Databases = append(v.Databases, db)
				}
			}
			slices.Sort(v.Databases)
			for _, r := range m.Tables {
				for _, c := range r.Exact {
					if c == n {
						v.TableRules++
					}
				}
				for _, f := range r.Families {
					if f.Cluster == n {
						v.TableRules++
					}
				}
			}
		} else {
			v.IsDefault = true
		}
		out[i] = v
	}
	return out
}

func handleClusters(src Source) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{"clusters": clusterViews(src)}
		if cs, ok := src.(ClusterSource); ok {
			if m := cs.Placement(); m != nil {
				body["placement"] = map[string]any{"version": m.Version, "map": m}
			}
		}
		writeJSON(w, http.StatusOK, body)
	}
}
