// Package proxy wires a configuration into a running sluice: the MySQL
// listener, the backend pools, the topology monitor, and the environment
// every session reads through one atomically swapped runtime.
package proxy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/causal"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/statestore"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// runtime is everything derived from one configuration. It is built
// completely, then published; sessions never see a half-applied reload.
type runtime struct {
	cfg      *config.Config
	accounts map[string]session.Account
	policy   router.Policy
	// policies are each cluster's routing, by cluster name; policy is the
	// first cluster's.
	policies map[string]*router.Policy
	limits   session.Limits
	pools    map[string]*backend.Pool
	tls      *tls.Config
	// sess are the session.Runtimes made of the above, each cluster's by
	// name (see publish); first is the first cluster's.
	sess  map[string]*session.Runtime
	first *session.Runtime
}

// publish makes rt the runtime in force, with a session.Runtime for each
// cluster: a session reads one per statement instead of asking for each
// piece. The Runtimes are made here, after the clusters exist (their
// balancers are in them), and never changed once stored.
func (p *Proxy) publish(rt *runtime) {
	n := *rt
	n.sess = make(map[string]*session.Runtime, len(p.clusters))
	for i, c := range p.clusters {
		pol := rt.policies[c.name]
		if pol == nil {
			pol = &n.policy
		}
		r := &session.Runtime{Limits: rt.limits, Policy: pol, Balancer: c.balancer, Observer: p.observer, Pools: rt.pools}
		n.sess[c.name] = r
		if i == 0 {
			n.first = r
		}
	}
	p.rt.Store(&n)
}

// Proxy is a running sluice.
type Proxy struct {
	log      *slog.Logger
	rt       atomic.Pointer[runtime]
	monitor  *topology.Monitor
	failover *failover.Manager
	store    *statestore.File
	balancer router.Balancer
	// clusters are the configured clusters in order; monitor, failover
	// and balancer above are the first one's (a single cluster's).
	clusters []*cluster
	byName   map[string]*cluster
	trackers map[string]*causal.Tracker // each cluster's causal tracker, by name
	place    placeState
	moves    moveRegistry
	causal   causal.Tracker // outlives reloads, like the balancer
	observer session.Observer

	sessions sync.Map // uint32 -> *session.Session
	nextID   atomic.Uint32
	stmtKey  atomic.Uint64
	active   sync.WaitGroup
	bg       sync.WaitGroup // background loops that must end before Close returns

	load     func() (*config.Config, error)
	onReload func(*config.Config, error)
	reloadMu sync.Mutex

	connsOpen  atomic.Int64
	connsTotal atomic.Uint64

	fdLimit        uint64
	maxClients     atomic.Int64
	refusedTooMany atomic.Uint64
	acceptLog      acceptLog
	logins         *session.LoginGuard

	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaPEM  []byte
	rsaErr  error

	mu     sync.Mutex
	lns    []net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// Options adjust a Proxy beyond its configuration.
type Options struct {
	Logger   *slog.Logger
	Observer session.Observer
	// Load re-reads the configuration file for ReloadFile (SIGHUP,
	// POST /api/reload); nil means reloading from a file is not possible.
	Load func() (*config.Config, error)
	// OnReload is told the outcome of every reload attempt (metrics,
	// applying observability settings).
	OnReload func(cfg *config.Config, err error)
}

// New builds a proxy from a validated configuration.
func New(cfg *config.Config, o Options) (*Proxy, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = session.NopObserver
	}
	p := &Proxy{log: o.Logger, observer: o.Observer, load: o.Load, onReload: o.OnReload, done: make(chan struct{})}
	p.trackers = map[string]*causal.Tracker{}
	for i, cc := range cfg.ClusterList() {
		p.trackers[cc.Name] = &p.causal
		if i > 0 {
			p.trackers[cc.Name] = new(causal.Tracker)
		}
	}
	rt, err := p.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	p.rt.Store(rt)
	p.fdLimit = RaiseFDLimit()
	p.applyLimits(cfg)
	p.store, err = statestore.OpenFile(cfg.Failover.StateFile)
	if err != nil {
		return nil, fmt.Errorf("failover.state_file: %w", err)
	}
	p.byName = map[string]*cluster{}
	for i, cc := range cfg.ClusterList() {
		c := &cluster{name: cc.Name, causal: p.trackers[cc.Name]}
		if i == 0 {
			c.balancer = &p.balancer
		} else {
			c.balancer = new(router.Balancer)
		}
		log := o.Logger
		if len(cfg.Clusters) > 0 {
			log = log.With("cluster", cc.Name)
		}
		c.monitor = topology.NewMonitor(monitorConfigFor(cfg, cc), log)
		c.monitor.Watch(p.abortOnLoss)
		c.monitor.Watch(p.forgetLostPositions)
		c.failover, err = failover.NewManager(failoverConfigFor(cfg, cc), c.monitor, p.store.Cluster(cc.Name), p, log)
		if err != nil {
			p.store.Close()
			return nil, fmt.Errorf("failover.state_file: %w", err)
		}
		name := cc.Name
		c.failover.SetBeforeSwitchover(func(ctx context.Context) error { return p.stopMovesOn(ctx, name) })
		c.env = &clusterEnv{Proxy: p, c: c}
		p.clusters = append(p.clusters, c)
		p.byName[cc.Name] = c
	}
	p.monitor, p.failover = p.clusters[0].monitor, p.clusters[0].failover
	p.publish(p.rt.Load())
	if err := p.loadPlacement(cfg); err != nil {
		p.store.Close()
		return nil, err
	}
	return p, nil
}

