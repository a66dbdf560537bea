package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// maxSessionStmts bounds one client's open prepared statements, as
// max_prepared_stmt_count bounds a server's: a client that never closes its
// statements cannot grow sluice's memory without limit.
const maxSessionStmts = 16382

// stmt is a prepared statement under the id sluice gave the client. It is
// prepared lazily on each backend connection that executes it.
type stmt struct {
	id      uint32
	key     uint64 // process-wide: owns a server statement of its own for a cursor
	sql     []byte
	text    string // sql, made once: names the server statements it shares
	scan    sqlscan.Statement
	digest  uint64 // sqlscan.DigestHash(sql), from the scan at prepare
	params  int
	columns int

	types      []byte            // parameter types from the last execute that sent them
	longData   map[uint16][]byte // COM_STMT_SEND_LONG_DATA, sent before the next execute
	longSize   int
	on         []stmtOn // the server statements it references, to let go of them everywhere
	cursorConn *backend.Conn
	cursorStmt *backend.Stmt // the server statement whose cursor is open on cursorConn
}

// stmtOn is a reference of a client statement to a server statement.
type stmtOn struct {
	c  *backend.Conn
	bs *backend.Stmt
}

func (s *engine) stmtPrepare(ctx context.Context, pkt []byte) error {
	if len(s.stmts) >= maxSessionStmts {
		return s.fail(wire.Errorf(1461, "42000", "Can't create more than max_prepared_stmt_count statements (sluice allows %d per connection)", maxSessionStmts))
	}
	st := &stmt{key: s.env.NextStmtKey(), sql: append([]byte(nil), pkt[1:]...)}
	if out, ok := sqlscan.RewriteConnectionID([]byte{wire.ComStmtPrepare}, st.sql, s.ID); ok {
		// CONNECTION_ID() is sluice's id here too (see query).
		pkt, st.sql = out, out[1:]
	}
	st.text = string(st.sql)
	st.scan, st.digest = sqlscan.ScanDigest(st.sql) // one pass for kind, flags and digest
	if st.scan.Flags&sqlscan.FlagMulti != 0 {
		return s.fail(wire.Errorf(wire.ErrParse, "42000", "This command is not supported in the prepared statement protocol yet: multiple statements"))
	}
	if e := s.placeStmt(ctx, st.sql); e != nil {
		return s.fail(e)
	}
	target := s.decide(st.scan, st.sql)
	s.dropNextPin(st.scan)
	c, server, _, e := s.acquire(ctx, target, "")
	if e != nil {
		return s.fail(e)
	}
	lim := s.rt.Limits
	// Active while the backend answers, so a lost server interrupts it.
	s.setActive(c, server, st.sql)
	// Forward the backend's metadata under sluice's id.
	first, err := s.sendPrepare(c, server, pkt)
	if err != nil {
		s.clearActive()
		wasTxn := s.inTxn
		s.dropConn(c, server)
		if wasTxn && s.txnReplay(ctx, server) {
			return s.stmtPrepare(ctx, pkt) // on the new primary, in the replayed transaction
		}
		return s.backendFailed(server, err, false)
	}
	if wire.IsERR(first) {
		s.countError(wire.ParseError(first).Code, CauseServer)
		err := s.forwardPacket(first, 1, true)
		s.clearActive()
		s.releaseAfter(c, server)
		return err
	}
	pok, ok := wire.ParsePrepareOK(first)
	if !ok {
		s.clearActive()
		s.dropConn(c, server)
		return s.fail(wire.Errorf(wire.ErrNetRead, "08S01", "sluice: malformed prepare response from %s", server))
	}
	s.nextStmtID++
	st.id = s.nextStmtID
	st.params, st.columns = int(pok.Params), int(pok.Columns)
	backendID := pok.StmtID
	pok.StmtID = st.id
	s.c.SetWriteTimeout(lim.ClientWrite)
	s.c.WritePacket(wire.AppendPrepareOK(nil, pok))
	n := 0
	if st.params > 0 {
		n += st.params + 1
	}
	if st.columns > 0 {
		n += st.columns + 1
	}
	for i := 0; i < n; i++ {
		p, err := c.ReadPacket(0)
		if err != nil {
			s.clearActive()
			s.dropConn(c, server)
			return s.backendFailed(server, err, true)
		}
		s.c.WritePacket(p)
	}
	// Recorded only now that the response is read: AddStmt may close an
	// older statement, writing to c, which must not happen mid-response.
	st.addOn(c, c.AddStmt(stmtKey(c, st, 0), backendID))
	s.stmts[st.id] = st
	s.clearActive()
	s.releaseAfter(c, server)
	return s.c.Flush()
}

