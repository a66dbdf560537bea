package backend

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// sinkConn accepts every write and counts COM_STMT_CLOSE packets.
type sinkConn struct {
	net.Conn
	closes int
}

func (c *sinkConn) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) >= 9 {
		n := int(p[0]) | int(p[1])<<8 | int(p[2])<<16
		if p[4] == wire.ComStmtClose {
			c.closes++
		}
		p = p[4+n:]
	}
	return total, nil
}
func (c *sinkConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *sinkConn) Close() error                     { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

func testConn() (*Conn, *sinkConn) {
	sc := &sinkConn{}
	return &Conn{Conn: wire.NewConn(sc), stmts: map[StmtKey]*Stmt{}}, sc
}

func TestStmtsSharedByText(t *testing.T) {
	c, sc := testConn()
	k := StmtKey{Schema: "db", SQL: "SELECT ?"}
	a := c.AddStmt(k, 1)
	if got := c.LookupStmt(k); got != a {
		t.Fatalf("LookupStmt = %p, want the statement added (%p)", got, a)
	}
	// A second prepare of the same text (a client's COM_STMT_PREPARE) is
	// closed on the server in favour of the one cached.
	if got := c.AddStmt(k, 2); got != a || a.refs != 3 {
		t.Fatalf("AddStmt of a cached key = %p with %d refs, want %p with 3", got, a.refs, a)
	}
	c.Flush()
	if sc.closes != 1 || c.Stmts() != 1 {
		t.Fatalf("%d closes, %d statements; want 1 and 1", sc.closes, c.Stmts())
	}
	other := StmtKey{Schema: "other", SQL: "SELECT ?"}
	if c.LookupStmt(other) != nil {
		t.Fatal("a statement of another schema was shared")
	}
	c.Unref(a)
	c.Unref(a)
	if a.Closed() {
		t.Fatal("statement closed while a client statement references it")
	}
	c.Unref(a)
	c.Flush()
	if !a.Closed() || c.Stmts() != 0 || sc.closes != 2 || c.unused != 0 {
		t.Fatalf("unreferenced statement: closed %v, %d left, %d closes, %d unused; want closed, 0, 2, 0", a.Closed(), c.Stmts(), sc.closes, c.unused)
	}
	c.Unref(a) // one too many: ignored
	if a.refs != 0 || c.unused != 0 {
		t.Fatalf("refs %d unused %d after an extra Unref", a.refs, c.unused)
	}
}

func TestStmtsBounded(t *testing.T) {
	c, sc := testConn()
	// Unreferenced statements beyond maxUnusedStmts are closed.
	for i := range maxUnusedStmts + 10 {
		c.Unref(c.AddStmt(StmtKey{SQL: fmt.Sprint("SELECT ", i)}, uint32(i+1)))
	}
	c.Flush()
	if c.Stmts() != maxUnusedStmts || sc.closes != 10 {
		t.Fatalf("%d statements, %d closed; want %d, 10", c.Stmts(), sc.closes, maxUnusedStmts)
	}
	// Referenced ones are bounded by maxStmtsPerConn, a cursor's excepted.
	cursor := c.AddStmt(StmtKey{SQL: "SELECT cursor", Owner: 7}, 9999)
	for i := range maxStmtsPerConn + 5 {
		c.AddStmt(StmtKey{SQL: fmt.Sprint("SELECT ref ", i)}, uint32(1000+i))
	}
	if c.Stmts() > maxStmtsPerConn || cursor.Closed() {
		t.Fatalf("%d statements (bound %d), cursor's closed %v", c.Stmts(), maxStmtsPerConn, cursor.Closed())
	}
	if n := c.ShedStmts(func(st *Stmt) bool { return st == cursor }); n != maxStmtsPerConn-1-maxUnusedStmts || c.Stmts() != 1 {
		t.Fatalf("ShedStmts closed %d, left %d", n, c.Stmts())
	}
	c.forgetStmts()
	if !cursor.Closed() || c.Stmts() != 0 || c.unused != 0 {
		t.Fatal("forgetStmts kept statements")
	}
}
