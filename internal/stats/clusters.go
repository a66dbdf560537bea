package stats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// ClusterSource is implemented by a Source that fronts clusters (the
// proxy, with one cluster named "default" or several).
type ClusterSource interface {
	ClusterNames() []string
	ClusterSnapshot(name string) *topology.Snapshot
	ClusterReport(name string) failover.Report
}

var (
	descServerCluster = desc("sluice_server_cluster", "Always 1: the cluster the server belongs to (join on server to give any server metric a cluster label).", "server", "cluster")
	descClusterEpoch  = desc("sluice_cluster_epoch", "The cluster's current failover epoch.", "cluster")
	descClusterAlert  = desc("sluice_cluster_alert", "1 while the cluster's failover manager reports a problem.", "cluster")
	descClusterUp     = desc("sluice_cluster_primary_up", "1 when the cluster has a primary taking writes.", "cluster")
)

func init() {
	allDescs = append(allDescs, descServerCluster, descClusterEpoch, descClusterAlert, descClusterUp)
}

// clusterSnapshots returns every cluster's snapshot, the first cluster's
// first; a Source without clusters has its one snapshot.
func (st *Stats) clusterSnapshots() []*topology.Snapshot {
	cs, ok := st.src.(ClusterSource)
	if !ok {
		return []*topology.Snapshot{st.src.Snapshot()}
	}
	var out []*topology.Snapshot
	for _, n := range cs.ClusterNames() {
		out = append(out, cs.ClusterSnapshot(n))
	}
	return out
}

// collectClusters writes the per-cluster figures. The server metrics keep
// their labels (dashboards and alerts written for one cluster go on
// working); sluice_server_cluster maps each server to its cluster.
func (st *Stats) collectClusters(m func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	cs, ok := st.src.(ClusterSource)
	if !ok {
		return
	}
	for _, n := range cs.ClusterNames() {
		snap := cs.ClusterSnapshot(n)
		for i := range snap.Servers {
			m(descServerCluster, gauge, 1, snap.Servers[i].Name, n)
		}
		_, up := snap.PrimaryServer()
		m(descClusterUp, gauge, boolValue[up], n)
		r := cs.ClusterReport(n)
		m(descClusterEpoch, gauge, float64(r.Epoch), n)
		m(descClusterAlert, gauge, boolValue[r.Alert != ""], n)
	}
}
