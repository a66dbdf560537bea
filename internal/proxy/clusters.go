package proxy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/causal"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/hooks"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/statestore"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// cluster is one primary and its replicas: its own monitor (and so
// snapshot), balancer, failover manager, epoch and hooks. Pools stay in
// the runtime, by server name: names are unique across clusters.
type cluster struct {
	name     string
	monitor  *topology.Monitor
	failover *failover.Manager
	balancer *router.Balancer
	// causal is the cluster's causal-read tracker: GTIDs committed and
	// replica positions learned on one cluster say nothing of another's.
	causal *causal.Tracker
	env    *clusterEnv
}

// tracker is the causal tracker of the cluster named (the first
// cluster's for a name not known yet).
func (p *Proxy) tracker(name string) *causal.Tracker {
	if t := p.trackers[name]; t != nil {
		return t
	}
	return &p.causal
}

func (c *cluster) config(cfg *config.Config) config.Cluster {
	for _, cc := range cfg.ClusterList() {
		if cc.Name == c.name {
			return cc
		}
	}
	return config.Cluster{Name: c.name}
}

// clusterEnv is the session.Env of statements served by one cluster: the
// proxy's, with that cluster's snapshot, routing policy, balancer and
// failover manager. A session reads its Runtime once per statement.
type clusterEnv struct {
	*Proxy
	c *cluster
}

func (e *clusterEnv) Snapshot() *topology.Snapshot { return e.c.monitor.Snapshot() }

func (e *clusterEnv) Runtime() *session.Runtime {
	rt := e.rt.Load()
	if r := rt.sess[e.c.name]; r != nil {
		return r
	}
	return rt.first
}

func (e *clusterEnv) SuspectPrimary(server string) (*topology.Hold, string) {
	return e.c.failover.Suspect(server)
}

func hooksConfig(h config.Hooks) hooks.Config {
	return hooks.Config{Command: slices.Clone(h.Command), Webhook: h.Webhook, Timeout: h.Timeout.D(), Token: h.TokenSecret()}
}

// placementKey is the state store key of the placement map.
const placementKey = "placement"

// placeState is the placement in force and the objects held for a move.
type placeState struct {
	m     atomic.Pointer[placement.Map] // nil with one cluster: nothing to place
	mu    sync.Mutex                    // one Place at a time
	holds atomic.Pointer[[]*session.Hold]
	hmu   sync.Mutex
}

// loadPlacement reads the placement from the state store, or stores the
// configuration's as its first version. With one cluster there is none.
func (p *Proxy) loadPlacement(cfg *config.Config) error {
	if len(p.clusters) < 2 {
		return nil
	}
	e, err := p.store.Get(placementKey)
	if err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	var m *placement.Map
	if e.Version == 0 {
		m = cfg.InitialPlacement()
		v, err := p.store.CompareAndSwap(placementKey, 0, m.Encode())
		if err != nil {
			return fmt.Errorf("placement: store the initial map: %w", err)
		}
		m.Version = v
	} else {
		if m, err = placement.Decode(e.Value, e.Version); err != nil {
			return fmt.Errorf("placement in %s: %w", p.store.Path(), err)
		}
		p.log.Info("placement loaded from the state file", "version", m.Version)
	}
	for _, name := range m.Clusters() {
		if p.byName[name] == nil {
			return fmt.Errorf("placement (version %d in %s) names cluster %q, which the configuration does not have", m.Version, p.store.Path(), name)
		}
	}
	p.place.m.Store(m)
	return nil
}

// Placement implements session.Placer: the map in force, nil when sluice
// fronts one cluster.
func (p *Proxy) Placement() *placement.Map { return p.place.m.Load() }

// ClusterEnv implements session.Placer.
func (p *Proxy) ClusterEnv(name string) session.Env {
	if c := p.byName[name]; c != nil {
		return c.env
	}
	return nil
}

// Holds implements session.Placer: the holds in force, nil when none.
func (p *Proxy) Holds() []*session.Hold {
	if h := p.place.holds.Load(); h != nil {
		return *h
	}
	return nil
}

