package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Transaction replay: while a transaction is open on the primary, the
// session keeps what it sent (COM_QUERY text, COM_STMT_EXECUTE packets with
// their parameter types) and a checksum of each response it relayed. When
// the primary is lost or a switchover cuts the transaction, the session
// waits for the new primary as a write would, runs the statements there in
// a new transaction, and carries on only if every checksum matches: the
// client then cannot tell the new transaction from the old one, since
// everything it saw of the old one is what the new one shows. Anything
// else gives the client the error it got before replay existed.
//
// What is summed is what the client saw: column definitions, rows,
// affected rows, insert ids, the OK's info text and errors. Status flags,
// warning counts, EOF packets and session-state tracking are left out:
// they differ between servers holding the same data (see wire.ResultSum).
// Values a statement computed but the client never saw (NOW() or UUID()
// written into a row) come from the replay: an execution the client could
// equally have had. What cannot be proven equal is not recorded at all
// (see unreplayable), and neither is a transaction over
// failover.replay_max_size.

// Outcomes of a cut transaction, for ReplayObserver.
const (
	ReplayOK            = "ok"
	ReplayMismatch      = "mismatch"
	ReplayTooBig        = "too_big"
	ReplayNotReplayable = "not_replayable"
	ReplayFailed        = "failed"
	ReplayCommitUnknown = "commit_unknown"
)

// ReplayObserver is implemented by an Observer that counts transactions
// cut by a primary change, by outcome.
type ReplayObserver interface {
	TransactionReplay(result string)
}

func (s *engine) replayed(result string) {
	if o, ok := s.rt.Observer.(ReplayObserver); ok {
		o.TransactionReplay(result)
	}
}

// txnLog is what a session keeps of its open transaction on the primary.
// It is allocated at the session's first transaction and reused; sessions
// that never open one pay nothing.
type txnLog struct {
	on     bool   // entries hold a transaction open on server
	server string // where it runs
	result string // "": replayable; else why not (ReplayTooBig, ReplayNotReplayable)
	why    string // the detail of result, for the log
	buf    []byte // the statements' packets, back to back
	used   int    // bytes of buf that belong to entries
	texts  int    // bytes of the prepared statements' text the entries keep
	ents   []txnEntry
	sum    wire.ResultSum
	txSet  string // SET TRANSACTION sent before the first statement
	schema string // session state the transaction began under
	sets   uint64

	refused string // why the last cut transaction was not replayed, for its error

	staged bool     // the current statement is cur
	cur    txnEntry // the current statement, entered once answered
	ends   bool     // the current statement may end the transaction
	fresh  bool     // no transaction was open before it: it opens one
	begin  bool     // it is BEGIN / START TRANSACTION
}

type txnEntry struct {
	cmd    byte
	off, n int   // its packet in buf
	st     *stmt // COM_STMT_EXECUTE: the statement, to prepare it on the new primary
	text   int   // len(st.sql), counted against replay_max_size
	flags  sqlscan.Flags
	lastID uint64 // the session's LAST_INSERT_ID() before it ran
	sum    uint64
}

// entryCost is what an entry costs beyond its packet, counted against
// replay_max_size so that many tiny statements are bounded too.
const entryCost = 64

// mayOpenTxn reports whether a statement may run in, or open, a
// transaction: only those are recorded, so an autocommit session pays one
// test per statement.
func (s *engine) mayOpenTxn(st sqlscan.Statement) bool {
	return s.inTxn || !s.autocommit || st.Kind == sqlscan.KindBegin || st.Kind == sqlscan.KindBeginReadOnly
}

// txnStage records the statement about to be sent on c (to server) as part
// of the session's transaction, or starts a new record with it.
func (s *engine) txnStage(server string, routed router.Target, st sqlscan.Statement, pkt []byte) {
	max := s.rt.Limits.ReplayMaxSize
	l := s.txn
	if max <= 0 || routed != router.Primary {
		// Replay off, or a read-only transaction on a replica: losing a
		// replica is no primary change.
		if l != nil {
			l.on, l.staged = false, false
		}
		return
	}
	if l == nil {
		l = &txnLog{}
		s.txn = l
	}
	l.fresh = !s.inTxn
	if !s.inTxn || !l.on || l.server != server {
		l.reset(server)
		l.txSet, l.schema, l.sets = s.pendingTxSet, s.state.Schema, s.state.SetsHash
		if s.inTxn {
			// Opened by a statement not recorded (XA START, replay
			// turned on by a reload, a transaction begun on another
			// server): its start is unknown.
			l.spoil(ReplayNotReplayable, "the transaction began before sluice recorded it")
		}
	}
	l.begin = st.Kind == sqlscan.KindBegin || st.Kind == sqlscan.KindBeginReadOnly
	l.staged = true
	l.cur = txnEntry{cmd: pkt[0], flags: st.Flags, lastID: s.lastInsertID}
	l.ends = endsTxn(st)
	l.buf = l.buf[:l.used]
	if l.result != "" {
		return
	}
	if why := s.unreplayable(st, pkt); why != "" {
		l.spoil(ReplayNotReplayable, why)
		return
	}
	l.cur.off = len(l.buf)
	if pkt[0] == wire.ComStmtExecute {
		x := &s.exec
		l.cur.st = x.st
		l.buf = appendExecute(l.buf, pkt, x.st)
		// The entry keeps the statement, closed or not, for its text.
		l.cur.text = len(x.st.sql)
	} else {
		l.buf = append(l.buf, pkt...)
	}
	l.cur.n = len(l.buf) - l.cur.off
	if len(l.buf)+l.texts+l.cur.text+(len(l.ents)+1)*entryCost > max {
		l.spoil(ReplayTooBig, fmt.Sprintf("over failover.replay_max_size (%d bytes)", max))
	}
}

