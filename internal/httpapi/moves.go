package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/sluice-proxy/sluice/internal/move"
)

// MoveSource is implemented by a Source that runs online moves (the
// proxy).
type MoveSource interface {
	StartMove(objects []string, to string) (move.View, error)
	Moves() []move.View
	MoveStatus(id string) (move.View, error)
	CancelMove(id string) (move.View, error)
	CleanupMove(ctx context.Context, id string) (move.View, error)
}

// MoveRequest is the body of POST /api/moves.
type MoveRequest struct {
	// Objects: "db", "db.t1,t2" or "db.bucket_{0000..0255}".
	Objects []string `json:"objects"`
	To      string   `json:"to"`
}

// cleanupTimeout bounds the DROPs of a cleanup requested over HTTP.
const cleanupTimeout = 5 * time.Minute

func handleMoves(api *http.ServeMux, src Source) {
	ms, ok := src.(MoveSource)
	if !ok {
		return
	}
	api.HandleFunc("GET /api/moves", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ms.Moves())
	})
	api.HandleFunc("GET /api/moves/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := ms.MoveStatus(r.PathValue("id"))
		moveReply(w, http.StatusOK, v, err)
	})
	api.HandleFunc("POST /api/moves", func(w http.ResponseWriter, r *http.Request) {
		var req MoveRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, `body must be JSON {"objects": ["db" or "db.t1,t2" or "db.bucket_{0000..0015}"], "to": "CLUSTER"}: `+err.Error())
			return
		}
		if len(req.Objects) == 0 || req.To == "" {
			writeError(w, http.StatusBadRequest, `name the objects to move and the cluster: {"objects": ["db.t1"], "to": "c2"}`)
			return
		}
		v, err := ms.StartMove(req.Objects, req.To)
		moveReply(w, http.StatusAccepted, v, err)
	})
	api.HandleFunc("POST /api/moves/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var v move.View
		var err error
		switch r.PathValue("action") {
		case "cancel":
			v, err = ms.CancelMove(r.PathValue("id"))
		case "cleanup":
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), cleanupTimeout)
			defer cancel()
			v, err = ms.CleanupMove(ctx, r.PathValue("id"))
		default:
			writeError(w, http.StatusNotFound, "unknown action "+r.PathValue("action")+"; use cancel or cleanup")
			return
		}
		moveReply(w, http.StatusOK, v, err)
	})
}

// moveReply writes a move, or why the request failed: 400 a malformed
// request, 404 an unknown move or cluster, 409 refused in the state
// things are in (with the move, when there is one).
func moveReply(w http.ResponseWriter, code int, v move.View, err error) {
	if err == nil {
		writeJSON(w, code, v)
		return
	}
	code = http.StatusInternalServerError
	switch {
	case errors.Is(err, move.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, move.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, move.ErrRefused):
		code = http.StatusConflict
	}
	body := map[string]any{"error": err.Error()}
	if v.ID != "" {
		body["move"] = v
	}
	writeJSON(w, code, body)
}
