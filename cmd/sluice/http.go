package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/httpapi"
)

// startHTTP serves the admin API when http_listen is set; it returns the
// address it listens on ("" when off) and a function that stops it.
func startHTTP(ctx context.Context, cfg *config.Config, p httpapi.Source, obs httpapi.Observability, log *slog.Logger) (string, func(), error) {
	if cfg.HTTPListen == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return "", nil, fmt.Errorf("http listen %s: %w", cfg.HTTPListen, err)
	}
	srv := httpapi.NewServer(ln, httpapi.Handler(p, obs), cfg.HTTPMaxConnections)
	go srv.Serve()
	log.Info("admin HTTP listening", "addr", ln.Addr().String())
	return ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}
