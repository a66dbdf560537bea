// Package backend holds sluice's connections to MariaDB/MySQL servers: the
// client side of the handshake, per-server pools, and bringing a pooled
// connection to a session's state before it is lent.
package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// Capabilities sluice asks of every backend. Deprecate-EOF is left off on
// purpose: it changes the shape of result sets, and a pooled connection is
// shared by clients that did or did not ask for it, so they are forwarded
// unchanged only if neither side uses it. Session tracking is asked of
// MariaDB servers (see trackGTIDSQL) and offered to no client: it changes
// only OK packets, which the relay puts back into the untracked shape.
const baseCaps = wire.ClientLongPassword | wire.ClientLongFlag | wire.ClientProtocol41 |
	wire.ClientTransactions | wire.ClientSecureConnection | wire.ClientMultiStatements |
	wire.ClientMultiResults | wire.ClientPSMultiResults | wire.ClientPluginAuth |
	wire.ClientPluginAuthLenencClientData | wire.ClientLocalFiles | wire.ClientConnectWithDB |
	wire.ClientConnectAttrs

// DialOptions describe one backend login.
type DialOptions struct {
	Addr      string
	User      string
	Password  string
	Schema    string
	Collation byte
	FoundRows bool // the client asked for CLIENT_FOUND_ROWS; it changes affected-row counts
	Timeout   time.Duration
}

// Conn is one authenticated connection to a backend server.
type Conn struct {
	*wire.Conn
	ThreadID      uint32
	ServerVersion string
	Key           Key
	server        *Pool

	// State this connection is known to be in. schemaKnown is false after
	// COM_RESET_CONNECTION until the next USE.
	Schema       string
	schemaKnown  bool
	Collation    byte
	SetsHash     uint64
	LastInsertID uint64

	// TracksGTID: the server reports the GTID of each transaction this
	// connection commits (session tracking of last_gtid is in force).
	// canTrack: it negotiated session tracking. wantTrack: TrackGTIDs
	// turned it on, so it is turned on again after COM_RESET_CONNECTION.
	TracksGTID bool
	canTrack   bool
	wantTrack  bool

	stmts    map[StmtKey]*Stmt // server-side prepared statements, shared by text
	unused   int               // how many of them no client statement references
	stmtTick uint64            // LRU clock

	closeMu      sync.Mutex
	pendingClose []*Stmt     // references dropped while the connection was lent elsewhere
	queued       atomic.Bool // pendingClose is not empty

	created  time.Time
	lastUsed time.Time
	broken   bool
	closed   atomic.Bool

	// KillPending is set when a KILL QUERY was sent for this connection's
	// thread: the kill lands later, so the connection must not be lent to
	// another session whose statement it would interrupt.
	KillPending atomic.Bool
}

// Close closes the network connection.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// Closed reports whether Close was called.
func (c *Conn) Closed() bool { return c.closed.Load() }

// Broken marks the connection unusable: it is closed instead of pooled.
func (c *Conn) MarkBroken() { c.broken = true }

// IsBroken reports whether MarkBroken was called.
func (c *Conn) IsBroken() bool { return c.broken }

// Dial opens and authenticates a backend connection.
func Dial(ctx context.Context, o DialOptions) (*Conn, error) {
	d := net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", o.Addr, err)
	}
	if o.Timeout > 0 {
		nc.SetDeadline(time.Now().Add(o.Timeout))
	}
	c := &Conn{Conn: wire.NewConn(nc), stmts: map[StmtKey]*Stmt{}, created: time.Now()}
	if err := c.handshake(o); err != nil {
		nc.Close()
		return nil, fmt.Errorf("login to %s as %s: %w", o.Addr, o.User, err)
	}
	nc.SetDeadline(time.Time{})
	c.Schema, c.schemaKnown, c.Collation = o.Schema, true, o.Collation
	c.lastUsed = time.Now()
	return c, nil
}