// forwardPacket sends one backend packet to the client as a whole response.
func (s *engine) forwardPacket(p []byte, seq byte, flush bool) error {
	s.c.Seq = seq
	s.c.SetWriteTimeout(s.rt.Limits.ClientWrite)
	if err := s.c.WritePacket(p); err != nil {
		return err
	}
	if flush {
		return s.c.Flush()
	}
	return nil
}

// releaseAfter returns a connection after a command that cannot have
// changed transaction state, keeping it if the session is pinned to it.
func (s *engine) releaseAfter(c *backend.Conn, server string) {
	if c == s.pinned {
		return
	}
	s.release(c, server)
}

func (s *engine) lookupStmt(pkt []byte, cmd string) (*stmt, *wire.Error) {
	if len(pkt) < 5 {
		return nil, wire.Errorf(wire.ErrParse, "HY000", "malformed %s", cmd)
	}
	id := binary.LittleEndian.Uint32(pkt[1:])
	st, ok := s.stmts[id]
	if !ok {
		return nil, wire.Errorf(wire.ErrUnknownStmtHandler, "HY000", "Unknown prepared statement handler (%d) given to %s", id, cmd)
	}
	return st, nil
}

func (s *engine) stmtExecute(ctx context.Context, pkt []byte) error {
	st, e := s.lookupStmt(pkt, "mysqld_stmt_execute")
	if e != nil {
		return s.fail(e)
	}
	s.stmtText, s.stmtDigest = st.sql, st.digest
	defer func() { s.stmtText, s.stmtDigest = nil, 0 }()
	if len(pkt) < 10 {
		return s.fail(wire.Errorf(wire.ErrParse, "HY000", "malformed COM_STMT_EXECUTE"))
	}
	if st.longSize < 0 {
		over := st.longSize == longDataOverSession
		s.clearLongData(st)
		if over {
			return s.fail(wire.Errorf(wire.ErrNetPacketTooLarge, "08S01",
				"Parameter data sent with COM_STMT_SEND_LONG_DATA is more than the session may buffer (sluice max_long_data: %d bytes over all its statements)", s.rt.Limits.MaxLongData))
		}
		return s.fail(wire.Errorf(wire.ErrNetPacketTooLarge, "08S01", "Parameter data sent with COM_STMT_SEND_LONG_DATA is bigger than 'max_allowed_packet' bytes"))
	}
	cursor := pkt[5]&(wire.CursorTypeReadOnly|wire.CursorTypeForUpdate|wire.CursorTypeScrollable) != 0
	// Remember parameter types: a client sends them only when they change,
	// but each backend connection needs them on its first execute.
	if st.params > 0 {
		nullLen := (st.params + 7) / 8
		at := 10 + nullLen
		if len(pkt) < at+1 {
			return s.fail(wire.Errorf(wire.ErrParse, "HY000", "malformed COM_STMT_EXECUTE"))
		}
		if pkt[at] == 1 {
			if len(pkt) < at+1+2*st.params {
				return s.fail(wire.Errorf(wire.ErrParse, "HY000", "malformed COM_STMT_EXECUTE"))
			}
			st.types = append(st.types[:0], pkt[at+1:at+1+2*st.params]...)
		} else if st.types == nil {
			// MariaDB's own answer: ER_WRONG_ARGUMENTS (1210).
			return s.fail(wire.Errorf(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute: COM_STMT_EXECUTE without parameter types"))
		}
	}
	if st.cursorConn != nil {
		// Re-executing closes the previous cursor on the server.
		st.cursorConn = nil
		s.cursorClosed()
	}
	if e := s.placeStmt(ctx, st.sql); e != nil {
		return s.fail(e)
	}
	target := s.decide(st.scan, st.sql)
	if cursor && st.scan.Flags&sqlscan.FlagHintReplica == 0 {
		// A cursor pins the session to its connection until it ends; on a
		// replica, the session's writes (and any transaction it begins)
		// would go there too.
		target = router.Primary
	}
	mode := wire.ModeBinary
	x := &s.exec
	if x.prepFn == nil {
		x.prepFn = x.prep
	}
	x.s, x.st, x.pkt, x.cursor = s, st, pkt, cursor
	res, err := s.executeResult(ctx, pkt, st.scan, target, mode, x.prepFn)
	used, usedStmt := x.used, x.usedStmt
	*x = execCtx{prepFn: x.prepFn}
	s.clearLongData(st)
	// Only a cursor this execute opened counts: a cursor flag on a statement
	// without a result set opens none, even while another cursor pins the
	// session.
	if err == nil && res.CursorOpen && used != nil && s.pinned == used {
		st.cursorConn, st.cursorStmt = used, usedStmt
		s.cursors++
	}
	return err
}

// execCtx carries one COM_STMT_EXECUTE into the prepare hook, kept in the
// session so that neither it nor the hook is allocated per execute.
type execCtx struct {
	s        *engine
	st       *stmt
	pkt      []byte
	cursor   bool
	used     *backend.Conn
	usedStmt *backend.Stmt
	prepFn   prepareFn
}

func (x *execCtx) prep(c *backend.Conn) ([]byte, *wire.Error) {
	x.used = c
	bs, e := x.s.ensurePrepared(c, x.st, x.cursor)
	if e != nil {
		return nil, e
	}
	x.usedStmt = bs
	if e := x.s.sendLongData(c, x.st, bs.ID); e != nil {
		return nil, e
	}
	return x.s.rewriteExecute(x.pkt, bs, x.st), nil
}

// stmtKey names the server statement st uses on c: shared by every client
// statement of the same text under the same state, or its own (owner) for
// a cursor.
func stmtKey(c *backend.Conn, st *stmt, owner uint64) backend.StmtKey {
	return backend.StmtKey{Schema: c.Schema, Collation: c.Collation, Sets: c.SetsHash, Owner: owner, SQL: st.text}
}

// ensurePrepared returns the server statement st executes on c: the one it
// already references there, one another session prepared with the same
// text, or one prepared now. An execute that asks for a cursor gets a
// statement of its own.
func (s *engine) ensurePrepared(c *backend.Conn, st *stmt, cursor bool) (*backend.Stmt, *wire.Error) {
	owner := uint64(0)
	if cursor {
		owner = st.key
	}
	for i := range st.on {
		if o := st.on[i]; o.c == c && o.bs.Key.Owner == owner {
			if !o.bs.Closed() {
				c.Touch(o.bs)
				return o.bs, nil
			}
			st.on = slices.Delete(st.on, i, i+1)
			break
		}
	}
	k := stmtKey(c, st, owner)
	if bs := c.LookupStmt(k); bs != nil {
		st.addOn(c, bs)
		return bs, nil
	}
	first, err := s.sendPrepare(c, "", append([]byte{wire.ComStmtPrepare}, st.sql...))
	if err != nil {
		c.MarkBroken()
		return nil, asWireError(err)
	}
	if wire.IsERR(first) {
		return nil, wire.ParseError(first)
	}
	pok, ok := wire.ParsePrepareOK(first)
	if !ok {
		c.MarkBroken()
		return nil, wire.Errorf(wire.ErrNetRead, "08S01", "sluice: malformed prepare response")
	}
	n := 0
	if pok.Params > 0 {
		n += int(pok.Params) + 1
	}
	if pok.Columns > 0 {
		n += int(pok.Columns) + 1
	}
	for i := 0; i < n; i++ {
		if _, err := c.ReadPacket(0); err != nil {
			c.MarkBroken()
			return nil, asWireError(err)
		}
	}
	bs := c.AddStmt(k, pok.StmtID)
	st.addOn(c, bs)
	return bs, nil
}

// addOn remembers a reference to a server statement, forgetting those on
// connections closed since, so a long-lived statement does not keep every
// connection it ever ran on.
func (st *stmt) addOn(c *backend.Conn, bs *backend.Stmt) {
	// Only the connection's state is read here: the statements of another
	// connection belong to whoever holds it now.
	st.on = slices.DeleteFunc(st.on, func(o stmtOn) bool { return o.c.Closed() })
	st.on = append(st.on, stmtOn{c, bs})
}

// errMaxPreparedStmts is ER_MAX_PREPARED_STMT_COUNT_REACHED.
const errMaxPreparedStmts = 1461

// sendPrepare sends COM_STMT_PREPARE on c (a connection to server) and
// returns the first packet of the answer. A server out of statements
// (error 1461) may be full of statements sluice holds: first the ones
// cached on c are closed (except those with an open cursor of this
// session, the only session that can have one on c), then the idle
// connections to the server that hold statements (their sessions prepare
// them again when next executed), and the prepare is tried again after
// each. If the server still refuses, the error says what sluice freed.
func (s *engine) sendPrepare(c *backend.Conn, server string, pkt []byte) ([]byte, error) {
	if server == "" {
		server = s.activeSrv // written by this goroutine only
	}
	lim := s.rt.Limits
	freedHere, freedIdle := 0, 0
	for attempt := 0; ; attempt++ {
		c.SetWriteTimeout(lim.Query)
		if err := c.WriteCommand(pkt); err != nil {
			return nil, err
		}
		c.SetReadTimeout(lim.Query)
		first, err := c.ReadPacket(0)
		if err != nil {
			return nil, err
		}
		if !wire.IsERR(first) {
			return first, nil
		}
		e := wire.ParseError(first)
		if e.Code != errMaxPreparedStmts {
			return first, nil
		}
		if attempt == 0 {
			if n := c.ShedStmts(s.hasCursor); n > 0 {
				freedHere = n
				s.log.Info("server out of prepared statements: closed those cached on the connection", "server", server, "statements", n)
				continue
			}
		}
		if freedIdle == 0 {
			if pool := s.rt.Pool(server); pool != nil {
				if n := pool.ShedIdleStmts(); n > 0 {
					freedIdle = n
					s.log.Info("server out of prepared statements: closed idle connections holding them", "server", server, "statements", n)
					continue
				}
			}
		}
		s.log.Warn("server out of prepared statements", "server", server, "freed", freedHere+freedIdle)
		return wire.AppendError(nil, wire.Errorf(errMaxPreparedStmts, "42000",
			"%s (server %s is out of prepared statements: sluice closed the %d it held for idle sessions and the server still refuses; other clients of the server hold the rest, or max_prepared_stmt_count is too low)",
			e.Message, server, freedHere+freedIdle)), nil
	}
}

// hasCursor reports whether a server statement has an open cursor of this
// session.
func (s *engine) hasCursor(bs *backend.Stmt) bool {
	for _, st := range s.stmts {
		if st.cursorStmt == bs && st.cursorConn != nil {
			return true
		}
	}
	return false
}

func (s *engine) sendLongData(c *backend.Conn, st *stmt, id uint32) *wire.Error {
	if len(st.longData) == 0 {
		return nil
	}
	for param, data := range st.longData {
		p := make([]byte, 7, 7+len(data))
		p[0] = wire.ComStmtSendLongData
		binary.LittleEndian.PutUint32(p[1:], id)
		binary.LittleEndian.PutUint16(p[5:], param)
		p = append(p, data...)
		c.Seq = 0
		if err := c.WritePacket(p); err != nil {
			c.MarkBroken()
			return asWireError(err)
		}
	}
	return nil
}

// rewriteExecute puts the server statement's id into the client's execute
// packet, in place. A client sends parameter types only when they change;
// when it left them out and the server statement was last bound to other
// types (by another session, or never on this connection), they are added
// from those remembered, in a buffer of the session's.
func (s *engine) rewriteExecute(pkt []byte, bs *backend.Stmt, st *stmt) []byte {
	if st.params > 0 {
		at := 10 + (st.params+7)/8
		if pkt[at] == 1 {
			bs.Types = append(bs.Types[:0], pkt[at+1:at+1+2*st.params]...)
		} else if !bytes.Equal(bs.Types, st.types) || bs.Types == nil {
			out := s.execBuf[:0]
			out = append(out, pkt[:at]...)
			out = append(out, 1)
			out = append(out, st.types...)
			out = append(out, pkt[at+1:]...)
			binary.LittleEndian.PutUint32(out[1:], bs.ID)
			if cap(out) <= 64<<10 {
				s.execBuf = out
			}
			// The server binds them with this execute: the next one on
			// this statement need not send them again.
			bs.Types = append(bs.Types[:0], st.types...)
			return out
		}
	}
	binary.LittleEndian.PutUint32(pkt[1:], bs.ID)
	return pkt
}

func (s *engine) stmtFetch(ctx context.Context, pkt []byte) error {
	st, e := s.lookupStmt(pkt, "mysqld_stmt_fetch")
	if e != nil {
		return s.fail(e)
	}
	c := st.cursorConn
	if c == nil || c != s.pinned || st.cursorStmt == nil || st.cursorStmt.Closed() {
		return s.fail(wire.Errorf(1421, "HY000", "The statement (%d) has no open cursor.", st.id))
	}
	binary.LittleEndian.PutUint32(pkt[1:], st.cursorStmt.ID)
	s.setActive(c, s.pinnedServer, nil)
	res, err := s.roundTrip(c, pkt, wire.ModeFetch)
	s.clearActive()
	if err != nil {
		server := s.pinnedServer
		s.dropConn(c, server)
		st.cursorConn = nil
		return s.backendFailed(server, err, res.Wrote)
	}
	if res.Err != nil || res.Status&wire.StatusLastRowSent != 0 {
		st.cursorConn = nil
		s.cursorClosed()
	}
	return nil
}

// cursorClosed drops one cursor's pin, releasing the connection when
// nothing else holds it.
func (s *engine) cursorClosed() {
	if s.cursors > 0 {
		s.cursors--
	}
	if s.cursors == 0 {
		s.pins &^= pinCursor
		if s.pinned != nil && !s.inTxn && s.pins == 0 {
			s.unpinOrRelease(s.pinned, s.pinnedServer)
		}
	}
}

func (s *engine) stmtClose(pkt []byte) {
	if len(pkt) < 5 {
		return
	}
	s.dropStmt(binary.LittleEndian.Uint32(pkt[1:]))
}

// dropStmt closes a statement on every backend connection that prepared
// it: at once on the connection the session holds, otherwise with the next
// command that connection runs.
func (s *engine) dropStmt(id uint32) {
	st, ok := s.stmts[id]
	if !ok {
		return
	}
	delete(s.stmts, id)
	s.clearLongData(st)
	if st.cursorConn != nil {
		st.cursorConn = nil
		s.cursorClosed()
	}
	for _, o := range st.on {
		switch {
		case o.c.Closed():
		case o.c != s.pinned:
			o.c.QueueUnref(o.bs)
			if p := o.c.Pool(); p != nil && !slices.Contains(s.queuedOn, p) {
				s.queuedOn = append(s.queuedOn, p)
			}
		case o.bs.Key.Owner != 0:
			o.c.CloseStmt(o.bs) // a cursor's: nobody else uses it
		default:
			o.c.Unref(o.bs)
		}
	}
	st.on = nil
}

// sendQueuedCloses makes the pools send the closes dropStmt queued on their
// idle connections now (at the end of the session, or its reset), so that
// statements nobody holds any more leave the servers at once.
func (s *engine) sendQueuedCloses() {
	for _, p := range s.queuedOn {
		p.SendQueuedCloses()
	}
	s.queuedOn = s.queuedOn[:0]
}

func (s *engine) stmtReset(ctx context.Context, pkt []byte) error {
	st, e := s.lookupStmt(pkt, "mysqld_stmt_reset")
	if e != nil {
		return s.fail(e)
	}
	s.clearLongData(st)
	if c := st.cursorConn; c != nil && c == s.pinned {
		if bs := st.cursorStmt; bs != nil && !bs.Closed() {
			binary.LittleEndian.PutUint32(pkt[1:], bs.ID)
			res, err := s.roundTrip(c, pkt, wire.ModeText)
			st.cursorConn = nil
			if err != nil {
				server := s.pinnedServer
				s.dropConn(c, server) // before cursorClosed, which could pool it
				return s.backendFailed(server, err, res.Wrote)
			}
			s.cursorClosed()
			return nil
		}
	}
	return s.ok(0, 0)
}

// stmtLongData buffers parameter data until the execute that uses it, since
// the backend is chosen only then. COM_STMT_SEND_LONG_DATA has no response;
// an oversized total is reported by the execute.
func (s *engine) stmtLongData(pkt []byte) {
	if len(pkt) < 7 {
		return
	}
	st, ok := s.stmts[binary.LittleEndian.Uint32(pkt[1:])]
	if !ok || st.longSize < 0 {
		return
	}
	param := binary.LittleEndian.Uint16(pkt[5:])
	data := pkt[7:]
	lim := s.rt.Limits
	if st.longSize+len(data) > lim.MaxAllowedPacket {
		s.clearLongData(st)
		st.longSize = longDataOverPacket
		return
	}
	if lim.MaxLongData > 0 && s.longDataTotal+len(data) > lim.MaxLongData {
		// One session may hold at most max_long_data over all its
		// statements: the per-statement bound alone let one session
		// buffer max_allowed_packet for each of 16,382 statements.
		s.clearLongData(st)
		st.longSize = longDataOverSession
		return
	}
	if st.longData == nil {
		st.longData = map[uint16][]byte{}
	}
	st.longData[param] = append(st.longData[param], data...)
	st.longSize += len(data)
	s.longDataTotal += len(data)
}

// longSize values that mark a statement whose long data was refused; its
// next execute reports which bound it hit.
const (
	longDataOverPacket  = -1
	longDataOverSession = -2
)

// clearLongData drops a statement's buffered long data.
func (s *engine) clearLongData(st *stmt) {
	if st.longSize > 0 {
		s.longDataTotal -= st.longSize
	}
	st.longData, st.longSize = nil, 0
}
