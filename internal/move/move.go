package move

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// Router is what the proxy gives the mover for the cutover.
type Router interface {
	// Hold makes new statements touching objs wait (others flow on) and
	// returns once statements and transactions in flight on objs have
	// finished, or ctx ends. release lets the held statements go, routed
	// by the placement current at that moment.
	Hold(ctx context.Context, objs []Object) (release func(), err error)
	// Place durably assigns objs to cluster; effective for every statement
	// routed after it returns.
	Place(objs []Object, cluster string) error
}

// Endpoint is how the mover reaches a cluster's servers.
type Endpoint struct {
	// Cluster is the cluster's name, given to Router.Place.
	Cluster string
	// Primary is the primary's host:port.
	Primary string
	// Replica is the host:port of a healthy replica to copy the snapshot
	// from (source only, optional): the copy's reads then stay off the
	// primary. An unusable replica falls back to the primary.
	Replica string
	// User and Password: an account with SELECT on the moved objects (source),
	// or ALL on them plus REPLICATION SLAVE ADMIN, SUPER and BINLOG MONITOR
	// (target: it creates the copy and the replication connection).
	User, Password string
	// ReplUser and ReplPassword: the account (REPLICATION SLAVE on the
	// source) the target primary's replication connection logs in with.
	// Empty means User and Password.
	ReplUser, ReplPassword string
}

// Spec is one move: objects from one cluster to another.
type Spec struct {
	Objects []Object
	Source  Endpoint
	Target  Endpoint
	Options Options
}

