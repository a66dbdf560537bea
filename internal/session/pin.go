package session

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Pin reasons: state that lives on one backend connection, so the session
// must keep using that connection until the state is gone.
type pinReason uint16

const (
	pinTempTable    pinReason = 1 << iota // CREATE TEMPORARY TABLE: until the last is dropped, or the session ends or resets
	pinUserLock                           // GET_LOCK: until RELEASE_ALL_LOCKS()
	pinLockTables                         // LOCK TABLES: until UNLOCK TABLES
	pinNext                               // the next statement may read what this one left (FOUND_ROWS, SHOW WARNINGS)
	pinTextPrepare                        // PREPARE name FROM: text prepared statements live on the connection, until the last is deallocated
	pinUserVar                            // @var assigned outside SET (SELECT @x := …, INTO @x)
	pinUnknownState                       // a multi-statement changed session state sluice cannot replay
	pinCursor                             // an open server-side cursor
)

// pinsReleasable are the reasons whose end sluice observes; a connection
// pinned for any other reason is closed, not pooled, when the session ends.
const pinsReleasable = pinUserLock | pinLockTables | pinNext | pinCursor

func (s *engine) pin(c *backend.Conn, server string) {
	if s.pinned == c {
		return
	}
	s.pinned, s.pinnedServer = c, server
}

// dropNextPin ends a pin kept only for the statement after one that left
// warnings, an error or SQL_CALC_FOUND_ROWS behind, unless st is the
// statement that reads them; st is then routed as usual.
func (s *engine) dropNextPin(st sqlscan.Statement) {
	if s.pinned == nil || s.pins != pinNext || s.inTxn {
		return
	}
	if st.Flags&(sqlscan.FlagDiagnostics|sqlscan.FlagFoundRows) != 0 {
		return
	}
	s.pins = 0
	s.unpinOrRelease(s.pinned, s.pinnedServer)
}

// leaveReplicaTxn handles BEGIN inside a read-only transaction on a
// replica: the server would commit it implicitly and start the new one on
// the same replica, where writes fail. sluice commits it there itself and
// lets the new transaction begin where it belongs.
func (s *engine) leaveReplicaTxn(st sqlscan.Statement) *wire.Error {
	if s.pinned == nil || s.pins != 0 || st.Kind != sqlscan.KindBegin {
		return nil
	}
	snap := s.env.Snapshot()
	if pr, ok := snap.PrimaryServer(); ok && pr.Name == s.pinnedServer {
		return nil
	}
	c, server := s.pinned, s.pinnedServer
	if _, err := c.Exec("COMMIT", s.rt.Limits.Query); err != nil {
		s.dropConn(c, server)
		return asWireError(err)
	}
	s.inTxn = false
	s.unpinOrRelease(c, server)
	return nil
}

// unpinOrRelease gives a connection that no longer needs to stay with the
// session back to its pool.
func (s *engine) unpinOrRelease(c *backend.Conn, server string) {
	if s.pinned == c {
		s.pinned, s.pinnedServer = nil, ""
	}
	s.release(c, server)
}

func (s *engine) release(c *backend.Conn, server string) {
	if c == s.pinned {
		return
	}
	if p := s.rt.Pool(server); p != nil {
		p.Put(c)
	} else {
		c.Close()
	}
}

// dropConn closes a connection that failed; whatever was pinned to it is
// gone with it (the server rolled back the transaction, dropped temporary
// tables and released locks when the connection closed).
func (s *engine) dropConn(c *backend.Conn, server string) {
	if c == s.pinned {
		s.pinned, s.pinnedServer = nil, ""
		s.pins, s.inTxn, s.cursors = 0, false, 0
	}
	if p := s.rt.Pool(server); p != nil {
		p.Discard(c)
	} else {
		c.Close()
	}
}

// failedBeforeSend gives back a connection whose statement failed before
// it was sent (preparing it there, restoring session state): a connection
// that broke, or was cut by a primary change, goes with whatever was
// pinned to it, so the next statement does not meet it again.
func (s *engine) failedBeforeSend(c *backend.Conn, server string, e *wire.Error) *wire.Error {
	n, cut := s.takeAbort(server)
	if cut || c.IsBroken() || c.Closed() {
		s.dropConn(c, server)
	} else {
		s.release(c, server)
	}
	if cut {
		return n.err()
	}
	return e
}

func (n *abortNote) err() *wire.Error {
	return wire.Errorf(wire.ErrConnectionKilled, "70100", "%s", n.msg)
}

