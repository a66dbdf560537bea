// Package httpapi serves sluice's admin HTTP interface: health endpoints,
// the JSON API and the dashboard.
package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Source is what the API reads from the running proxy.
type Source interface {
	Snapshot() *topology.Snapshot
	Sessions() []session.Info
	PoolStats() map[string]backend.Stats
	Policy() *router.Policy
}

//go:embed dashboard.html
var dashboard []byte

// Handler returns the HTTP handler.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /api/servers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, servers(src))
	})
	mux.HandleFunc("GET /api/sessions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, src.Sessions())
	})
	mux.HandleFunc("GET /health/{server}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("server")
		for _, s := range servers(src) {
			if s.Name == name {
				code := http.StatusOK
				if !s.Usable {
					code = http.StatusServiceUnavailable
				}
				writeJSON(w, code, s)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no server named " + name})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(dashboard)
	})
	return mux
}

// ServerView is a server as the API shows it.
type ServerView struct {
	Name       string    `json:"name"`
	Address    string    `json:"address"`
	Role       string    `json:"role"`
	Up         bool      `json:"up"`
	Usable     bool      `json:"usable"` // may serve its role now
	Backup     bool      `json:"backup"`
	Weight     int       `json:"weight"`
	ReadOnly   bool      `json:"read_only"`
	LagSeconds *float64  `json:"lag_seconds"`
	GTID       string    `json:"gtid"`
	Version    string    `json:"version"`
	InUse      int       `json:"connections_in_use"`
	Idle       int       `json:"connections_idle"`
	Waiting    int       `json:"queued"`
	LastError  string    `json:"last_check_error,omitempty"`
	LastCheck  time.Time `json:"last_check"`
}

func servers(src Source) []ServerView {
	snap := src.Snapshot()
	stats := src.PoolStats()
	pol := src.Policy()
	out := make([]ServerView, 0, len(snap.Servers))
	for i := range snap.Servers {
		s := &snap.Servers[i]
		v := ServerView{Name: s.Name, Address: s.Addr, Role: s.Role.String(), Up: s.Up, Backup: s.Backup,
			Weight: s.Weight, ReadOnly: s.ReadOnly, GTID: s.GTIDPos, Version: s.Version,
			LastError: s.LastError, LastCheck: s.LastCheck}
		if i == snap.Primary {
			v.Usable = true
		} else if router.ReadableReplica(s, pol) {
			v.Usable = true
		}
		if s.Role == topology.RolePrimary && i != snap.Primary {
			v.Role = "writable-ignored"
		}
		if s.LagKnown {
			l := s.Lag.Seconds()
			v.LagSeconds = &l
		}
		st := stats[s.Name]
		v.InUse, v.Idle, v.Waiting = st.InUse, st.Idle, st.Waiting
		out = append(out, v)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
