// Package session serves one client connection: the server side of the
// handshake, the command loop, the session state that must follow the
// client from backend to backend, and prepared statements under sluice's
// own ids.
package session

import (
	"crypto/rsa"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Account is a user that may log in.
type Account struct {
	Name       string
	Password   string
	AuthPlugin string
}

// Limits are the timeouts and sizes a session obeys.
type Limits struct {
	Handshake        time.Duration
	ClientIdle       time.Duration
	Query            time.Duration
	ClientWrite      time.Duration
	ClientRead       time.Duration // rest of a command packet, LOCAL INFILE packets
	WarningsPin      time.Duration // idle hold of a connection kept for SHOW WARNINGS
	MaxAllowedPacket int
	MaxLongData      int // COM_STMT_SEND_LONG_DATA buffered per session
	ReplayMaxSize    int // statement bytes kept per transaction for a replay; 0: no transaction replay
}

// Env is everything a session needs from the running proxy. The proxy
// implements it over its current (atomically swapped) configuration.
type Env interface {
	Logger() *slog.Logger
	Account(name string) (Account, bool)
	// Snapshot is the cluster's topology now: read afresh at every wait
	// for a primary change, so it is not part of the Runtime.
	Snapshot() *topology.Snapshot
	// Runtime is what the next statement runs with (see Runtime).
	Runtime() *Runtime
	TLSConfig() *tls.Config // nil: TLS not offered
	RSAKey() (*rsa.PrivateKey, []byte, error)
	ServerVersion() string
	NextStmtKey() uint64
	// Sessions registry, for KILL.
	Lookup(id uint32) (*Session, bool)
	// Logins is the failed-login throttle; nil means none.
	Logins() *LoginGuard
}

// Runtime is what one statement runs with, read once as it starts (and
// again if placement moves it to another cluster): the serving cluster's
// limits, routing policy, balancer and pools, and the observer, all from
// one configuration. A reload publishes a new Runtime; a statement under
// way keeps the one it started with, so it never mixes two
// configurations, and it makes no further calls into the proxy to find
// them. It is never modified once published.
type Runtime struct {
	Limits   Limits
	Policy   *router.Policy
	Balancer *router.Balancer
	Observer Observer
	Pools    map[string]*backend.Pool // by server name
}

// Pool is the pool of the server named, nil for one not configured.
func (r *Runtime) Pool(server string) *backend.Pool { return r.Pools[server] }

// Observer receives per-statement facts for metrics and digests. Calls are
// made on the session's goroutine after each statement; implementations
// must be cheap and must not block.
type Observer interface {
	Statement(s *Session, ev *Event)
	// Login reports the end of a client's login: ok is false when the
	// client was refused or left during the handshake.
	Login(ok bool)
}

// Event describes one finished client command.
type Event struct {
	Session  uint32
	User     string
	Schema   string
	Command  byte
	SQL      []byte // statement text (COM_QUERY, or the prepared statement's); aliases a buffer: valid only during the call
	Digest   uint64 // sqlscan.DigestHash(SQL) when already known (prepared statements, text queries), else 0
	Kind     string
	Target   string // "primary", "replica" or "" when answered by sluice
	Server   string
	Duration time.Duration
	Rows     int64  // rows sent
	Affected uint64 // rows affected
	BytesIn  int64  // command bytes sent to the server
	BytesOut int64  // response bytes relayed back
	Err      bool
	Start    time.Time
}

type nopObserver struct{}

func (nopObserver) Statement(*Session, *Event) {}
func (nopObserver) Login(bool)                 {}

// NopObserver discards events.
var NopObserver Observer = nopObserver{}