// unpin lets go of the pinned connection. A connection holding state sluice
// cannot see the end of (temporary tables, user variables, text prepared
// statements) is closed rather than pooled, so it can never leak into
// another session; so is one with an open transaction, which the server
// rolls back.
func (s *engine) unpin(ending bool) {
	c, server := s.pinned, s.pinnedServer
	if c == nil {
		return
	}
	s.pinned, s.pinnedServer = nil, ""
	p := s.rt.Pool(server)
	if s.inTxn || s.pins&^pinsReleasable != 0 || s.pins&(pinUserLock|pinLockTables|pinCursor) != 0 || p == nil {
		if p != nil {
			p.Discard(c)
		} else {
			c.Close()
		}
	} else {
		p.Put(c)
	}
	s.pins, s.inTxn, s.cursors = 0, false, 0
}

// errBackendLost ends a session whose backend died during its statement.
var errBackendLost = errors.New("backend connection lost during the statement; client connection closed")

// backendFailed tells the client what happened to its statement when the
// backend died or froze. A lost backend closes the client connection: the
// client library then reports its own "lost connection" (2013), which is
// what applications retry on. An ERR packet carrying 2013 would not do:
// libmariadb and libmysqlclient turn any server ERR in the client range
// 2000-2999 into 2027 "malformed packet".
func (s *engine) backendFailed(server string, err error, partial bool) error {
	lim := s.rt.Limits
	var e *wire.Error
	if n, ok := s.takeAbort(server); ok {
		e = s.withRefusal(n.err())
		s.log.Warn("statement aborted by a primary change", "server", server)
	} else if wire.IsTimeout(err) {
		e = wire.Errorf(wire.ErrStatementTimeout, "70100",
			"sluice: server %s did not answer within %s (timeouts.query); the statement was aborted", server, lim.Query)
		s.log.Warn("backend timeout", "server", server, "timeout", lim.Query)
	} else {
		s.log.Warn("backend lost during a statement; closing the client connection", "server", server, "err", err)
		// The client sees the connection lost (2013 in its library): it
		// cannot know whether the statement took effect.
		s.countError(wire.ErrLostConnection, CauseBackendLost)
		if snap := s.env.Snapshot(); server == snap.Designated || server == primaryName(snap) {
			s.suspectPrimary(server) // the next writes wait for a failover rather than fail
		}
		return errBackendLost
	}
	_ = partial // an ERR packet may follow rows: it ends the result set for the client
	return s.fail(e)
}

// useSchema switches the default schema. The server checks that the schema
// exists and the user may use it; the pinned connection takes the change
// directly, otherwise the new state is applied lazily by the pool.
func (s *engine) useSchema(ctx context.Context, db string) *wire.Error {
	if e := s.placeSchema(ctx, db); e != nil {
		return e
	}
	if s.pinned != nil {
		return s.schemaOn(s.pinned, s.pinnedServer, db, true)
	}
	// Any healthy server can say whether the schema exists, so a login
	// with a database does not depend on the primary being alive: a
	// replica first, the primary only to confirm a refusal (the schema may
	// be too new to have reached the replica).
	skip := ""
	var refused, noReplica *wire.Error
	for _, target := range []router.Target{router.Replica, router.Primary} {
		if target == router.Primary && ((refused == nil && noReplica == nil) || schemaTarget(s.env.Snapshot()) != router.Primary) {
			break
		}
		s.dropNextPin(sqlscan.Statement{Kind: sqlscan.KindUse})
		s.noPrimaryWait = true
		c, server, routed, e := s.acquire(ctx, target, skip)
		if e != nil && server != "" && skip == "" {
			skip = server // unreachable: ask another
			c, server, routed, e = s.acquire(ctx, router.Replica, skip)
		}
		s.noPrimaryWait = false
		if e != nil {
			if refused != nil {
				return refused
			}
			if target == router.Replica {
				// No replica can answer (none readable, with read_fallback:
				// error, or none reachable): the primary can.
				noReplica = e
				continue
			}
			return e
		}
		e = s.schemaOn(c, server, db, false)
		if e != nil && e.Code == wire.ErrLostConnection && skip == "" {
			// The server died under the check: ask another.
			skip = server
			if c, server, routed, e = s.acquire(ctx, router.Replica, skip); e == nil {
				e = s.schemaOn(c, server, db, false)
			}
		}
		if e == nil || (e.Code != errBadDB && e.Code != errDBAccessDenied) || routed == router.Primary {
			return e
		}
		refused = e
	}
	if refused != nil {
		return refused
	}
	return noReplica
}

// MariaDB's answers to a schema that does not exist or may not be used.
const (
	errBadDB          = 1049
	errDBAccessDenied = 1044
)

// schemaOn runs COM_INIT_DB for db on c and, when it succeeds, makes db
// the session's schema; c goes back to the pool unless pinned.
func (s *engine) schemaOn(c *backend.Conn, server, db string, pinned bool) *wire.Error {
	payload := append([]byte{wire.ComInitDB}, db...)
	// Active, so that a server found lost (a frozen primary) interrupts
	// the check rather than leave a login waiting on it.
	s.setActive(c, server, nil)
	res, err := c.Command(payload, wire.ModeText, s.rt.Limits.Query)
	s.clearActive()
	if err != nil {
		if res.Err != nil {
			if !pinned {
				s.release(c, server)
			}
			return res.Err
		}
		s.dropConn(c, server)
		return asWireError(err)
	}
	s.state.Schema = db
	c.Adopt(&s.state)
	if !pinned {
		s.release(c, server)
	}
	return nil
}