func failoverConfig(cfg *config.Config) failover.Config {
	return failoverConfigFor(cfg, cfg.ClusterList()[0])
}

func failoverConfigFor(cfg *config.Config, cl config.Cluster) failover.Config {
	f := cl.Failover
	fc := failover.Config{
		Auto: f.Auto, MaxLag: f.MaxLag.D(), MaxCatchup: f.MaxCatchup.D(), HoldTimeout: f.HoldTimeout.D(),
		DrainTimeout: f.DrainTimeout.D(), MinInterval: f.MinInterval.D(),
		MonitorUser: cfg.Monitor.User, MonitorPassword: cfg.Monitor.Secret(),
		ReplUser: f.Replication.User, ReplPassword: f.Replication.Secret(),
		Timeout: cl.Health.Timeout.D(), Hooks: cfg.HooksConfig(),
	}
	if len(cfg.Clusters) > 0 {
		fc.Hooks, fc.Cluster = hooksConfig(f.Hooks), cl.Name
	}
	for _, s := range cl.Servers {
		fc.Servers = append(fc.Servers, failover.Server{Name: s.Name, Addr: s.Address, NoPromotion: s.NoPromotion, Priority: s.Priority})
	}
	return fc
}

// FailoverReport is the failover manager's state (metrics).
func (p *Proxy) FailoverReport() failover.Report { return p.failover.Report() }

// CausalCounts reports causal reads by outcome, for the metrics.
func (p *Proxy) CausalCounts() map[string]uint64 {
	out := p.causal.Counts()
	for _, c := range p.clusters {
		if c.causal != &p.causal {
			for k, n := range c.causal.Counts() {
				out[k] += n
			}
		}
	}
	return out
}

// Failover is the failover manager (admin API).
func (p *Proxy) Failover() *failover.Manager { return p.failover }

// InFlight, AbortPinned and CloseIdle implement failover.Traffic.

// InFlight counts the connections lent from server's pool, less those
// idle sessions hold between statements outside a transaction: those will
// not finish by themselves (AbortPinned ends them). A connection taken for
// a statement that has not started yet still counts, so a drain cannot
// miss it.
func (p *Proxy) InFlight(server string) int64 {
	pool := p.Pool(server)
	if pool == nil {
		return 0
	}
	n := pool.InUse.Load()
	p.sessions.Range(func(_, v any) bool {
		if v.(*session.Session).IdlePinned(server) {
			n--
		}
		return true
	})
	return max(n, 0)
}

func (p *Proxy) AbortPinned(server, msg string) int {
	n := 0
	p.sessions.Range(func(_, v any) bool {
		if v.(*session.Session).AbortPinned(server, msg) {
			n++
		}
		return true
	})
	return n
}

