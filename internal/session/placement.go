package session

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Placer is implemented by an Env that fronts several clusters: each
// statement runs on the cluster owning what it touches, through that
// cluster's Env (its snapshot, routing policy, balancer and failover).
type Placer interface {
	// Placement is the map in force; nil means one cluster, nothing to
	// place.
	Placement() *placement.Map
	// ClusterEnv is the Env of one cluster; nil for an unknown name.
	ClusterEnv(name string) Env
	// Holds are the objects new statements must wait for (a move's
	// cutover); nil when none.
	Holds() []*Hold
}

// Hold makes the statements that touch Objs wait until Done is closed.
type Hold struct {
	Objs []placement.Object
	Done chan struct{}
}

// maxHoldWait bounds how long a statement waits for a hold: a move's
// cutover holds for well under a second; a hold that outlives this is
// a stuck move, and the client gets an error rather than a hang.
const maxHoldWait = 30 * time.Second

// placeState is what a session knows of placement: its own Env (the
// proxy's; s.env is the Env of the cluster serving the current
// statement), that cluster, a BEGIN held back until the transaction's
// first statement shows which cluster it belongs to, and the objects its
// current statement and open transaction touch, for Hold.
type placeState struct {
	home         Env
	cluster      string
	pendingBegin string

	mu       sync.Mutex // guards active and touched, read by Touches
	active   bool
	touched  []touch
	mark     int // len(touched) before the current statement
	overflow bool

	// foreign: the serving cluster does not own the session's default
	// schema, which may not exist there; connections are lent with state
	// (SETs, collation) but without it, and the statement names its
	// objects qualified.
	scan       routeScan
	foreign    bool
	usedSchema bool // the statement names objects of the default schema
	state      backend.State
}

// stateFor is the session state a connection of the serving cluster must
// share.
func (s *engine) stateFor() *backend.State {
	if !s.place.foreign || s.state.Schema == "" {
		return &s.state
	}
	s.place.state = s.state
	s.place.state.Schema = ""
	return &s.place.state
}

// touch identifies an object by hashes: table 0 is a whole database.
type touch struct{ db, table uint64 }

// FNV-1a, by hand so that hashing a name allocates nothing.
const fnvOffset, fnvPrime = 14695981039346656037, 1099511628211

func fnvAdd[T []byte | string](h uint64, b T) uint64 {
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= fnvPrime
	}
	return h
}

// touchOf hashes an object; neither hash is ever 0 (0 is "no table").
func touchOf[T []byte | string](db, table T, hasTable bool) touch {
	h := fnvAdd(fnvOffset, db)
	t := touch{db: h | 1}
	if hasTable {
		h ^= 0
		h *= fnvPrime
		t.table = fnvAdd(h, table) | 1
	}
	return t
}

// maxTouched bounds what one transaction records; past it the session
// counts as touching everything, and a Hold waits for its end.
const maxTouched = 4096

// systemDB reports whether a database is every server's own: it does not
// belong to a cluster, so it does not decide where a statement runs
// (information_schema answers for the cluster that serves the statement).
func systemDB(db []byte) bool {
	switch len(db) {
	case 3:
		return string(db) == "sys"
	case 5:
		return string(db) == "mysql"
	case 18:
		return equalFoldASCII(db, "information_schema") || equalFoldASCII(db, "performance_schema")
	}
	return false
}

