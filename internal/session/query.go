package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/topology"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// query handles COM_QUERY.
func (s *engine) query(ctx context.Context, pkt []byte) error {
	if sqlscan.HasConnectionID(pkt[1:]) {
		if out, ok := sqlscan.RewriteConnectionID([]byte{wire.ComQuery}, pkt[1:], s.ID); ok {
			pkt = out
		}
	}
	sql := pkt[1:]
	// The digest comes from the same pass as the kind, for the observer:
	// lexing the text twice cost more than anything else sluice did with it.
	st, digest := sqlscan.ScanDigest(sql)
	if st.Flags&sqlscan.FlagMulti != 0 && !s.multiStmt {
		return s.fail(wire.Errorf(wire.ErrParse, "42000",
			"You have an error in your SQL syntax: multi-statements are not enabled on this connection (CLIENT_MULTI_STATEMENTS)"))
	}
	if handled, err := s.placeQuery(ctx, sql, st); handled {
		return err
	}
	switch st.Kind {
	case sqlscan.KindKill:
		id, queryOnly, ok := sqlscan.KillTarget(sql)
		if !ok {
			return s.fail(wire.Errorf(wire.ErrNotSupportedYet, "42000", "sluice supports KILL [CONNECTION|QUERY] <id> only"))
		}
		return s.kill(ctx, id, queryOnly)
	case sqlscan.KindSetTransaction:
		if s.pinned == nil {
			// Characteristics of the next transaction only: held back and
			// sent just before the next statement, on its connection, so
			// they can never leak to another session through the pool.
			s.pendingTxSet = string(sql)
			return s.ok(0, 0)
		}
	case sqlscan.KindUse:
		if s.pinned == nil {
			db, ok := sqlscan.UseTarget(sql)
			if ok {
				if e := s.useSchema(ctx, db); e != nil {
					return s.fail(e)
				}
				return s.ok(0, 0)
			}
		}
	}
	target := s.decide(st, sql)
	s.stmtDigest = digest
	defer func() { s.stmtDigest = 0 }()
	return s.execute(ctx, pkt, st, target, wire.ModeText, nil)
}

// decide picks primary or replica for a statement outside a pinned
// connection.
func (s *engine) decide(st sqlscan.Statement, sql []byte) router.Target {
	if s.place.pendingBegin != "" && st.Kind != sqlscan.KindSet && st.Kind != sqlscan.KindUse {
		return router.Primary // it begins the held-back transaction
	}
	if st.Flags&sqlscan.FlagMulti != 0 && st.Flags&sqlscan.FlagHintPrimary == 0 {
		// A multi-statement may go to a replica only if every part may.
		allRead := true
		sqlscan.Split(sql, func(part []byte) bool {
			if !sqlscan.Scan(part).IsRead() {
				allRead = false
			}
			return allRead
		})
		if allRead && s.autocommit && !s.recentWrite() {
			return router.Replica
		}
		return router.Primary
	}
	if st.Kind == sqlscan.KindSet || st.Kind == sqlscan.KindUse {
		// Session state is validated on the primary and replayed on every
		// other connection that serves the session.
		return router.Primary
	}
	pol := s.rt.Policy
	var now time.Time // the clock is read only when read-your-writes asks it
	if pol.ReadYourWrites > 0 && !s.lastWrite.IsZero() {
		now = time.Now()
	}
	return router.Decide(st, router.Session{Autocommit: s.autocommit, LastWrite: s.lastWrite}, pol, now)
}

// writes reports whether a statement may change data, for read-your-writes.
func writes(st sqlscan.Statement) bool {
	switch st.Kind {
	case sqlscan.KindSelect, sqlscan.KindShow, sqlscan.KindSet, sqlscan.KindUse,
		sqlscan.KindBeginReadOnly, sqlscan.KindSetTransaction:
		return st.Flags&(sqlscan.FlagInto|sqlscan.FlagSequence) != 0
	}
	return true
}