// arm returns the sum the response to the staged statement goes into, nil
// when it is not recorded.
func (l *txnLog) arm() *wire.ResultSum {
	if !l.staged || l.result != "" {
		return nil
	}
	l.sum.Reset()
	return &l.sum
}

// txnNote enters the staged statement once answered (res), or forgets the
// record when the transaction ended with it.
func (s *engine) txnNote() {
	l := s.txn
	l.staged = false
	if !s.inTxn || s.pinnedServer != l.server {
		l.reset("")
		return
	}
	l.on = true
	if l.result != "" {
		return
	}
	if l.sum.LocalInfile {
		l.spoil(ReplayNotReplayable, "LOAD DATA LOCAL INFILE: the file is not kept")
		return
	}
	l.cur.sum = l.sum.Sum64()
	l.texts += l.cur.text
	l.ents = append(l.ents, l.cur)
	l.used = len(l.buf)
}

func (l *txnLog) reset(server string) {
	l.on, l.server, l.result, l.why, l.refused = false, server, "", "", ""
	// A session keeps what a small transaction needs, so that the next
	// one records without allocating; a bigger one's buffers go, so that
	// idle sessions hold at most a few KiB each.
	if cap(l.buf) > 1<<10 {
		l.buf = nil
	}
	l.buf, l.used, l.texts = l.buf[:0], 0, 0
	clear(l.ents) // statements kept alive only by the record
	if cap(l.ents) > 32 {
		l.ents = nil
	}
	l.ents = l.ents[:0]
	l.txSet, l.schema, l.sets = "", "", 0
}

// spoil marks the transaction not replayable and lets go of what it kept.
func (l *txnLog) spoil(result, why string) {
	l.result, l.why = result, why
	l.buf, l.used, l.texts = l.buf[:0], 0, 0
	clear(l.ents)
	l.ents = l.ents[:0]
}

// endsTxn reports whether a statement may end the open transaction (or
// commit it implicitly): cut while it runs, its outcome is unknown, so it
// is never replayed. ROLLBACK is not among them: cut or not, the
// transaction is rolled back.
func endsTxn(st sqlscan.Statement) bool {
	switch st.Kind {
	case sqlscan.KindSelect, sqlscan.KindShow, sqlscan.KindWrite, sqlscan.KindSavepoint,
		sqlscan.KindDo, sqlscan.KindRollback, sqlscan.KindSetTransaction, sqlscan.KindKill:
		return st.Flags&(sqlscan.FlagMulti|sqlscan.FlagCompound) != 0
	}
	// COMMIT, DDL, BEGIN (it commits the open one), SET (autocommit=1),
	// LOCK/UNLOCK TABLES, CALL, EXECUTE, XA, FLUSH and the unknown.
	return true
}

