package session

import (
	"context"
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// fakeEngine records what the command loop hands it and answers queries
// with an OK, as an engine answers on the session's connection.
type fakeEngine struct {
	s      *Session
	calls  []string
	status uint16
}

func (f *fakeEngine) note(name string, pkt []byte) {
	f.calls = append(f.calls, name+":"+string(pkt[1:]))
}
func (f *fakeEngine) Query(_ context.Context, pkt []byte) error {
	f.note("query", pkt)
	return f.s.ok(1, 0)
}
func (f *fakeEngine) InitDB(_ context.Context, pkt []byte) error { f.note("initdb", pkt); return nil }
func (f *fakeEngine) FieldList(_ context.Context, pkt []byte) error {
	f.note("fieldlist", pkt)
	return nil
}
func (f *fakeEngine) Statistics(_ context.Context, pkt []byte) error {
	f.note("statistics", pkt)
	return nil
}
func (f *fakeEngine) Prepare(_ context.Context, pkt []byte) error { f.note("prepare", pkt); return nil }
func (f *fakeEngine) Execute(_ context.Context, pkt []byte) error { f.note("execute", pkt); return nil }
func (f *fakeEngine) Fetch(_ context.Context, pkt []byte) error   { f.note("fetch", pkt); return nil }
func (f *fakeEngine) ResetStmt(_ context.Context, pkt []byte) error {
	f.note("resetstmt", pkt)
	return nil
}
func (f *fakeEngine) CloseStmt(pkt []byte)                          { f.note("closestmt", pkt) }
func (f *fakeEngine) LongData(pkt []byte)                           { f.note("longdata", pkt) }
func (f *fakeEngine) Kill(context.Context, uint64, bool) error      { return nil }
func (f *fakeEngine) ResetConnection()                              { f.calls = append(f.calls, "reset") }
func (f *fakeEngine) UseSchema(context.Context, string) *wire.Error { return nil }
func (f *fakeEngine) Schema() string                                { return "" }
func (f *fakeEngine) SetSchema(string)                              {}
func (f *fakeEngine) Collation() byte                               { return 0 }
func (f *fakeEngine) SetCollation(byte)                             {}
func (f *fakeEngine) Status() uint16                                { return f.status }
func (f *fakeEngine) Begin()                                        {}
func (f *fakeEngine) CommandDone()                                  { f.calls = append(f.calls, "done") }
func (f *fakeEngine) WarningsOnly() bool                            { return false }
func (f *fakeEngine) ReleaseWarnings()                              {}
func (f *fakeEngine) View() EngineView                              { return EngineView{} }
func (f *fakeEngine) Touches([]placement.Object) bool               { return false }
func (f *fakeEngine) Close(*backend.Conn, string)                   {}

// TestLoopHandsCommandsToTheEngine drives the command loop over a fake
// engine: commands reach it whole, in order; the loop answers COM_PING
// and COM_RESET_CONNECTION itself with the engine's status, refuses an
// unknown command itself, and tells the engine when each command is done.
func TestLoopHandsCommandsToTheEngine(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	s := New(1, a, &testEnv{})
	f := &fakeEngine{s: s, status: wire.StatusAutocommit | wire.StatusInTrans}
	s.eng = f
	client := wire.NewConn(b)
	send := func(payload []byte) []byte {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- s.commandStep() }()
		client.Seq = 0
		if err := client.WriteCommand(payload); err != nil {
			t.Fatal(err)
		}
		var p []byte
		if payload[0] != wire.ComStmtClose {
			var err error
			if p, err = client.ReadPacket(0); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("command %d: %v", payload[0], err)
		}
		return p
	}
	if p := send(append([]byte{wire.ComQuery}, "SELECT 1"...)); p[0] != 0 || p[1] != 1 {
		t.Errorf("query answer %v; want the engine's OK with 1 affected row", p)
	}
	send([]byte{wire.ComStmtClose, 7, 0, 0, 0})
	ok, _ := wire.ParseOK(send([]byte{wire.ComPing}))
	if ok.Status != f.status {
		t.Errorf("ping status %#x; want the engine's %#x", ok.Status, f.status)
	}
	send([]byte{wire.ComResetConnection})
	if p := send([]byte{0x40}); p[0] != 0xff {
		t.Errorf("unknown command answered %v; want an error packet", p)
	}
	want := []string{"query:SELECT 1", "done", "closestmt:\x07\x00\x00\x00", "done", "done", "reset", "done", "done"}
	if len(f.calls) != len(want) {
		t.Fatalf("engine calls %q; want %q", f.calls, want)
	}
	for i := range want {
		if f.calls[i] != want[i] {
			t.Fatalf("engine calls %q; want %q", f.calls, want)
		}
	}
}