func (p *Proxy) CloseIdle(server string) {
	if pool := p.Pool(server); pool != nil {
		pool.CloseIdle()
	}
}

// forgetLostPositions drops what causal reads learned of a server that
// went down: it may come back restored from a backup, with less applied.
func (p *Proxy) forgetLostPositions(old, cur *topology.Snapshot) {
	for i := range cur.Servers {
		s := &cur.Servers[i]
		if was, ok := old.ByName(s.Name); ok && was.Up && !s.Up {
			for _, c := range p.clusters {
				c.causal.Forget(s.Name)
			}
		}
	}
}

// abortOnLoss interrupts statements running on a server that just went
// down or into maintenance, so no client waits on a frozen server longer
// than the monitor takes to notice; reads among them are retried elsewhere.
func (p *Proxy) abortOnLoss(old, cur *topology.Snapshot) {
	for i := range cur.Servers {
		s := &cur.Servers[i]
		was, ok := old.ByName(s.Name)
		if !ok {
			continue
		}
		lost := was.Up && !s.Up
		maint := was.Admin != topology.AdminMaintenance && s.Admin == topology.AdminMaintenance
		if !lost && !maint {
			continue
		}
		n := 0
		p.sessions.Range(func(_, v any) bool {
			if v.(*session.Session).AbortOn(s.Name) {
				n++
			}
			return true
		})
		if n > 0 {
			p.log.Warn("aborted statements on a lost server", "server", s.Name, "statements", n)
		}
		if maint {
			if pool := p.Pool(s.Name); pool != nil {
				pool.CloseIdle()
			}
		}
	}
}

// SetAdmin puts a server in drain or maintenance, or back in rotation. The
// state survives reloads.
func (p *Proxy) SetAdmin(server string, st topology.AdminState) error {
	mon := p.monitor
	if c := p.byName[p.ClusterOf(server)]; c != nil {
		mon = c.monitor
	}
	if !mon.SetAdmin(server, st) {
		return fmt.Errorf("no server named %q", server)
	}
	p.log.Info("operator state changed", "server", server, "state", string(st))
	return nil
}

// ReloadFile re-reads the configuration through Options.Load and applies
// it. Reloads are serialised; an invalid file changes nothing.
func (p *Proxy) ReloadFile() error {
	if p.load == nil {
		return errors.New("this sluice was not started from a configuration file")
	}
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	cfg, err := p.load()
	if err == nil {
		err = p.Reload(cfg)
	}
	if err != nil {
		p.log.Error("reload refused; the running configuration stays", "err", err)
	}
	if p.onReload != nil {
		p.onReload(cfg, err)
	}
	return err
}

// SetObserver replaces the statement observer; call it before Start.
func (p *Proxy) SetObserver(o session.Observer) {
	p.observer = o
	p.publish(p.rt.Load())
}

// ClientConns returns the client connections open now and accepted since
// start.
func (p *Proxy) ClientConns() (current int64, total uint64) {
	return p.connsOpen.Load(), p.connsTotal.Load()
}

