package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// proxyState stands in for the running proxy: the API only reads its
// snapshot and configuration and passes operator requests on. Failover
// endpoints need a manager and are covered in e2e; their status mapping is
// tested on runChange below.
type proxyState struct {
	cfg       *config.Config
	snap      *topology.Snapshot
	setAdmin  []string
	reloadErr error
	reloads   int
}

func (p *proxyState) Snapshot() *topology.Snapshot        { return p.snap }
func (p *proxyState) Sessions() []session.Info            { return nil }
func (p *proxyState) PoolStats() map[string]backend.Stats { return nil }
func (p *proxyState) Config() *config.Config              { return p.cfg }
func (p *proxyState) Failover() *failover.Manager         { return nil }
func (p *proxyState) ReloadFile() error                   { p.reloads++; return p.reloadErr }
func (p *proxyState) SetAdmin(server string, st topology.AdminState) error {
	for _, s := range p.snap.Servers {
		if s.Name == server {
			p.setAdmin = append(p.setAdmin, server+"="+string(st))
			return nil
		}
	}
	return fmt.Errorf("no server named %q", server)
}

func newProxyState(token string) *proxyState {
	return &proxyState{
		cfg: &config.Config{HTTPToken: token, Servers: []config.Server{{Name: "db1"}, {Name: "db2"}, {Name: "db3"}}},
		snap: &topology.Snapshot{Primary: 0, Epoch: 1, Designated: "db1", Servers: []topology.Server{
			{Name: "db1", Up: true, Role: topology.RolePrimary},
			{Name: "db2", Up: true, Role: topology.RoleReplica, IORunning: true, SQLRunning: true, Readable: true},
			{Name: "db3", Up: false, Role: topology.RoleReplica},
		}},
	}
}

type call struct {
	method, path string
	header       map[string]string
}

func (c call) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(c.method, c.path, nil)
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func bearerHeader(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

func TestTokenGuardsEverythingButHealth(t *testing.T) {
	const tok = "s3cret"
	for _, tc := range []struct {
		name string
		call call
		want int
	}{
		{"/healthz needs no token", call{"GET", "/healthz", nil}, 200},
		{"/health/{server} needs no token (HAProxy)", call{"GET", "/health/db2", nil}, 200},
		{"the API without a token", call{"GET", "/api/servers", nil}, 401},
		{"the API with a wrong token", call{"GET", "/api/servers", bearerHeader("nope")}, 401},
		{"the API with a token that only starts right", call{"GET", "/api/servers", bearerHeader(tok + "x")}, 401},
		{"the API with the token", call{"GET", "/api/servers", bearerHeader(tok)}, 200},
		{"a GET with ?token=", call{"GET", "/api/servers?token=" + tok, nil}, 200},
		{"the dashboard with ?token=", call{"GET", "/?token=" + tok, nil}, 200},
		{"the dashboard without it", call{"GET", "/", nil}, 401},
		{"a POST with ?token= is refused", call{"POST", "/api/reload?token=" + tok, nil}, 401},
		{"a POST with the bearer token", call{"POST", "/api/reload", bearerHeader(tok)}, 200},
		{"the profiler without a token", call{"GET", "/debug/pprof/", nil}, 401},
		{"a browser's cross-origin POST, even with the token", call{"POST", "/api/reload",
			map[string]string{"Authorization": "Bearer " + tok, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newProxyState(tok)
			w := tc.call.do(t, Handler(src, nil))
			if w.Code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.call.method, tc.call.path, w.Code, w.Body, tc.want)
			}
			if w.Code == 401 {
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				var body map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" {
					t.Errorf("401 body %q: want {\"error\": ...}", w.Body)
				}
				if strings.Contains(w.Body.String(), tok) {
					t.Error("the refusal shows the token")
				}
			}
			if tc.call.method == "POST" && w.Code != 200 && src.reloads != 0 {
				t.Errorf("a refused POST reloaded the configuration")
			}
		})
	}
}

func TestNoTokenConfiguredOpensTheAPI(t *testing.T) {
	w := call{"GET", "/api/servers", nil}.do(t, Handler(newProxyState(""), nil))
	if w.Code != 200 {
		t.Fatalf("GET /api/servers without http_token configured: %d %s", w.Code, w.Body)
	}
}

