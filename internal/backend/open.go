package backend

import (
	"net"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// Open wraps a connection whose login is already done. Dial is the way to
// a server; Open lets the packages above this one drive their logic over
// a net.Pipe in unit tests, with the few packets it reads.
func Open(nc net.Conn) *Conn {
	now := time.Now()
	return &Conn{Conn: wire.NewConn(nc), stmts: map[StmtKey]*Stmt{}, created: now, lastUsed: now}
}
