package move

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// slavePos is the gtid_slave_pos the replication connection starts from:
// the snapshot's position, merged with the target's own binary log for the
// other domains. With gtid_strict_mode the server refuses a gtid_slave_pos
// that lacks, or is behind, a domain of its binary log (its own domain, or
// one an earlier move brought in). The connection replicates only the
// source's domain (DO_DOMAIN_IDS), and a source asked for a domain it has
// never seen ignores it (as for any multi-source replica), so the extra
// entries change nothing but satisfy the check. In the source's domain the
// snapshot wins: startSnapshot made sure it is not behind the target.
func slavePos(snapshot, targetBinlog gtid.Pos, sourceDomain uint32) gtid.Pos {
	out := gtid.Pos{}
	for d, g := range snapshot {
		out[d] = g
	}
	for d, g := range targetBinlog {
		if s, ok := out[d]; d != sourceDomain && (!ok || g.Seq > s.Seq) {
			out[d] = g
		}
	}
	return out
}

// setSlavePos sets the target's gtid_slave_pos to slavePos. The target
// primary takes writes meanwhile (its own domain moves on between reading
// @@gtid_binlog_pos and the SET, which gtid_strict_mode then refuses with
// error 1947), so a refusal is retried with a fresh read.
func (m *Move) setSlavePos(ctx context.Context) (gtid.Pos, error) {
	for attempt := 1; ; attempt++ {
		var tpos string
		if err := m.dst.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&tpos); err != nil {
			return nil, fmt.Errorf("move: target primary: %w", err)
		}
		tp, err := gtid.Parse(tpos)
		if err != nil {
			return nil, fmt.Errorf("move: target primary gtid_binlog_pos: %w", err)
		}
		start := slavePos(m.snapPos, tp, m.domain)
		_, err = m.dst.ExecContext(ctx, "SET GLOBAL gtid_slave_pos = "+sqlString(start.String()))
		var me *mysql.MySQLError
		if err == nil {
			return start, nil
		}
		if !errors.As(err, &me) || me.Number != 1947 || attempt == 50 {
			return nil, fmt.Errorf("move: target primary %s: SET GLOBAL gtid_slave_pos = %s: %w", m.spec.Target.Primary, sqlString(start.String()), err)
		}
	}
}

// changeMaster is the CHANGE MASTER statement of the move's connection.
func changeMaster(conn, host string, port int, user, password string, domain uint32) string {
	return fmt.Sprintf("CHANGE MASTER '%s' TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1, DO_DOMAIN_IDS=(%d)",
		conn, sqlString(host), port, sqlString(user), sqlString(password), domain)
}

// startReplication creates the named replication connection on the target
// primary: from the source primary, at the snapshot's GTID position,
// filtered to the moved tables and to the source's gtid_domain_id.
func (m *Move) startReplication(ctx context.Context) error {
	host, portS, err := net.SplitHostPort(m.spec.Source.Primary)
	if err != nil {
		return fmt.Errorf("move: source primary address %q: %w", m.spec.Source.Primary, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return fmt.Errorf("move: source primary address %q: %w", m.spec.Source.Primary, err)
	}
	user, pass := m.spec.Source.ReplUser, m.spec.Source.ReplPassword
	if user == "" {
		user, pass = m.spec.Source.User, m.spec.Source.Password
	}
	m.connCreated = true
	start, err := m.setSlavePos(ctx)
	if err != nil {
		return err
	}
	c := m.opts.Connection
	f := BuildFilters(m.objs)
	stmts := []string{
		changeMaster(c, host, port, user, pass, m.domain),
		"SET GLOBAL " + c + ".replicate_do_table = " + sqlString(f.DoTable),
		"SET GLOBAL " + c + ".replicate_wild_do_table = " + sqlString(f.WildDoTable),
		"START SLAVE '" + c + "'",
	}
	for _, q := range stmts {
		if _, err := m.dst.ExecContext(ctx, q); err != nil {
			if strings.HasPrefix(q, "CHANGE MASTER") {
				q = "CHANGE MASTER '" + c + "' …"
			}
			return fmt.Errorf("move: target primary %s: %s: %w", m.spec.Target.Primary, q, err)
		}
	}
	m.log.Info("move: replication started", "connection", c, "from", m.spec.Source.Primary, "gtid_slave_pos", start.String(),
		"do_table", len(strings.Split(f.DoTable, ",")), "wild_do_table", f.WildDoTable)
	return nil
}

// removeConnection stops and deletes the move's replication connection.
func removeConnection(ctx context.Context, db *sql.DB, c string) error {
	rows, err := queryMaps(ctx, db, "SHOW ALL SLAVES STATUS")
	if err != nil {
		return err
	}
	found := slices.ContainsFunc(rows, func(r map[string]string) bool { return strings.EqualFold(r["Connection_name"], c) })
	if !found {
		return nil
	}
	var errs []error
	for _, q := range []string{
		"STOP SLAVE '" + c + "'",
		"SET GLOBAL " + c + ".replicate_do_table = ''",
		"SET GLOBAL " + c + ".replicate_wild_do_table = ''",
		"RESET SLAVE '" + c + "' ALL",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q, err))
		}
	}
	return errors.Join(errs...)
}