func (s *engine) recentWrite() bool {
	w := s.rt.Policy.ReadYourWrites
	return w > 0 && !s.lastWrite.IsZero() && time.Since(s.lastWrite) < w
}

// prepareFn runs on the lent connection before the command is sent (used by
// prepared statements to prepare lazily and rewrite ids). It returns the
// packet to send.
type prepareFn func(c *backend.Conn) ([]byte, *wire.Error)

// execute runs one command on the right backend and streams the response.
func (s *engine) execute(ctx context.Context, pkt []byte, st sqlscan.Statement, target router.Target, mode wire.RelayMode, prep prepareFn) error {
	_, err := s.executeResult(ctx, pkt, st, target, mode, prep)
	return err
}

// executeResult is execute that also returns the summary of the response
// (zero when the command did not complete).
func (s *engine) executeResult(ctx context.Context, pkt []byte, st sqlscan.Statement, target router.Target, mode wire.RelayMode, prep prepareFn) (wire.Result, error) {
	start := time.Now()
	// The event lives in the session, not on the heap per statement:
	// observers may use it only during the call.
	ev := &s.ev
	*ev = Event{Session: s.ID, User: s.account.Name, Schema: s.state.Schema, Command: pkt[0],
		Kind: st.Kind.String(), Start: start, SQL: s.stmtText, Digest: s.stmtDigest, BytesIn: int64(len(pkt)), Target: target.String()}
	if pkt[0] == wire.ComQuery {
		ev.SQL = pkt[1:]
	}
	// Statements whose text session bookkeeping needs after the command
	// are copied; the packet buffer stays intact during a LOCAL INFILE
	// too (relayLocalFile detaches it).
	var sql []byte
	if pkt[0] == wire.ComQuery {
		sql = pkt[1:]
		if st.Flags&sqlscan.FlagMulti != 0 || st.Kind == sqlscan.KindSet || st.Kind == sqlscan.KindUse || st.Kind == sqlscan.KindWrite {
			sql = append([]byte(nil), sql...)
		}
	}
	skip := ""
	for attempt := 0; ; attempt++ {
		s.dropNextPin(st)
		if e := s.leaveReplicaTxn(st); e != nil {
			ev.Err, ev.Duration = true, time.Since(start)
			s.rt.Observer.Statement(s.sess, ev)
			return wire.Result{}, s.fail(e)
		}
		c, server, routed, e := s.acquire(ctx, target, skip)
		if e != nil && attempt == 0 && server != "" && routed == router.Replica && s.pinned == nil && st.IsRead() {
			// The chosen replica cannot be reached (it died since the last
			// check): a read tries another server once.
			s.log.Warn("replica unreachable, trying another server", "server", server, "err", e.Message)
			skip = server
			continue
		}
		if e != nil {
			ev.Err, ev.Duration = true, time.Since(start)
			s.rt.Observer.Statement(s.sess, ev)
			return wire.Result{}, s.fail(e)
		}
		ev.Target, ev.Server = routed.String(), server
		if e := s.fitsServer(server, len(pkt)); e != nil {
			// Refused before it is sent: the server would answer 1153
			// and close the connection, and a read would be retried on
			// another server of the same size for nothing.
			s.release(c, server)
			ev.Err, ev.Duration = true, time.Since(start)
			s.rt.Observer.Statement(s.sess, ev)
			return wire.Result{}, s.fail(e)
		}
		if s.mayOpenTxn(st) {
			s.txnStage(server, routed, st, pkt)
		} else if s.txn != nil {
			s.txn.staged = false
		}
		text := sql
		if text == nil {
			text = s.stmtText
		}
		// Active from here: preparing on this connection is backend I/O
		// too, and a lost server must be able to interrupt it.
		s.setActive(c, server, text)
		send := pkt
		if prep != nil {
			var pe *wire.Error
			if send, pe = prep(c); pe != nil {
				s.clearActive()
				lost, wasTxn := c.IsBroken() || c.Closed(), s.inTxn
				pe = s.failedBeforeSend(c, server, pe)
				if lost && wasTxn && s.txn != nil && s.txn.staged && s.txnReplay(ctx, server) {
					continue // preparing failed on the lost primary: on the new one now
				}
				ev.Err, ev.Duration = true, time.Since(start)
				s.rt.Observer.Statement(s.sess, ev)
				return wire.Result{}, s.fail(s.withRefusal(pe))
			}
		}
		if e := s.beforeSend(c, st); e != nil {
			s.clearActive()
			ev.Err, ev.Duration = true, time.Since(start)
			s.rt.Observer.Statement(s.sess, ev)
			return wire.Result{}, s.fail(s.failedBeforeSend(c, server, e))
		}
		// sluice counts a compound statement as one by its own reading; the
		// server, with multi-statements off for it, is the judge of that.
		guard := pkt[0] == wire.ComQuery && st.Flags&sqlscan.FlagCompound != 0 && !s.multiStmt
		if guard {
			if err := c.SetMultiStatements(false, s.rt.Limits.Query); err != nil {
				s.clearActive()
				return wire.Result{}, s.fail(s.failedBeforeSend(c, server, asWireError(err)))
			}
		}
		if s.txn != nil {
			c.Conn.Sum = s.txn.arm()
		}
		res, err := s.roundTrip(c, send, mode)
		c.Conn.Sum = nil
		if guard && err == nil && c.SetMultiStatements(true, s.rt.Limits.Query) != nil {
			c.MarkBroken() // state replay needs multi-statements: never pool it
		}
		s.clearActive()
		if err != nil {
			var re *wire.RelayError
			clientSide := errors.As(err, &re) && re.Side == wire.SideClient
			if wire.IsTimeout(err) || clientSide {
				// The server may still be running the statement: stop it
				// rather than let it hold locks for nobody.
				s.killOnServer(server, c.ThreadID)
			}
			// Decided before dropConn, which forgets the pin and the
			// transaction: a read inside one must fail, not move.
			retry := attempt == 0 && !res.Wrote && routed == router.Replica && s.pinned == nil &&
				!s.inTxn && st.IsRead() && len(pkt) < unknownPacketLimit
			s.dropConn(c, server)
			if clientSide {
				// The client stopped reading its result (timeouts.client_write),
				// stopped sending its LOCAL INFILE file (client_read), or
				// left: say so once, and count the statement as failed.
				if wire.IsTimeout(err) {
					s.log.Warn("client stalled during its statement (stopped reading the result: timeouts.client_write, or sending its LOCAL INFILE file: client_read); connection cut",
						"server", server, "bytes_sent", res.Bytes)
				} else {
					s.log.Info("client connection lost while its result was sent", "server", server, "err", err)
				}
				ev.Err, ev.Duration, ev.Rows, ev.BytesOut = true, time.Since(start), res.Rows, res.Bytes
				s.rt.Observer.Statement(s.sess, ev)
				return res, err
			}
			if retry {
				// A read that failed because its replica died, outside a
				// transaction, is retried once on another server.
				s.log.Warn("read failed, retrying on another server", "server", server, "err", err)
				skip = server
				continue
			}
			if s.txn != nil && attempt < 4 && !wire.IsTimeout(err) {
				again, e := s.txnLost(ctx, server, res.Wrote || res.Partial)
				if again {
					continue // the transaction was replayed: the statement runs there now
				}
				if e != nil {
					ev.Err, ev.Duration = true, time.Since(start)
					s.rt.Observer.Statement(s.sess, ev)
					return res, s.fail(e)
				}
			}
			ev.Err, ev.Duration = true, time.Since(start)
			s.rt.Observer.Statement(s.sess, ev)
			if res.Partial {
				// The client holds part of a packet: an ERR now would be
				// read as the rest of it. Closing is the only clear answer.
				s.log.Warn("backend failed mid-packet; closing the client connection", "server", server, "err", err)
				return res, err
			}
			return res, s.backendFailed(server, err, res.Wrote)
		}
		s.afterResult(c, server, routed, st, sql, res)
		if s.txn != nil && s.txn.staged {
			s.txnNote()
		}
		if res.Err != nil {
			s.countError(res.Err.Code, CauseServer)
		}
		ev.Duration, ev.Rows, ev.Affected, ev.Err = time.Since(start), res.Rows, res.OK.AffectedRows, res.Err != nil
		ev.BytesOut = res.Bytes
		s.rt.Observer.Statement(s.sess, ev)
		return res, nil
	}
}

