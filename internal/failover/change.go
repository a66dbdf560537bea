package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/hooks"
	"github.com/sluice-proxy/sluice/internal/statestore"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Failover promotes a replica while the primary is down, on an operator's
// request: the safety checks apply as for an automatic failover, but
// neither the replicas' confirmation nor min_interval is required. target
// may name the replica to promote.
func (m *Manager) Failover(ctx context.Context, target string) (Record, error) {
	done, err := m.claim("a failover")
	if err != nil {
		return Record{}, err
	}
	defer done()
	st := m.current()
	snap := m.mon.Snapshot()
	if st.Epoch == 0 {
		return Record{}, fmt.Errorf("%w: no primary has been recorded yet", ErrConflict)
	}
	// A designated primary that is up but read-only (its promotion failed
	// half way) is no primary: failing over from it is allowed.
	if pr, ok := snap.PrimaryServer(); ok && pr.Name == st.Primary {
		return Record{}, fmt.Errorf("%w: primary %s is up; use a switchover (POST /api/switchover)", ErrConflict, st.Primary)
	}
	if target != "" {
		// Checked before any hold is taken: a typo must not pause writes.
		t, ok := snap.ByName(target)
		switch {
		case !ok:
			return Record{}, fmt.Errorf("%w: no server named %q", ErrNotFound, target)
		case t.Name == st.Primary:
			return Record{}, fmt.Errorf("%w: %s is the primary being failed over from", ErrConflict, target)
		case noPromotion(m.cfg.Load(), target):
			return Record{}, fmt.Errorf("%w: %s has no_promotion", ErrConflict, target)
		case slices.Contains(st.Fenced, target):
			return Record{}, fmt.Errorf("%w: %s was demoted by an earlier change: rejoin it first (POST /api/servers/%s/rejoin)", ErrConflict, target, target)
		}
	}
	return m.failover(ctx, "operator", target)
}

