package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/move"
)

// TestMoveCommandsCallTheAPI runs sluice move/moves against an admin API
// that records what it is asked.
func TestMoveCommandsCallTheAPI(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+strings.TrimSpace(string(b)))
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/moves" && r.Method == "GET":
			json.NewEncoder(w).Encode([]move.View{{ID: "m1", Objects: []string{"shop"}, Source: "c2", Target: "c1", Phase: move.PhaseCopying, RowsCopied: 10, RowsTotal: 40}})
		case r.URL.Path == "/api/moves":
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(move.View{ID: "m2", Objects: []string{"b.t1", "b.t2"}, Source: "c1", Target: "c3", Phase: move.PhasePending})
		case strings.HasSuffix(r.URL.Path, "/cancel"):
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]any{"error": "move refused: move m1 is done", "move": move.View{ID: "m1", Phase: move.PhaseDone}})
		default:
			json.NewEncoder(w).Encode(move.View{ID: "m1", Phase: move.PhaseCleaned})
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out bytes.Buffer
	if err := moveCmd("move", []string{"--http", addr, "--token", "T", "b.t1,t2", "--to", "c3"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := moveCmd("moves", []string{"--http", addr, "--token", "T"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := moveCmd("move", []string{"--http", addr, "--token", "T", "--cleanup", "m1"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := moveCmd("move", []string{"--http", addr, "--token", "T", "--cancel", "m1"}, &out); err == nil {
		t.Error("a refused cancel exited 0")
	}
	want := []string{
		`POST /api/moves Bearer T {"objects":["b.t1,t2"],"to":"c3"}`,
		`GET /api/moves Bearer T `,
		`POST /api/moves/m1/cleanup Bearer T `,
		`POST /api/moves/m1/cancel Bearer T `,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range []string{"m2 b.t1,b.t2: c1 -> c3, pending", "m1 shop: c2 -> c1, copying, 10/40 rows", "m1 : ", "refused (HTTP 409): move refused: move m1 is done"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
	if err := moveCmd("move", []string{"--http", addr, "shop"}, &out); err == nil {
		t.Error("sluice move without --to exited 0")
	}
}