// unreplayable says why a statement in a transaction keeps it from being
// replayed: what it did, or what it left, cannot be checked by comparing
// results, or lives outside the transaction.
func (s *engine) unreplayable(st sqlscan.Statement, pkt []byte) string {
	if pkt[0] != wire.ComQuery && pkt[0] != wire.ComStmtExecute {
		return "a command other than COM_QUERY and COM_STMT_EXECUTE"
	}
	if s.pins&^pinNext != 0 {
		return "the session holds connection state (temporary tables, locks, user variables, cursors)"
	}
	switch st.Kind {
	case sqlscan.KindSelect, sqlscan.KindShow, sqlscan.KindWrite, sqlscan.KindSavepoint,
		sqlscan.KindDo, sqlscan.KindBegin, sqlscan.KindBeginReadOnly, sqlscan.KindCommit, sqlscan.KindRollback:
	default:
		// SET and USE change the state the new connection is set up
		// with; the others run statements sluice does not follow.
		return "a " + st.Kind.String() + " statement"
	}
	const spoils = sqlscan.FlagMulti | sqlscan.FlagCompound | sqlscan.FlagGetLock | sqlscan.FlagReleaseLock |
		sqlscan.FlagReleaseAllLocks | sqlscan.FlagUserVarAssign | sqlscan.FlagInto | sqlscan.FlagCreateTemp |
		sqlscan.FlagDropTemp | sqlscan.FlagSequence | sqlscan.FlagSetsInsertID | sqlscan.FlagChain
	if f := st.Flags & spoils; f != 0 {
		// Locks and sequences live outside the transaction; INTO writes
		// files or variables; the rest is connection state.
		return "a statement with " + f.String()
	}
	if pkt[0] == wire.ComQuery && st.Kind == sqlscan.KindWrite && startsWithLoad(pkt[1:]) {
		return "LOAD DATA: the file may differ, or is not kept"
	}
	if pkt[0] == wire.ComStmtExecute {
		x := &s.exec
		if x.cursor {
			return "a cursor"
		}
		if len(x.st.longData) > 0 {
			return "COM_STMT_SEND_LONG_DATA parameters"
		}
	}
	return ""
}

func startsWithLoad(sql []byte) bool {
	sql = bytes.TrimLeft(sql, " \t\r\n(")
	return len(sql) >= 4 && bytes.EqualFold(sql[:4], []byte("LOAD"))
}

// appendExecute appends an execute packet with its parameter types, which
// a client sends only when they change: the new primary's statement needs
// them on its first execute.
func appendExecute(buf, pkt []byte, st *stmt) []byte {
	if st.params > 0 {
		at := 10 + (st.params+7)/8
		if pkt[at] == 0 {
			buf = append(buf, pkt[:at]...)
			buf = append(buf, 1)
			buf = append(buf, st.types...)
			return append(buf, pkt[at+1:]...)
		}
	}
	return append(buf, pkt...)
}

// txnLost decides what becomes of the transaction whose statement in
// flight on server (the primary) failed: replayed with the statement run
// again (again is true: route it again), refused because the statement
// may have committed (e is what the client gets), or neither (the caller
// answers as before).
func (s *engine) txnLost(ctx context.Context, server string, wrote bool) (again bool, e *wire.Error) {
	l := s.txn
	staged := l.staged
	l.staged = false
	if staged && l.fresh && l.server == server && !wrote && (l.begin || !l.ends) {
		// The statement was to open a transaction (BEGIN, or the first
		// one with autocommit off): whatever it did died with the
		// connection, so it runs again once there is a primary, as a
		// new transaction would. SET TRANSACTION, sent before it, goes
		// with it.
		s.pendingTxSet = l.txSet
		l.reset("")
		return true, nil
	}
	if !staged || !l.on || l.server != server {
		return false, nil
	}
	if l.ends {
		l.reset("")
		s.replayed(ReplayCommitUnknown)
		s.takeAbort(server)
		if snap := s.env.Snapshot(); server == snap.Designated || server == primaryName(snap) {
			s.suspectPrimary(server)
		}
		s.log.Warn("primary lost while a statement ending the transaction was in flight: not replayed", "server", server)
		return false, wire.Errorf(wire.ErrConnectionKilled, "70100",
			"sluice: the connection to the primary %s was lost while this statement (which ends the transaction: COMMIT, DDL, …) was running; its outcome is unknown: the transaction may or may not have been committed, check before running it again", server)
	}
	if wrote {
		l.reset("")
		s.replayed(ReplayNotReplayable)
		s.log.Warn("transaction not replayed: part of the lost statement's result had reached the client", "server", server)
		return false, nil
	}
	return s.txnReplay(ctx, server), nil
}