// connState is what the catch-up watches.
type connState struct {
	ioRunning, sqlRunning string
	ioErr, sqlErr         string
	lagSeconds            int64
}

func (m *Move) readConn(ctx context.Context) (connState, error) {
	rows, err := queryMaps(ctx, m.dst, "SHOW SLAVE '"+m.opts.Connection+"' STATUS")
	if err != nil {
		return connState{}, err
	}
	if len(rows) == 0 {
		return connState{}, fmt.Errorf("replication connection %s is gone", m.opts.Connection)
	}
	r := rows[0]
	st := connState{ioRunning: r["Slave_IO_Running"], sqlRunning: r["Slave_SQL_Running"],
		ioErr: r["Last_IO_Error"], sqlErr: r["Last_SQL_Error"], lagSeconds: -1}
	if v, err := strconv.ParseInt(r["Seconds_Behind_Master"], 10, 64); err == nil {
		st.lagSeconds = v
	}
	return st, nil
}

// sourcePos reads the source primary's position in its own domain and
// whether it is still a writable primary.
func (m *Move) sourcePos(ctx context.Context) (gtid.GTID, error) {
	var pos string
	var ro bool
	if err := m.src.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos, @@read_only").Scan(&pos, &ro); err != nil {
		return gtid.GTID{}, err
	}
	if ro {
		return gtid.GTID{}, fmt.Errorf("%w: the source primary %s became read-only (a failover?)", ErrAborted, m.spec.Source.Primary)
	}
	p, err := gtid.Parse(pos)
	if err != nil {
		return gtid.GTID{}, err
	}
	return p[m.domain], nil
}

// targetApplied reads how far the target applied the source's domain and
// whether it is still a writable primary.
func (m *Move) targetApplied(ctx context.Context) (uint64, error) {
	var pos string
	var ro bool
	if err := m.dst.QueryRowContext(ctx, "SELECT @@gtid_slave_pos, @@read_only").Scan(&pos, &ro); err != nil {
		return 0, err
	}
	if ro {
		return 0, fmt.Errorf("%w: the target primary %s became read-only (a failover?)", ErrAborted, m.spec.Target.Primary)
	}
	p, err := gtid.Parse(pos)
	if err != nil {
		return 0, err
	}
	return p[m.domain].Seq, nil
}

