package session

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// The session hands clients its own statement ids, maps them to the
// server's, and lets go of a server statement only when no client
// statement uses it. These tests drive stmtPrepare, stmtExecute and
// stmtClose over pipes: the far end of the backend connection answers a
// prepare with its own id and records what it was sent; the far end of
// the client connection collects the packets the client would read.

// stmtServer is the far end of a backend connection that knows the
// prepared-statement commands.
type stmtServer struct {
	mu     sync.Mutex
	id     uint32 // the next server statement id
	sent   []stmtCmd
	closed chan struct{}
}

type stmtCmd struct {
	cmd byte
	id  uint32 // the server statement id the command names
	sql string // COM_STMT_PREPARE's text
}

func (s *stmtServer) got() []stmtCmd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stmtCmd(nil), s.sent...)
}

func newStmtBackend(t *testing.T, firstID uint32) (*stmtServer, func(*engine)) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	srv := &stmtServer{id: firstID, closed: make(chan struct{})}
	go func() {
		defer close(srv.closed)
		wc := wire.NewConn(b)
		for {
			wc.Seq = 0 // each command starts a sequence
			p, err := wc.ReadPacket(0)
			if err != nil || len(p) == 0 {
				return
			}
			c := stmtCmd{cmd: p[0]}
			if len(p) >= 5 && p[0] != wire.ComStmtPrepare {
				c.id = binary.LittleEndian.Uint32(p[1:])
			}
			srv.mu.Lock()
			var answer [][]byte
			switch p[0] {
			case wire.ComStmtPrepare:
				c.sql, c.id = string(p[1:]), srv.id
				srv.id++
				// One parameter, no columns: the OK, a parameter
				// definition and an EOF.
				answer = [][]byte{
					wire.AppendPrepareOK(nil, wire.PrepareOK{StmtID: c.id, Params: 1}),
					{0x03, 'd', 'e', 'f'},
					{0xfe, 0x00, 0x00, 0x02, 0x00},
				}
			case wire.ComStmtClose, wire.ComStmtSendLongData:
				// No answer, as a server sends none.
			default:
				answer = [][]byte{{0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}}
			}
			srv.sent = append(srv.sent, c)
			srv.mu.Unlock()
			wc.Seq = 1
			for _, pkt := range answer {
				if wc.WritePacket(pkt) != nil {
					return
				}
			}
			if wc.W.Flush() != nil {
				return
			}
		}
	}()
	conn := backend.Open(a)
	return srv, func(s *engine) { s.pinned, s.pinnedServer = conn, "db1"; s.pins = pinTextPrepare }
}

// farClient is the client's end of a session's connection: it collects
// the packets the session writes.
type farClient struct {
	pkts chan []byte
}

func (c *farClient) next(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, 0, n)
	for len(out) < n {
		select {
		case p := <-c.pkts:
			out = append(out, p)
		case <-time.After(5 * time.Second):
			t.Fatalf("the client got %d of %d packets: %q", len(out), n, out)
		}
	}
	return out
}

func pipeSession(t *testing.T) (*engine, *farClient) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	env := &testEnv{pool: backend.NewPool("db1", "127.0.0.1:1", backend.Settings{MaxIdle: 10})}
	s := New(1, a, env).eng.(*engine)
	far := &farClient{pkts: make(chan []byte, 64)}
	go func() {
		wc := wire.NewConn(b)
		for {
			p, err := wc.ReadPacket(0)
			if err != nil {
				return
			}
			far.pkts <- append([]byte(nil), p...)
		}
	}()
	return s, far
}

func prepare(sql string) []byte { return append([]byte{wire.ComStmtPrepare}, sql...) }