// unknownPacketLimit is the servers' default max_allowed_packet (16 MiB):
// a command at least this large that failed may have failed for its size,
// where the monitor has not read the server's limit yet, so it is not
// retried elsewhere.
const unknownPacketLimit = 16 << 20

// fitsServer refuses a command larger than the server's max_allowed_packet
// with the server's own error, 1153; the session goes on (the command was
// read whole, nothing is out of step).
func (s *engine) fitsServer(server string, size int) *wire.Error {
	if size <= 1024 {
		return nil
	}
	srv, ok := s.env.Snapshot().ByName(server)
	if !ok || srv.MaxAllowedPacket <= 0 || size <= srv.MaxAllowedPacket {
		return nil
	}
	return wire.Errorf(wire.ErrNetPacketTooLarge, "08S01",
		"Got a packet bigger than 'max_allowed_packet' bytes: the command has %d bytes, server %s accepts %d", size, server, srv.MaxAllowedPacket)
}

// acquire returns the connection to run on: the pinned one, or one lent by
// the pool of the server the router chose.
func (s *engine) acquire(ctx context.Context, target router.Target, skip string) (*backend.Conn, string, router.Target, *wire.Error) {
	if s.pinned != nil {
		t := router.Primary
		if n, ok := s.takeAbort(s.pinnedServer); ok {
			soft := n.soft && !s.inTxn && s.pins == pinNext
			name, wasTxn := s.pinnedServer, s.inTxn
			s.dropConn(s.pinned, s.pinnedServer)
			if !soft {
				if wasTxn && s.txnReplay(ctx, name) {
					return s.acquire(ctx, target, skip) // the transaction goes on on the new primary
				}
				return nil, "", t, s.withRefusal(n.err())
			}
			// Only a pending SHOW WARNINGS was pinned: route as usual.
			return s.acquire(ctx, target, skip)
		}
		snap := s.env.Snapshot()
		srv, ok := snap.ByName(s.pinnedServer)
		if ok && srv.Fenced {
			// Demoted by a failover: nothing of the session's may run there.
			name, wasTxn := s.pinnedServer, s.inTxn
			s.dropConn(s.pinned, name)
			if wasTxn && s.txnReplay(ctx, name) {
				return s.acquire(ctx, target, skip)
			}
			return nil, "", t, s.withRefusal(wire.Errorf(wire.ErrConnectionKilled, "70100",
				"sluice: %s was demoted by a failover (epoch %d); the session's transaction and connection state on it are gone: run it again", name, snap.Epoch))
		}
		if ok && srv.Admin == topology.AdminMaintenance {
			// The operator took the server away: whatever lived on the
			// connection (a transaction, temporary tables) is gone with it.
			// A server removed by a reload is drained instead: pinned
			// sessions finish on it.
			name := s.pinnedServer
			s.dropConn(s.pinned, name)
			return nil, "", t, wire.Errorf(wire.ErrUnavailable, "08S01",
				"sluice: server %s was put in maintenance; the session's transaction and connection state on it are lost", name)
		}
		if !ok || srv.Name != primaryName(snap) {
			t = router.Replica
		}
		return s.pinned, s.pinnedServer, t, nil
	}
	if s.abort.Load() != nil {
		s.abort.Store(nil) // not pinned: nothing of the session's was cut
	}
	snap := s.env.Snapshot()
	if target == router.Primary && snap.Hold != nil {
		var e *wire.Error
		if snap, e = waitHold(ctx, s.env, snap); e != nil {
			return nil, "", target, e
		}
	}
	pol := s.rt.Policy
	var name string
	routed := target
	if target == router.Replica {
		srv, e := s.pickReplica(snap, pol, skip)
		if e != nil {
			return nil, "", target, e
		}
		name = srv.Name
		if srv.Name == primaryName(snap) {
			routed = router.Primary
		}
	} else {
		srv, err := router.PrimaryOf(snap)
		if err != nil {
			if snap.Designated != "" {
				// The epoch's primary is down: wait for its failover.
				retry, e := s.awaitPrimary(ctx, snap.Designated, nil)
				if retry {
					return s.acquire(ctx, target, skip)
				}
				if e != nil {
					return nil, "", target, e
				}
			}
			return nil, "", target, unavailable(err)
		}
		name = srv.Name
	}
	pool := s.rt.Pool(name)
	if pool == nil {
		return nil, "", target, unavailable(fmt.Errorf("server %s is not configured", name))
	}
	c, err := pool.Get(ctx, s.key(), s.account.Password, s.stateFor())
	if err != nil {
		var me *wire.Error
		if errors.As(err, &me) {
			return nil, "", target, me
		}
		if errors.Is(err, backend.ErrPoolFull) {
			return nil, "", target, wire.Errorf(wire.ErrConCount, "08004", "Too many connections: %v", err)
		}
		if routed == router.Primary && target == router.Primary {
			// The primary refused or timed out the connection: wait for
			// the failover rather than fail (see awaitPrimary).
			if retry, e := s.awaitPrimary(ctx, name, err); retry {
				return s.acquire(ctx, target, skip)
			} else if e != nil {
				return nil, "", target, e
			}
		}
		return nil, name, routed, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: cannot reach %s: %v", name, err)
	}
	s.primaryWaits = 0
	if routed == router.Primary && s.env.Snapshot().Hold != nil {
		// A hold began while the connection was lent: the primary may be
		// changing, so wait and route again. The hold is published before
		// the failover manager counts lent connections, so either it sees
		// this one or this check sees the hold.
		s.release(c, name)
		if _, e := waitHold(ctx, s.env, s.env.Snapshot()); e != nil {
			return nil, "", target, e
		}
		return s.acquire(ctx, target, skip)
	}
	lc, ln, lr, le := s.lent(ctx, c, name, routed, target, skip)
	if le != nil && lc == nil && ln == name && routed == router.Primary && target == router.Primary {
		// The new connection broke as it was set up: the primary is
		// dying too.
		if retry, e := s.awaitPrimary(ctx, name, errors.New(le.Message)); retry {
			return s.acquire(ctx, target, skip)
		} else if e != nil {
			return nil, "", target, e
		}
	}
	return lc, ln, lr, le
}

