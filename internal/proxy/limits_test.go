package proxy

import (
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