func TestHealthEndpointAnswersForTheServersRole(t *testing.T) {
	src := newProxyState("")
	src.snap.Servers = append(src.snap.Servers,
		topology.Server{Name: "db4", Up: true, Role: topology.RoleReplica, IORunning: true, SQLRunning: true, LagExcluded: true},
		topology.Server{Name: "db5", Up: true, Role: topology.RolePrimary}, // a second writable server
	)
	h := Handler(src, nil)
	for _, tc := range []struct {
		server string
		code   int
		state  string
	}{
		{"db1", 200, "up"},
		{"db2", 200, "up"},
		{"db3", 503, "down"},
		{"db4", 503, "lagging"},
		{"db5", 503, "up"},
		{"nope", 404, ""},
	} {
		w := call{"GET", "/health/" + tc.server, nil}.do(t, h)
		if w.Code != tc.code {
			t.Errorf("/health/%s: %d, want %d (%s)", tc.server, w.Code, tc.code, w.Body)
			continue
		}
		if tc.code == 404 {
			continue
		}
		var v ServerView
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.State != tc.state {
			t.Errorf("/health/%s: state %q, want %q", tc.server, v.State, tc.state)
		}
	}
	// A drained primary takes no new work: HAProxy must stop sending it.
	src.snap.Servers[0].Admin = topology.AdminDrain
	if w := (call{"GET", "/health/db1", nil}).do(t, h); w.Code != 503 || !strings.Contains(w.Body.String(), `"drain"`) {
		t.Errorf("/health/db1 while drained: %d %s, want 503 drain", w.Code, w.Body)
	}
}

func TestServerActions(t *testing.T) {
	for _, tc := range []struct {
		path string
		code int
		set  string
	}{
		{"/api/servers/db2/drain", 200, "db2=drain"},
		{"/api/servers/db2/maintenance", 200, "db2=maintenance"},
		{"/api/servers/db2/enable", 200, "db2="},
		{"/api/servers/db9/drain", 404, ""},
		{"/api/servers/db2/explode", 404, ""},
	} {
		src := newProxyState("")
		w := call{"POST", tc.path, nil}.do(t, Handler(src, nil))
		if w.Code != tc.code {
			t.Errorf("POST %s: %d %s, want %d", tc.path, w.Code, w.Body, tc.code)
		}
		if got := strings.Join(src.setAdmin, ","); got != tc.set {
			t.Errorf("POST %s: SetAdmin calls %q, want %q", tc.path, got, tc.set)
		}
		if w.Code != 200 {
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" {
				t.Errorf("POST %s: error body %q, want {\"error\": ...}", tc.path, w.Body)
			}
		}
	}
}

func TestReloadRefusalListsEveryProblem(t *testing.T) {
	src := newProxyState("")
	src.reloadErr = config.Problems{
		{File: "sluice.yaml", Line: 3, Column: 5, Message: `unknown key "helth"`},
		{File: "sluice.yaml", Line: 9, Column: 1, Message: "servers[1].name: duplicate"},
	}
	w := call{"POST", "/api/reload", nil}.do(t, Handler(src, nil))
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /api/reload with a bad file: %d, want 422", w.Code)
	}
	var body struct {
		Error   string   `json:"error"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error == "" || len(body.Reasons) != 2 || !strings.Contains(body.Reasons[0], "sluice.yaml:3:5") || !strings.Contains(body.Reasons[1], "duplicate") {
		t.Fatalf("refusal %+v: want an error and both problems with their lines", body)
	}
	src.reloadErr = errors.New("read sluice.yaml: permission denied")
	w = call{"POST", "/api/reload", nil}.do(t, Handler(src, nil))
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "permission denied") {
		t.Fatalf("POST /api/reload with an unreadable file: %d %s", w.Code, w.Body)
	}
}

func TestRunChangeMapsErrorsToStatus(t *testing.T) {
	rec := failover.Record{Kind: "switchover", Old: "db1", New: "db2", Epoch: 3}
	for _, tc := range []struct {
		name       string
		rec        failover.Record
		err        error
		code       int
		withRecord bool
	}{
		{"done", rec, nil, 200, true},
		{"an unknown server is 404", failover.Record{}, fmt.Errorf("switchover to db9: %w", failover.ErrNotFound), 404, false},
		{"a topology that does not allow it is 409", failover.Record{}, fmt.Errorf("%w: another change is in progress", failover.ErrConflict), 409, false},
		{"a refused promotion keeps its record", rec, fmt.Errorf("%w: target lags", failover.ErrConflict), 409, true},
		{"anything else is 500, with the record", rec, errors.New("promote db2: access denied"), 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/api/switchover", nil)
			runChange(w, r, func(ctx context.Context) (failover.Record, error) {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("a change runs without a deadline")
				}
				return tc.rec, tc.err
			})
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.code, w.Body)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if tc.err == nil {
				if _, ok := body["epoch"]; !ok {
					t.Fatalf("success body %s: want the record", w.Body)
				}
				return
			}
			if _, ok := body["error"]; !ok {
				t.Fatalf("body %s: want an error", w.Body)
			}
			if _, ok := body["record"]; ok != tc.withRecord {
				t.Fatalf("body %s: record present %v, want %v", w.Body, ok, tc.withRecord)
			}
		})
	}
}