// waitHold waits while new primary work is held for a primary change,
// until the hold ends (then it returns the snapshot after it) or its
// deadline passes.
func waitHold(ctx context.Context, env Env, snap *topology.Snapshot) (*topology.Snapshot, *wire.Error) {
	for snap.Hold != nil {
		h := snap.Hold
		wait := time.Until(h.Deadline)
		if wait <= 0 {
			return snap, wire.Errorf(wire.ErrUnavailable, "08S01",
				"sluice: writes held for a primary change (%s) longer than failover.hold_timeout; try again", h.Reason)
		}
		t := time.NewTimer(wait)
		select {
		case <-h.Done:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return snap, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: session ended while writes were held")
		}
		t.Stop()
		snap = env.Snapshot()
	}
	return snap, nil
}

func primaryName(snap *topology.Snapshot) string {
	if p, ok := snap.PrimaryServer(); ok {
		return p.Name
	}
	return ""
}

func (s *engine) load(name string) int64 {
	if p := s.rt.Pool(name); p != nil {
		return p.InUse.Load()
	}
	return 0
}

func (s *engine) key() backend.Key {
	return backend.Key{User: s.account.Name, FoundRows: s.caps&wire.ClientFoundRows != 0}
}

func unavailable(err error) *wire.Error {
	return wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: %v", err)
}