// failover runs with m.op held.
func (m *Manager) failover(ctx context.Context, trigger, target string) (Record, error) {
	cfg := m.cfg.Load()
	st := m.current()
	snap := m.mon.Snapshot()
	oldName := st.Primary
	oldAddr := st.Address
	if o, ok := snap.ByName(oldName); ok {
		oldAddr = o.Addr
	}
	rec := Record{Time: time.Now().UTC(), Kind: "failover", Trigger: trigger, Old: oldName, Epoch: st.Epoch}
	m.log.Warn("failing over", "old_primary", oldName, "trigger", trigger)
	release := m.startHold("failover from "+oldName, cfg.HoldTimeout)
	defer release()

	statuses := m.readAll(ctx, snap, cfg, oldName)
	var replicas []Status
	for _, s := range statuses {
		if !s.Reachable || s.Replicating {
			replicas = append(replicas, s)
		}
	}
	servers := slices.Clone(cfg.Servers)
	for i := range servers {
		if slices.Contains(st.Fenced, servers[i].Name) {
			servers[i].NoPromotion = true // a demoted old primary waits for an operator's rejoin
		}
	}
	if target != "" {
		for i := range servers {
			servers[i].NoPromotion = servers[i].NoPromotion || servers[i].Name != target
		}
	}
	m.mu.Lock()
	last := m.lastPrimary
	m.mu.Unlock()
	if last.Name != oldName {
		last = Status{}
	}
	plan := ChooseCandidate(replicas, servers, last)
	rec.Reasons = plan.Reasons
	if !plan.Refused {
		if why := m.lagTooHigh(plan, statuses, cfg); why != "" {
			// An equally advanced replica within max_lag will do as well.
			if alt, ok := m.alternative(plan, replicas, servers, statuses, last, cfg); ok {
				rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s passed over: %s; %s received as much", plan.Candidate, why, alt.Candidate))
				plan = alt
				rec.Reasons = append(rec.Reasons, alt.Reasons...)
			} else {
				plan.Refused = true
				rec.Reasons = append(rec.Reasons, "refused: "+why)
			}
		}
	}
	if plan.Refused {
		rec.Kind = "refused"
		msg := fmt.Sprintf("primary %s is lost and failover was refused: %s", oldName, lastRefusal(rec.Reasons))
		m.refused(rec, msg)
		return rec, fmt.Errorf("%w: %s", ErrConflict, msg)
	}
	cand, _ := snap.ByName(plan.Candidate)
	rec.New = plan.Candidate
	cdb := m.db(cand.Name, cand.Addr)
	// WaitApplied gives the server waitMargin less than the context: the
	// candidate gets the whole max_catchup to apply its relay log.
	wctx, cancel := context.WithTimeout(ctx, cfg.MaxCatchup+waitMargin)
	err := WaitApplied(wctx, cdb, plan.CatchUpTo)
	cancel()
	if err != nil {
		rec.Kind = "refused"
		rec.Reasons = append(rec.Reasons, "refused: "+err.Error()+" (failover.max_catchup)")
		msg := fmt.Sprintf("primary %s is lost and failover was refused: %s did not apply its relay log within failover.max_catchup %s", oldName, cand.Name, cfg.MaxCatchup)
		m.refused(rec, msg)
		return rec, fmt.Errorf("%w: %s: %v", ErrConflict, msg, err)
	}
	// The pre-hook runs once the failover will happen (a refusal does not
	// repoint DNS); the primary is gone, so a failing hook cannot stop it.
	ev := hooks.Event{Kind: hooks.KindFailover, OldPrimary: oldName, NewPrimary: cand.Name, OldAddress: oldAddr, NewAddress: cand.Addr,
		Epoch: st.Epoch + 1, Reason: "primary " + oldName + " lost (" + trigger + ")"}
	m.runHook(ctx, cfg, ev, hooks.PhasePre)
	next := statestore.State{Epoch: st.Epoch + 1, Primary: cand.Name, Address: cand.Addr, Reason: ev.Reason,
		Fenced: appendFenced(st.Fenced, oldName, cand.Name)}
	if err := m.commit(next); err != nil {
		rec.Error = err.Error()
		m.record(rec)
		// Reported once: retrying every check round would only repeat it.
		m.lossOnce(oldName, fmt.Sprintf("primary %s is lost and failover to %s was not done: %v; fix the state store and retry POST /api/failover", oldName, cand.Name, err))
		return rec, err
	}
	rec.Epoch = next.Epoch
	m.setAlert("")
	// Sessions still pinned to the old primary (an open transaction, a
	// statement stuck on a frozen server) must not finish there if it
	// comes back: they are cut now, with a clear error.
	m.traffic.AbortPinned(oldName, fmt.Sprintf("sluice: the primary %s was lost and %s took over (failover, epoch %d); the transaction and session state on %s are gone: run it again",
		oldName, cand.Name, next.Epoch, oldName))
	pctx, cancel := context.WithTimeout(ctx, 4*cfg.Timeout)
	err = Promote(pctx, cdb)
	cancel()
	m.publish()
	if err != nil {
		rec.Error = err.Error()
		m.record(rec)
		msg := fmt.Sprintf("failover to %s: promotion failed (%v); epoch %d names it primary: make it writable (STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF) and sluice routes writes to it, or fail over to another replica (POST /api/failover?to=NAME)", cand.Name, err, next.Epoch)
		m.lossOnce(oldName, msg)
		return rec, errors.New(msg)
	}
	m.promotedNow(cand.Name)
	rec.PauseMS = ms(release())
	rec.OK = true
	m.log.Warn("failover done", "old_primary", oldName, "new_primary", cand.Name, "epoch", next.Epoch, "hold", time.Duration(rec.PauseMS*1e6))

	// After traffic moved: fence the old primary if it is reachable (a
	// frozen one is fenced on sight when it comes back), repoint the other
	// replicas.
	fctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout)
	if killed, err := Fence(fctx, m.db(oldName, oldAddr), cfg.MonitorUser); err == nil {
		m.log.Warn("old primary fenced", "server", oldName, "killed", killed)
		rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s set read_only, %d connection(s) killed", oldName, killed))
	} else {
		m.log.Warn("old primary not reachable to fence; it is fenced on sight when it comes back", "server", oldName, "err", err)
		rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s not fenced now (%v): fenced on sight when it comes back", oldName, err))
	}
	cancel()
	m.traffic.CloseIdle(oldName)
	rec.Reasons = append(rec.Reasons, m.repointAll(ctx, cfg, snap, statuses, cand, oldName)...)
	m.settle(ctx, cfg)
	m.record(rec)
	m.runHook(ctx, cfg, ev, hooks.PhasePost)
	return rec, nil
}

// settle waits for a check round after a change, so that what the API
// shows once a change returns is the new topology.
func (m *Manager) settle(ctx context.Context, cfg *Config) {
	rctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeout+time.Second)
	defer cancel()
	_ = m.mon.Refresh(rctx)
	m.mu.Lock()
	m.promoted = ""
	m.mu.Unlock()
	m.publish()
}