// Options tune a move; zero values mean the defaults.
type Options struct {
	// BatchRows is the rows per INSERT of the copy (default 1000).
	BatchRows int
	// CutoverLag: the cutover starts once the target is at most this many
	// GTIDs of the source's domain behind (default 100); the rest is
	// waited for under the hold.
	CutoverLag uint64
	// HoldTimeout bounds one cutover attempt: the time the moved objects'
	// statements are held while the target applies the last GTIDs (default
	// 2 s). An attempt that runs out releases them and catches up again.
	HoldTimeout time.Duration
	// CutoverAttempts is how many cutovers are tried (default 5).
	CutoverAttempts int
	// CatchUpTimeout bounds the catch-up phase (default 10 min).
	CatchUpTimeout time.Duration
	// BrokenAfter: a replication connection not connected, or a source
	// primary not answering, for this long aborts the move (default 5 s).
	BrokenAfter time.Duration
	// SkipChecksum skips CHECKSUM TABLE of the moved tables on source and
	// target under the hold. The check guards against a copy that differs;
	// skip it only for tables too large to checksum within the hold.
	SkipChecksum bool
	// Connection is the name of the replication connection on the target
	// primary (default "sluice_move"). One move into a cluster at a time.
	Connection string
	// Log receives progress at info level (nil: discard).
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.BatchRows <= 0 {
		o.BatchRows = 1000
	}
	if o.CutoverLag == 0 {
		o.CutoverLag = 100
	}
	if o.HoldTimeout <= 0 {
		o.HoldTimeout = 2 * time.Second
	}
	if o.CutoverAttempts <= 0 {
		o.CutoverAttempts = 5
	}
	if o.CatchUpTimeout <= 0 {
		o.CatchUpTimeout = 10 * time.Minute
	}
	if o.BrokenAfter <= 0 {
		o.BrokenAfter = 5 * time.Second
	}
	if o.Connection == "" {
		o.Connection = "sluice_move"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Errors a move ends with; test with errors.Is.
var (
	// ErrRefused: a limit was found before anything changed.
	ErrRefused = errors.New("move refused")
	// ErrCancelled: Cancel was called before the cutover.
	ErrCancelled = errors.New("move cancelled")
	// ErrAborted: the move stopped (a failover, a broken replication
	// connection, a timeout, DDL) and undid its changes; rerun it.
	ErrAborted = errors.New("move aborted")
)

// TableChecksum is CHECKSUM TABLE of one moved table at the cutover.
type TableChecksum struct {
	Table          Object
	Source, Target int64
}

// Status is a snapshot of a move's progress; Move.Status returns a copy.
type Status struct {
	Objects        []Object
	Source, Target string // cluster names
	Phase          Phase
	// SnapshotFrom is the server the snapshot was copied from;
	// SnapshotGTID the source position it was taken at.
	SnapshotFrom, SnapshotGTID string
	Tables                     int
	RowsCopied                 int64
	RowsTotal                  int64 // estimate (information_schema.TABLES)
	RowsPerSec                 float64
	CopyTime                   time.Duration
	// LagGTIDs is how many GTIDs of the source's domain the target has
	// still to apply; LagSeconds the replication connection's
	// Seconds_Behind_Master (-1 unknown).
	LagGTIDs    uint64
	LagSeconds  int64
	CatchUpTime time.Duration
	// CutoverAttempts counts the holds taken; Hold is the duration of the
	// last: from Router.Hold being called until release returned.
	CutoverAttempts int
	Hold            time.Duration
	// The parts of Hold: waiting for statements in flight to finish
	// (Router.Hold), for the target to apply the source's last GTID, and
	// verifying (DDL check, CHECKSUM TABLE on both primaries).
	HoldDrain, HoldApply, HoldVerify time.Duration
	Checksums                        []TableChecksum
	Started, Ended                   time.Time
	// Error is why the move failed or was cancelled; Warnings are problems
	// that did not stop it (e.g. removing the replication connection after
	// the cutover failed).
	Error    string
	Warnings []string
	// LeftOnTarget: the undo of a failed or cancelled move could not
	// remove all it created on the target (its primary was lost); Abandon
	// on the target's primary of now does.
	LeftOnTarget bool
}

// Move is one online move. Create it with New, run it with Run; Status,
// Cancel and Cleanup may be called from other goroutines.
type Move struct {
	spec   Spec
	opts   Options
	objs   []Object
	router Router
	log    *slog.Logger

	mu         sync.Mutex
	st         Status
	cancelReq  bool
	placing    bool // Place has been called: Cancel no longer stops the move
	cancelFunc context.CancelFunc
	running    bool

	// set while running
	src, dst, snapDB *sql.DB
	domain           uint32 // the source primary's gtid_domain_id
	tables           []*table
	createdDBs       []string
	createdTables    []Object
	snapPos          gtid.Pos
	connCreated      bool
}

// New validates spec and returns a move in phase pending.
func New(spec Spec, r Router) (*Move, error) {
	objs, err := Normalize(spec.Objects)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	switch {
	case r == nil:
		return nil, errors.New("move: nil router")
	case spec.Source.Primary == "" || spec.Target.Primary == "":
		return nil, fmt.Errorf("%w: source and target primaries are required", ErrRefused)
	case spec.Source.Cluster == spec.Target.Cluster:
		return nil, fmt.Errorf("%w: source and target are the same cluster %q", ErrRefused, spec.Source.Cluster)
	case spec.Target.Cluster == "":
		return nil, fmt.Errorf("%w: target cluster name is required", ErrRefused)
	case spec.Source.Primary == spec.Target.Primary:
		return nil, fmt.Errorf("%w: source and target primary are the same server %s", ErrRefused, spec.Source.Primary)
	}
	opts := spec.Options.withDefaults()
	if !connName.MatchString(opts.Connection) {
		return nil, fmt.Errorf("%w: replication connection name %q: use letters, digits and _ (at most 64)", ErrRefused, opts.Connection)
	}
	m := &Move{spec: spec, opts: opts, objs: objs, router: r, log: opts.Log}
	m.st = Status{Objects: objs, Source: spec.Source.Cluster, Target: spec.Target.Cluster, Phase: PhasePending, LagSeconds: -1}
	return m, nil
}

// Objects returns the normalized set being moved.
func (m *Move) Objects() []Object { return append([]Object(nil), m.objs...) }

// Status returns a copy of the move's progress.
func (m *Move) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	st.Objects = append([]Object(nil), st.Objects...)
	st.Checksums = append([]TableChecksum(nil), st.Checksums...)
	st.Warnings = append([]string(nil), st.Warnings...)
	return st
}

// Cancel stops the move if the cutover has not placed the objects yet;
// Run then undoes its changes (drops the target copy, removes the
// replication connection) and returns ErrCancelled. After Place it does
// nothing: the move finishes. It reports whether the move will be
// cancelled.
func (m *Move) Cancel() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.placing || m.st.Phase.Terminal() {
		return false
	}
	m.cancelReq = true
	if m.cancelFunc != nil {
		m.cancelFunc()
	}
	return true
}

func (m *Move) update(f func(*Status)) {
	m.mu.Lock()
	f(&m.st)
	m.mu.Unlock()
}

func (m *Move) setPhase(p Phase) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkTransition(m.st.Phase, p); err != nil {
		return err
	}
	m.st.Phase = p
	return nil
}

func (m *Move) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.log.Warn("move: "+msg, "objects", len(m.objs))
	m.update(func(s *Status) { s.Warnings = append(s.Warnings, msg) })
}

