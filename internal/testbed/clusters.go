package testbed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// ClusterServerIDStride separates the server_ids of the clusters that
// StartClusters starts: cluster k's servers get k*ClusterServerIDStride+1,
// +2, …, so no two servers of any cluster share an id.
const ClusterServerIDStride = 100

// ClusterOptions returns opts for cluster k (0-based) of a multi-cluster
// testbed: gtid_domain_id k and server_ids from k*ClusterServerIDStride+1.
// Cluster 0 is exactly a single topology started with opts (domain 0,
// server_ids 1, 2, …). Each cluster gets its own directory under opts.Dir
// when one is given.
func ClusterOptions(k int, opts Options) Options {
	opts.GTIDDomainID = uint32(k)
	opts.ServerIDBase = k * ClusterServerIDStride
	if opts.Dir != "" {
		opts.Dir = fmt.Sprintf("%s/cluster%d", opts.Dir, k+1)
	}
	return opts
}

// StartClusters starts n independent clusters (each a primary with
// opts.Replicas replicas and GTID replication inside it) in parallel, with
// ClusterOptions(k, opts): distinct gtid_domain_id and server_ids, which a
// named replication connection from one cluster into another needs. Every
// server has the same accounts, so ReplUser can replicate across clusters.
// On error nothing is left running.
func StartClusters(ctx context.Context, n int, opts Options) ([]*Topology, error) {
	if n < 1 {
		return nil, fmt.Errorf("testbed: StartClusters(%d): need at least one cluster", n)
	}
	out := make([]*Topology, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() { out[k], errs[k] = Start(ctx, ClusterOptions(k, opts)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, t := range out {
			if t != nil {
				t.Close()
			}
		}
		return nil, err
	}
	return out, nil
}

// StartClustersT is StartClusters for a test: it fails the test on error
// and closes every cluster in tb.Cleanup (dumping the error logs first if
// the test failed).
func StartClustersT(tb testing.TB, n int, opts Options) []*Topology {
	tb.Helper()
	out := make([]*Topology, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed []string
	for k := range n {
		wg.Go(func() {
			t, err := startForTest(tb, ClusterOptions(k, opts))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Sprintf("cluster %d: %v", k+1, err))
				return
			}
			out[k] = t
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		tb.Fatalf("testbed: start clusters: %v", failed)
	}
	return out
}

// Promote makes s, a replica of this topology, the primary as a failover
// manager would: STOP SLAVE, RESET SLAVE ALL, read_only=OFF, then
// SetPrimary. The other running replicas are pointed at s
// (MASTER_USE_GTID=slave_pos). The old primary is left as it is (call
// Kill first for a crash, Rebuild to bring it back as a replica).
func (t *Topology) Promote(ctx context.Context, s *Server) error {
	if err := s.Exec(ctx, "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF"); err != nil {
		return fmt.Errorf("testbed: promote: %w", err)
	}
	old := t.Primary
	t.SetPrimary(s)
	for _, r := range t.Replicas {
		if r == old || !r.Running() {
			continue
		}
		if err := r.Exec(ctx, "STOP SLAVE"); err != nil {
			return fmt.Errorf("testbed: promote: %w", err)
		}
		if err := r.replicateFrom(ctx, s); err != nil {
			return fmt.Errorf("testbed: promote: %w", err)
		}
	}
	return nil
}
