package session

import (
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
	key     uint64 // process-wide, names it in backend connection caches
	sql     []byte
	scan    sqlscan.Statement
	digest  uint64 // sqlscan.DigestHash(sql), computed on first execute
	params  int
	columns int

	types      []byte            // parameter types from the last execute that sent them
	longData   map[uint16][]byte // COM_STMT_SEND_LONG_DATA, sent before the next execute
	longSize   int
	conns      []*backend.Conn // where it is prepared, to close it everywhere
	cursorConn *backend.Conn
}

func (s *Session) stmtPrepare(ctx context.Context, pkt []byte) error {
	if len(s.stmts) >= maxSessionStmts {
		return s.fail(wire.Errorf(1461, "42000", "Can't create more than max_prepared_stmt_count statements (sluice allows %d per connection)", maxSessionStmts))
	}
	st := &stmt{key: s.env.NextStmtKey(), sql: append([]byte(nil), pkt[1:]...)}
	st.scan = sqlscan.Scan(st.sql)
	if st.scan.Flags&sqlscan.FlagMulti != 0 {
		return s.fail(wire.Errorf(wire.ErrParse, "42000", "This command is not supported in the prepared statement protocol yet: multiple statements"))
	}
	target := s.decide(st.scan, st.sql)
	s.dropNextPin(st.scan)
	c, server, _, e := s.acquire(ctx, target, "")
	if e != nil {
		return s.fail(e)
	}
	lim := s.env.Limits()
	// Active while the backend answers, so a lost server interrupts it.
	s.setActive(c, server, st.sql)
	// Forward the backend's metadata under sluice's id.
	first, err := s.sendPrepare(c, pkt)
	if err != nil {
		s.clearActive()
		s.dropConn(c, server)
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
		return s.fail(wire.Errorf(wire.ErrLostConnection, "HY000", "sluice: malformed prepare response from %s", server))
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
	c.AddStmt(st.key, backendID)
	st.addConn(c)
	s.stmts[st.id] = st
	s.clearActive()
	s.releaseAfter(c, server)
	return s.c.Flush()
}

// forwardPacket sends one backend packet to the client as a whole response.
func (s *Session) forwardPacket(p []byte, seq byte, flush bool) error {
	s.c.Seq = seq
	s.c.SetWriteTimeout(s.env.Limits().ClientWrite)
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
func (s *Session) releaseAfter(c *backend.Conn, server string) {
	if c == s.pinned {
		return
	}
	s.release(c, server)
}

func (s *Session) lookupStmt(pkt []byte, cmd string) (*stmt, *wire.Error) {
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

func (s *Session) stmtExecute(ctx context.Context, pkt []byte) error {
	st, e := s.lookupStmt(pkt, "mysqld_stmt_execute")
	if e != nil {
		return s.fail(e)
	}
	if st.digest == 0 {
		st.digest = sqlscan.DigestHash(st.sql)
	}
	s.stmtText, s.stmtDigest = st.sql, st.digest
	defer func() { s.stmtText, s.stmtDigest = nil, 0 }()
	if len(pkt) < 10 {
		return s.fail(wire.Errorf(wire.ErrParse, "HY000", "malformed COM_STMT_EXECUTE"))
	}
	if st.longSize < 0 {
		st.longData, st.longSize = nil, 0
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
			return s.fail(wire.Errorf(wire.ErrParse, "HY000", "COM_STMT_EXECUTE without parameter types"))
		}
	}
	if st.cursorConn != nil {
		// Re-executing closes the previous cursor on the server.
		st.cursorConn = nil
		s.cursorClosed()
	}
	target := s.decide(st.scan, st.sql)
	if cursor && st.scan.Flags&sqlscan.FlagHintReplica == 0 {
		// A cursor pins the session to its connection until it ends; on a
		// replica, the session's writes (and any transaction it begins)
		// would go there too.
		target = router.Primary
	}
	mode := wire.ModeBinary
	var used *backend.Conn
	prep := func(c *backend.Conn) ([]byte, *wire.Error) {
		used = c
		id, e := s.ensurePrepared(c, st)
		if e != nil {
			return nil, e
		}
		if e := s.sendLongData(c, st, id); e != nil {
			return nil, e
		}
		return rewriteExecute(pkt, id, st), nil
	}
	res, err := s.executeResult(ctx, pkt, st.scan, target, mode, prep)
	st.longData, st.longSize = nil, 0
	// Only a cursor this execute opened counts: a cursor flag on a statement
	// without a result set opens none, even while another cursor pins the
	// session.
	if err == nil && res.CursorOpen && used != nil && s.pinned == used {
		st.cursorConn = used
		s.cursors++
	}
	return err
}

// ensurePrepared returns the statement's id on c, preparing it there first
// if this connection has not seen it.
func (s *Session) ensurePrepared(c *backend.Conn, st *stmt) (uint32, *wire.Error) {
	if id, ok := c.StmtID(st.key); ok {
		return id, nil
	}
	first, err := s.sendPrepare(c, append([]byte{wire.ComStmtPrepare}, st.sql...))
	if err != nil {
		c.MarkBroken()
		return 0, asWireError(err)
	}
	if wire.IsERR(first) {
		return 0, wire.ParseError(first)
	}
	pok, ok := wire.ParsePrepareOK(first)
	if !ok {
		c.MarkBroken()
		return 0, wire.Errorf(wire.ErrLostConnection, "HY000", "sluice: malformed prepare response")
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
			return 0, asWireError(err)
		}
	}
	c.AddStmt(st.key, pok.StmtID)
	st.addConn(c)
	return pok.StmtID, nil
}

// addConn remembers that the statement is prepared on c, forgetting
// connections closed since, so a long-lived statement does not keep every
// connection it ever ran on.
func (st *stmt) addConn(c *backend.Conn) {
	if slices.Contains(st.conns, c) {
		return
	}
	st.conns = slices.DeleteFunc(st.conns, (*backend.Conn).Closed)
	st.conns = append(st.conns, c)
}

// errMaxPreparedStmts is ER_MAX_PREPARED_STMT_COUNT_REACHED.
const errMaxPreparedStmts = 1461

// sendPrepare sends COM_STMT_PREPARE on c and returns the first packet of
// the answer. A server out of statements (error 1461) is usually full of
// statements sluice cached on its pooled connections: the ones cached on c
// are closed (except those with an open cursor of this session, the only
// session that can have one on c) and the prepare is tried once more.
func (s *Session) sendPrepare(c *backend.Conn, pkt []byte) ([]byte, error) {
	lim := s.env.Limits()
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
		if attempt == 0 && wire.IsERR(first) && wire.ParseError(first).Code == errMaxPreparedStmts && c.ShedStmts(s.hasCursor) > 0 {
			s.log.Debug("server out of prepared statements: closed those cached on the connection", "thread", c.ThreadID)
			continue
		}
		return first, nil
	}
}