func (s *engine) initDB(ctx context.Context, pkt []byte) error {
	if e := s.useSchema(ctx, string(pkt[1:])); e != nil {
		return s.fail(e)
	}
	return s.ok(0, 0)
}

// forwardRead runs a read-only command (COM_FIELD_LIST) where reads go.
func (s *engine) forwardRead(ctx context.Context, pkt []byte, mode wire.RelayMode) error {
	st := sqlscan.Statement{Kind: sqlscan.KindShow}
	return s.execute(ctx, pkt, st, s.decide(st, nil), mode, nil)
}

// forwardPrimary runs a command on the primary (COM_STATISTICS).
func (s *engine) forwardPrimary(ctx context.Context, pkt []byte, mode wire.RelayMode) error {
	return s.execute(ctx, pkt, sqlscan.Statement{Kind: sqlscan.KindShow}, router.Primary, mode, nil)
}

// kill implements KILL [QUERY] on sluice's own connection ids. Users may
// kill their own sessions; other users' sessions only when their account
// holds SUPER or CONNECTION ADMIN on the primary, as on the server.
func (s *engine) kill(ctx context.Context, id uint64, queryOnly bool) error {
	target, ok := s.env.Lookup(uint32(id))
	if !ok || id > 1<<32-1 {
		return s.fail(wire.Errorf(wire.ErrNoSuchThread, "HY000", "Unknown thread id: %d", id))
	}
	if target.Info().User != s.account.Name && !s.mayKillOthers(ctx) {
		return s.fail(wire.Errorf(wire.ErrKillDenied, "HY000", "You are not owner of thread %d", id))
	}
	if queryOnly {
		target.KillQuery()
		return s.ok(0, 0)
	}
	if target == s.sess {
		// MySQL answers KILL of the own connection with an error and closes.
		s.fail(wire.Errorf(wire.ErrConnectionKilled, "70100", "Connection was killed"))
		return errQuit
	}
	target.Kill()
	return s.ok(0, 0)
}

// killPrivilegeSQL returns a row when the current account holds, at the
// global level, a privilege that lets it kill other users' connections.
// USER_PRIVILEGES shows the account's own grants (and, to accounts that
// may read the grant tables, everyone's: hence the GRANTEE filter).
const killPrivilegeSQL = "SELECT 1 FROM information_schema.USER_PRIVILEGES " +
	"WHERE PRIVILEGE_TYPE IN ('SUPER', 'CONNECTION ADMIN') AND GRANTEE = CONCAT('''', " +
	"LEFT(CURRENT_USER(), LENGTH(CURRENT_USER()) - LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1), " +
	"'''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''') LIMIT 1"

// mayKillOthers asks the primary whether the session's account holds
// SUPER or CONNECTION ADMIN there: the servers own the privileges, so
// sluice asks them rather than keep a second list. Asked at each KILL of
// another user's session (rare), so a REVOKE takes effect at once.
func (s *engine) mayKillOthers(ctx context.Context) bool {
	c, server, _, e := s.acquire(ctx, router.Primary, "")
	if e != nil {
		s.log.Warn("cannot check the KILL privilege on the primary", "err", e.Message)
		return false
	}
	res, err := c.Exec(killPrivilegeSQL, s.rt.Limits.Query)
	if err != nil && res.Err == nil {
		s.dropConn(c, server)
		return false
	}
	s.releaseAfter(c, server)
	return err == nil && res.Rows > 0
}

// resetSession implements COM_RESET_CONNECTION: everything the session set
// up is dropped, as on the server; the default schema stays.
func (s *engine) resetSession() {
	s.forgetPlacement()
	s.unpinForReset()
	for id := range s.stmts {
		s.dropStmt(id)
	}
	s.sendQueuedCloses()
	s.state.ResetSets()
	s.autocommit, s.inTxn, s.pins, s.cursors = true, false, 0, 0
	s.lastInsertID, s.pendingTxSet, s.lastWrite = 0, "", time.Time{}
	s.causal.forgetLastWrites()
}

// unpinForReset closes the pinned connection: its state (temporary tables,
// locks, transaction) must disappear, and closing is the one way that
// cannot leave any behind.
func (s *engine) unpinForReset() {
	if s.pinned == nil {
		return
	}
	c, server := s.pinned, s.pinnedServer
	s.pinned, s.pinnedServer = nil, ""
	if p := s.rt.Pool(server); p != nil {
		p.Discard(c)
	} else {
		c.Close()
	}
}
