package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Session is one client connection: the handshake, the command loop and
// what other goroutines may see of it. The commands themselves run in its
// Engine (engine.go), which the loop reaches only through that interface;
// the two share the client side (client.go) and nothing else.
type Session struct {
	*client

	raw  net.Conn // the accepted connection, for Kill from other goroutines
	addr string

	scramble         []byte
	failedChangeUser int    // failed COM_CHANGE_USER attempts (see changeUser)
	loginCause       string // why sluice refused the login (see loginCauseOf)

	ctx         context.Context // Serve's, for the steps run on workers
	work        step            // the step being run on a worker
	lastCommand time.Time       // when the previous command ended

	// Shared with the admin API and KILL from other sessions, under mu.
	info       Info        // copy of session fields for other goroutines, refreshed per command
	idle       atomic.Bool // true while waiting for the client's next command: info is fresh then
	pubAccount Account     // the account, for KILL QUERY from other goroutines
	started    time.Time
	killed     atomic.Bool
	closeOnce  sync.Once
}

// abortNote: soft marks a session that was only pinned for the statement
// after a warning (pinNext) and idle: nothing of its state matters, so it
// drops the connection and routes its next statement as usual.
type abortNote struct {
	server, msg string
	soft        bool
}

// New prepares a session for an accepted connection.
func New(id uint32, nc net.Conn, env Env) *Session {
	addr := nc.RemoteAddr().String()
	if la, ok := nc.LocalAddr().(*net.UnixAddr); ok {
		addr = "unix:" + la.Name // a socket peer has no address of its own
	}
	cl := &client{ID: id, log: env.Logger().With("session", id, "client", addr), c: wire.NewLendingConn(nc), home: env, homeRT: env.Runtime()}
	s := &Session{client: cl, raw: nc, addr: addr, started: time.Now()}
	cl.sess = s
	cl.eng = newEngine(cl)
	return s
}

// Info is a view of a session for the admin API.
type Info struct {
	ID        uint32 `json:"id"`
	User      string `json:"user"`
	Schema    string `json:"schema"`
	Client    string `json:"client"`
	Pinned    string `json:"pinned_to,omitempty"`
	InTxn     bool   `json:"in_transaction"`
	pins      pinReason
	Statement string    `json:"statement,omitempty"`
	Server    string    `json:"server,omitempty"`
	Started   time.Time `json:"started"`
}

// Info returns a snapshot of the session. Fields owned by the session
// goroutine are read without its cooperation and may be a statement old.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.info
	in.ID, in.Client, in.Started, in.Statement, in.Server = s.ID, s.addr, s.started, string(s.current), s.activeSrv
	return in
}

// publishInfo refreshes what other goroutines may read; called by the
// session goroutine only.
func (s *Session) publishInfo() {
	s.mu.Lock()
	v := s.eng.View()
	s.info.User, s.info.Schema, s.info.Pinned, s.info.InTxn, s.info.pins = s.account.Name, v.Schema, v.Pinned, v.InTxn, v.pins
	s.pubAccount = s.account
	s.idle.Store(true)
	s.mu.Unlock()
}

// Serve runs the session until the client leaves or an unrecoverable error.
// A panic is contained here, logged with its stack, and ends only this
// session.
func (s *Session) Serve(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panic", "panic", r, "stack", string(debug.Stack()))
		}
		s.cleanup()
	}()
	s.ctx = ctx
	st := &s.work
	st.done = make(chan struct{}, 1)
	st.fn = s.handshakeStep
	if err := s.onWorker(st); err != nil {
		return
	}
	st.fn = s.commandStep
	for {
		// Waiting for the next command holds no buffers, on a goroutine
		// that does nothing else (see worker.go): anything that needs a
		// deeper stack than this wait runs in the steps.
		// awaitCommand also ends a warnings-only pin of a session that
		// stays idle, and bounds a command that stalls mid-packet.
		s.homeRT = s.home.Runtime() // a reload may have changed client_idle
		err := s.awaitCommand(s.homeRT.Limits)
		switch {
		case err != nil:
		case time.Since(s.lastCommand) < hotWindow:
			// A client that sends command after command: its stack is
			// needed anyway, and the handoff would cost two switches.
			err = s.commandStep()
		default:
			err = s.onWorker(st)
		}
		s.lastCommand = time.Now()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, errQuit) && !s.killed.Load() {
				s.log.Debug("session ended", "err", err)
			}
			return
		}
	}
}