// catchUpAndCutover waits until the target is nearly level with the
// source, then tries the cutover; a cutover that runs out of time goes
// back to catching up.
func (m *Move) catchUpAndCutover(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(m.opts.CatchUpTimeout)
	attempts := 0
	var brokenSince time.Time
	broken := func(what string, err error) error {
		if brokenSince.IsZero() {
			brokenSince = time.Now()
		}
		if time.Since(brokenSince) >= m.opts.BrokenAfter {
			return fmt.Errorf("%w: %s for %v (a failover?): %v", ErrAborted, what, m.opts.BrokenAfter, err)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the target did not catch up within %v", ErrAborted, m.opts.CatchUpTimeout)
		}
		cs, err := m.readConn(ctx)
		if err != nil {
			return fmt.Errorf("%w: target primary %s: %v", ErrAborted, m.spec.Target.Primary, err)
		}
		if cs.sqlErr != "" || cs.sqlRunning == "No" {
			return fmt.Errorf("%w: applying the source's changes on the target stopped: %s", ErrAborted, cs.sqlErr)
		}
		srcG, serr := m.sourcePos(ctx)
		if errors.Is(serr, ErrAborted) {
			return serr
		}
		applied, terr := m.targetApplied(ctx)
		if errors.Is(terr, ErrAborted) {
			return terr
		}
		if terr != nil {
			return fmt.Errorf("%w: target primary %s: %v", ErrAborted, m.spec.Target.Primary, terr)
		}
		switch {
		case serr != nil:
			if err := broken("the source primary "+m.spec.Source.Primary+" does not answer", serr); err != nil {
				return err
			}
		case cs.ioRunning != "Yes":
			if err := broken("the replication connection from "+m.spec.Source.Primary+" is not connected", errors.New(cs.ioErr)); err != nil {
				return err
			}
		default:
			brokenSince = time.Time{}
		}
		var lag uint64
		if serr == nil && srcG.Seq > applied {
			lag = srcG.Seq - applied
		}
		m.update(func(s *Status) { s.LagGTIDs, s.LagSeconds, s.CatchUpTime = lag, cs.lagSeconds, time.Since(start) })
		if serr == nil && cs.ioRunning == "Yes" && lag <= m.opts.CutoverLag {
			if attempts >= m.opts.CutoverAttempts {
				return fmt.Errorf("%w: %d cutover attempts ran out of time (HoldTimeout %v); the target applies too slowly", ErrAborted, attempts, m.opts.HoldTimeout)
			}
			attempts++
			done, err := m.cutover(ctx, attempts)
			if done || err != nil {
				return err
			}
			if err := m.setPhase(PhaseCatchUp); err != nil {
				return err
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// cutover holds the moved objects, waits until the target has applied the
// source primary's last GTID, verifies, places the objects on the target
// and releases. It reports done=false with no error when the target did
// not catch up within HoldTimeout (the statements were released; try
// again).
func (m *Move) cutover(ctx context.Context, attempt int) (done bool, err error) {
	if err := m.setPhase(PhaseCutover); err != nil {
		return false, err
	}
	m.update(func(s *Status) { s.CutoverAttempts = attempt })
	hctx, cancel := context.WithTimeout(ctx, m.opts.HoldTimeout)
	defer cancel()
	t0 := time.Now()
	release, err := m.router.Hold(hctx, m.objs)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		m.warn("cutover attempt %d: hold: %v", attempt, err)
		return false, nil
	}
	tDrained := time.Now()
	m.update(func(s *Status) { s.HoldDrain = tDrained.Sub(t0) })
	released := false
	unhold := func() {
		if !released {
			released = true
			release()
			hold := time.Since(t0)
			m.update(func(s *Status) { s.Hold = hold })
		}
	}
	defer unhold()

	srcG, err := m.sourcePos(hctx)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if errors.Is(err, ErrAborted) {
			return false, err
		}
		return false, fmt.Errorf("%w: cutover: the source primary %s: %v", ErrAborted, m.spec.Source.Primary, err)
	}
	if srcG.Seq > 0 {
		left := time.Until(t0.Add(m.opts.HoldTimeout)).Seconds()
		var r sql.NullInt64
		if left > 0 {
			err = m.dst.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", srcG.String(), left).Scan(&r)
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, fmt.Errorf("%w: cutover: target primary %s: %v", ErrAborted, m.spec.Target.Primary, err)
		}
		if left <= 0 || !r.Valid || r.Int64 != 0 {
			m.warn("cutover attempt %d: the target had not applied %s within %v; released, catching up again", attempt, srcG, m.opts.HoldTimeout)
			return false, nil
		}
	}
	tApplied := time.Now()
	m.update(func(s *Status) { s.HoldApply = tApplied.Sub(tDrained) })
	if cs, err := m.readConn(ctx); err != nil || cs.sqlErr != "" {
		return false, fmt.Errorf("%w: cutover: replication connection: %v %s", ErrAborted, err, cs.sqlErr)
	}
	// Both checks at once: their time counts in the hold.
	ddl := make(chan error, 1)
	go func() { ddl <- m.checkNoDDL(ctx) }()
	var cerr error
	if !m.opts.SkipChecksum {
		cerr = m.compareChecksums(ctx)
	}
	if err := <-ddl; err != nil {
		return false, err
	}
	if cerr != nil {
		return false, cerr
	}
	if _, err := m.targetApplied(ctx); err != nil {
		if errors.Is(err, ErrAborted) {
			return false, err
		}
		return false, fmt.Errorf("%w: cutover: target primary %s: %v", ErrAborted, m.spec.Target.Primary, err)
	}
	m.update(func(s *Status) { s.HoldVerify = time.Since(tApplied) })
	m.mu.Lock()
	if m.cancelReq {
		m.mu.Unlock()
		return false, ErrCancelled
	}
	m.placing = true
	m.mu.Unlock()
	if err := m.router.Place(m.objs, m.spec.Target.Cluster); err != nil {
		m.mu.Lock()
		m.placing = false
		m.mu.Unlock()
		return false, fmt.Errorf("%w: cutover: place on %s: %v", ErrAborted, m.spec.Target.Cluster, err)
	}
	// Placed: from here the move is done whatever happens. The held
	// statements go now, to the target; the replication connection is
	// removed after, off the hold: nothing reaches the source's copy
	// through sluice any more, so it has nothing left to apply.
	m.connCreated = false
	unhold()
	bg := context.WithoutCancel(ctx)
	rctx, rcancel := context.WithTimeout(bg, 10*time.Second)
	if err := removeConnection(rctx, m.dst, m.opts.Connection); err != nil {
		m.warn("after the cutover: remove replication connection %s on %s: %v (remove it by hand)", m.opts.Connection, m.spec.Target.Primary, err)
	}
	rcancel()
	m.mu.Lock()
	m.st.Phase = PhaseDone
	hold := m.st.Hold
	m.mu.Unlock()
	m.log.Info("move: done", "target", m.spec.Target.Cluster, "hold", hold, "attempt", attempt)
	return true, nil
}

// ddlCheckers is how many source connections checkNoDDL uses (beside
// the checksumParts of compareChecksums, in a pool of four).
const ddlCheckers = 2

// checkNoDDL refuses the cutover if a moved table's definition changed or
// a moved database gained or lost tables since the snapshot.
func (m *Move) checkNoDDL(ctx context.Context) error {
	// A few connections at once: a move of hundreds of tables would otherwise spend
	// hundreds of round trips of its hold here.
	var next atomic.Int64
	errs := make([]error, ddlCheckers)
	var wg sync.WaitGroup
	for w := range ddlCheckers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(m.tables) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				t := m.tables[i]
				var name, create string
				if err := m.src.QueryRowContext(ctx, "SHOW CREATE TABLE "+qualified(t.DB, t.Name)).Scan(&name, &create); err != nil {
					errs[w] = fmt.Errorf("%w: cutover: DDL during the move? source %s: %v", ErrAborted, t.object(), err)
					return
				}
				if !sameDefinition(create, t.Create) {
					errs[w] = fmt.Errorf("%w: DDL during the move: the definition of %s changed on the source; rerun the move", ErrAborted, t.object())
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for _, o := range m.objs {
		if !o.IsDB() {
			continue
		}
		var n int
		if err := m.src.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", o.DB).Scan(&n); err != nil {
			return fmt.Errorf("%w: cutover: source: %v", ErrAborted, err)
		}
		want := 0
		for _, t := range m.tables {
			if t.DB == o.DB {
				want++
			}
		}
		if n != want {
			return fmt.Errorf("%w: DDL during the move: database %s has %d tables on the source, %d at the snapshot; rerun the move", ErrAborted, o.DB, n, want)
		}
	}
	return nil
}

// compareChecksums runs CHECKSUM TABLE of the moved tables on both
// primaries (writes to them are held, and the target has applied
// everything) and refuses the cutover if any differs.
func (m *Move) compareChecksums(ctx context.Context) error {
	names := make([]string, len(m.tables))
	for i, t := range m.tables {
		names[i] = qualified(t.DB, t.Name)
	}
	// Both sides at once, each in checksumParts statements on as many
	// connections: this time counts in the hold, and a server checksums
	// the tables of one statement one after the other.
	var src map[string]int64
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		src, serr = checksumsIn(ctx, m.src, names)
	}()
	dst, err := checksumsIn(ctx, m.dst, names)
	<-done
	if serr != nil {
		return fmt.Errorf("%w: cutover: checksum on the source: %v", ErrAborted, serr)
	}
	if err != nil {
		return fmt.Errorf("%w: cutover: checksum on the target: %v", ErrAborted, err)
	}
	out := make([]TableChecksum, len(m.tables))
	for i, t := range m.tables {
		k := t.DB + "." + t.Name
		out[i] = TableChecksum{Table: t.object(), Source: src[k], Target: dst[k]}
		if src[k] != dst[k] {
			return fmt.Errorf("%w: cutover: CHECKSUM TABLE %s differs: source %d, target %d", ErrAborted, k, src[k], dst[k])
		}
	}
	m.update(func(s *Status) { s.Checksums = out })
	return nil
}

// checksumParts is how many CHECKSUM TABLE statements, on as many
// connections, a cutover splits the moved tables into per side; with
// ddlCheckers it fits the source pool.
const checksumParts = 2

// checksumsIn runs CHECKSUM TABLE of names on db in checksumParts
// statements at once.
func checksumsIn(ctx context.Context, db *sql.DB, names []string) (map[string]int64, error) {
	parts := min(checksumParts, len(names))
	out := make(map[string]int64, len(names))
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := range parts {
		chunk := names[i*len(names)/parts : (i+1)*len(names)/parts]
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := checksums(ctx, db, "CHECKSUM TABLE "+strings.Join(chunk, ","))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			maps.Copy(out, got)
		}()
	}
	wg.Wait()
	return out, first
}

func checksums(ctx context.Context, db *sql.DB, q string) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var sum sql.NullInt64
		if err := rows.Scan(&name, &sum); err != nil {
			return nil, err
		}
		out[name] = sum.Int64
	}
	return out, rows.Err()
}