// alternative looks for another replica that received everything the
// chosen one did and passes every check, max_lag included.
func (m *Manager) alternative(plan Plan, replicas []Status, servers []Server, statuses []Status, last Status, cfg *Config) (Plan, bool) {
	for _, r := range replicas {
		if r.Name == plan.Candidate || !r.Reachable || !r.Received().Contains(plan.CatchUpTo) {
			continue
		}
		only := slices.Clone(servers)
		for i := range only {
			only[i].NoPromotion = only[i].NoPromotion || only[i].Name != r.Name
		}
		alt := ChooseCandidate(replicas, only, last)
		if !alt.Refused && alt.Candidate == r.Name && m.lagTooHigh(alt, statuses, cfg) == "" {
			return alt, true
		}
	}
	return Plan{}, false
}

// lagTooHigh applies failover.max_lag: a candidate that applied all it
// received is current; otherwise its lag as last measured while the
// primary was up decides, and unknown lag counts as too high.
func (m *Manager) lagTooHigh(plan Plan, statuses []Status, cfg *Config) string {
	if cfg.MaxLag <= 0 {
		return ""
	}
	for _, s := range statuses {
		if s.Name != plan.Candidate {
			continue
		}
		if s.SlavePos.Contains(s.Received()) {
			return ""
		}
	}
	m.mu.Lock()
	l, ok := m.lags[plan.Candidate]
	m.mu.Unlock()
	switch {
	case !ok || !l.known:
		return fmt.Sprintf("%s has not applied all it received and its lag was unknown when the primary was lost (failover.max_lag %s)", plan.Candidate, cfg.MaxLag)
	case l.lag > cfg.MaxLag:
		return fmt.Sprintf("%s was %s behind when the primary was lost, more than failover.max_lag %s", plan.Candidate, l.lag, cfg.MaxLag)
	}
	return ""
}

func lastRefusal(reasons []string) string {
	var out []string
	for _, r := range reasons {
		if strings.HasPrefix(r, "refused: ") {
			out = append(out, strings.TrimPrefix(r, "refused: "))
		}
	}
	if len(out) == 0 {
		return strings.Join(reasons, "; ")
	}
	return strings.Join(out, "; ")
}

