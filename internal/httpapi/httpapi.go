// Package httpapi serves sluice's admin HTTP interface: health endpoints,
// the JSON API and the dashboard.
package httpapi

import (
	"cmp"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/session"
	"github.com/sluice-proxy/sluice/internal/stats"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Source is what the API reads from and does to the running proxy.
type Source interface {
	Snapshot() *topology.Snapshot
	Sessions() []session.Info
	PoolStats() map[string]backend.Stats
	Config() *config.Config
	SetAdmin(server string, st topology.AdminState) error
	// ReloadFile re-reads the configuration file and applies it; an
	// invalid file leaves the running configuration in place.
	ReloadFile() error
	// Failover is the manager of primary changes.
	Failover() *failover.Manager
}

// Observability is the statistics side of the API; nil leaves out
// /metrics, digests and the charts' series.
type Observability interface {
	Handler() http.Handler // Prometheus exposition
	Digests(sort string, limit int) ([]stats.DigestView, error)
	ResetDigests()
	Series() []stats.Point
	ServerCounts() map[string]stats.ServerCounts
}

//go:embed dashboard.html
var dashboard []byte

//go:embed static
var static embed.FS

// Handler returns the HTTP handler. When the configuration has an
// http_token, every endpoint except /healthz and /health/{server} requires
// it as "Authorization: Bearer <token>" (or ?token= for the dashboard).
func Handler(src Source, obs Observability) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
		writeError(w, http.StatusNotFound, "no server named "+name)
	})
	api := http.NewServeMux()
	api.HandleFunc("GET /api/servers", func(w http.ResponseWriter, r *http.Request) {
		list := servers(src)
		if obs != nil {
			counts := obs.ServerCounts()
			for i := range list {
				c := counts[list[i].Name]
				list[i].Queries, list[i].Errors = &c.Queries, &c.Errors
			}
		}
		writeJSON(w, http.StatusOK, list)
	})
	api.HandleFunc("GET /api/clusters", handleClusters(src))
	handleMoves(api, src)
	api.HandleFunc("GET /api/sessions", func(w http.ResponseWriter, r *http.Request) {
		list := src.Sessions()
		if list == nil {
			list = []session.Info{} // an empty list, never null
		}
		slices.SortFunc(list, func(a, b session.Info) int { return cmp.Compare(a.ID, b.ID) })
		writeJSON(w, http.StatusOK, list)
	})
	api.HandleFunc("GET /api/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, src.Config().Redacted())
	})
	api.HandleFunc("POST /api/servers/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var st topology.AdminState
		switch r.PathValue("action") {
		case "drain":
			st = topology.AdminDrain
		case "maintenance":
			st = topology.AdminMaintenance
		case "enable":
			st = topology.AdminNone
		case "rejoin":
			runChange(w, r, func(ctx context.Context) (failover.Record, error) {
				fm, name, err := failoverFor(src, "", r.PathValue("name"))
				if err != nil {
					return failover.Record{}, err
				}
				return fm.Rejoin(ctx, name)
			})
			return
		default:
			writeError(w, http.StatusNotFound, "unknown action "+r.PathValue("action")+"; use drain, maintenance, enable or rejoin")
			return
		}
		if err := src.SetAdmin(r.PathValue("name"), st); err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		for _, s := range servers(src) {
			if s.Name == r.PathValue("name") {
				writeJSON(w, http.StatusOK, s)
				return
			}
		}
	})
	api.HandleFunc("GET /api/failover", func(w http.ResponseWriter, r *http.Request) {
		fm := src.Failover()
		if c := r.URL.Query().Get("cluster"); c != "" {
			var err error
			if fm, _, err = failoverFor(src, c, ""); err != nil {
				writeError(w, http.StatusNotFound, err.Error())
				return
			}
		}
		writeJSON(w, http.StatusOK, fm.Report())
	})
	api.HandleFunc("POST /api/switchover", func(w http.ResponseWriter, r *http.Request) {
		runChange(w, r, func(ctx context.Context) (failover.Record, error) {
			fm, to, err := failoverFor(src, r.URL.Query().Get("cluster"), r.URL.Query().Get("to"))
			if err != nil {
				return failover.Record{}, err
			}
			return fm.Switchover(ctx, to)
		})
	})
	api.HandleFunc("POST /api/failover", func(w http.ResponseWriter, r *http.Request) {
		runChange(w, r, func(ctx context.Context) (failover.Record, error) {
			fm, to, err := failoverFor(src, r.URL.Query().Get("cluster"), r.URL.Query().Get("to"))
			if err != nil {
				return failover.Record{}, err
			}
			return fm.Failover(ctx, to)
		})
	})
	api.HandleFunc("POST /api/reload", func(w http.ResponseWriter, r *http.Request) {
		err := src.ReloadFile()
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"status": "reloaded", "servers": len(src.Config().Servers)})
			return
		}
		body := map[string]any{"error": "reload refused; the running configuration stays", "reasons": []string{err.Error()}}
		var probs config.Problems
		if errors.As(err, &probs) {
			reasons := make([]string, len(probs))
			for i, p := range probs {
				reasons[i] = p.String()
			}
			body["reasons"] = reasons
		}
		writeJSON(w, http.StatusUnprocessableEntity, body)
	})
	api.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(dashboard)
	})
	mux.Handle("GET /static/", http.FileServerFS(static))
	// Go's profiler, behind the token like the rest of the API: CPU
	// profiles of a live proxy are how its overhead gets measured.
	api.HandleFunc("GET /debug/pprof/", pprof.Index)
	api.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	api.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if obs != nil {
		api.Handle("GET /metrics", obs.Handler())
		api.HandleFunc("GET /api/digests", func(w http.ResponseWriter, r *http.Request) {
			limit := 50
			if l := r.URL.Query().Get("limit"); l != "" {
				n, err := strconv.Atoi(l)
				if err != nil || n < 0 {
					writeError(w, http.StatusBadRequest, "limit must be a non-negative integer")
					return
				}
				limit = n
			}
			d, err := obs.Digests(r.URL.Query().Get("sort"), limit)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, d)
		})
		api.HandleFunc("POST /api/digests/reset", func(w http.ResponseWriter, r *http.Request) {
			obs.ResetDigests()
			writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
		})
		api.HandleFunc("GET /api/series", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, obs.Series())
		})
	}
	// A web page the operator happens to visit must not be able to POST a
	// switchover to a loopback API: browsers' cross-origin POSTs are
	// refused (Sec-Fetch-Site / Origin); curl and the CLI send neither.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: changes come from the CLI, curl or the dashboard's own origin")
	}))
	mux.Handle("/", cop.Handler(requireToken(src, api)))
	return mux
}