func (c *Conn) handshake(o DialOptions) error {
	p, err := c.ReadPacket(0)
	if err != nil {
		return err
	}
	if wire.IsERR(p) {
		return wire.ParseError(p)
	}
	h, ok := wire.ParseHandshake(p)
	if !ok {
		return errors.New("server sent an unreadable handshake")
	}
	if h.Capabilities&wire.ClientProtocol41 == 0 {
		return errors.New("server does not speak protocol 4.1")
	}
	c.ThreadID, c.ServerVersion = h.ConnectionID, h.ServerVersion
	caps := baseCaps & (h.Capabilities | wire.ClientConnectWithDB)
	if o.FoundRows {
		caps |= wire.ClientFoundRows
	}
	if o.Schema == "" {
		caps &^= wire.ClientConnectWithDB
	}
	if h.Capabilities&wire.ClientSessionTrack != 0 && strings.Contains(h.ServerVersion, "MariaDB") {
		caps |= wire.ClientSessionTrack
		c.canTrack = true
		c.Conn.SessionTrack = true
	}
	plugin := h.AuthPlugin
	if plugin != wire.CachingSHA2Password {
		plugin = wire.NativePassword
	}
	scramble := h.Scramble
	resp := wire.HandshakeResponse{
		Capabilities: caps, MaxPacket: wire.MaxPayload, Collation: o.Collation,
		User: o.User, AuthResponse: authAnswer(plugin, scramble, o.Password),
		Database: o.Schema, AuthPlugin: plugin,
		Attributes: map[string]string{"program_name": "sluice"},
	}
	if o.Collation == 0 {
		resp.Collation = wire.DefaultCollation
	}
	if err := c.WriteFlush(wire.AppendHandshakeResponse(nil, resp)); err != nil {
		return err
	}
	for {
		p, err := c.ReadPacket(0)
		if err != nil {
			return err
		}
		switch {
		case wire.IsOK(p):
			return nil
		case wire.IsERR(p):
			return wire.ParseError(p)
		case len(p) > 0 && p[0] == 0xfe:
			sw, ok := wire.ParseAuthSwitch(p)
			if !ok {
				return errors.New("bad auth switch request")
			}
			switch sw.Plugin {
			case wire.NativePassword, wire.CachingSHA2Password:
			default:
				return fmt.Errorf("server asks for auth plugin %q, which sluice does not support", sw.Plugin)
			}
			plugin, scramble = sw.Plugin, sw.Data
			if err := c.WriteFlush(authAnswer(plugin, scramble, o.Password)); err != nil {
				return err
			}
		case wire.IsAuthMoreData(p) && plugin == wire.CachingSHA2Password:
			if len(p) < 2 {
				return errors.New("bad auth data")
			}
			switch p[1] {
			case wire.SHA2FastAuthOK:
				// OK packet follows.
			case wire.SHA2FullAuth:
				if _, isTLS := c.NC.(*tls.Conn); isTLS {
					if err := c.WriteFlush(append([]byte(o.Password), 0)); err != nil {
						return err
					}
					continue
				}
				if err := c.WriteFlush([]byte{wire.SHA2RequestPubKey}); err != nil {
					return err
				}
				kp, err := c.ReadPacket(0)
				if err != nil {
					return err
				}
				if !wire.IsAuthMoreData(kp) {
					return errors.New("server did not send its public key")
				}
				pub, err := wire.ParsePublicKeyPEM(kp[1:])
				if err != nil {
					return err
				}
				enc, err := wire.EncryptPassword(pub, scramble, o.Password)
				if err != nil {
					return err
				}
				if err := c.WriteFlush(enc); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unexpected caching_sha2_password state %d", p[1])
			}
		default:
			return errors.New("unexpected packet during login")
		}
	}
}

// trackGTIDSQL makes the server report, in the OK packet of each statement
// that commits, the GTID it gave the transaction (MariaDB's last_gtid), so
// sluice learns a write's position without asking. The schema tracker,
// on by default, is turned off: nothing reads it.
const trackGTIDSQL = "SET session_track_system_variables='last_gtid', session_track_schema=OFF"

// TrackGTIDs turns on GTID tracking, once per connection: sluice does so
// when a connection first serves the primary, the only server whose
// commits it needs to know; replica connections never pay for it. A
// server that refuses it (no last_gtid) is left untracked; only a
// network failure is an error.
func (c *Conn) TrackGTIDs(timeout time.Duration) error {
	if !c.canTrack || c.TracksGTID {
		return nil
	}
	if _, err := c.Exec(trackGTIDSQL, timeout); err != nil {
		if c.broken {
			return fmt.Errorf("enable session tracking: %w", err)
		}
		c.canTrack = false
		return nil
	}
	c.TracksGTID, c.wantTrack = true, true
	return nil
}

// retrackSQL returns what turns GTID tracking back on after the session
// variables were reset, or "".
func (c *Conn) retrackSQL() string {
	if c.wantTrack && !c.TracksGTID {
		return trackGTIDSQL + ";"
	}
	return ""
}

func authAnswer(plugin string, scramble []byte, password string) []byte {
	if len(scramble) < 20 {
		return nil
	}
	if plugin == wire.CachingSHA2Password {
		return wire.CachingSHA2Hash(scramble, password)
	}
	return wire.NativePasswordHash(scramble, password)
}

// Exec runs a statement whose result the caller does not need (all result
// sets are drained) and returns the server's error, if any.
func (c *Conn) Exec(sql string, timeout time.Duration) (wire.Result, error) {
	buf := make([]byte, 0, 1+len(sql))
	buf = append(buf, wire.ComQuery)
	buf = append(buf, sql...)
	return c.Command(buf, wire.ModeText, timeout)
}

// Command sends one command and drains its response.
func (c *Conn) Command(payload []byte, mode wire.RelayMode, timeout time.Duration) (wire.Result, error) {
	c.SetWriteTimeout(timeout)
	if err := c.WriteCommand(payload); err != nil {
		c.broken = true
		return wire.Result{}, err
	}
	res, err := wire.Relay(nil, c.Conn, mode, timeout, 0)
	if err != nil {
		c.broken = true
		return res, err
	}
	if res.LocalInfile {
		// Nobody asked for a file here: refuse it with an empty packet.
		c.WritePacket(nil)
		c.Flush()
		res, err = wire.Relay(nil, c.Conn, mode, timeout, 0)
		if err != nil {
			c.broken = true
		}
	}
	if err == nil && res.Err != nil {
		return res, res.Err
	}
	return res, err
}