var errQuit = errors.New("client quit")

// awaitCommand waits for the first bytes of the client's next command
// under the idle timeout. A connection the session keeps only for a
// possible SHOW WARNINGS goes back to the pool once the session has been
// idle for WarningsPin: a thousand idle sessions that each hit a warning
// must not hold a thousand backend threads. A command that started
// arriving but is not yet whole must arrive within ClientRead: a client
// that stalls mid-packet would otherwise hold its buffer (up to
// max_allowed_packet) until client_idle. A command that arrived whole, the
// common case, costs no extra deadline.
func (s *Session) awaitCommand(lim Limits) error {
	if n := s.c.R.Buffered(); n >= 4 {
		s.boundRestOfPacket(lim)
		return nil
	}
	idle := lim.ClientIdle
	if lim.WarningsPin > 0 && lim.WarningsPin < idle && s.eng.WarningsOnly() {
		s.c.SetReadTimeout(lim.WarningsPin)
		if _, err := s.c.R.Peek(4); err == nil {
			s.boundRestOfPacket(lim)
			return nil
		} else if !wire.IsTimeout(err) {
			return err
		}
		s.eng.ReleaseWarnings()
		s.publishInfo()
		idle -= lim.WarningsPin
	}
	s.c.SetReadTimeout(idle)
	if _, err := s.c.R.Peek(4); err != nil {
		return err
	}
	s.boundRestOfPacket(lim)
	return nil
}