// beforeSend applies what must precede the statement on this connection:
// held-back SET TRANSACTION, and the session's LAST_INSERT_ID() value when
// the statement reads it on a connection that did not produce it.
func (s *engine) beforeSend(c *backend.Conn, st sqlscan.Statement) *wire.Error {
	if e := s.beginPending(c, st); e != nil {
		return e
	}
	lim := s.rt.Limits
	if s.pendingTxSet != "" {
		q := s.pendingTxSet
		s.pendingTxSet = ""
		if _, err := c.Exec(q, lim.Query); err != nil {
			return asWireError(err)
		}
	}
	if st.Flags&(sqlscan.FlagLastInsertID|sqlscan.FlagSetsInsertID) != 0 && c.LastInsertID != s.lastInsertID {
		if _, err := c.Exec("SET last_insert_id = "+strconv.FormatUint(s.lastInsertID, 10), lim.Query); err != nil {
			return asWireError(err)
		}
		c.LastInsertID = s.lastInsertID
	}
	return nil
}

func asWireError(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	// Only ever used before the client's statement reached the server: it
	// did not run, so retrying is safe. Never a client-range code (2013):
	// C clients turn those into 2027 "malformed packet".
	return wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the backend connection failed before the statement was sent (%v); it did not run: try again", err)
}