func appendFenced(list []string, add, remove string) []string {
	out := slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == remove || s == add })
	if add != "" {
		out = append(out, add)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Switchover moves the primary to target (or the best replica) without
// errors for clients: new writes and transactions are held, those already
// running on the old primary finish (up to drain_timeout), the old primary
// is made read-only, the target catches up, is promoted and the held work
// is released to it. Then the old primary becomes a replica of the new
// one and the other replicas follow. A failing pre-hook aborts it before
// anything changes.
func (m *Manager) Switchover(ctx context.Context, target string) (Record, error) {
	done, err := m.claim("a switchover")
	if err != nil {
		return Record{}, err
	}
	defer done()
	cfg := m.cfg.Load()
	st := m.current()
	snap := m.mon.Snapshot()
	rec := Record{Time: time.Now().UTC(), Kind: "switchover", Trigger: "operator", Old: st.Primary, Epoch: st.Epoch}
	fail := func(err error) (Record, error) {
		rec.Error = err.Error()
		m.record(rec)
		m.log.Error("switchover failed", "err", err)
		return rec, err
	}
	old, ok := snap.PrimaryServer()
	if !ok || old.Name != st.Primary {
		return Record{}, fmt.Errorf("%w: no primary is up (epoch %d names %q); use a failover (POST /api/failover)", ErrConflict, st.Epoch, st.Primary)
	}
	if cfg.ReplUser == "" {
		return Record{}, fmt.Errorf("%w: failover.replication.user is not set: the old primary could not replicate from the new one", ErrConflict)
	}
	tgt, err := m.switchoverTarget(ctx, snap, cfg, old, target)
	if err != nil {
		return Record{}, err
	}
	rec.New = tgt.Name
	ev := hooks.Event{Kind: hooks.KindSwitchover, OldPrimary: old.Name, NewPrimary: tgt.Name, OldAddress: old.Addr, NewAddress: tgt.Addr,
		Epoch: st.Epoch + 1, Reason: "planned switchover"}
	if err := m.runHook(ctx, cfg, ev, hooks.PhasePre); err != nil {
		return fail(fmt.Errorf("%w: switchover aborted, nothing changed: pre-hook failed: %w", ErrConflict, err))
	}
	if f := m.beforeSwitchover.Load(); f != nil {
		if err := (*f)(ctx); err != nil {
			return fail(fmt.Errorf("%w: switchover aborted, nothing changed: %w", ErrConflict, err))
		}
	}

	deadline := time.Now().Add(cfg.HoldTimeout)
	opctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	release := m.startHold(fmt.Sprintf("switchover %s -> %s", old.Name, tgt.Name), cfg.HoldTimeout)
	defer func() {
		release()
		if !rec.OK {
			m.settle(ctx, cfg) // a restored old primary shows as one by its own check again
		}
	}()
	odb, tdb := m.db(old.Name, old.Addr), m.db(tgt.Name, tgt.Addr)

	// Transactions already on the old primary finish; past the bound they
	// are rolled back with a clear error.
	drainEnd := time.Now().Add(cfg.DrainTimeout)
	if drainEnd.After(deadline) {
		drainEnd = deadline
	}
	for m.traffic.InFlight(old.Name) > 0 && time.Now().Before(drainEnd) {
		time.Sleep(2 * time.Millisecond)
	}
	// What is still on the old primary now (work past drain_timeout, idle
	// sessions holding temporary tables or locks there) ends with the
	// fence: those sessions hear why instead of a lost connection. The
	// words hold even if the switchover is then aborted: the fence has
	// killed those connections either way.
	busy := m.traffic.InFlight(old.Name)
	msg := fmt.Sprintf("sluice: a switchover from %s to %s cut this session's connection to %s and the state on it (a transaction still open is rolled back; temporary tables and locks are gone); run it again",
		old.Name, tgt.Name, old.Name)
	if cut := m.traffic.AbortPinned(old.Name, msg); cut > 0 || busy > 0 {
		rec.Reasons = append(rec.Reasons, fmt.Sprintf("%d connection(s) still busy on %s after drain_timeout; %d session(s) cut", busy, old.Name, cut))
	}
	killed, err := Fence(opctx, odb, cfg.MonitorUser)
	if err != nil {
		m.restoreOld(old, odb)
		return fail(fmt.Errorf("switchover aborted: fence %s: %w", old.Name, err))
	}
	m.traffic.CloseIdle(old.Name)
	rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s set read_only, %d connection(s) killed", old.Name, killed))
	ost, err := ReadStatus(opctx, odb, old.Name)
	if err != nil {
		m.restoreOld(old, odb)
		return fail(fmt.Errorf("switchover aborted: %w", err))
	}
	if err := WaitApplied(opctx, tdb, ost.BinlogPos); err != nil {
		m.restoreOld(old, odb)
		return fail(fmt.Errorf("switchover aborted within failover.hold_timeout, %s stays primary: %w", old.Name, err))
	}
	// The old primary is read-only now and becomes a replica right after
	// the release; it is recorded as fenced only if that fails.
	next := statestore.State{Epoch: st.Epoch + 1, Primary: tgt.Name, Address: tgt.Addr, Reason: "switchover from " + old.Name,
		Fenced: appendFenced(st.Fenced, "", tgt.Name)}
	if err := m.commit(next); err != nil {
		m.restoreOld(old, odb)
		return fail(fmt.Errorf("switchover aborted: %w", err))
	}
	rec.Epoch = next.Epoch
	// The promotion has its own budget: the catch-up may have used most of
	// hold_timeout, and a promotion cut half way is the worst outcome.
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 4*cfg.Timeout)
	err = Promote(pctx, tdb)
	pcancel()
	if err != nil {
		// Back to the old primary, in a new epoch. The target may be
		// writable already and has lost its replication settings: it is
		// made read-only where it can be reached, and recorded as fenced
		// either way, so it is made read-only on sight and never receives
		// writes until an operator rejoins it.
		roErr := m.setReadOnly(tgt, tdb)
		fenced := appendFenced(st.Fenced, tgt.Name, "")
		if roErr == nil && m.stillReplica(ctx, tgt, tdb) {
			fenced = st.Fenced // the promotion failed before it touched replication
		}
		back := statestore.State{Epoch: next.Epoch + 1, Primary: old.Name, Address: old.Addr, Reason: "switchover to " + tgt.Name + " failed",
			Fenced: fenced}
		if cerr := m.commit(back); cerr != nil {
			m.log.Error("cannot record the way back to the old primary; it stays read-only", "server", old.Name, "err", cerr)
			m.publish()
			return fail(fmt.Errorf("switchover aborted: promote %s: %w; and the return to %s was not recorded (%v): no server takes writes until an operator fails over", tgt.Name, err, old.Name, cerr))
		}
		rec.Epoch = back.Epoch
		undoErr := m.restoreOld(old, odb)
		state := fmt.Sprintf("%s is primary again (epoch %d)", old.Name, back.Epoch)
		if undoErr != nil {
			state = fmt.Sprintf("%s is the primary of epoch %d but could not be made writable again (%v): set read_only=OFF on it", old.Name, back.Epoch, undoErr)
		}
		if roErr != nil {
			state += fmt.Sprintf("; %s could not be made read-only (%v): it is fenced on sight", tgt.Name, roErr)
		}
		if slices.Contains(fenced, tgt.Name) {
			state += fmt.Sprintf("; %s is fenced until rejoined (POST /api/servers/%s/rejoin)", tgt.Name, tgt.Name)
		}
		return fail(fmt.Errorf("switchover aborted: promote %s: %w; %s", tgt.Name, err, state))
	}
	m.promotedNow(tgt.Name)
	rec.PauseMS = ms(release())
	m.log.Warn("switchover done", "old_primary", old.Name, "new_primary", tgt.Name, "epoch", next.Epoch, "hold", time.Duration(rec.PauseMS*1e6))

	// The old primary becomes a replica of the new one.
	if err := m.rejoin(ctx, cfg, old.Name, old.Addr, ost, tgt); err != nil {
		m.fenceAfterFailedRejoin(old.Name, err)
		rec.Reasons = append(rec.Reasons, fmt.Sprintf("%s stays fenced: %v", old.Name, err))
	} else {
		rec.Reasons = append(rec.Reasons, old.Name+" replicates from "+tgt.Name)
	}
	statuses := m.readAll(ctx, snap, cfg, old.Name)
	rec.Reasons = append(rec.Reasons, m.repointAll(ctx, cfg, snap, statuses, tgt, old.Name)...)
	m.settle(ctx, cfg)
	rec.OK = true
	m.record(rec)
	m.runHook(ctx, cfg, ev, hooks.PhasePost)
	return rec, nil
}

