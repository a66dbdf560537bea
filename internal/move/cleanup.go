package move

import (
	"context"
	"fmt"
)

// Cleanup drops the source copy of a move that is done. The objects are no
// longer reachable through sluice (they are placed on the target), so
// nothing reads them; the drops replicate to the source's replicas.
func (m *Move) Cleanup(ctx context.Context) error {
	m.mu.Lock()
	phase := m.st.Phase
	m.mu.Unlock()
	if phase != PhaseDone {
		return fmt.Errorf("move: cleanup: the move is %s, not done; only a finished move's source copy can be dropped", phase)
	}
	if err := Cleanup(ctx, m.spec.Source, m.objs); err != nil {
		return err
	}
	return m.setPhase(PhaseCleaned)
}

// Cleanup drops objs on the source's primary. The caller must know they
// are placed elsewhere: this is the `sluice move --cleanup` of a move that
// finished, perhaps in an earlier process.
func Cleanup(ctx context.Context, source Endpoint, objs []Object) error {
	objs, err := Normalize(objs)
	if err != nil {
		return err
	}
	return dropObjects(ctx, source, objs)
}

// Abandon drops objs on the target's primary and removes the move's
// replication connection there: the undo of an aborted move that could
// not undo itself (the target was unreachable). Only for objects that are
// NOT placed on the target. connection "" means the default name; no
// objects means only the connection.
func Abandon(ctx context.Context, target Endpoint, objs []Object, connection string) error {
	if len(objs) > 0 {
		var err error
		if objs, err = Normalize(objs); err != nil {
			return err
		}
	}
	if connection == "" {
		connection = Options{}.withDefaults().Connection
	}
	db, err := openDB(target.Primary, target.User, target.Password)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := removeConnection(ctx, db, connection); err != nil {
		return fmt.Errorf("move: abandon: %s: %w", target.Primary, err)
	}
	return dropObjects(ctx, target, objs)
}

func dropObjects(ctx context.Context, ep Endpoint, objs []Object) error {
	db, err := openDB(ep.Primary, ep.User, ep.Password)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, o := range objs {
		q := "DROP TABLE IF EXISTS " + qualified(o.DB, o.Table)
		if o.IsDB() {
			q = "DROP DATABASE IF EXISTS " + quoteIdent(o.DB)
		}
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("move: drop %s on %s: %w", o, ep.Primary, err)
		}
	}
	return nil
}