// ProcessSource is implemented by a Source that started the servers
// itself (sluice demo) and knows their process ids.
type ProcessSource interface {
	ServerPID(name string) int
}

func requireToken(src Source, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := src.Config().HTTPTokenSecret()
		if want != "" {
			got := bearer(r.Header.Get("Authorization"))
			if got == "" && r.Method == http.MethodGet {
				// The dashboard's links carry it; a change never does, so
				// it cannot leak into logs and history with a URL.
				got = r.URL.Query().Get("token")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (http_token)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110 section 11.1): "bearer" and
// "BEARER" are the same.
func bearer(h string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// changeTimeout bounds a primary change requested over HTTP; each of its
// steps has its own, shorter, bound.
const changeTimeout = 5 * time.Minute

// runChange runs a switchover, failover or rejoin. It is not cancelled
// when the client goes away: stopping between two steps would leave the
// topology half changed. 409 means the topology does not allow it now,
// 404 that no server has the name given.
func runChange(w http.ResponseWriter, r *http.Request, do func(context.Context) (failover.Record, error)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), changeTimeout)
	defer cancel()
	rec, err := do(ctx)
	if err == nil {
		writeJSON(w, http.StatusOK, rec)
		return
	}
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, failover.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, failover.ErrConflict):
		code = http.StatusConflict
	}
	body := map[string]any{"error": err.Error()}
	if rec.Kind != "" { // refused before anything was tried: no record
		body["record"] = rec
	}
	writeJSON(w, code, body)
}