// hasCursor reports whether the session's statement with this key has an
// open cursor.
func (s *Session) hasCursor(key uint64) bool {
	for _, st := range s.stmts {
		if st.key == key && st.cursorConn != nil {
			return true
		}
	}
	return false
}

func (s *Session) sendLongData(c *backend.Conn, st *stmt, id uint32) *wire.Error {
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

// rewriteExecute puts the backend's statement id into the client's execute
// packet, adding the remembered parameter types when the client left them
// out.
func rewriteExecute(pkt []byte, id uint32, st *stmt) []byte {
	if st.params > 0 {
		at := 10 + (st.params+7)/8
		if pkt[at] == 0 {
			out := make([]byte, 0, len(pkt)+len(st.types))
			out = append(out, pkt[:at]...)
			out = append(out, 1)
			out = append(out, st.types...)
			out = append(out, pkt[at+1:]...)
			binary.LittleEndian.PutUint32(out[1:], id)
			return out
		}
	}
	binary.LittleEndian.PutUint32(pkt[1:], id)
	return pkt
}

func (s *Session) stmtFetch(ctx context.Context, pkt []byte) error {
	st, e := s.lookupStmt(pkt, "mysqld_stmt_fetch")
	if e != nil {
		return s.fail(e)
	}
	c := st.cursorConn
	if c == nil || c != s.pinned {
		return s.fail(wire.Errorf(1421, "HY000", "The statement (%d) has no open cursor.", st.id))
	}
	id, ok := c.StmtID(st.key)
	if !ok {
		return s.fail(wire.Errorf(1421, "HY000", "The statement (%d) has no open cursor.", st.id))
	}
	binary.LittleEndian.PutUint32(pkt[1:], id)
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
func (s *Session) cursorClosed() {
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

func (s *Session) stmtClose(pkt []byte) {
	if len(pkt) < 5 {
		return
	}
	s.dropStmt(binary.LittleEndian.Uint32(pkt[1:]))
}

// dropStmt closes a statement on every backend connection that prepared
// it: at once on the connection the session holds, otherwise with the next
// command that connection runs.
func (s *Session) dropStmt(id uint32) {
	st, ok := s.stmts[id]
	if !ok {
		return
	}
	delete(s.stmts, id)
	if st.cursorConn != nil {
		st.cursorConn = nil
		s.cursorClosed()
	}
	for _, c := range st.conns {
		if c == s.pinned {
			c.CloseStmt(st.key)
		} else {
			c.QueueClose(st.key)
		}
	}
}

func (s *Session) stmtReset(ctx context.Context, pkt []byte) error {
	st, e := s.lookupStmt(pkt, "mysqld_stmt_reset")
	if e != nil {
		return s.fail(e)
	}
	st.longData, st.longSize = nil, 0
	if c := st.cursorConn; c != nil && c == s.pinned {
		if id, ok := c.StmtID(st.key); ok {
			binary.LittleEndian.PutUint32(pkt[1:], id)
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
func (s *Session) stmtLongData(pkt []byte) {
	if len(pkt) < 7 {
		return
	}
	st, ok := s.stmts[binary.LittleEndian.Uint32(pkt[1:])]
	if !ok || st.longSize < 0 {
		return
	}
	param := binary.LittleEndian.Uint16(pkt[5:])
	data := pkt[7:]
	if st.longSize+len(data) > s.env.Limits().MaxAllowedPacket {
		st.longSize = -1
		st.longData = nil
		return
	}
	if st.longData == nil {
		st.longData = map[uint16][]byte{}
	}
	st.longData[param] = append(st.longData[param], data...)
	st.longSize += len(data)
}