// boundRestOfPacket arms ClientRead when the command's header has arrived
// but not all of its payload.
func (s *Session) boundRestOfPacket(lim Limits) {
	h, err := s.c.R.Peek(4)
	if err != nil {
		return
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	if s.c.R.Buffered() < 4+n || n == wire.MaxPayload {
		s.c.SetReadTimeout(lim.ClientRead)
	}
}

// hotWindow: a command that arrives within it of the previous one's end
// runs on the session's goroutine; others run on a worker (see worker.go).
// The stack of a session that goes idle after a burst shrinks back at the
// next garbage collections.
const hotWindow = 20 * time.Millisecond

// onWorker runs a step on a worker. A panic there is contained there, and
// logged here with its stack: it ends only this session.
func (s *Session) onWorker(st *step) error {
	err := st.run()
	if st.pan != nil {
		s.log.Error("session panic", "panic", st.pan, "stack", string(st.stack))
		return errPanic
	}
	return err
}

var errPanic = errors.New("session panic")

func (s *Session) handshakeStep() error {
	if err := s.handshake(s.ctx); err != nil {
		s.log.Debug("handshake failed", "err", err)
		s.homeRT.Observer.Login(false)
		s.loginFailed(err)
		return err
	}
	s.homeRT.Observer.Login(true)
	s.log.Debug("logged in", "user", s.account.Name)
	s.waitNext()
	return nil
}

func (s *Session) commandStep() error {
	err := s.serveCommand(s.ctx)
	if err == nil {
		s.waitNext()
	}
	return err
}

// waitNext readies the session to wait for its next command: what other
// goroutines may read is published, and buffers go back to their pools.
func (s *Session) waitNext() {
	s.eng.CommandDone()
	s.publishInfo()
	s.c.Idle()
}

func (s *Session) serveCommand(ctx context.Context) error {
	s.homeRT = s.home.Runtime()
	s.eng.Begin()
	lim := s.homeRT.Limits
	s.c.Seq = 0
	if err := s.awaitCommand(lim); err != nil {
		return err
	}
	pkt, err := s.c.ReadPacket(lim.MaxAllowedPacket)
	s.c.Hold()
	if errors.Is(err, wire.ErrPacketTooLarge) {
		// The server closes the connection after 1153; so do we, but only
		// after saying why.
		s.countError(wire.ErrNetPacketTooLarge, CauseClient)
		s.c.WriteError(wire.Errorf(wire.ErrNetPacketTooLarge, "08S01",
			"Got a packet bigger than 'max_allowed_packet' bytes (limit %d)", lim.MaxAllowedPacket))
		return err
	}
	if err != nil {
		return err
	}
	s.idle.Store(false) // an atomic store: this runs for every command
	if len(pkt) == 0 {
		return s.fail(wire.Errorf(wire.ErrUnknownCom, "08S01", "Unknown command"))
	}
	// The read deadline stays armed: nothing reads from the client during
	// a command except LOCAL INFILE, which arms its own.
	switch pkt[0] {
	case wire.ComQuit:
		return errQuit
	case wire.ComPing:
		return s.ok(0, 0)
	case wire.ComQuery:
		return s.eng.Query(ctx, pkt)
	case wire.ComInitDB:
		return s.eng.InitDB(ctx, pkt)
	case wire.ComFieldList:
		return s.eng.FieldList(ctx, pkt)
	case wire.ComStatistics:
		return s.eng.Statistics(ctx, pkt)
	case wire.ComStmtPrepare:
		return s.eng.Prepare(ctx, pkt)
	case wire.ComStmtExecute:
		return s.eng.Execute(ctx, pkt)
	case wire.ComStmtFetch:
		return s.eng.Fetch(ctx, pkt)
	case wire.ComStmtClose:
		s.eng.CloseStmt(pkt)
		return nil
	case wire.ComStmtReset:
		return s.eng.ResetStmt(ctx, pkt)
	case wire.ComStmtSendLongData:
		s.eng.LongData(pkt)
		return nil
	case wire.ComSetOption:
		return s.setOption(pkt)
	case wire.ComResetConnection:
		s.eng.ResetConnection()
		return s.ok(0, 0)
	case wire.ComChangeUser:
		return s.changeUser(ctx, pkt)
	case wire.ComProcessKill:
		if len(pkt) < 5 {
			return s.fail(wire.Errorf(wire.ErrParse, "42000", "malformed COM_PROCESS_KILL"))
		}
		return s.eng.Kill(ctx, uint64(binary.LittleEndian.Uint32(pkt[1:])), false)
	default:
		return s.fail(wire.Errorf(wire.ErrUnknownCom, "08S01", "Unknown command %d: sluice does not support %s", pkt[0], commandName(pkt[0])))
	}
}

func commandName(c byte) string {
	switch c {
	case wire.ComBinlogDump, wire.ComBinlogDumpGTID:
		return "replication through the proxy (connect replicas to the primary directly)"
	case wire.ComRegisterSlave:
		return "COM_REGISTER_SLAVE"
	case wire.ComShutdown:
		return "COM_SHUTDOWN (run SHUTDOWN on the server)"
	case wire.ComDebug:
		return "COM_DEBUG"
	case wire.ComProcessInfo:
		return "COM_PROCESS_INFO (use SHOW PROCESSLIST)"
	case wire.ComRefresh:
		return "COM_REFRESH (use FLUSH statements)"
	}
	return "this command"
}

func (s *client) ok(affected, lastID uint64) error {
	s.c.SetWriteTimeout(s.homeRT.Limits.ClientWrite)
	return s.c.WriteFlush(wire.AppendOK(nil, wire.OK{AffectedRows: affected, LastInsertID: lastID, Status: s.eng.Status()}))
}

// fail answers the current command with an error; the session goes on.
func (s *client) fail(e *wire.Error) error {
	s.c.SetWriteTimeout(s.homeRT.Limits.ClientWrite)
	s.countError(e.Code, errCause(e))
	return s.c.WriteError(e)
}

func (s *Session) setOption(pkt []byte) error {
	if len(pkt) < 3 {
		return s.fail(wire.Errorf(wire.ErrParse, "42000", "malformed COM_SET_OPTION"))
	}
	switch binary.LittleEndian.Uint16(pkt[1:]) {
	case wire.OptionMultiStatementsOn:
		s.multiStmt = true
	case wire.OptionMultiStatementsOff:
		s.multiStmt = false
	default:
		return s.fail(wire.Errorf(wire.ErrUnknownCom, "08S01", "Unknown COM_SET_OPTION value"))
	}
	s.c.SetWriteTimeout(s.homeRT.Limits.ClientWrite)
	return s.c.WriteFlush(wire.AppendEOF(nil, 0, s.eng.Status()))
}

// Kill ends the session from another goroutine (KILL CONNECTION). It
// closes the accepted connection, not s.c.NC, which the session goroutine
// replaces during a TLS upgrade. The client connection is closed before
// the backend statement is interrupted: otherwise, on a loaded machine, the
// session can relay the server's 1317 to a client that must instead see
// its connection end.
func (s *Session) Kill() {
	s.killed.Store(true)
	s.raw.Close()
	s.KillQuery()
}

// KillQuery interrupts the statement the session is running, if any, with
// KILL QUERY on the backend through a separate connection.
func (s *Session) KillQuery() {
	s.mu.Lock()
	c, srv := s.active, s.activeSrv
	acc := s.pubAccount
	if c != nil {
		c.KillPending.Store(true)
	}
	s.mu.Unlock()
	if c == nil {
		return
	}
	s.killOnServerAs(srv, acc, c.ThreadID)
}

func (s *client) killOnServer(server string, thread uint32) {
	s.killOnServerAs(server, s.account, thread)
}

func (s *client) killOnServerAs(server string, acc Account, thread uint32) {
	// s.home's Runtime, not the engine's: this runs on other goroutines
	// too, and the engine's changes with the cluster serving the session.
	// The server may be any cluster's: the home runtime's pools are all of
	// them.
	rt := s.home.Runtime()
	pool := rt.Pool(server)
	if pool == nil {
		return
	}
	go killBackendQuery(pool.Addr, acc, thread, rt.Limits.Handshake)
}

func killBackendQuery(addr string, acc Account, thread uint32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	kc, err := backend.Dial(ctx, backend.DialOptions{Addr: addr, User: acc.Name, Password: acc.Password, Timeout: timeout})
	if err != nil {
		return err
	}
	defer kc.Close()
	_, err = kc.Exec(fmt.Sprintf("KILL QUERY %d", thread), timeout)
	return err
}

// setActive records the lent connection and the statement text while a
// command runs. sql aliases a buffer that stays unchanged until
// clearActive, so nothing is copied per statement; Info copies it.
func (s *client) setActive(c *backend.Conn, server string, sql []byte) {
	s.mu.Lock()
	s.active, s.activeSrv = c, server
	s.current = sql[:min(len(sql), 1024)]
	s.mu.Unlock()
}

func (s *client) clearActive() {
	s.mu.Lock()
	s.active, s.activeSrv, s.current = nil, "", nil
	s.mu.Unlock()
}

func (s *Session) cleanup() {
	s.closeOnce.Do(func() {
		// Its pinned connection goes back below; a drain must not count
		// it as idle-pinned too.
		s.idle.Store(false)
		// After a panic mid-statement the lent connection is still marked
		// active: give its slot back instead of leaking it.
		s.mu.Lock()
		c, srv := s.active, s.activeSrv
		s.active = nil
		s.mu.Unlock()
		s.eng.Close(c, srv)
		s.c.Close()
	})
}

// AbortPinned ends the session's transaction or pinned connection on
// server, if it has one, because the primary is moving away from it: the
// running statement (if any) is interrupted, and the session answers its
// current or next statement there with msg (error 1927) instead of a lost
// connection. It reports whether the session was affected.
func (s *Session) AbortPinned(server, msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	active := s.active != nil && s.activeSrv == server
	if !active && s.info.Pinned != server {
		return false
	}
	if active {
		// The server may have committed it before the cut: saying it
		// was rolled back could make the client apply it twice.
		msg += "; the statement that was running when it was cut may or may not have taken effect"
	}
	soft := !active && !s.info.InTxn && s.info.pins == pinNext
	s.abort.Store(&abortNote{server: server, msg: msg, soft: soft})
	if active {
		s.active.NC.Close()
	}
	return !soft
}

// IdlePinned reports whether the session holds a connection to server
// while it waits for its client, outside a transaction (temporary tables,
// user locks, a pending SHOW WARNINGS): nothing running there will finish,
// so a switchover's drain does not wait for it. From the end of a command
// until the session waits again it counts as busy: its info may be stale.
func (s *Session) IdlePinned(server string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle.Load() && s.info.Pinned == server && !s.info.InTxn
}

// takeAbort returns the abort note for server, consuming it.
func (s *client) takeAbort(server string) (*abortNote, bool) {
	n := s.abort.Swap(nil)
	if n == nil || n.server != server {
		return nil, false
	}
	return n, true
}

// AbortOn interrupts the statement the session is running if it runs on
// server, by closing that backend connection under it. Called from another
// goroutine when the server is lost; the session sees a backend error and
// retries a read elsewhere or reports the loss.
func (s *Session) AbortOn(server string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil || s.activeSrv != server {
		return false
	}
	s.active.NC.Close()
	return true
}

// Touches reports whether the session's engine has a statement running,
// or a transaction or pinned connection open, that touched any of objs.
// Safe from other goroutines (a move's hold polls it).
func (s *Session) Touches(objs []placement.Object) bool { return s.eng.Touches(objs) }