func (m *Manager) switchoverTarget(ctx context.Context, snap *topology.Snapshot, cfg *Config, old *topology.Server, target string) (*topology.Server, error) {
	if target == "" {
		statuses := m.readAll(ctx, snap, cfg, old.Name)
		var replicas []Status
		for _, s := range statuses {
			if s.Reachable && s.Replicating && s.SourceAddr == old.Addr {
				replicas = append(replicas, s)
			}
		}
		plan := ChooseCandidate(replicas, cfg.Servers, Status{})
		if plan.Candidate == "" || plan.Refused {
			return nil, fmt.Errorf("%w: no replica can be switched to: %s", ErrConflict, strings.Join(plan.Reasons, "; "))
		}
		target = plan.Candidate
	}
	t, ok := snap.ByName(target)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: no server named %q", ErrNotFound, target)
	case t.Name == old.Name:
		return nil, fmt.Errorf("%w: %s is already the primary", ErrConflict, target)
	case noPromotion(cfg, target):
		return nil, fmt.Errorf("%w: %s has no_promotion", ErrConflict, target)
	case !t.Up || t.Role != topology.RoleReplica || t.SourceAddr != old.Addr || !t.IORunning || !t.SQLRunning:
		return nil, fmt.Errorf("%w: %s is not a healthy replica of %s (state %s)", ErrConflict, target, old.Name, t.State())
	}
	return t, nil
}

func noPromotion(cfg *Config, name string) bool {
	for _, s := range cfg.Servers {
		if s.Name == name {
			return s.NoPromotion
		}
	}
	return false
}

// fenceAfterFailedRejoin records a switchover's old primary as fenced when
// it could not become a replica: it is read-only, and stays out until an
// operator rejoins it.
func (m *Manager) fenceAfterFailedRejoin(name string, cause error) {
	reason := fmt.Sprintf("%s fenced: rejoin after the switchover failed: %v", name, cause)
	if err := m.advance(reason, func(f []string) []string { return appendFenced(f, name, "") }); err != nil {
		m.log.Error("cannot record the fence", "server", name, "err", err)
	}
}