func (p *Proxy) build(cfg *config.Config, old *runtime) (*runtime, error) {
	rt := &runtime{cfg: cfg, accounts: map[string]session.Account{}, pools: map[string]*backend.Pool{}, policies: map[string]*router.Policy{}}
	for _, u := range cfg.Users {
		rt.accounts[u.Name] = session.Account{Name: u.Name, Password: u.Secret(), AuthPlugin: u.AuthPlugin}
	}
	rt.policy = router.Policy{
		ReadYourWrites: cfg.Routing.ReadYourWrites.Window,
		FallbackError:  cfg.Routing.ReadFallback == "error",
		Balance:        cfg.Routing.Balance,

		Consistency:         router.ParseConsistency(cfg.Routing.Consistency),
		CausalTimeout:       cfg.Routing.CausalTimeout.D(),
		CausalFallbackError: cfg.Routing.CausalFallback == "error",
		Causal:              &p.causal,
	}
	for i, cl := range cfg.ClusterList() {
		pol := rt.policy
		if i > 0 || len(cfg.Clusters) > 0 {
			r := cl.Routing
			pol = router.Policy{
				ReadYourWrites: r.ReadYourWrites.Window, FallbackError: r.ReadFallback == "error", Balance: r.Balance,
				Consistency: router.ParseConsistency(r.Consistency), CausalTimeout: r.CausalTimeout.D(),
				CausalFallbackError: r.CausalFallback == "error", Causal: p.tracker(cl.Name),
			}
		}
		if i == 0 {
			rt.policy = pol
			rt.policies[cl.Name] = &rt.policy
		} else {
			rt.policies[cl.Name] = &pol
		}
	}
	rt.limits = session.Limits{
		Handshake:        cfg.Timeouts.Handshake.D(),
		ClientIdle:       cfg.Timeouts.ClientIdle.D(),
		Query:            cfg.Timeouts.Query.D(),
		ClientWrite:      cfg.Timeouts.ClientWrite.D(),
		ClientRead:       cfg.Timeouts.ClientRead.D(),
		WarningsPin:      cfg.Timeouts.WarningsPin.D(),
		MaxAllowedPacket: int(cfg.MaxAllowedPacket),
		MaxLongData:      int(cfg.MaxLongData),
	}
	if cfg.Failover.TransactionReplay {
		rt.limits.ReplayMaxSize = int(cfg.Failover.ReplayMaxSize)
	}
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		rt.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	for _, s := range cfg.Servers {
		settings := backend.Settings{
			MaxConns: s.MaxConnections, MaxIdle: cfg.Pool.MaxIdle,
			IdleTimeout: cfg.Pool.IdleTimeout.D(), MaxLifetime: cfg.Pool.MaxLifetime.D(),
			ConnectTimeout: cfg.Timeouts.Connect.D(), WaitTimeout: cfg.Timeouts.PoolWait.D(),
			QueryTimeout: syncTimeout(cfg),
		}
		if old != nil {
			if op := old.pools[s.Name]; op != nil && op.Addr == s.Address && op.SameLimit(settings) && !op.Closed() {
				op.Update(settings)
				rt.pools[s.Name] = op
				continue
			}
		}
		rt.pools[s.Name] = backend.NewPool(s.Name, s.Address, settings)
	}
	return rt, nil
}

func monitorConfigFor(cfg *config.Config, cl config.Cluster) topology.Config {
	mc := topology.Config{
		User: cfg.Monitor.User, Password: cfg.Monitor.Secret(),
		Interval: cl.Health.Interval.D(), Timeout: cl.Health.Timeout.D(),
		Rise: cl.Health.Rise, Fall: cl.Health.Fall,
		MaxLag: cl.Routing.MaxReplicationLag.D(), HeartbeatTable: cl.Routing.HeartbeatTable,
	}
	for _, s := range cl.Servers {
		mc.Servers = append(mc.Servers, topology.ServerConfig{Name: s.Name, Addr: s.Address, Backup: s.Backup, Weight: s.Weight, MaxConn: s.MaxConnections})
	}
	return mc
}

// Start checks the servers once, so the first clients find a primary, then
// listens and serves in the background.
func (p *Proxy) Start(ctx context.Context) error {
	cfg := p.rt.Load().cfg
	lns, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	p.lns, p.cancel = lns, cancel
	p.mu.Unlock()
	var firsts []<-chan struct{}
	for _, c := range p.clusters {
		firsts = append(firsts, c.monitor.Subscribe())
		go c.monitor.Run(ctx)
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			c.failover.Run(ctx)
		}()
	}
	wait := time.After(cfg.Health.Timeout.D() + time.Second)
	for _, first := range firsts {
		select {
		case <-first:
		case <-wait:
		}
	}
	go p.reap(ctx)
	var accepting sync.WaitGroup
	for _, ln := range lns {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			p.accept(ctx, ln)
		}()
		p.log.Info("sluice listening", "addr", ln.Addr().String(), "fd_limit", p.fdLimit, "max_client_connections", p.maxClients.Load())
	}
	go func() {
		accepting.Wait()
		close(p.done)
	}()
	return nil
}