// execute builds a COM_STMT_EXECUTE of one BIGINT parameter, types sent.
func execute(id uint32) []byte {
	p := []byte{wire.ComStmtExecute, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x00, 1, 0x08, 0x00, 7, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(p[1:], id)
	return p
}

func closeStmt(id uint32) []byte {
	p := []byte{wire.ComStmtClose, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(p[1:], id)
	return p
}

func TestStatementIDsAreTheSessions(t *testing.T) {
	s, far := pipeSession(t)
	srv, pin := newStmtBackend(t, 77)
	pin(s)
	ctx := context.Background()

	// Two prepares of the same text and one of another: the client sees
	// 1, 2, 3; the server prepared the shared text once.
	for i, sql := range []string{"SELECT ?", "SELECT ?", "SELECT ? + 1"} {
		if err := s.stmtPrepare(ctx, prepare(sql)); err != nil {
			t.Fatal(err)
		}
		pkts := far.next(t, 3)
		pok, ok := wire.ParsePrepareOK(pkts[0])
		if !ok {
			t.Fatalf("prepare %d: the client got %x, not a prepare OK", i, pkts[0])
		}
		if pok.StmtID != uint32(i+1) {
			t.Fatalf("prepare %d: the client got statement id %d, want %d (the session's own, not the server's)", i, pok.StmtID, i+1)
		}
	}
	// The client needs the server's metadata, so each prepare reaches the
	// server; the second of the same text is closed at once and shares the
	// first server statement.
	var closedAtPrepare []uint32
	for _, c := range srv.got() {
		if c.cmd == wire.ComStmtClose {
			closedAtPrepare = append(closedAtPrepare, c.id)
		}
	}
	if len(closedAtPrepare) != 1 || closedAtPrepare[0] != 78 {
		t.Fatalf("closed at prepare: %v, want [78], the duplicate of 77: %+v", closedAtPrepare, srv.got())
	}
	// An execute of the client's id 2 reaches the server under the id the
	// server gave the shared text (77); id 3 under 79.
	for _, tc := range []struct{ client, server uint32 }{{2, 77}, {3, 79}, {1, 77}} {
		if err := s.stmtExecute(ctx, execute(tc.client)); err != nil {
			t.Fatal(err)
		}
		far.next(t, 1)
		got := srv.got()
		if c := got[len(got)-1]; c.cmd != wire.ComStmtExecute || c.id != tc.server {
			t.Fatalf("execute of client statement %d sent %+v, want an execute of server statement %d", tc.client, c, tc.server)
		}
	}

	// An id the session never gave out is the server's own error, 1243,
	// and nothing reaches the server.
	before := len(srv.got())
	if err := s.stmtExecute(ctx, execute(9)); err != nil {
		t.Fatal(err)
	}
	if e := wire.ParseError(far.next(t, 1)[0]); e.Code != 1243 {
		t.Fatalf("execute of an unknown id: got %+v, want error 1243", e)
	}

	// Closing one of the two sharers keeps the server statement; closing
	// the other lets go of it. The closed id is unknown from then on.
	s.stmtClose(closeStmt(1))
	if err := s.stmtExecute(ctx, execute(1)); err != nil {
		t.Fatal(err)
	}
	if e := wire.ParseError(far.next(t, 1)[0]); e.Code != 1243 {
		t.Fatalf("execute of a closed id: got %+v, want error 1243", e)
	}
	for _, c := range srv.got()[before:] {
		if c.cmd == wire.ComStmtClose {
			t.Fatalf("server statement %d closed while client statement 2 still uses it", c.id)
		}
	}
	s.stmtClose(closeStmt(2))
	s.sendQueuedCloses()
	if err := s.stmtExecute(ctx, execute(3)); err != nil { // flushes anything queued on the connection
		t.Fatal(err)
	}
	far.next(t, 1)
	var closed []uint32
	for _, c := range srv.got()[before:] {
		if c.cmd == wire.ComStmtClose {
			closed = append(closed, c.id)
		}
	}
	if len(closed) != 1 || closed[0] != 77 {
		t.Fatalf("server statements closed: %v, want [77] once both sharers closed", closed)
	}
	if len(s.stmts) != 1 {
		t.Fatalf("the session still maps %d statements, want 1 (id 3)", len(s.stmts))
	}
}