// roundTrip sends a command and relays the response to the client,
// including LOAD DATA LOCAL INFILE's file transfer.
func (s *engine) roundTrip(c *backend.Conn, pkt []byte, mode wire.RelayMode) (wire.Result, error) {
	lim := s.rt.Limits
	c.SetWriteTimeout(lim.Query)
	if err := c.WriteCommand(pkt); err != nil {
		return wire.Result{}, &wire.RelayError{Side: wire.SideBackend, Err: err}
	}
	// The response continues the client's sequence: 1 after a one-packet
	// command, more after a command of 16 MiB or more.
	for {
		res, err := wire.Relay(s.c, c.Conn, mode, lim.Query, lim.ClientWrite)
		if err != nil || !res.LocalInfile {
			return res, err
		}
		if s.c.NoLocalInfile {
			// The client did not offer CLIENT_LOCAL_FILES: refuse the file
			// on its behalf and answer as MariaDB does.
			if err := c.WriteFlush(nil); err != nil {
				return res, &wire.RelayError{Side: wire.SideBackend, Err: err}
			}
			res, err = wire.Relay(nil, c.Conn, mode, lim.Query, 0)
			if err != nil {
				return res, err
			}
			res.Err = wire.Errorf(4166, "HY000", "The used command is not allowed because the MariaDB server or client has disabled the local infile capability")
			res.Wrote = true
			return res, s.c.WriteError(res.Err)
		}
		if err := s.relayLocalFile(c); err != nil {
			return res, err
		}
	}
}

// relayLocalFile streams the client's file to the backend: packets until
// an empty one. A client that did not enable LOCAL INFILE never receives the
// request (it would not understand it); the backend gets an empty file and
// answers with its own error.
func (s *engine) relayLocalFile(c *backend.Conn) error {
	// The file's packets must not overwrite the statement: its text is
	// still held by the statement event (digests, slow log) and the
	// session's bookkeeping. One buffer per LOCAL INFILE statement.
	s.c.Detach()
	lim := s.rt.Limits
	for {
		// The client sends the file at its own pace, but a client that
		// stops must not hold the backend (whose own net_read_timeout
		// gives up after 30 s by default) for timeouts.query.
		s.c.SetReadTimeout(lim.ClientRead)
		p, err := s.c.ReadPacket(lim.MaxAllowedPacket)
		if err != nil {
			return &wire.RelayError{Side: wire.SideClient, Err: err}
		}
		c.SetWriteTimeout(lim.Query)
		if err := c.WritePacket(p); err != nil {
			return &wire.RelayError{Side: wire.SideBackend, Err: err}
		}
		if len(p) == 0 {
			if err := c.Flush(); err != nil {
				return &wire.RelayError{Side: wire.SideBackend, Err: err}
			}
			s.c.SetReadTimeout(0)
			return nil
		}
	}
}

