package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/move"
)

// movingState is a proxyState that runs moves: the API passes requests
// on and maps the registry's errors to statuses; moves themselves run
// against real servers in e2e.
type movingState struct {
	*proxyState
	started []string
}

func (m *movingState) StartMove(objs []string, to string) (move.View, error) {
	switch {
	case to == "nowhere":
		return move.View{}, fmt.Errorf("%w: no cluster named %q", move.ErrNotFound, to)
	case strings.Contains(objs[0], "{"):
		return move.View{}, fmt.Errorf("%w: bad pattern", move.ErrInvalid)
	case to == "busy":
		return move.View{}, fmt.Errorf("%w: one move into a cluster at a time", move.ErrRefused)
	}
	m.started = append(m.started, strings.Join(objs, " ")+" -> "+to)
	return move.View{ID: "m1", Objects: objs, Target: to, Phase: move.PhasePending}, nil
}
func (m *movingState) Moves() []move.View { return []move.View{{ID: "m1", Phase: move.PhaseCopying}} }
func (m *movingState) MoveStatus(id string) (move.View, error) {
	if id != "m1" {
		return move.View{}, move.ErrNotFound
	}
	return move.View{ID: "m1", Phase: move.PhaseCopying}, nil
}
func (m *movingState) CancelMove(id string) (move.View, error) {
	return move.View{ID: id, Phase: move.PhaseDone}, fmt.Errorf("%w: done", move.ErrRefused)
}
func (m *movingState) CleanupMove(_ context.Context, id string) (move.View, error) {
	return move.View{ID: id, Phase: move.PhaseCleaned}, nil
}

func TestMovesAPI(t *testing.T) {
	const tok = "s3cret"
	src := &movingState{proxyState: newProxyState(tok)}
	h := Handler(src, nil)
	post := func(path, body string, auth bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		if auth {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct {
		path, body string
		auth       bool
		want       int
	}{
		{"/api/moves", `{"objects": ["shop"], "to": "c2"}`, false, 401},
		{"/api/moves", `{"objects": ["shop"], "to": "c2"}`, true, 202},
		{"/api/moves", `{"objects": ["shop"]}`, true, 400},
		{"/api/moves", `{"objects": "shop", "to": "c2"}`, true, 400},
		{"/api/moves", `{"objects": ["shop"], "to": "c2", "extra": 1}`, true, 400},
		{"/api/moves", `{"objects": ["b.t_{1..}"], "to": "c2"}`, true, 400},
		{"/api/moves", `{"objects": ["shop"], "to": "nowhere"}`, true, 404},
		{"/api/moves", `{"objects": ["shop"], "to": "busy"}`, true, 409},
		{"/api/moves/m1/cancel", ``, true, 409},
		{"/api/moves/m1/cleanup", ``, true, 200},
		{"/api/moves/m1/cleanup", ``, false, 401},
		{"/api/moves/m1/explode", ``, true, 404},
	} {
		w := post(c.path, c.body, c.auth)
		if w.Code != c.want {
			t.Errorf("POST %s %s: %d %s, want %d", c.path, c.body, w.Code, w.Body, c.want)
		}
		if w.Code >= 400 {
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" {
				t.Errorf("POST %s: error body %q, want {\"error\": ...}", c.path, w.Body)
			}
		}
	}
	if len(src.started) != 1 || src.started[0] != "shop -> c2" {
		t.Errorf("moves started: %v, want only the authorized one", src.started)
	}
	w := call{"GET", "/api/moves", bearerHeader(tok)}.do(t, h)
	var list []move.View
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0].Phase != move.PhaseCopying {
		t.Errorf("GET /api/moves: %d %s", w.Code, w.Body)
	}
	if w := (call{"GET", "/api/moves/m9", bearerHeader(tok)}).do(t, h); w.Code != 404 {
		t.Errorf("GET /api/moves/m9: %d, want 404", w.Code)
	}
}
