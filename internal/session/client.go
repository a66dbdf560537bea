package session

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// client is the side of a session that both the command loop (Session)
// and its Engine work on: the client connection and who logged in on it,
// how sluice answers there (ok, fail), and the record of the running
// statement that KILL and a lost server read from other goroutines.
type client struct {
	ID  uint32
	log *slog.Logger
	c   *wire.Conn
	// home is the proxy's Env, homeRT its Runtime as the current command
	// began: what the loop needs (accounts, TLS, limits, the observer) is
	// the same whichever cluster the engine sends a statement to.
	home   Env
	homeRT *Runtime
	sess   *Session // for observers, and KILL's "is it this session"
	eng    Engine   // ok and the loop's own packets report its status

	account   Account
	caps      uint32
	multiStmt bool

	// Shared with other goroutines (the admin API, KILL, a lost server);
	// mu also guards the Session's info.
	mu        sync.Mutex
	active    *backend.Conn // lent connection while a command runs
	activeSrv string
	current   []byte
	// abort is set by AbortPinned from another goroutine: the session's
	// work on that server was cut by a primary change.
	abort atomic.Pointer[abortNote]
}
