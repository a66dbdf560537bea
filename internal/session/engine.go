package session

import (
	"context"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Engine runs a session's commands against the backends. The command
// loop (session.go) reads each packet from the client and hands it over
// whole, command byte first; the engine answers on the client connection,
// relaying the backend's response packet by packet (rows are never
// decoded). The loop keeps what is the client's — the handshake and
// authentication, the connection's options, idle and read deadlines, what
// other goroutines may see — and asks the engine only what this interface
// says. Today's one engine, engine below, splits reads from writes within
// the cluster the placement gives each statement; another way to run
// commands (sharding a statement, say) is another implementation, and the
// loop can be driven over a fake one.
type Engine interface {
	Query(ctx context.Context, pkt []byte) error      // COM_QUERY
	InitDB(ctx context.Context, pkt []byte) error     // COM_INIT_DB
	FieldList(ctx context.Context, pkt []byte) error  // COM_FIELD_LIST
	Statistics(ctx context.Context, pkt []byte) error // COM_STATISTICS
	Prepare(ctx context.Context, pkt []byte) error    // COM_STMT_PREPARE
	Execute(ctx context.Context, pkt []byte) error    // COM_STMT_EXECUTE
	Fetch(ctx context.Context, pkt []byte) error      // COM_STMT_FETCH
	ResetStmt(ctx context.Context, pkt []byte) error  // COM_STMT_RESET
	CloseStmt(pkt []byte)                             // COM_STMT_CLOSE: no answer
	LongData(pkt []byte)                              // COM_STMT_SEND_LONG_DATA: no answer
	Kill(ctx context.Context, id uint64, queryOnly bool) error

	// ResetConnection forgets the session's state (COM_RESET_CONNECTION,
	// COM_CHANGE_USER); the loop answers.
	ResetConnection()
	// UseSchema makes db the default schema, checked where it lives (the
	// login's database, COM_CHANGE_USER's).
	UseSchema(ctx context.Context, db string) *wire.Error
	Schema() string
	SetSchema(db string) // without a check: a failed COM_CHANGE_USER's way back
	Collation() byte
	SetCollation(c byte)
	// Status is the server status of packets the loop makes itself.
	Status() uint16

	// Begin is called as each command begins: the engine reads its
	// Runtime (a reload may have published another). CommandDone is
	// called after the command's answer.
	Begin()
	CommandDone()
	// WarningsOnly reports that the engine keeps a backend connection only
	// in case the next command reads the last one's warnings;
	// ReleaseWarnings gives it back (the client stayed idle).
	WarningsOnly() bool
	ReleaseWarnings()
	// View is what the admin API and KILL see of the engine's state.
	View() EngineView
	// Touches reports whether a statement running or a transaction or
	// pinned connection open touched any of objs (a move's hold asks it
	// from another goroutine).
	Touches(objs []placement.Object) bool
	// Close ends the engine with the session: active is the backend
	// connection lent to an interrupted command, if any.
	Close(active *backend.Conn, server string)
}

// EngineView is the engine's part of Info.
type EngineView struct {
	Schema string
	Pinned string
	InTxn  bool
	pins   pinReason
}

// engine is the read/write-splitting Engine. It embeds the client side
// it answers on (the connection, the account, the log, the record of the
// running statement KILL reads), not the Session: the loop is not its
// business.
type engine struct {
	*client

	env Env      // the serving cluster's (placement.go switches it)
	rt  *Runtime // env's, read as each command begins (see Runtime)

	primaryWaits  int  // waits for a failover by the current statement (see awaitPrimary)
	noPrimaryWait bool // the current acquire does not wait for a failover

	state        backend.State
	autocommit   bool
	inTxn        bool
	pins         pinReason
	names        connNames // temporary tables and text prepared statements behind pinTempTable, pinTextPrepare
	pinned       *backend.Conn
	pinnedServer string
	lastWrite    time.Time
	lastInsertID uint64
	pendingTxSet string // SET TRANSACTION …: applies to the next transaction only
	causal       causalState
	txn          *txnLog // the open transaction, kept for a replay (replay.go)

	stmtText   []byte // text of the prepared statement being executed, for events
	stmtDigest uint64 // digest hash of the statement being executed (prepared or text), computed once
	stmts      map[uint32]*stmt
	nextStmtID uint32
	cursors    int
	ev         Event           // the statement event, reused
	exec       execCtx         // the COM_STMT_EXECUTE being run
	execBuf    []byte          // an execute packet with parameter types added
	queuedOn   []*backend.Pool // pools with statement closes queued by dropStmt

	foundRowsNext bool // the pinNext pin is for FOUND_ROWS(), not only diagnostics
	longDataTotal int  // COM_STMT_SEND_LONG_DATA bytes buffered over all statements

	place placeState // clusters and placement (placement.go)
}

var _ Engine = (*engine)(nil)

func newEngine(s *client) *engine {
	return &engine{client: s, env: s.home, rt: s.homeRT, autocommit: true, stmts: map[uint32]*stmt{}, place: placeState{home: s.home}}
}

func (s *engine) Query(ctx context.Context, pkt []byte) error  { return s.query(ctx, pkt) }
func (s *engine) InitDB(ctx context.Context, pkt []byte) error { return s.initDB(ctx, pkt) }
func (s *engine) FieldList(ctx context.Context, pkt []byte) error {
	return s.forwardRead(ctx, pkt, wire.ModeFieldList)
}
func (s *engine) Statistics(ctx context.Context, pkt []byte) error {
	return s.forwardPrimary(ctx, pkt, wire.ModeSingle)
}
func (s *engine) Prepare(ctx context.Context, pkt []byte) error   { return s.stmtPrepare(ctx, pkt) }
func (s *engine) Execute(ctx context.Context, pkt []byte) error   { return s.stmtExecute(ctx, pkt) }
func (s *engine) Fetch(ctx context.Context, pkt []byte) error     { return s.stmtFetch(ctx, pkt) }
func (s *engine) ResetStmt(ctx context.Context, pkt []byte) error { return s.stmtReset(ctx, pkt) }
func (s *engine) CloseStmt(pkt []byte)                            { s.stmtClose(pkt) }
func (s *engine) LongData(pkt []byte)                             { s.stmtLongData(pkt) }
func (s *engine) Kill(ctx context.Context, id uint64, queryOnly bool) error {
	return s.kill(ctx, id, queryOnly)
}
func (s *engine) ResetConnection() { s.resetSession() }
func (s *engine) UseSchema(ctx context.Context, db string) *wire.Error {
	return s.useSchema(ctx, db)
}
func (s *engine) Schema() string      { return s.state.Schema }
func (s *engine) SetSchema(db string) { s.state.Schema = db }
func (s *engine) Collation() byte     { return s.state.Collation }
func (s *engine) SetCollation(c byte) { s.state.Collation = c }
func (s *engine) Begin()              { s.rt = s.env.Runtime() }
func (s *engine) CommandDone()        { s.placeDone() }
func (s *engine) Status() uint16      { return s.status() }
func (s *engine) WarningsOnly() bool  { return s.warningsPinOnly() }
func (s *engine) View() EngineView {
	return EngineView{Schema: s.state.Schema, Pinned: s.pinnedServer, InTxn: s.inTxn, pins: s.pins}
}

func (s *engine) ReleaseWarnings() {
	s.pins = 0
	s.unpinOrRelease(s.pinned, s.pinnedServer)
}

// status is the server status sluice reports in packets it makes itself.
func (s *engine) status() uint16 {
	var st uint16
	if s.autocommit {
		st |= wire.StatusAutocommit
	}
	if s.inTxn {
		st |= wire.StatusInTrans
	}
	return st
}

// warningsPinOnly reports whether the session holds its connection only so
// that a SHOW WARNINGS (or @@warning_count, GET DIAGNOSTICS) could read
// what the last statement left there.
func (s *engine) warningsPinOnly() bool {
	return s.pinned != nil && s.pins == pinNext && !s.inTxn && !s.foundRowsNext
}

func (s *engine) Close(active *backend.Conn, server string) {
	if active != nil && active != s.pinned {
		s.dropConn(active, server)
	}
	s.unpin(true)
	for id := range s.stmts {
		s.dropStmt(id)
	}
	s.sendQueuedCloses()
}