// afterResult updates session state from the server's answer and returns
// or keeps the connection.
func (s *engine) afterResult(c *backend.Conn, server string, routed router.Target, st sqlscan.Statement, sql []byte, res wire.Result) {
	if res.HasStatus {
		s.autocommit = res.Status&wire.StatusAutocommit != 0
		s.inTxn = res.Status&wire.StatusInTrans != 0
	} else if res.Err != nil && !s.autocommit {
		// An ERR carries no status, but with autocommit off even a failed
		// statement may have opened a transaction holding locks: keep the
		// connection until a status says otherwise.
		s.inTxn = true
	}
	if res.OK.LastInsertID != 0 {
		s.lastInsertID = res.OK.LastInsertID
		c.LastInsertID = res.OK.LastInsertID
	} else if st.Flags&sqlscan.FlagSetsInsertID != 0 && res.Err == nil {
		if !s.readLastInsertID(c, server) {
			return
		}
	}
	if routed == router.Primary && writes(st) {
		s.lastWrite = time.Now()
	}
	s.noteCommit(c, routed, writes(st), &res)
	if st.Flags&sqlscan.FlagDiagnostics == 0 {
		// Diagnostics leave the diagnostics area alone, so the next one
		// must still reach the same connection.
		s.pins &^= pinNext
	}
	if res.Err == nil || st.Flags&sqlscan.FlagMulti != 0 {
		// The parts of a multi-statement before a failing one did run.
		s.notePins(c, st, sql)
	}
	s.foundRowsNext = st.Flags&sqlscan.FlagCalcFoundRows != 0 && res.Err == nil ||
		s.foundRowsNext && st.Flags&sqlscan.FlagDiagnostics != 0
	if res.Err != nil || res.Warnings > 0 {
		// SHOW WARNINGS / SHOW ERRORS / @@warning_count answer about the
		// previous statement only on its own connection.
		s.pins |= pinNext
	}
	if res.CursorOpen {
		s.pins |= pinCursor
	}
	if s.inTxn || s.pins != 0 {
		s.pin(c, server)
		return
	}
	s.unpinOrRelease(c, server)
}

// readLastInsertID asks the connection for LAST_INSERT_ID() after a
// statement that may have changed it without an OK packet saying so
// (SELECT LAST_INSERT_ID(expr), INSERT … RETURNING answer with rows).
// One more round trip, on the same connection, for those rare statements
// only: cheaper than decoding the rows sluice streams, and exact where
// pinning the session would only hide the value until the next statement
// ran elsewhere. A connection that fails here is dropped, and false
// returned.
func (s *engine) readLastInsertID(c *backend.Conn, server string) bool {
	const q = "SELECT LAST_INSERT_ID()"
	s.setActive(c, server, []byte(q)) // a lost server interrupts it
	id, err := c.QueryUint(q, s.rt.Limits.Query)
	s.clearActive()
	if err != nil {
		s.log.Warn("reading LAST_INSERT_ID() after a statement that set it", "server", server, "err", err)
		if c.IsBroken() {
			s.dropConn(c, server)
			return false
		}
		return true
	}
	s.lastInsertID, c.LastInsertID = id, id
	return true
}