// Addr is the address of the first MySQL listener.
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lns) == 0 {
		return nil
	}
	return p.lns[0].Addr()
}

// Addrs are the addresses of every MySQL listener, in configuration order.
func (p *Proxy) Addrs() []net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]net.Addr, len(p.lns))
	for i, ln := range p.lns {
		out[i] = ln.Addr()
	}
	return out
}

func (p *Proxy) accept(ctx context.Context, ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(p.acceptFailed(err))
			continue
		}
		if p.refuseOverLimit(nc) {
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		id := p.nextID.Add(1)
		s := session.New(id, nc, p)
		p.sessions.Store(id, s)
		p.active.Add(1)
		p.connsOpen.Add(1)
		p.connsTotal.Add(1)
		go func() {
			defer p.active.Done()
			defer p.connsOpen.Add(-1)
			defer p.sessions.Delete(id)
			s.Serve(ctx)
		}()
	}
}

func (p *Proxy) reap(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, pool := range p.rt.Load().pools {
				pool.Reap()
			}
		}
	}
}

// Close stops listening, ends every session and closes the pools.
func (p *Proxy) Close() error {
	p.mu.Lock()
	lns, cancel := p.lns, p.cancel
	p.mu.Unlock()
	if lns == nil {
		return p.store.Close()
	}
	for _, ln := range lns {
		ln.Close() // a Unix socket's file goes with it
	}
	p.stopMoves()
	// A primary change in progress finishes first: the sessions it holds
	// are released to the new primary, and the topology is never left
	// half changed.
	for _, c := range p.clusters {
		fc := failoverConfigFor(p.rt.Load().cfg, c.config(p.rt.Load().cfg))
		c.failover.Close(fc.ChangeBound())
	}
	cancel()
	<-p.done
	p.bg.Wait()
	p.sessions.Range(func(_, v any) bool {
		v.(*session.Session).Kill()
		return true
	})
	p.active.Wait()
	session.StopIdleWorkers()
	for _, pool := range p.rt.Load().pools {
		pool.Close()
	}
	return p.store.Close()
}

// Reload applies a new, already validated configuration without dropping
// client connections: pools of unchanged servers are kept, removed servers'
// pools are drained (closed as their connections come back).
func (p *Proxy) Reload(cfg *config.Config) error {
	old := p.rt.Load()
	if !cfg.Listen.Equal(old.cfg.Listen) {
		return fmt.Errorf("listen cannot change at run time (%s -> %s); restart sluice", old.cfg.Listen, cfg.Listen)
	}
	if cfg.Failover.StateFile != old.cfg.Failover.StateFile {
		return fmt.Errorf("failover.state_file cannot change at run time (%s -> %s); restart sluice", old.cfg.Failover.StateFile, cfg.Failover.StateFile)
	}
	if !slices.Equal(cfg.ClusterNames(), old.cfg.ClusterNames()) {
		return fmt.Errorf("clusters cannot be added, removed or renamed at run time (%v -> %v); restart sluice", old.cfg.ClusterNames(), cfg.ClusterNames())
	}
	rt, err := p.build(cfg, old)
	if err != nil {
		return err
	}
	var retired []*backend.Pool
	for name, pool := range old.pools {
		if rt.pools[name] == pool {
			continue
		}
		retired = append(retired, pool)
		// A removed server keeps its pool, closed, for one generation: a
		// session that chose it from the previous snapshot finds it (a
		// read retries elsewhere if it is closed by then) rather than no
		// pool at all, and lent connections come back to it. The next
		// reload drops it.
		if _, configured := rt.pools[name]; !configured && !pool.Closed() {
			rt.pools[name] = pool
		}
	}
	p.publish(rt)
	p.applyLimits(cfg)
	for _, c := range p.clusters {
		cc := c.config(cfg)
		c.monitor.Update(monitorConfigFor(cfg, cc))
		c.failover.Update(failoverConfigFor(cfg, cc))
	}
	for _, pool := range retired {
		pool.Close()
	}
	p.log.Info("configuration reloaded", "servers", len(cfg.Servers), "users", len(cfg.Users))
	return nil
}