// restoreOld gives a stopped switchover's old primary its writes back and
// shows it as the primary at once, so the held writes, released next, go
// to it rather than wait for a check round to see it writable.
func (m *Manager) restoreOld(old *topology.Server, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*m.cfg.Load().Timeout)
	defer cancel()
	if err := execAll(ctx, db, "undo fence", "SET GLOBAL read_only = OFF"); err != nil {
		m.log.Error("could not make the old primary writable again", "server", old.Name, "err", err)
		m.publish()
		return err
	}
	m.promotedNow(old.Name)
	return nil
}

// stillReplica reports whether s is read-only and still applies from its
// source.
func (m *Manager) stillReplica(ctx context.Context, s *topology.Server, db *sql.DB) bool {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*m.cfg.Load().Timeout)
	defer cancel()
	st, err := ReadStatus(rctx, db, s.Name)
	return err == nil && st.Reachable && st.Replicating && st.SQLRunning && st.ReadOnly
}

// setReadOnly makes a switchover's target read-only again after a failed
// promotion.
func (m *Manager) setReadOnly(s *topology.Server, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*m.cfg.Load().Timeout)
	defer cancel()
	err := execAll(ctx, db, "back to read-only", "SET GLOBAL read_only = ON")
	if err != nil {
		if st, serr := ReadStatus(ctx, db, s.Name); serr == nil && st.Reachable && st.ReadOnly {
			return nil // the promotion failed before read_only=OFF
		}
		m.log.Error("could not make the failed switchover target read-only", "server", s.Name, "err", err)
	}
	return err
}

// Rejoin makes name, a fenced or stray server, a replica of the current
// primary when its GTIDs allow, and lifts its fence.
func (m *Manager) Rejoin(ctx context.Context, name string) (Record, error) {
	done, err := m.claim("a rejoin")
	if err != nil {
		return Record{}, err
	}
	defer done()
	cfg := m.cfg.Load()
	st := m.current()
	snap := m.mon.Snapshot()
	rec := Record{Time: time.Now().UTC(), Kind: "rejoin", Server: name, New: st.Primary, Epoch: st.Epoch}
	s, ok := snap.ByName(name)
	pr, pok := snap.PrimaryServer()
	switch {
	case !ok:
		return Record{}, fmt.Errorf("%w: no server named %q", ErrNotFound, name)
	case !pok:
		return Record{}, fmt.Errorf("%w: there is no primary to rejoin", ErrConflict)
	case pr.Name == name:
		return Record{}, fmt.Errorf("%w: %s is the primary", ErrConflict, name)
	case !s.Up:
		return Record{}, fmt.Errorf("%w: %s is down", ErrConflict, name)
	case cfg.ReplUser == "":
		return Record{}, fmt.Errorf("%w: failover.replication.user is not set", ErrConflict)
	}
	self, err := ReadStatus(ctx, m.db(s.Name, s.Addr), s.Name)
	if err != nil {
		return Record{}, err
	}
	if err := m.rejoin(ctx, cfg, s.Name, s.Addr, self, pr); err != nil {
		rec.Error = err.Error()
		m.record(rec)
		if errors.Is(err, ErrRefused) {
			return rec, fmt.Errorf("%w: %v", ErrConflict, err)
		}
		return rec, err
	}
	rec.OK = true
	rec.Epoch = m.current().Epoch
	m.record(rec)
	m.runHook(ctx, cfg, hooks.Event{Kind: hooks.KindRejoin, Phase: hooks.PhasePost, OldPrimary: name, OldAddress: s.Addr,
		NewPrimary: pr.Name, NewAddress: pr.Addr, Epoch: rec.Epoch, Reason: name + " rejoined as a replica"}, hooks.PhasePost)
	return rec, nil
}

// rejoin runs with m.op held: Rejoin, then the fence is lifted in a new
// epoch.
func (m *Manager) rejoin(ctx context.Context, cfg *Config, name, addr string, self Status, pr *topology.Server) error {
	host, port, err := splitAddr(pr.Addr)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*cfg.Timeout)
	defer cancel()
	if err := Rejoin(rctx, m.db(name, addr), m.db(pr.Name, pr.Addr), host, port, cfg.ReplUser, cfg.ReplPassword, self); err != nil {
		return err
	}
	if !slices.Contains(m.current().Fenced, name) {
		return nil
	}
	return m.advance(name+" rejoined as a replica of "+pr.Name, func(f []string) []string { return appendFenced(f, "", name) })
}