// Run performs the move and returns when it is done (nil), refused
// (ErrRefused), cancelled (ErrCancelled) or aborted (ErrAborted, or
// another error). In every case but nil the target copy and the
// replication connection are removed and Place was not called, so the
// move can be run again (as a new Move).
func (m *Move) Run(ctx context.Context) (err error) {
	m.mu.Lock()
	if m.running || m.st.Phase != PhasePending {
		m.mu.Unlock()
		return errors.New("move: Run called twice")
	}
	m.running = true
	ctx, cancel := context.WithCancel(ctx)
	m.cancelFunc = cancel
	cancelled := m.cancelReq
	m.st.Started = time.Now()
	m.mu.Unlock()
	defer cancel()
	defer m.closeDBs()
	if cancelled {
		cancel()
	}

	err = m.run(ctx)
	if err == nil {
		m.update(func(s *Status) { s.Ended = time.Now() })
		return nil
	}
	m.mu.Lock()
	if m.cancelReq && !m.placing && !errors.Is(err, ErrCancelled) {
		err = fmt.Errorf("%w: %w", ErrCancelled, err)
	}
	m.mu.Unlock()
	m.undo()
	phase := PhaseFailed
	if errors.Is(err, ErrCancelled) {
		phase = PhaseCancelled
	}
	m.update(func(s *Status) {
		s.Phase, s.Error, s.Ended = phase, err.Error(), time.Now()
	})
	m.log.Info("move: ended", "phase", phase, "err", err)
	return err
}

func (m *Move) run(ctx context.Context) error {
	if err := m.setPhase(PhaseChecking); err != nil {
		return err
	}
	if err := m.open(); err != nil {
		return err
	}
	if err := m.check(ctx); err != nil {
		return err
	}
	if err := m.setPhase(PhaseCopying); err != nil {
		return err
	}
	if err := m.copySnapshot(ctx); err != nil {
		return err
	}
	if err := m.setPhase(PhaseCatchUp); err != nil {
		return err
	}
	if err := m.startReplication(ctx); err != nil {
		return err
	}
	return m.catchUpAndCutover(ctx)
}

// Leftovers are what the move created on the target (the databases it
// created, else its tables): what Abandon must drop when Status says
// LeftOnTarget.
func (m *Move) Leftovers() []Object {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Object
	for _, db := range m.createdDBs {
		out = append(out, Object{DB: db})
	}
	for _, o := range m.createdTables {
		if !slices.Contains(m.createdDBs, o.DB) {
			out = append(out, o)
		}
	}
	return out
}

// undo removes what the move created on the target, with its own deadline
// so that a cancelled context still cleans up.
func (m *Move) undo() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if m.dst == nil {
		return
	}
	t0 := time.Now()
	defer func() { m.log.Info("move: undo", "took", time.Since(t0)) }()
	// The first failure ends the undo: it is the target's primary that
	// failed (a lost connection would cost each later statement its own
	// connect timeout), and Abandon redoes all of it.
	left := func(what string, err error) {
		m.warn("undo: %s on %s: %v (the move's leftovers stay on the target until Abandon removes them)", what, m.spec.Target.Primary, err)
		m.update(func(s *Status) { s.LeftOnTarget = true })
	}
	if m.connCreated {
		if err := removeConnection(ctx, m.dst, m.opts.Connection); err != nil {
			left("remove replication connection "+m.opts.Connection, err)
			return
		}
	}
	// A target primary demoted meanwhile (a switchover of its cluster)
	// replicates from the new primary now: a DROP there would be an
	// errant transaction, and the copy is on the new primary too.
	var ro bool
	if err := m.dst.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro); err != nil || ro {
		if err == nil {
			err = errors.New("it is read-only now (demoted by a switchover?)")
		}
		left("drop the target copy", err)
		return
	}
	for _, o := range m.createdTables {
		if _, err := m.dst.ExecContext(ctx, "DROP TABLE IF EXISTS "+qualified(o.DB, o.Table)); err != nil {
			left("drop the target copy "+o.String(), err)
			return
		}
	}
	for _, db := range m.createdDBs {
		if _, err := m.dst.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(db)); err != nil {
			left("drop the target copy "+db, err)
			return
		}
	}
}

func (m *Move) open() error {
	var err error
	if m.src, err = openDB(m.spec.Source.Primary, m.spec.Source.User, m.spec.Source.Password); err != nil {
		return err
	}
	if m.dst, err = openDB(m.spec.Target.Primary, m.spec.Target.User, m.spec.Target.Password); err != nil {
		return err
	}
	return nil
}

func (m *Move) closeDBs() {
	for _, db := range []*sql.DB{m.src, m.dst, m.snapDB} {
		if db != nil {
			db.Close()
		}
	}
}

// openDB opens a small pool. Every read and write has a deadline, so a
// frozen server fails the move instead of hanging it.
func openDB(addr, user, password string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", addr
	cfg.User, cfg.Passwd = user, password
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 60 * time.Second
	cfg.WriteTimeout = 60 * time.Second
	cfg.InterpolateParams = true
	cfg.Logger = &mysql.NopLogger{}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("move: %s: %w", addr, err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}
