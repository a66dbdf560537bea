package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
)

type tokenSource struct {
	Source // only Config is called
	cfg    *config.Config
}

func (s tokenSource) Config() *config.Config { return s.cfg }

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	cfg := config.Default()
	cfg.HTTPToken = "s3cret"
	h := requireToken(tokenSource{cfg: cfg}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, c := range []struct {
		header string
		want   int
	}{
		{"Bearer s3cret", http.StatusNoContent},
		{"bearer s3cret", http.StatusNoContent},
		{"BEARER s3cret", http.StatusNoContent},
		{"Bearer  s3cret ", http.StatusNoContent},
		{"Bearer wrong", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		{"Basic s3cret", http.StatusUnauthorized},
		{"", http.StatusUnauthorized},
	} {
		req := httptest.NewRequest(http.MethodGet, "/api/servers", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.header, rec.Code, c.want)
		}
	}
}

// TestServerShedsIdleConnectionsAtItsCap: idle keep-alive connections
// beyond the cap cannot lock a health checker out.
func TestServerShedsIdleConnectionsAtItsCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 8
	srv := NewServer(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}), limit)
	go srv.Serve()
	defer srv.Close()
	addr := ln.Addr().String()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	// 40 clients make one keep-alive request each and keep the connection.
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue // shed before it was served: that is the cap at work
		}
		resp.Body.Close()
	}
	// And 40 more connect without sending anything.
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	if n := srv.Open(); n > limit {
		t.Errorf("server holds %d connections, cap %d", n, limit)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("a health check beside 80 idle connections: %v", err)
	}
	resp.Body.Close()
	t.Logf("health check answered in %s with %d connections open (cap %d), %d shed", time.Since(start), srv.Open(), limit, srv.Shed())
	if srv.Shed() < 70 {
		t.Errorf("only %d connections shed", srv.Shed())
	}
	if srv.IdleTimeout <= 0 || srv.ReadTimeout <= 0 || srv.ReadHeaderTimeout <= 0 {
		t.Errorf("timeouts not set: %+v", srv.Server)
	}
}
