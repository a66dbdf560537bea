package stats

import (
	"testing"

	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// The fake source is one cluster named "default", as a flat servers: list.
func (f *fakeSource) ClusterNames() []string                    { return []string{"default"} }
func (f *fakeSource) ClusterSnapshot(string) *topology.Snapshot { return f.Snapshot() }
func (f *fakeSource) ClusterReport(string) failover.Report      { return f.FailoverReport() }

func TestClusterMetrics(t *testing.T) {
	st := newStats(t, testSource(), Options{})
	mfs := scrape(t, st)
	if got := value(t, mfs, "sluice_server_cluster", "cluster=default", "server=db1"); got != 1 {
		t.Errorf("sluice_server_cluster{db1,default} = %v", got)
	}
	if got := value(t, mfs, "sluice_cluster_epoch", "cluster=default"); got != 4 {
		t.Errorf("sluice_cluster_epoch = %v, want 4", got)
	}
}
