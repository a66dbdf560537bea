package httpapi

import (
	"encoding/json"
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

// source is the least Source that serves /api/servers and refuses
// nothing else the tests reach.
type source struct{ pids map[string]int }

func (source) Snapshot() *topology.Snapshot {
	return &topology.Snapshot{Primary: 0, Servers: []topology.Server{
		{Name: "db1", Up: true, Role: topology.RolePrimary},
		{Name: "db2", Up: true, Role: topology.RoleReplica},
	}}
}
func (source) Sessions() []session.Info                   { return nil }
func (source) PoolStats() map[string]backend.Stats        { return nil }
func (source) Config() *config.Config                     { return config.Default() }
func (source) SetAdmin(string, topology.AdminState) error { return nil }
func (source) ReloadFile() error                          { return nil }
func (source) Failover() *failover.Manager                { return nil }
func (s source) ServerPID(name string) int                { return s.pids[name] }

type plainSource struct{ source }

// ServerPID is hidden: plainSource is a Source without process ids.
func (plainSource) ServerPID() {}

func TestCrossOriginRefusalIsJSON(t *testing.T) {
	srv := httptest.NewServer(Handler(source{}, nil))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/reload", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("cross-site POST: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !strings.Contains(body.Error, "cross-origin") {
		t.Errorf("cross-site POST body: %+v, %v", body, err)
	}
}

func TestServersShowProcessIDsWhenKnown(t *testing.T) {
	for _, tc := range []struct {
		src  Source
		want map[string]int
	}{
		{source{pids: map[string]int{"db1": 101, "db2": 102}}, map[string]int{"db1": 101, "db2": 102}},
		{plainSource{}, map[string]int{"db1": 0, "db2": 0}},
	} {
		srv := httptest.NewServer(Handler(tc.src, nil))
		resp, err := http.Get(srv.URL + "/api/servers")
		if err != nil {
			t.Fatal(err)
		}
		var list []ServerView
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		srv.Close()
		if err != nil || len(list) != 2 {
			t.Fatalf("/api/servers: %v %+v", err, list)
		}
		for _, v := range list {
			if v.PID != tc.want[v.Name] {
				t.Errorf("%T: %s pid %d, want %d", tc.src, v.Name, v.PID, tc.want[v.Name])
			}
		}
	}
}
