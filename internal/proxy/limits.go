package proxy

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// RaiseFDLimit lifts the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does the same on Linux; doing it here makes it explicit and
// portable) and returns the limit in force, 0 if unknown.
func RaiseFDLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return lim.Cur
}

// fdReserve is the part of the descriptor limit client connections never
// take: the admin API's connections, per server a monitor, a failover and a
// KILL connection plus one spare, and a margin for files (state file, slow
// log, TLS keys) and the listeners.
func fdReserve(cfg *config.Config) uint64 {
	return uint64(cfg.HTTPMaxConnections) + 4*uint64(len(cfg.Servers)) + 32
}

// clientLimit is max_client_connections, or when it is 0 the number the
// descriptor limit allows: each client connection may hold one backend
// connection, so each costs two descriptors (HAProxy sizes maxconn the
// same way). 0 means no limit (the descriptor limit is unknown).
func clientLimit(cfg *config.Config, fdLimit uint64) int64 {
	if cfg.MaxClientConnections > 0 {
		return int64(cfg.MaxClientConnections)
	}
	if fdLimit == 0 || fdLimit > 1<<40 {
		return 0
	}
	r := fdReserve(cfg)
	if fdLimit <= r+2 {
		return 1
	}
	return int64((fdLimit - r) / 2)
}

// MaxClientConnections is the client connection limit in force (0: none).
func (p *Proxy) MaxClientConnections() int64 { return p.maxClients.Load() }

// RefusedTooMany counts client connections refused with 1040.
func (p *Proxy) RefusedTooMany() uint64 { return p.refusedTooMany.Load() }

// Logins is the failed-login throttle (session.Env).
func (p *Proxy) Logins() *session.LoginGuard { return p.logins }

func loginSettings(cfg *config.Config) session.LoginSettings {
	return session.LoginSettings{MaxFailures: cfg.Login.MaxFailures, Block: cfg.Login.Block.D(), MaxBlock: cfg.Login.MaxBlock.D()}
}

// applyLimits publishes the limits of a (re)loaded configuration.
func (p *Proxy) applyLimits(cfg *config.Config) {
	p.maxClients.Store(clientLimit(cfg, p.fdLimit))
	if p.logins == nil {
		p.logins = session.NewLoginGuard(loginSettings(cfg))
	} else {
		p.logins.Update(loginSettings(cfg))
	}
}

// refuseOverLimit answers a connection beyond max_client_connections with
// error 1040 in place of the greeting, as the server does, and closes it.
// It reports whether nc was refused.
func (p *Proxy) refuseOverLimit(nc net.Conn) bool {
	max := p.maxClients.Load()
	if max <= 0 || p.connsOpen.Load() < max {
		return false
	}
	p.refusedTooMany.Add(1)
	go func() {
		// Pre-handshake: no SQLSTATE marker, sequence 0. Bounded, so a
		// client that does not read cannot hold the descriptor.
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		msg := "Too many connections (sluice max_client_connections)"
		pkt := make([]byte, 4, 4+3+len(msg))
		code := wire.ErrConCount
		pkt = append(pkt, 0xff, byte(code), byte(code>>8))
		pkt = append(pkt, msg...)
		n := len(pkt) - 4
		pkt[0], pkt[1], pkt[2], pkt[3] = byte(n), byte(n>>8), byte(n>>16), 0
		nc.Write(pkt)
		nc.Close()
	}()
	p.noteRefused()
	return true
}

// acceptLog says once per interval what floods of accept failures or
// refusals would otherwise say thousands of times a second.
type acceptLog struct {
	mu      sync.Mutex
	last    time.Time
	errs    int
	refused int
}

const acceptLogInterval = 10 * time.Second

func (p *Proxy) noteRefused() {
	a := &p.acceptLog
	a.mu.Lock()
	a.refused++
	if time.Since(a.last) < acceptLogInterval {
		a.mu.Unlock()
		return
	}
	a.last = time.Now()
	n := a.refused
	a.refused = 0
	a.mu.Unlock()
	p.log.Warn("client connections refused: max_client_connections reached (error 1040)",
		"max_client_connections", p.maxClients.Load(), "refused_since_last_line", n)
}

// acceptFailed logs a failed accept at most once per interval and returns
// how long to wait before the next one. Running out of descriptors
// (EMFILE/ENFILE) is logged with the limit; the pause lets sessions end.
func (p *Proxy) acceptFailed(err error) time.Duration {
	a := &p.acceptLog
	a.mu.Lock()
	a.errs++
	if time.Since(a.last) < acceptLogInterval {
		a.mu.Unlock()
		return 50 * time.Millisecond
	}
	a.last = time.Now()
	n := a.errs
	a.errs = 0
	a.mu.Unlock()
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		p.log.Error("accept: out of file descriptors; lower max_client_connections or raise the limit (ulimit -n)",
			"err", err, "fd_limit", p.fdLimit, "max_client_connections", p.maxClients.Load(), "failures_since_last_line", n)
	} else {
		p.log.Warn("accept", "err", err, "failures_since_last_line", n)
	}
	return 50 * time.Millisecond
}