// txnReplay replays the session's transaction, cut on server, on the
// primary, and reports whether it carries on there: every statement gave
// the result the client saw. The session is then pinned to its new
// connection, in the transaction. Else the connection to server is gone
// (the caller dropped it) and so is the transaction.
func (s *engine) txnReplay(ctx context.Context, server string) bool {
	l := s.txn
	if l == nil || !l.on || l.server != server {
		return false
	}
	l.on, l.staged = false, false
	if l.result != "" {
		s.replayed(l.result)
		s.log.Warn("transaction cut by a primary change is not replayable", "server", server, "result", l.result, "why", l.why)
		why := l.why
		l.reset("")
		l.refused = "not replayable: " + why
		return false
	}
	if s.state.Schema != l.schema || s.state.SetsHash != l.sets {
		s.replayed(ReplayNotReplayable)
		s.log.Warn("transaction cut by a primary change is not replayable: the session's state changed in it", "server", server)
		l.reset("")
		l.refused = "not replayable: the session's default schema changed in it"
		return false
	}
	if snap := s.env.Snapshot(); server == snap.Designated || server == primaryName(snap) {
		s.suspectPrimary(server) // the hold starts now, not at the next check
	}
	note := s.abort.Swap(nil)
	fail := func(result, why string) bool {
		if note != nil {
			s.abort.CompareAndSwap(nil, note) // the caller answers with it
		}
		s.replayed(result)
		s.log.Warn("transaction cut by a primary change not replayed", "server", server, "result", result, "why", why)
		l.reset("")
		l.refused = "replay refused: " + why
		if result == ReplayFailed {
			l.refused = "replay failed: " + why
		}
		return false
	}
	c, name, routed, e := s.acquire(ctx, router.Primary, "")
	if e != nil {
		return fail(ReplayFailed, e.Message)
	}
	if routed != router.Primary {
		s.release(c, name)
		return fail(ReplayFailed, "no primary")
	}
	if why, result := s.replayOn(c, name); why != "" {
		s.dropConn(c, name) // the server rolls back what was replayed
		return fail(result, why)
	}
	s.pin(c, name)
	s.inTxn, s.pins = true, 0
	l.on, l.server = true, name
	s.releaseDroppedStmts(c)
	s.replayed(ReplayOK)
	s.log.Info("transaction replayed on the new primary", "old", server, "new", name, "statements", len(l.ents))
	return true
}

// replayOn runs the recorded statements on c and compares their results;
// it returns why (and the outcome) when they do not all match.
func (s *engine) replayOn(c *backend.Conn, server string) (why, result string) {
	l := s.txn
	lim := s.rt.Limits
	if l.txSet != "" {
		if _, err := c.Exec(l.txSet, lim.Query); err != nil {
			return "SET TRANSACTION: " + err.Error(), ReplayFailed
		}
	}
	var res wire.Result
	for i := range l.ents {
		en := &l.ents[i]
		pkt := l.buf[en.off : en.off+en.n]
		if en.flags&sqlscan.FlagLastInsertID != 0 && c.LastInsertID != en.lastID {
			if _, err := c.Exec(fmt.Sprintf("SET last_insert_id = %d", en.lastID), lim.Query); err != nil {
				return "SET last_insert_id: " + err.Error(), ReplayFailed
			}
			c.LastInsertID = en.lastID
		}
		mode := wire.ModeText
		if en.cmd == wire.ComStmtExecute {
			mode = wire.ModeBinary
			s.setActive(c, server, en.st.sql)
			bs, pe := s.ensurePrepared(c, en.st, false)
			if pe != nil {
				s.clearActive()
				return "preparing: " + pe.Message, ReplayFailed
			}
			binary.LittleEndian.PutUint32(pkt[1:], bs.ID)
			if p := en.st.params; p > 0 {
				at := 10 + (p+7)/8 + 1
				bs.Types = append(bs.Types[:0], pkt[at:at+2*p]...)
			}
		} else {
			s.setActive(c, server, pkt[1:])
		}
		c.Conn.Sum = l.arm2()
		var err error
		res, err = c.Command(pkt, mode, lim.Query)
		c.Conn.Sum = nil
		s.clearActive()
		if err != nil && res.Err == nil {
			return fmt.Sprintf("statement %d of %d: %v", i+1, len(l.ents), err), ReplayFailed
		}
		if res.OK.LastInsertID != 0 {
			c.LastInsertID = res.OK.LastInsertID
		}
		if l.sum.Sum64() != en.sum {
			return fmt.Sprintf("statement %d of %d gave another result than the client saw", i+1, len(l.ents)), ReplayMismatch
		}
	}
	if res.HasStatus && res.Status&wire.StatusInTrans == 0 {
		return "no transaction open after the replay", ReplayFailed
	}
	return "", ""
}

// arm2 starts the sum of a replayed statement's response.
func (l *txnLog) arm2() *wire.ResultSum {
	l.sum.Reset()
	return &l.sum
}

// releaseDroppedStmts lets go of the server statements the replay
// prepared on c for client statements closed since they ran: nobody
// would close them otherwise.
func (s *engine) releaseDroppedStmts(c *backend.Conn) {
	for i := range s.txn.ents {
		st := s.txn.ents[i].st
		if st == nil || s.stmts[st.id] == st {
			continue
		}
		for _, o := range st.on {
			if o.c == c {
				c.Unref(o.bs)
			}
		}
		st.on = nil
	}
}

// withRefusal adds to the error of a transaction cut by a primary change
// why it was not replayed, once.
func (s *engine) withRefusal(e *wire.Error) *wire.Error {
	if s.txn == nil || s.txn.refused == "" {
		return e
	}
	why := s.txn.refused
	s.txn.refused = ""
	return wire.Errorf(e.Code, e.State, "%s (transaction %s)", e.Message, why)
}
