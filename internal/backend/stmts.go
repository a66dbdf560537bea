package backend

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// StmtKey names a server-side prepared statement on one connection: its
// text and the session state it was prepared under (the schema resolves
// its table names; collation and SETs such as sql_mode change how it
// parses). Client statements with the same key share one server statement,
// so a server holds (distinct statements × connections) of them, not
// (client prepares × connections).
type StmtKey struct {
	Schema    string
	Collation byte
	Sets      uint64
	// Owner is 0 for a shared statement; a client statement that opens a
	// cursor gets one of its own (Owner is its process-wide key), since a
	// second execute of the same server statement would close the cursor.
	Owner uint64
	SQL   string
}

// Stmt is one server-side prepared statement on a connection.
type Stmt struct {
	Key    StmtKey
	ID     uint32
	refs   int // client statements that reference it on this connection
	used   uint64
	closed bool

	// Types are the parameter types the server last bound to it: an
	// execute that leaves them out (new_params_bound_flag = 0) needs them
	// added only when its client bound others. Nil when not known.
	Types []byte
}

// Closed reports whether the statement no longer exists on the server
// (closed by the cache, a reset, or the connection's end).
func (s *Stmt) Closed() bool { return s.closed }

// Bounds of the statement cache of one connection: together they bound
// what a server holds for sluice at (connections × maxStmtsPerConn).
const (
	// maxStmtsPerConn bounds the statements of one connection, so many
	// sessions sharing it cannot exhaust max_prepared_stmt_count; beyond
	// it the least recently used is closed, and prepared again when next
	// executed there.
	maxStmtsPerConn = 256
	// maxUnusedStmts bounds statements no client statement references any
	// more. They are closed at once: a server then holds only statements
	// some client still has open, which is what its operators see and
	// expect (Prepared_stmt_count back to where it was when clients close
	// theirs), and a text prepared again costs one prepare per connection.
	maxUnusedStmts = 0
)

// LookupStmt returns the connection's statement for k, nil if none, and
// takes a reference to it.
func (c *Conn) LookupStmt(k StmtKey) *Stmt {
	st := c.stmts[k]
	if st == nil {
		return nil
	}
	c.ref(st)
	return st
}

func (c *Conn) ref(st *Stmt) {
	if st.refs == 0 {
		c.unused--
	}
	st.refs++
	c.stmtTick++
	st.used = c.stmtTick
}

// Touch marks a statement used, for the LRU bound.
func (c *Conn) Touch(st *Stmt) {
	c.stmtTick++
	st.used = c.stmtTick
}

// AddStmt records a statement just prepared under k with one reference.
// A statement already cached under k (prepared by a client's own
// COM_STMT_PREPARE) wins: the new one is closed and the cached one
// returned. Beyond the cache's bounds the least recently used statements
// are closed. The caller holds the connection and has read the whole
// prepare response.
func (c *Conn) AddStmt(k StmtKey, id uint32) *Stmt {
	if old := c.stmts[k]; old != nil {
		// Sent now: buffered, it would wait for the connection's next
		// command, and an idle pooled connection may not have one soon.
		c.writeStmtClose(id)
		c.Flush()
		c.ref(old)
		return old
	}
	st := &Stmt{Key: k, ID: id}
	c.stmts[k] = st
	c.unused++ // ref counts it back
	c.ref(st)
	c.evict()
	return st
}

// Unref drops a reference taken by LookupStmt or AddStmt. The caller holds
// the connection.
func (c *Conn) Unref(st *Stmt) {
	if st.closed || c.stmts[st.Key] != st || st.refs == 0 {
		return
	}
	if st.refs--; st.refs == 0 {
		c.unused++
		c.evict()
	}
}

// evict closes least recently used statements beyond the bounds: unused
// ones first, then (past maxStmtsPerConn) any but a cursor's.
func (c *Conn) evict() {
	for c.unused > maxUnusedStmts || len(c.stmts) > maxStmtsPerConn {
		var victim *Stmt
		onlyUnused := c.unused > maxUnusedStmts
		for _, st := range c.stmts {
			if onlyUnused && st.refs > 0 || st.Key.Owner != 0 && st.refs > 0 {
				continue
			}
			if victim == nil || st.used < victim.used {
				victim = st
			}
		}
		if victim == nil {
			return
		}
		c.closeStmt(victim)
	}
}

func (c *Conn) closeStmt(st *Stmt) {
	if st.closed {
		return
	}
	st.closed = true
	delete(c.stmts, st.Key)
	if st.refs == 0 {
		c.unused--
	}
	c.writeStmtClose(st.ID)
}

// CloseStmt closes a statement now, whatever references it (COM_STMT_CLOSE
// of a client statement with a statement of its own). The caller holds
// the connection.
func (c *Conn) CloseStmt(st *Stmt) {
	if !st.closed && c.stmts[st.Key] == st {
		c.closeStmt(st)
	}
}

func (c *Conn) writeStmtClose(id uint32) {
	var b [5]byte
	b[0] = wire.ComStmtClose
	binary.LittleEndian.PutUint32(b[1:], id)
	// COM_STMT_CLOSE has no response; it is sent with the next command.
	c.Seq = 0
	c.WritePacket(b[:])
}

// Stmts returns how many statements the connection holds on its server.
func (c *Conn) Stmts() int { return len(c.stmts) }

// ShedStmts closes every statement on this connection except a cursor's
// (keep reports those), and returns how many it closed. It is the answer to
// a server out of statements (max_prepared_stmt_count, error 1461): the
// statements closed are prepared again where they are next executed. The
// caller holds the connection.
func (c *Conn) ShedStmts(keep func(st *Stmt) bool) int {
	n := 0
	for _, st := range c.stmts {
		if keep != nil && keep(st) {
			continue
		}
		c.closeStmt(st)
		n++
	}
	return n
}

// QueueUnref drops a reference the next time the connection is lent; safe
// to call while another session holds it.
func (c *Conn) QueueUnref(st *Stmt) {
	c.closeMu.Lock()
	c.pendingClose = append(c.pendingClose, st)
	c.queued.Store(true)
	c.closeMu.Unlock()
}

func (c *Conn) hasQueued() bool { return c.queued.Load() }

// Pool returns the pool that lent the connection.
func (c *Conn) Pool() *Pool { return c.server }

func (c *Conn) flushPendingCloses() {
	if !c.queued.Load() {
		return
	}
	c.closeMu.Lock()
	pending := c.pendingClose
	c.pendingClose = nil
	c.queued.Store(false)
	c.closeMu.Unlock()
	for _, st := range pending {
		c.Unref(st)
	}
}

// forgetStmts records that the server dropped every statement (reset).
func (c *Conn) forgetStmts() {
	for _, st := range c.stmts {
		st.closed = true
	}
	clear(c.stmts)
	c.unused = 0
}
