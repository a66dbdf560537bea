package proxy

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-proxy/sluice/internal/config"
)

func TestClientLimitIsSizedFromTheDescriptorLimit(t *testing.T) {
	cfg := config.Default()
	cfg.Servers = make([]config.Server, 3)
	for _, c := range []struct {
		fd   uint64
		set  int
		want int64
	}{
		{256, 0, (256 - (64 + 12 + 32)) / 2}, // 74
		{1 << 20, 0, (1<<20 - 108) / 2},
		{100, 0, 1}, // below the reserve: one connection, never none
		{0, 0, 0},   // unknown: no limit
		{256, 500, 500},
	} {
		cfg.MaxClientConnections = c.set
		if got := clientLimit(cfg, c.fd); got != c.want {
			t.Errorf("fd limit %d, max_client_connections %d: %d, want %d", c.fd, c.set, got, c.want)
		}
	}
	if RaiseFDLimit() == 0 {
		t.Error("the descriptor limit is unknown on this system")
	}
}

// TestAcceptFailuresAreLoggedOncePerInterval: at the descriptor limit
// accept fails thousands of times a second; the log says so once.
func TestAcceptFailuresAreLoggedOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	p := &Proxy{log: slog.New(slog.NewTextHandler(&buf, nil)), fdLimit: 256}
	err := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	for i := 0; i < 1000; i++ {
		if d := p.acceptFailed(err); d <= 0 {
			t.Fatalf("no pause after a failed accept: %s", d)
		}
	}
	if n := strings.Count(buf.String(), "out of file descriptors"); n != 1 {
		t.Fatalf("%d lines for 1000 failed accepts, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "fd_limit=256") {
		t.Errorf("the line does not give the limit: %s", buf.String())
	}
}