func equalFoldASCII(b []byte, s string) bool {
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// placement is the map to route by, nil with one cluster.
func (s *engine) placer() (Placer, *placement.Map) {
	pl, ok := s.place.home.(Placer)
	if !ok {
		return nil, nil
	}
	m := pl.Placement()
	if m == nil {
		return nil, nil
	}
	return pl, m
}

// placeQuery routes a COM_QUERY to its cluster before anything else runs:
// it switches s.env to that cluster, refuses a statement spanning two
// clusters, and holds back a BEGIN outside a transaction. handled means
// it answered the client itself, with err the outcome of that write.
func (s *engine) placeQuery(ctx context.Context, sql []byte, st sqlscan.Statement) (handled bool, err error) {
	pl, m := s.placer()
	if pl == nil {
		return false, nil
	}
	if s.place.pendingBegin != "" && (st.Kind == sqlscan.KindCommit || st.Kind == sqlscan.KindRollback) && st.Flags&sqlscan.FlagMulti == 0 {
		// The transaction never touched anything: nothing to end.
		s.place.pendingBegin = ""
		return true, s.ok(0, 0)
	}
	if st.Kind == sqlscan.KindBegin && st.Flags&sqlscan.FlagMulti == 0 && s.pinned == nil && !s.inTxn && s.autocommit {
		// The cluster is known at the transaction's first statement: the
		// BEGIN is sent there, just before it (see beginPending).
		s.place.pendingBegin = string(sql)
		s.c.SetWriteTimeout(s.rt.Limits.ClientWrite)
		return true, s.c.WriteFlush(wire.AppendOK(nil, wire.OK{Status: s.status() | wire.StatusInTrans}))
	}
	if handled, err := s.listAcross(ctx, pl, m, sql, st); handled {
		return true, err
	}
	if st.Kind == sqlscan.KindUse {
		if db, ok := sqlscan.UseTarget(sql); ok {
			if e := s.placeOn(ctx, pl, m, nil, db); e != nil {
				return true, s.fail(e)
			}
			return false, nil
		}
	}
	if e := s.placeOn(ctx, pl, m, sql, ""); e != nil {
		return true, s.fail(e)
	}
	return false, nil
}

// placeStmt routes a prepared statement's prepare or execute.
func (s *engine) placeStmt(ctx context.Context, sql []byte) *wire.Error {
	pl, m := s.placer()
	if pl == nil {
		return nil
	}
	return s.placeOn(ctx, pl, m, sql, "")
}

// placeSchema routes a change of default schema (USE, COM_INIT_DB, a
// login's database) to the cluster owning it, where it is checked.
func (s *engine) placeSchema(ctx context.Context, db string) *wire.Error {
	pl, m := s.placer()
	if pl == nil {
		return nil
	}
	return s.placeOn(ctx, pl, m, nil, db)
}

// placeOn finds the cluster of sql's objects (or of database useDB) and
// makes it the session's for this statement.
func (s *engine) placeOn(ctx context.Context, pl Placer, m *placement.Map, sql []byte, useDB string) *wire.Error {
	deadline := time.Time{}
	for {
		want, e := s.clusterFor(m, sql, useDB)
		if e != nil {
			return e
		}
		h := s.heldBy(pl.Holds())
		if h == nil {
			s.place.foreign = !s.place.usedSchema && s.state.Schema != "" && m.Database([]byte(s.state.Schema)) != want
			return s.switchTo(pl, want)
		}
		// Held for a move's cutover: wait, then route by the placement
		// in force after it.
		s.unmark()
		if deadline.IsZero() {
			deadline = time.Now().Add(maxHoldWait)
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-h.Done:
			t.Stop()
		case <-t.C:
			return wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the statement's objects were held for a move longer than %v; try again", maxHoldWait)
		case <-ctx.Done():
			t.Stop()
			return wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: session ended while its statement was held for a move")
		}
		if _, m = s.placer(); m == nil {
			return nil
		}
	}
}

// clusterFor returns the cluster that owns everything the statement
// touches, records the objects for Hold, and refuses a statement spanning
// two clusters, or one outside the cluster of the session's open
// transaction or pinned connection.
func (s *engine) clusterFor(m *placement.Map, sql []byte, useDB string) (string, *wire.Error) {
	schema := s.state.Schema
	r := &s.place.scan
	r.s, r.m, r.want, r.other = s, m, "", ""
	r.firstDB, r.firstTable, r.otherDB, r.otherTable = nil, nil, nil, nil
	r.schema = append(r.schema[:0], schema...)
	if r.fn == nil {
		r.fn = r.visit // once: a method value allocates
	}
	s.place.usedSchema = false
	s.place.mu.Lock()
	s.place.mark = len(s.place.touched)
	s.place.active = true
	if useDB != "" {
		r.want = m.Database([]byte(useDB))
		s.addTouch([]byte(useDB), nil)
	} else if sql != nil {
		sqlscan.Objects(sql, r.fn)
	}
	s.place.mu.Unlock()
	want := r.want
	if r.other != "" {
		s.unmark()
		return "", wire.Errorf(wire.ErrCrossCluster, "HY000",
			"sluice: the statement touches %s (cluster %s) and %s (cluster %s); a statement runs on one cluster, so nothing was run",
			objName(r.firstDB, r.firstTable), want, objName(r.otherDB, r.otherTable), r.other)
	}
	bound := s.pinned != nil && !(s.pins == pinNext && !s.inTxn)
	if want == "" {
		if bound || s.place.cluster != "" && schema == "" {
			return s.place.cluster, nil
		}
		want = m.Database(r.schema)
	}
	if bound && want != s.place.cluster && s.place.cluster != "" {
		s.unmark()
		what := "the session's open transaction"
		if !s.inTxn {
			what = "the session's pinned connection (temporary tables, locks or user variables)"
		}
		return "", wire.Errorf(wire.ErrCrossCluster, "HY000",
			"sluice: %s is on cluster %s and this statement touches %s on cluster %s; a transaction runs on one cluster, so the statement was not run (the transaction is still open)",
			what, s.place.cluster, objName(r.firstDB, r.firstTable), want)
	}
	return want, nil
}

// routeScan collects the clusters of a statement's objects; it lives in
// the session so that routing a statement allocates nothing.
type routeScan struct {
	s                                        *engine
	m                                        *placement.Map
	schema                                   []byte
	want, other                              string
	firstDB, firstTable, otherDB, otherTable []byte
	fn                                       func(db, table []byte) bool
}

func (r *routeScan) visit(db, table []byte) bool {
	s := r.s
	if db == nil {
		if len(r.schema) == 0 {
			return true // "No database selected": the server says so
		}
		db = r.schema
	}
	if string(db) == string(r.schema) {
		s.place.usedSchema = true
	}
	if systemDB(db) {
		return true
	}
	var c string
	if table == nil {
		c = r.m.Database(db)
	} else {
		c = r.m.Table(db, table)
	}
	s.addTouch(db, table)
	switch {
	case r.want == "":
		r.want, r.firstDB, r.firstTable = c, db, table
	case c != r.want:
		r.other, r.otherDB, r.otherTable = c, db, table
		return false
	}
	return true
}

// addTouch records an object of the current statement; the caller holds
// s.place.mu.
func (s *engine) addTouch(db, table []byte) {
	if len(s.place.touched) < maxTouched {
		s.place.touched = append(s.place.touched, touchOf(db, table, table != nil))
	} else {
		s.place.overflow = true
	}
}

func objName(db, table []byte) string {
	if db == nil {
		return "the session's current database"
	}
	if table == nil {
		return "database " + string(db)
	}
	return string(db) + "." + string(table)
}

// switchTo makes cluster serve the session's statements from now on.
func (s *engine) switchTo(pl Placer, cluster string) *wire.Error {
	if cluster == s.place.cluster {
		return nil
	}
	env := pl.ClusterEnv(cluster)
	if env == nil {
		s.unmark()
		return wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the placement names cluster %q, which is not configured", cluster)
	}
	if s.pinned != nil && s.pins == pinNext && !s.inTxn {
		// Only a pending SHOW WARNINGS held the connection: let it go
		// where it came from before leaving the cluster.
		s.pins = 0
		s.unpinOrRelease(s.pinned, s.pinnedServer)
	}
	s.causal.switchCluster(s.place.cluster, cluster, &s.lastWrite)
	s.env, s.rt, s.place.cluster = env, env.Runtime(), cluster
	return nil
}

// heldBy returns a hold covering what the current statement touches that
// the session's open transaction did not touch before it (a transaction
// holding an object already is what the hold waits for, so it goes on).
func (s *engine) heldBy(holds []*Hold) *Hold {
	if len(holds) == 0 {
		return nil
	}
	s.place.mu.Lock()
	defer s.place.mu.Unlock()
	prior, cur := s.place.touched[:s.place.mark], s.place.touched[s.place.mark:]
	for _, h := range holds {
		for _, o := range h.Objs {
			if covers(cur, o) && !covers(prior, o) {
				return h
			}
		}
	}
	return nil
}

func covers(ts []touch, o placement.Object) bool {
	want := touchOf(o.DB, o.Table, o.Table != "")
	for _, t := range ts {
		if t.db == want.db && (want.table == 0 || t.table == want.table) {
			return true
		}
	}
	return false
}

// unmark forgets the current statement's objects.
func (s *engine) unmark() {
	s.place.mu.Lock()
	s.place.touched = s.place.touched[:s.place.mark]
	s.place.active = len(s.place.touched) > 0
	s.place.mu.Unlock()
}

// placeDone ends the statement for Hold: its objects stay recorded while
// a transaction or a pinned connection keeps them in use.
func (s *engine) placeDone() {
	if s.place.home == nil || (s.pinned != nil && !(s.pins == pinNext && !s.inTxn)) || s.place.pendingBegin != "" {
		return
	}
	s.place.mu.Lock()
	s.place.active, s.place.touched, s.place.mark, s.place.overflow = false, s.place.touched[:0], 0, false
	s.place.mu.Unlock()
}

// Touches reports whether the session runs a statement on, or holds an
// open transaction or pinned connection that touched, any of objs. Safe
// from other goroutines (Hold polls it).
func (s *engine) Touches(objs []placement.Object) bool {
	s.place.mu.Lock()
	defer s.place.mu.Unlock()
	if !s.place.active {
		return false
	}
	if s.place.overflow {
		return true
	}
	for _, o := range objs {
		if covers(s.place.touched, o) {
			return true
		}
	}
	return false
}

// beginPending sends a held-back BEGIN on the connection of the
// transaction's first statement.
func (s *engine) beginPending(c *backend.Conn, st sqlscan.Statement) *wire.Error {
	if s.place.pendingBegin == "" || st.Kind == sqlscan.KindSet || st.Kind == sqlscan.KindUse {
		return nil
	}
	q := s.place.pendingBegin
	s.place.pendingBegin = ""
	if _, err := c.Exec(q, s.rt.Limits.Query); err != nil {
		return asWireError(err)
	}
	return nil
}

// forgetPlacement drops session placement state that a reset ends.
func (s *engine) forgetPlacement() { s.place.pendingBegin = "" }
