package main

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/stats"
)

// observability owns the statistics of a running proxy: counters, digests,
// the slow query log file and the Graphite pusher. A reload may change the
// slow log file, the digest bound and the Graphite target.
type observability struct {
	st  *stats.Stats
	log *slog.Logger
	ctx context.Context

	mu       sync.Mutex
	slowFile string
	slowLog  io.WriteCloser
	graphite context.CancelFunc
	gkey     config.Graphite
}

func startObservability(ctx context.Context, cfg *config.Config, p *proxy.Proxy, log *slog.Logger) (*observability, error) {
	o := &observability{log: log, ctx: ctx}
	w, err := o.openSlowLog(cfg)
	if err != nil {
		return nil, err
	}
	o.st = stats.New(p, stats.OptionsFromConfig(cfg, w))
	p.SetObserver(o.st)
	o.startGraphite(cfg)
	return o, nil
}

func (o *observability) openSlowLog(cfg *config.Config) (io.Writer, error) {
	if !cfg.SlowQuery.Enabled() || cfg.SlowQuery.File == o.slowFile {
		return o.slowLog, nil
	}
	w, err := stats.OpenSlowLog(cfg.SlowQuery.File)
	if err != nil {
		return nil, err
	}
	if o.slowLog != nil {
		o.slowLog.Close()
	}
	o.slowFile, o.slowLog = cfg.SlowQuery.File, w
	return w, nil
}

func (o *observability) startGraphite(cfg *config.Config) {
	if cfg.Graphite == o.gkey {
		return
	}
	if o.graphite != nil {
		o.graphite()
		o.graphite = nil
	}
	o.gkey = cfg.Graphite
	if !cfg.Graphite.Enabled() {
		return
	}
	ctx, cancel := context.WithCancel(o.ctx)
	o.graphite = cancel
	go o.st.RunGraphite(ctx, cfg.Graphite.Address, cfg.Graphite.Prefix, cfg.Graphite.Interval.D())
	o.log.Info("pushing metrics to Graphite", "address", cfg.Graphite.Address, "interval", cfg.Graphite.Interval.D())
}

// reloaded is the proxy's OnReload hook.
func (o *observability) reloaded(cfg *config.Config, err error) {
	o.st.Reload(err == nil)
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	w, werr := o.openSlowLog(cfg)
	if werr != nil {
		o.log.Error("slow query log not reopened; keeping the previous one", "err", werr)
		w = o.slowLog
	}
	o.st.Update(stats.OptionsFromConfig(cfg, w))
	o.startGraphite(cfg)
}

func (o *observability) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.graphite != nil {
		o.graphite()
	}
	o.st.Close()
	if o.slowLog != nil {
		o.slowLog.Close()
	}
}