// Place durably assigns objs to cluster (compare-and-swap on the
// placement's version in the state store), effective for every statement
// routed after it returns.
func (p *Proxy) Place(objs []placement.Object, cluster string) error {
	if p.byName[cluster] == nil {
		return fmt.Errorf("place: no cluster named %q", cluster)
	}
	p.place.mu.Lock()
	defer p.place.mu.Unlock()
	cur := p.place.m.Load()
	if cur == nil {
		return fmt.Errorf("place: sluice fronts one cluster; there is nothing to place")
	}
	next := cur.Place(objs, cluster)
	v, err := p.store.CompareAndSwap(placementKey, cur.Version, next.Encode())
	if err != nil {
		return fmt.Errorf("place %v on %s: %w", objs, cluster, err)
	}
	next.Version = v
	p.place.m.Store(next)
	p.log.Info("placement changed", "objects", len(objs), "cluster", cluster, "version", v)
	return nil
}

// ClusterNames lists the clusters in configuration order.
func (p *Proxy) ClusterNames() []string {
	out := make([]string, len(p.clusters))
	for i, c := range p.clusters {
		out[i] = c.name
	}
	return out
}

// ClusterMonitor and ClusterFailover are a cluster's monitor and failover
// manager (admin API, metrics); nil for an unknown name.
func (p *Proxy) ClusterMonitor(name string) *topology.Monitor {
	if c := p.byName[name]; c != nil {
		return c.monitor
	}
	return nil
}

func (p *Proxy) ClusterFailover(name string) *failover.Manager {
	if c := p.byName[name]; c != nil {
		return c.failover
	}
	return nil
}

// ClusterOf returns the cluster of a server.
func (p *Proxy) ClusterOf(server string) string {
	name, _ := p.rt.Load().cfg.ClusterOf(server)
	return name
}

var _ session.Placer = (*Proxy)(nil)
var _ statestore.Coordinator = (*statestore.File)(nil)

// Hold makes new statements that touch objs wait (statements on other
// objects flow on) and returns once the statements in flight on objs
// (including open transactions touching them) have finished, or ctx
// ends. release() lets held statements go, routed by the placement
// current at that moment. A hold not released within 30 s times out
// for the statements it holds (error 9001), never hanging a client.
func (p *Proxy) Hold(ctx context.Context, objs []placement.Object) (release func(), err error) {
	if p.place.m.Load() == nil {
		return nil, fmt.Errorf("hold: sluice fronts one cluster; there is nothing to hold")
	}
	h := &session.Hold{Objs: slices.Clone(objs), Done: make(chan struct{})}
	p.place.hmu.Lock()
	cur := p.Holds()
	next := append(slices.Clone(cur), h)
	p.place.holds.Store(&next)
	p.place.hmu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			p.place.hmu.Lock()
			rest := slices.DeleteFunc(slices.Clone(p.Holds()), func(x *session.Hold) bool { return x == h })
			if len(rest) == 0 {
				p.place.holds.Store(nil)
			} else {
				p.place.holds.Store(&rest)
			}
			p.place.hmu.Unlock()
			close(h.Done)
		})
	}
	// A session marks what it touches before it looks for holds, and the
	// hold is published before this looks at the sessions: either the
	// session waits, or it is seen here.
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		busy := false
		p.sessions.Range(func(_, v any) bool {
			busy = v.(*session.Session).Touches(objs)
			return !busy
		})
		if !busy {
			return release, nil
		}
		select {
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("hold %v: statements in flight did not finish: %w", objs, ctx.Err())
		case <-t.C:
		}
	}
}

// ClusterSnapshot and ClusterReport are a cluster's topology and failover
// state (metrics); zero values for an unknown name.
func (p *Proxy) ClusterSnapshot(name string) *topology.Snapshot {
	if c := p.byName[name]; c != nil {
		return c.monitor.Snapshot()
	}
	return &topology.Snapshot{Primary: -1}
}

func (p *Proxy) ClusterReport(name string) failover.Report {
	if c := p.byName[name]; c != nil {
		return c.failover.Report()
	}
	return failover.Report{}
}
