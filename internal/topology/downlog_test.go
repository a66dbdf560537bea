package topology

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestUnreachableServerIsLoggedOnceNotPerCheck: a configured server that
// never answers is logged at the first check, and again only when it has
// stayed down for stillDownEvery.
func TestUnreachableServerIsLoggedOnceNotPerCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	var buf syncBuf
	m := NewMonitor(Config{
		Servers: []ServerConfig{{Name: "gone", Addr: addr}},
		User:    "m", Password: "p", Interval: time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2,
	}, slog.New(slog.NewTextHandler(&buf, nil)))
	defer m.closeProbes()
	ctx := context.Background()
	for range 20 {
		m.round(ctx)
	}
	count := func(what string) int { return strings.Count(buf.String(), what) }
	if n := count(`msg="server unreachable"`); n != 1 || count("server still down") != 0 {
		t.Fatalf("after 20 failed checks: %d \"unreachable\" lines, %d \"still down\", want 1 and 0:\n%s", n, count("server still down"), buf.String())
	}
	if !strings.Contains(buf.String(), "server=gone") || !strings.Contains(buf.String(), "connection refused") {
		t.Errorf("the line does not say which server and why:\n%s", buf.String())
	}
	m.stillDownEvery = 50 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for count("server still down") == 0 && time.Now().Before(deadline) {
		m.round(ctx)
		time.Sleep(10 * time.Millisecond)
	}
	if count("server still down") == 0 {
		t.Fatalf("no \"still down\" line after stillDownEvery:\n%s", buf.String())
	}
}