// ServerView is a server as the API shows it.
type ServerView struct {
	Name        string    `json:"name"`
	Cluster     string    `json:"cluster"`
	Address     string    `json:"address"`
	Role        string    `json:"role"`
	State       string    `json:"state"` // up, down, drain, maintenance, lagging, stopped
	Up          bool      `json:"up"`
	Usable      bool      `json:"usable"` // may serve its role now
	Backup      bool      `json:"backup"`
	Weight      int       `json:"weight"`
	ReadOnly    bool      `json:"read_only"`
	IORunning   bool      `json:"io_thread_running"`
	SQLRunning  bool      `json:"sql_thread_running"`
	LagSeconds  *float64  `json:"lag_seconds"` // null when unknown
	GTID        string    `json:"gtid"`
	Version     string    `json:"version"`
	InUse       int       `json:"connections_in_use"`
	Idle        int       `json:"connections_idle"`
	Waiting     int       `json:"queued"`
	Queries     *uint64   `json:"queries,omitempty"` // statements routed to it since start
	Errors      *uint64   `json:"errors,omitempty"`  // of which failed
	LastError   string    `json:"last_check_error,omitempty"`
	LastCheck   time.Time `json:"last_check"`
	CheckMillis float64   `json:"check_ms"`
	// EpochPrimary marks the server the failover epoch names primary;
	// Fenced a demoted old primary kept out until rejoined; Alert why
	// writes fail (a refused failover), on the epoch's primary.
	EpochPrimary bool   `json:"epoch_primary"`
	Epoch        uint64 `json:"epoch"`
	Fenced       bool   `json:"fenced"`
	Alert        string `json:"alert,omitempty"`
	// PID is the server's process id when sluice started it (sluice demo).
	PID int `json:"pid,omitempty"`
}

func servers(src Source) []ServerView {
	names, snaps := snapshots(src)
	stats := src.PoolStats()
	procs, _ := src.(ProcessSource)
	out := []ServerView{}
	for k, snap := range snaps {
		out = appendServers(out, names[k], snap, stats, procs)
	}
	return out
}

func appendServers(out []ServerView, cluster string, snap *topology.Snapshot, stats map[string]backend.Stats, procs ProcessSource) []ServerView {
	for i := range snap.Servers {
		s := &snap.Servers[i]
		v := ServerView{Name: s.Name, Cluster: cluster, Address: s.Addr, Role: snap.RoleName(i), State: s.State(), Up: s.Up,
			Backup: s.Backup, Weight: s.Weight, ReadOnly: s.ReadOnly, IORunning: s.IORunning, SQLRunning: s.SQLRunning,
			GTID: s.GTIDPos, Version: s.Version, LastError: s.LastError, LastCheck: s.LastCheck,
			CheckMillis: float64(s.CheckTime.Microseconds()) / 1000,
			Epoch:       snap.Epoch, EpochPrimary: s.Name == snap.Designated, Fenced: s.Fenced}
		if v.EpochPrimary {
			v.Alert = snap.Alert
		}
		if s.Fenced {
			v.State = "fenced"
		}
		switch {
		case i == snap.Primary:
			v.Usable = s.Admin == topology.AdminNone
		case s.Role == topology.RolePrimary:
			// a second writable server (or a dead old one): never written to
		default:
			v.Usable = s.Readable
		}
		if s.LagKnown {
			l := s.Lag.Seconds()
			v.LagSeconds = &l
		}
		st := stats[s.Name]
		v.InUse, v.Idle, v.Waiting = st.InUse, st.Idle, st.Waiting
		if procs != nil {
			v.PID = procs.ServerPID(s.Name)
		}
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

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
