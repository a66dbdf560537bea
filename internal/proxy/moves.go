package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/move"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/statestore"
)

// movesKey is the state store key of the moves that are done but not
// cleaned up: their source copies outlive a restart, and so must the way
// to drop them.
const movesKey = "moves"

// moveRegistry runs the online moves asked for over the admin API.
type moveRegistry struct {
	mu      sync.Mutex
	loaded  bool
	seq     int
	entries []*moveEntry
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	results map[string]uint64 // ended moves by result, for metrics
}

type moveEntry struct {
	id   string
	m    *move.Move // nil for a move done in an earlier process
	objs []move.Object
	view move.View // the stored view when m is nil

	// done is closed when the move has ended (its undo included).
	done chan struct{}

	// mu guards cleaning and cleaned, for the cleanup of a done move;
	// abandoning while a failed move's leftovers on the target are being
	// removed, abandoned once they are; cancelNote and note say what
	// sluice did to the move from outside (cancelled it for a switchover;
	// removed its leftovers).
	mu                    sync.Mutex
	cleaning, cleaned     bool
	abandoning, abandoned bool
	cancelNote, note      string
}

func (e *moveEntry) View() move.View {
	v := e.view
	if e.m != nil {
		v = e.m.Status().View(e.id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cleaned {
		v.Phase = move.PhaseCleaned
	}
	if e.abandoned {
		v.LeftOnTarget = false
	}
	for _, n := range []string{e.cancelNote, e.note} {
		if n != "" {
			v.Warnings = append(slices.Clone(v.Warnings), n)
		}
	}
	return v
}

// storedMove is a done move as the state store keeps it.
type storedMove struct {
	ID      string   `json:"id"`
	Objects []string `json:"objects"`
	Source  string   `json:"source"`
	Target  string   `json:"target"`
	Ended   string   `json:"ended"`
}

// moveRouter gives the engine the proxy's Hold and Place.
type moveRouter struct{ p *Proxy }

func toPlacement(objs []move.Object) []placement.Object {
	out := make([]placement.Object, len(objs))
	for i, o := range objs {
		out[i] = placement.Object{DB: o.DB, Table: o.Table}
	}
	return out
}

func (r moveRouter) Hold(ctx context.Context, objs []move.Object) (func(), error) {
	return r.p.Hold(ctx, toPlacement(objs))
}

func (r moveRouter) Place(objs []move.Object, cluster string) error {
	return r.p.Place(toPlacement(objs), cluster)
}

// loadMoves reads the done moves from the state store once (under mu).
func (p *Proxy) loadMoves() {
	r := &p.moves
	if r.loaded {
		return
	}
	r.loaded = true
	r.ctx, r.stop = context.WithCancel(context.Background())
	r.results = map[string]uint64{}
	e, err := p.store.Get(movesKey)
	if err != nil || e.Version == 0 {
		return
	}
	var list []storedMove
	if err := json.Unmarshal(e.Value, &list); err != nil {
		p.log.Warn("moves in the state file unreadable; their cleanup must be done by hand", "err", err)
		return
	}
	for _, s := range list {
		ent := &moveEntry{id: s.ID, view: move.View{ID: s.ID, Objects: s.Objects, Source: s.Source, Target: s.Target, Phase: move.PhaseDone}}
		ent.view.Ended, _ = time.Parse(time.RFC3339Nano, s.Ended)
		for _, o := range s.Objects {
			db, t, _ := strings.Cut(o, ".")
			ent.objs = append(ent.objs, move.Object{DB: db, Table: t})
		}
		r.entries = append(r.entries, ent)
		if n, err := strconv.Atoi(strings.TrimPrefix(s.ID, "m")); err == nil && n > r.seq {
			r.seq = n
		}
	}
}

// saveMoves rewrites the stored list of done moves; f edits it.
func (p *Proxy) saveMoves(f func([]storedMove) []storedMove) error {
	for range 5 {
		e, err := p.store.Get(movesKey)
		if err != nil {
			return err
		}
		var list []storedMove
		if e.Version > 0 {
			if err := json.Unmarshal(e.Value, &list); err != nil {
				return err
			}
		}
		b, _ := json.Marshal(f(list))
		if _, err = p.store.CompareAndSwap(movesKey, e.Version, b); err == nil || !errors.Is(err, statestore.ErrVersion) {
			return err
		}
	}
	return fmt.Errorf("moves: the state store kept changing")
}

// StartMove starts moving the objects named (see placement.ParseObjects)
// to cluster to, and returns at once; GET /api/moves follows it.
func (p *Proxy) StartMove(specs []string, to string) (move.View, error) {
	if len(p.clusters) < 2 || p.Placement() == nil {
		return move.View{}, fmt.Errorf("%w: sluice fronts one cluster; configure clusters: to move between them", move.ErrRefused)
	}
	if p.byName[to] == nil {
		return move.View{}, fmt.Errorf("%w: no cluster named %q (clusters: %v)", move.ErrNotFound, to, p.ClusterNames())
	}
	var objs []move.Object
	for _, s := range specs {
		os, err := placement.ParseObjects(s)
		if err != nil {
			return move.View{}, fmt.Errorf("%w: %w", move.ErrInvalid, err)
		}
		for _, o := range os {
			objs = append(objs, move.Object{DB: o.DB, Table: o.Table})
		}
	}
	objs, err := move.Normalize(objs)
	if err != nil {
		return move.View{}, fmt.Errorf("%w: %w", move.ErrInvalid, err)
	}
	m := p.Placement()
	from := ""
	for _, o := range objs {
		if o.IsDB() && m.Split([]byte(o.DB)) {
			return move.View{}, fmt.Errorf("%w: database %s has tables placed apart from it; move those tables by name instead", move.ErrRefused, o.DB)
		}
		c := m.Owner(placement.Object{DB: o.DB, Table: o.Table})
		switch {
		case from == "":
			from = c
		case c != from:
			return move.View{}, fmt.Errorf("%w: %s is on cluster %s and %s on %s; one move takes objects from one cluster", move.ErrRefused, objs[0], from, o, c)
		}
	}
	if from == to {
		return move.View{}, fmt.Errorf("%w: %s is already on cluster %s", move.ErrRefused, objs[0], to)
	}
	cfg := p.rt.Load().cfg
	src, err := p.moveEndpoint(from, true)
	if err != nil {
		return move.View{}, err
	}
	dst, err := p.moveEndpoint(to, false)
	if err != nil {
		return move.View{}, err
	}
	repl := p.byName[from].config(cfg).Failover.Replication
	if repl.User == "" {
		repl = cfg.Failover.Replication
	}
	dst.ReplUser, dst.ReplPassword = repl.User, repl.Secret()

	r := &p.moves
	r.mu.Lock()
	defer r.mu.Unlock()
	p.loadMoves()
	for _, e := range r.entries {
		v := e.View()
		if v.Phase.Terminal() {
			continue
		}
		if v.Target == to {
			return move.View{}, fmt.Errorf("%w: move %s into cluster %s is still running; one move into a cluster at a time", move.ErrRefused, e.id, to)
		}
	}
	for _, e := range r.entries {
		e.mu.Lock()
		abandoning := e.abandoning
		e.mu.Unlock()
		if (abandoning || !e.ended()) && e.View().Target == to {
			return move.View{}, fmt.Errorf("%w: move %s into cluster %s has not finished undoing itself (its leftovers are removed once the cluster has a primary again); try again once it has", move.ErrRefused, e.id, to)
		}
		if e.View().Phase.Terminal() {
			continue
		}
		for _, o := range objs {
			for _, x := range e.objs {
				if o.DB == x.DB && (o.IsDB() || x.IsDB() || o.Table == x.Table) {
					return move.View{}, fmt.Errorf("%w: %s is being moved by move %s", move.ErrRefused, o, e.id)
				}
			}
		}
	}
	opts := move.Options{HoldTimeout: cfg.MoveHoldTimeout(), BatchRows: cfg.Moves.BatchRows, Log: p.log.With("move", fmt.Sprintf("m%d", r.seq+1))}
	spec := move.Spec{Objects: objs, Source: src, Target: dst, Options: opts}
	mv, err := move.New(spec, moveRouter{p})
	if err != nil {
		return move.View{}, err
	}
	r.seq++
	e := &moveEntry{id: fmt.Sprintf("m%d", r.seq), m: mv, objs: mv.Objects(), done: make(chan struct{})}
	r.entries = append(r.entries, e)
	r.wg.Add(1)
	go p.runMove(e)
	p.log.Info("move started", "move", e.id, "objects", len(e.objs), "from", from, "to", to)
	return e.View(), nil
}

func (p *Proxy) runMove(e *moveEntry) {
	defer p.moves.wg.Done()
	err := e.m.Run(p.moves.ctx)
	v := e.View()
	result := "done"
	switch {
	case err == nil:
		if serr := p.saveMoves(func(l []storedMove) []storedMove {
			return append(l, storedMove{ID: e.id, Objects: v.Objects, Source: v.Source, Target: v.Target, Ended: v.Ended.Format(time.RFC3339Nano)})
		}); serr != nil {
			p.log.Warn("move done, but not recorded in the state file: its cleanup after a restart must be done by hand", "move", e.id, "err", serr)
		}
	case errors.Is(err, move.ErrCancelled):
		result = "cancelled"
	case errors.Is(err, move.ErrRefused):
		result = "refused"
	default:
		result = "failed"
	}
	p.moves.mu.Lock()
	p.moves.results[result]++
	p.moves.mu.Unlock()
	p.log.Info("move ended", "move", e.id, "result", result, "rows", v.RowsCopied, "hold_ms", v.HoldMS, "err", err)
	if v.LeftOnTarget {
		// Before done: no move into the target may start in between
		// and have its copy dropped by this one's abandon.
		e.mu.Lock()
		e.abandoning = true
		e.note = "the target's primary was lost during the move: its leftovers are removed once cluster " + v.Target + " has a primary again"
		e.mu.Unlock()
	}
	close(e.done)
	if v.LeftOnTarget {
		p.abandonLeftovers(e, v.Target)
	}
}

// ended reports whether the move and its bookkeeping have ended (a move
// of an earlier process has).
func (e *moveEntry) ended() bool {
	if e.done == nil {
		return true
	}
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// moveStopWait bounds how long a switchover waits for the moves it
// cancels to undo themselves.
const moveStopWait = 30 * time.Second

// stopMovesOn cancels the running moves from or into cluster and waits
// until each has undone its work, before a switchover demotes the
// cluster's primary: a move's copy and replication connection write into
// the target's primary, and a demoted server must receive nothing but
// its new primary's changes. A move past its cutover's Place finishes
// instead. An error (a move that did not end in time) aborts the
// switchover.
func (p *Proxy) stopMovesOn(ctx context.Context, cluster string) error {
	r := &p.moves
	r.mu.Lock()
	var stop []*moveEntry
	for _, e := range r.entries {
		if e.m == nil {
			continue
		}
		if v := e.View(); !v.Phase.Terminal() && (v.Source == cluster || v.Target == cluster) {
			stop = append(stop, e)
		}
	}
	r.mu.Unlock()
	for _, e := range stop {
		if e.m.Cancel() {
			e.mu.Lock()
			e.cancelNote = "cancelled by sluice before a switchover of cluster " + cluster + "; run it again"
			e.mu.Unlock()
			p.log.Warn("switchover: cancelling a move on the cluster", "move", e.id, "cluster", cluster)
		}
	}
	wait, cancel := context.WithTimeout(ctx, moveStopWait)
	defer cancel()
	for _, e := range stop {
		select {
		case <-e.done:
		case <-wait.Done():
			return fmt.Errorf("move %s on cluster %s did not stop within %v", e.id, cluster, moveStopWait)
		}
	}
	return nil
}

// abandonPoll and abandonFor pace and bound abandonLeftovers.
const (
	abandonPoll = time.Second
	abandonFor  = 10 * time.Minute
)

// abandonLeftovers finishes the undo of a move that could not reach its
// target's primary (lost during the move): once the target cluster has a
// primary taking writes again (after its failover, or the same one back),
// the copy and the replication connection are removed there. The objects
// were refused up front if the target had them, and nothing routes to the
// target for them, so what is dropped is the move's own copy.
func (p *Proxy) abandonLeftovers(e *moveEntry, target string) {
	r := &p.moves
	ctx, cancel := context.WithTimeout(r.ctx, abandonFor)
	defer cancel()
	var last error
	t := time.NewTicker(abandonPoll)
	defer t.Stop()
	for {
		ep, err := p.moveEndpoint(target, false)
		if err == nil {
			err = move.Abandon(ctx, ep, e.m.Leftovers(), "")
			if err == nil {
				e.mu.Lock()
				e.abandoning, e.abandoned = false, true
				e.note = "the target's primary was lost during the move; its leftovers were removed on " + ep.Primary + ", the primary of cluster " + target + " since"
				e.mu.Unlock()
				p.log.Info("move: leftovers removed from the target", "move", e.id, "cluster", target, "primary", ep.Primary)
				return
			}
		}
		if last == nil || err.Error() != last.Error() {
			p.log.Info("move: leftovers on the target not removed yet", "move", e.id, "cluster", target, "err", err)
		}
		last = err
		select {
		case <-ctx.Done():
			e.mu.Lock()
			e.abandoning = false
			e.note = fmt.Sprintf("the move's leftovers on cluster %s could not be removed (%v): drop its objects there by hand before a rerun", target, last)
			e.mu.Unlock()
			p.log.Warn("move: leftovers not removed from the target", "move", e.id, "cluster", target, "err", last)
			return
		case <-t.C:
		}
	}
}

// moveEndpoint is how the mover reaches a cluster: its current primary
// (and, for a source, a replica the monitor finds readable) with the
// move account.
func (p *Proxy) moveEndpoint(cluster string, source bool) (move.Endpoint, error) {
	cfg := p.rt.Load().cfg
	user, pass := cfg.MoveCredentials()
	ep := move.Endpoint{Cluster: cluster, User: user, Password: pass}
	snap := p.byName[cluster].monitor.Snapshot()
	prim, ok := snap.PrimaryServer()
	if !ok || snap.Hold != nil {
		return ep, fmt.Errorf("%w: cluster %s has no primary taking writes now (a failover in progress?)", move.ErrRefused, cluster)
	}
	ep.Primary = prim.Addr
	if source {
		for i := range snap.Servers {
			if s := &snap.Servers[i]; i != snap.Primary && s.Readable {
				ep.Replica = s.Addr
				break
			}
		}
	}
	return ep, nil
}

// Moves lists the moves of this process and the done ones in the state
// store, oldest first.
func (p *Proxy) Moves() []move.View {
	r := &p.moves
	r.mu.Lock()
	defer r.mu.Unlock()
	p.loadMoves()
	out := make([]move.View, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e.View())
	}
	return out
}

func (p *Proxy) moveEntry(id string) (*moveEntry, error) {
	r := &p.moves
	r.mu.Lock()
	defer r.mu.Unlock()
	p.loadMoves()
	for _, e := range r.entries {
		if e.id == id {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w %q", move.ErrNotFound, id)
}

// MoveStatus is one move's view.
func (p *Proxy) MoveStatus(id string) (move.View, error) {
	e, err := p.moveEntry(id)
	if err != nil {
		return move.View{}, err
	}
	return e.View(), nil
}

// CancelMove stops a move before its cutover placed the objects; the
// move undoes what it did on the target.
func (p *Proxy) CancelMove(id string) (move.View, error) {
	e, err := p.moveEntry(id)
	if err != nil {
		return move.View{}, err
	}
	if e.m == nil || !e.m.Cancel() {
		v := e.View()
		return v, fmt.Errorf("%w: move %s is %s: only a move before its cutover can be cancelled", move.ErrRefused, id, v.Phase)
	}
	return e.View(), nil
}

// CleanupMove drops the source copy of a done move, on the source
// cluster's primary of now (a failover since the move is followed).
func (p *Proxy) CleanupMove(ctx context.Context, id string) (move.View, error) {
	e, err := p.moveEntry(id)
	if err != nil {
		return move.View{}, err
	}
	v := e.View()
	e.mu.Lock()
	if v.Phase != move.PhaseDone || e.cleaning {
		e.mu.Unlock()
		return v, fmt.Errorf("%w: move %s is %s; only a done move's source copy can be dropped, once", move.ErrRefused, id, v.Phase)
	}
	e.cleaning = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.cleaning = false
		e.mu.Unlock()
	}()
	// The objects must still be placed off the source: the placement may
	// have changed since (another move brought them back).
	m := p.Placement()
	for _, o := range e.objs {
		if m == nil || m.Owner(placement.Object{DB: o.DB, Table: o.Table}) == v.Source {
			return v, fmt.Errorf("%w: %s is placed on %s again; its copy there is live, not dropped", move.ErrRefused, o, v.Source)
		}
	}
	if p.byName[v.Source] == nil {
		return v, fmt.Errorf("%w: cluster %s is no longer configured", move.ErrRefused, v.Source)
	}
	src, err := p.moveEndpoint(v.Source, false)
	if err != nil {
		return v, err
	}
	if err := move.Cleanup(ctx, src, e.objs); err != nil {
		return e.View(), err
	}
	e.mu.Lock()
	e.cleaned = true
	e.mu.Unlock()
	if err := p.saveMoves(func(l []storedMove) []storedMove {
		return slices.DeleteFunc(l, func(s storedMove) bool { return s.ID == id })
	}); err != nil {
		p.log.Warn("move cleaned up, but still listed in the state file", "move", id, "err", err)
	}
	p.log.Info("move cleaned up: source copy dropped", "move", id, "cluster", v.Source)
	return e.View(), nil
}

// MoveCounts are the figures of sluice_moves_total, sluice_move_rows_copied
// and sluice_moves_running.
func (p *Proxy) MoveCounts() (results map[string]uint64, rowsCopied int64, running int) {
	r := &p.moves
	r.mu.Lock()
	defer r.mu.Unlock()
	p.loadMoves()
	results = make(map[string]uint64, len(r.results))
	for k, v := range r.results {
		results[k] = v
	}
	for _, e := range r.entries {
		if e.m == nil {
			continue
		}
		v := e.m.Status()
		rowsCopied += v.RowsCopied
		if !v.Phase.Terminal() {
			running++
		}
	}
	return results, rowsCopied, running
}

// stopMoves cancels the moves still running (each undoes its changes)
// and waits for them: sluice is shutting down.
func (p *Proxy) stopMoves() {
	r := &p.moves
	r.mu.Lock()
	if r.stop != nil {
		r.stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