// Monitor exposes the topology monitor (admin API, tests).
func (p *Proxy) Monitor() *topology.Monitor { return p.monitor }

// Config returns the configuration in force.
func (p *Proxy) Config() *config.Config { return p.rt.Load().cfg }

// Sessions lists the current client sessions.
func (p *Proxy) Sessions() []session.Info {
	var out []session.Info
	p.sessions.Range(func(_, v any) bool {
		out = append(out, v.(*session.Session).Info())
		return true
	})
	return out
}

// PoolStats returns per-server pool counts.
func (p *Proxy) PoolStats() map[string]backend.Stats {
	out := map[string]backend.Stats{}
	for name, pool := range p.rt.Load().pools {
		out[name] = pool.Stats()
	}
	return out
}

// The methods below implement session.Env.

func (p *Proxy) Logger() *slog.Logger { return p.log }

func (p *Proxy) Account(name string) (session.Account, bool) {
	a, ok := p.rt.Load().accounts[name]
	return a, ok
}

func (p *Proxy) Snapshot() *topology.Snapshot { return p.monitor.Snapshot() }

// Runtime is the first cluster's: the proxy is the Env of a session
// that placement has not sent to a cluster (and of every session with
// one cluster).
func (p *Proxy) Runtime() *session.Runtime { return p.rt.Load().first }

// Pool is the pool of the server named, of any cluster.
func (p *Proxy) Pool(server string) *backend.Pool { return p.rt.Load().pools[server] }

func (p *Proxy) TLSConfig() *tls.Config { return p.rt.Load().tls }

func (p *Proxy) NextStmtKey() uint64 { return p.stmtKey.Add(1) }

func (p *Proxy) Lookup(id uint32) (*session.Session, bool) {
	v, ok := p.sessions.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*session.Session), true
}

// ServerVersion is what clients see in the handshake: the primary's own
// version string, so client libraries enable the same features they would
// against the server directly.
func (p *Proxy) ServerVersion() string {
	snap := p.monitor.Snapshot()
	if pr, ok := snap.PrimaryServer(); ok {
		if pool := p.Pool(pr.Name); pool != nil {
			if v := pool.ServerVersion(); v != "" {
				return v
			}
		}
		if pr.Version != "" {
			if strings.Contains(pr.Version, "MariaDB") {
				return "5.5.5-" + pr.Version
			}
			return pr.Version
		}
	}
	return "5.5.5-10.11.0-MariaDB-sluice"
}

// RSAKey returns the key for caching_sha2_password's key exchange: loaded
// from tls.rsa_key, or generated once on first use.
func (p *Proxy) RSAKey() (*rsa.PrivateKey, []byte, error) {
	p.rsaOnce.Do(func() {
		path := p.rt.Load().cfg.TLS.RSAKey
		if path != "" {
			p.rsaKey, p.rsaErr = loadRSAKey(path)
		} else {
			p.rsaKey, p.rsaErr = rsa.GenerateKey(rand.Reader, 2048)
		}
		if p.rsaErr == nil {
			der, err := x509.MarshalPKIXPublicKey(&p.rsaKey.PublicKey)
			p.rsaErr = err
			p.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		}
	})
	return p.rsaKey, p.rsaPEM, p.rsaErr
}

func loadRSAKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM data", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// SuspectPrimary implements session.PrimaryWatcher: a session could not
// reach the primary, so the failover manager holds writes for a failover
// at once rather than after the monitor's fall checks.
func (p *Proxy) SuspectPrimary(server string) (*topology.Hold, string) {
	return p.failover.Suspect(server)
}

// syncTimeout bounds the pool's state sync (schema, replayed SETs) on a
// connection it lends: sluice's own small statements, part of setting the
// connection up, so bounded like connecting rather than by timeouts.query
// (an hour by default), which would leave a session taking an idle
// connection to a frozen server waiting that long before its statement
// even starts.
func syncTimeout(cfg *config.Config) time.Duration {
	q, c := cfg.Timeouts.Query.D(), cfg.Timeouts.Connect.D()
	if c > 0 && (q <= 0 || c < q) {
		return c
	}
	return q
}
