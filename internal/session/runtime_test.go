package session

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// swapEnv publishes Runtimes as a reload does.
type swapEnv struct {
	*testEnv
	cur atomic.Pointer[Runtime]
}

func (e *swapEnv) Runtime() *Runtime { return e.cur.Load() }

// TestRuntimeIsReadAsEachCommandStarts: a session works with the Runtime
// in force when its command began; one a reload publishes later is
// picked up by its next command, not midway.
func TestRuntimeIsReadAsEachCommandStarts(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	env := &swapEnv{testEnv: &testEnv{}}
	first := env.testEnv.Runtime()
	env.cur.Store(first)
	s := New(1, a, env)
	e := s.eng.(*engine)
	if s.homeRT != first || e.rt != first {
		t.Fatal("a new session does not start with the Runtime in force")
	}
	second := env.testEnv.Runtime()
	env.cur.Store(second)
	if s.homeRT != first || e.rt != first {
		t.Fatal("publishing a Runtime changed the session's between commands")
	}
	client := wire.NewConn(b)
	done := make(chan error, 1)
	go func() { done <- s.serveCommand(context.Background()) }()
	client.Seq = 0
	if err := client.WriteCommand([]byte{wire.ComPing}); err != nil {
		t.Fatal(err)
	}
	if p, err := client.ReadPacket(0); err != nil || len(p) == 0 || p[0] != 0 {
		t.Fatalf("ping: %v %v", p, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.homeRT != second || e.rt != second {
		t.Error("the command did not run with the Runtime published before it")
	}
}