// notePins records state the statement left on its connection.
func (s *engine) notePins(c *backend.Conn, st sqlscan.Statement, sql []byte) {
	f := st.Flags
	if f&(sqlscan.FlagMulti|sqlscan.FlagCompound) == 0 {
		text := sql
		if text == nil {
			text = s.stmtText // COM_STMT_EXECUTE
		}
		s.noteConnNames(st, text)
	} else if f&sqlscan.FlagCreateTemp != 0 {
		s.pins |= pinTempTable
		s.names.tempUnknown = true
	}
	if f&sqlscan.FlagCompound != 0 && st.Kind != sqlscan.KindDDL {
		// BEGIN NOT ATOMIC … END and the like run statements sluice does
		// not follow one by one: SET, PREPARE, temporary tables.
		s.pins |= pinUnknownState
	}
	if f&sqlscan.FlagGetLock != 0 {
		s.pins |= pinUserLock
	}
	if f&sqlscan.FlagReleaseAllLocks != 0 {
		s.pins &^= pinUserLock
	}
	if f&sqlscan.FlagCalcFoundRows != 0 {
		s.pins |= pinNext
	}
	if f&(sqlscan.FlagUserVarAssign|sqlscan.FlagInto) != 0 {
		s.pins |= pinUserVar
	}
	switch st.Kind {
	case sqlscan.KindLockTables:
		s.pins |= pinLockTables
	case sqlscan.KindUnlockTables:
		s.pins &^= pinLockTables
	case sqlscan.KindPrepare:
		if f&sqlscan.FlagMulti != 0 {
			s.pins |= pinTextPrepare
			s.names.prepUnknown = true
		}
	}
	if f&sqlscan.FlagMulti != 0 {
		changes := false
		sqlscan.Split(sql, func(part []byte) bool {
			ps := sqlscan.Scan(part)
			switch ps.Kind {
			case sqlscan.KindSet, sqlscan.KindSetTransaction, sqlscan.KindUse, sqlscan.KindPrepare, sqlscan.KindLockTables:
				changes = true
			}
			if ps.Flags&(sqlscan.FlagCreateTemp|sqlscan.FlagGetLock|sqlscan.FlagUserVarAssign|sqlscan.FlagInto|sqlscan.FlagCalcFoundRows) != 0 {
				changes = true
			}
			if ps.Flags&sqlscan.FlagCompound != 0 && ps.Kind != sqlscan.KindDDL {
				changes = true
			}
			return !changes
		})
		if changes {
			s.pins |= pinUnknownState
		}
		return
	}
	if st.Kind == sqlscan.KindUse {
		if db, ok := sqlscan.UseTarget(sql); ok {
			s.state.Schema = db
			c.Adopt(&s.state)
		}
	}
	if st.Kind == sqlscan.KindSet {
		if !replayable(sql) {
			// SET @id = LAST_INSERT_ID(), SET @n = @n + 1, NOW(), a
			// subquery: replayed elsewhere it would compute another value,
			// so the session keeps the connection that computed it.
			s.pins |= pinUnknownState
			return
		}
		key, single := sqlscan.SetTarget(sql)
		if !single {
			key = ""
		}
		if !s.state.Record(key, string(sql)) {
			s.pins |= pinUnknownState
		}
		c.Adopt(&s.state)
	}
}

// replayable reports whether a SET gives the same result wherever it runs:
// every value is a literal or a bare word (ON, DEFAULT, utf8mb4, READ
// COMMITTED). The digest has already turned literals into ?, so anything
// else left on a right-hand side (a call, a variable, an operator, a
// subquery) depends on the connection it runs on.
func replayable(sql []byte) bool {
	var buf [512]byte
	d := sqlscan.Digest(buf[:0], sql)
	rhs := false
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c == '=':
			rhs = true
		case c == ',':
			rhs = false
		case !rhs:
		case c == '?' || c == ' ' || c == '_' || c == '.' || c == '`' ||
			c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
		default:
			return false // ( @ + - * / | and the like
		}
	}
	return true
}
