package move

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sluice-proxy/sluice/internal/replstatus"
)

var connName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// table is one table being copied, as read in the snapshot.
type table struct {
	DB, Name string
	Create   string   // SHOW CREATE TABLE at the snapshot
	Columns  []column // the columns the copy writes (not generated ones)
	RowsEst  int64
}

type column struct {
	Name   string
	Binary bool // sent as bytes rather than text
}

func (t *table) object() Object { return Object{DB: t.DB, Table: t.Name} }

// serverVars is what the checks read from a server.
type serverVars struct {
	logBin, logSlaveUpdates, readOnly bool
	binlogFormat                      string
	domain, serverID                  uint32
}

func readVars(ctx context.Context, db *sql.DB) (serverVars, error) {
	var v serverVars
	err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@log_slave_updates, @@read_only, @@binlog_format, @@gtid_domain_id, @@server_id").
		Scan(&v.logBin, &v.logSlaveUpdates, &v.readOnly, &v.binlogFormat, &v.domain, &v.serverID)
	return v, err
}

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// check refuses, before anything changes, what the move cannot do safely.
func (m *Move) check(ctx context.Context) error {
	src, err := readVars(ctx, m.src)
	if err != nil {
		return fmt.Errorf("move: source primary %s: %w", m.spec.Source.Primary, err)
	}
	dst, err := readVars(ctx, m.dst)
	if err != nil {
		return fmt.Errorf("move: target primary %s: %w", m.spec.Target.Primary, err)
	}
	switch {
	case !src.logBin:
		return refused("the source primary %s has no binary log (log_bin=OFF): the changes made during the copy cannot be replayed", m.spec.Source.Primary)
	case !strings.EqualFold(src.binlogFormat, "ROW"):
		return refused("the source primary %s logs binlog_format=%s; moves need ROW so that only the moved tables' changes are applied", m.spec.Source.Primary, src.binlogFormat)
	case src.readOnly:
		return refused("the source primary %s is read-only (a failover in progress?)", m.spec.Source.Primary)
	case dst.readOnly:
		return refused("the target primary %s is read-only (a failover in progress?)", m.spec.Target.Primary)
	case src.domain == dst.domain:
		return refused("source and target clusters both use gtid_domain_id=%d; give every cluster its own gtid_domain_id", src.domain)
	case src.serverID == dst.serverID:
		return refused("source and target primaries both have server_id=%d; server_ids must differ across clusters", src.serverID)
	case dst.logBin && !dst.logSlaveUpdates:
		return refused("the target primary %s has log_slave_updates=OFF: its replicas would miss the changes applied during the move", m.spec.Target.Primary)
	}
	m.domain = src.domain
	if err := m.checkConnections(ctx); err != nil {
		return err
	}
	if err := m.checkSource(ctx); err != nil {
		return err
	}
	return m.checkTarget(ctx)
}

// checkConnections refuses when the target primary already replicates:
// the move sets the global gtid_slave_pos, which every connection shares.
func (m *Move) checkConnections(ctx context.Context) error {
	rows, err := queryMaps(ctx, m.dst, "SHOW ALL SLAVES STATUS")
	if err != nil {
		return fmt.Errorf("move: target primary %s: %w", m.spec.Target.Primary, err)
	}
	for _, r := range rows {
		name := r["Connection_name"]
		if strings.EqualFold(name, m.opts.Connection) {
			return refused("the target primary %s already has a replication connection %q: another move into cluster %s is running, or an aborted one left it (remove it with Abandon)", m.spec.Target.Primary, name, m.spec.Target.Cluster)
		}
		return refused("the target primary %s replicates (connection %q from %s:%s); a move needs a primary that is not a replica", m.spec.Target.Primary, name, r["Master_Host"], r["Master_Port"])
	}
	return nil
}

// checkSource finds the tables to move and refuses triggers, foreign keys
// across the boundary, non-InnoDB tables, and views, routines and events
// in moved databases.
func (m *Move) checkSource(ctx context.Context) error {
	dbs := map[string]bool{}
	for _, o := range m.objs {
		dbs[o.DB] = true
	}
	dbList := make([]string, 0, len(dbs))
	for db := range dbs {
		dbList = append(dbList, db)
	}
	slices.Sort(dbList)
	in, args := inList(dbList)

	existing := map[string]bool{}
	rows, err := m.src.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN "+in, args...)
	if err != nil {
		return fmt.Errorf("move: source: %w", err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		existing[s] = true
	}
	rows.Close()
	for _, db := range dbList {
		if !existing[db] {
			return refused("database %s does not exist on the source cluster %s", db, m.spec.Source.Cluster)
		}
	}

	type tinfo struct {
		kind, engine string
		rows         int64
	}
	all := map[Object]tinfo{}
	rows, err = m.src.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE,''), COALESCE(TABLE_ROWS,0) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN "+in, args...)
	if err != nil {
		return fmt.Errorf("move: source: %w", err)
	}
	for rows.Next() {
		var o Object
		var ti tinfo
		if err := rows.Scan(&o.DB, &o.Table, &ti.kind, &ti.engine, &ti.rows); err != nil {
			rows.Close()
			return err
		}
		all[o] = ti
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	m.tables = nil
	for _, o := range m.objs {
		if o.IsDB() {
			continue
		}
		ti, ok := all[o]
		switch {
		case !ok:
			return refused("table %s does not exist on the source cluster %s", o, m.spec.Source.Cluster)
		case ti.kind != "BASE TABLE":
			return refused("%s is a %s, not a table; only tables and whole databases move", o, strings.ToLower(ti.kind))
		}
	}
	for o, ti := range all {
		if !Contains(m.objs, o.DB, o.Table) {
			continue
		}
		if ti.kind != "BASE TABLE" {
			return refused("database %s holds %s %s; views are not moved (drop or recreate it after the move)", o.DB, strings.ToLower(ti.kind), o.Table)
		}
		if !strings.EqualFold(ti.engine, "InnoDB") {
			return refused("table %s uses ENGINE=%s; only InnoDB tables can be copied from a consistent snapshot", o, ti.engine)
		}
		m.tables = append(m.tables, &table{DB: o.DB, Name: o.Table, RowsEst: ti.rows})
	}
	slices.SortFunc(m.tables, func(a, b *table) int { return compareObjects(a.object(), b.object()) })

	var wholeDBs []string
	for _, o := range m.objs {
		if o.IsDB() {
			wholeDBs = append(wholeDBs, o.DB)
		}
	}
	if len(wholeDBs) > 0 {
		win, wargs := inList(wholeDBs)
		for _, q := range []struct{ what, query string }{
			{"stored routine", "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN " + win},
			{"event", "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN " + win},
		} {
			var db, name string
			err := m.src.QueryRowContext(ctx, q.query+" LIMIT 1", wargs...).Scan(&db, &name)
			if err == nil {
				return refused("database %s holds %s %s; routines and events are not moved", db, q.what, name)
			}
			if err != sql.ErrNoRows {
				return fmt.Errorf("move: source: %w", err)
			}
		}
	}

	rows, err = m.src.QueryContext(ctx, "SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA IN "+in, args...)
	if err != nil {
		return fmt.Errorf("move: source: %w", err)
	}
	for rows.Next() {
		var db, tbl, name string
		if err := rows.Scan(&db, &tbl, &name); err != nil {
			rows.Close()
			return err
		}
		if Contains(m.objs, db, tbl) {
			rows.Close()
			return refused("table %s.%s has trigger %s; tables with triggers are not moved (the copy and the replicated changes would fire it twice)", db, tbl, name)
		}
	}
	rows.Close()

	// Foreign keys: inside the moved set they are fine (the copy runs
	// with foreign_key_checks=0); across its boundary one side would be on
	// another cluster. A key into the moved set may come from any
	// database, so the server opens the tables of every database the
	// condition does not rule out by name: the system ones are ruled out,
	// which spares it the views of sys (MariaDB 10.11 has crashed in this
	// query while opening those).
	rows, err = m.src.QueryContext(ctx, "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema') AND (CONSTRAINT_SCHEMA IN "+in+" OR UNIQUE_CONSTRAINT_SCHEMA IN "+in+")", append(args, args...)...)
	if err != nil {
		return fmt.Errorf("move: source: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var db, tbl, name, rdb, rtbl string
		if err := rows.Scan(&db, &tbl, &name, &rdb, &rtbl); err != nil {
			return err
		}
		if Contains(m.objs, db, tbl) != Contains(m.objs, rdb, rtbl) {
			return refused("foreign key %s from %s.%s to %s.%s crosses the boundary of the move; move both tables together", name, db, tbl, rdb, rtbl)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(m.tables) == 0 {
		return refused("nothing to move: the databases given hold no tables")
	}
	var total int64
	for _, t := range m.tables {
		total += t.RowsEst
	}
	m.update(func(s *Status) { s.Tables, s.RowsTotal = len(m.tables), total })
	return nil
}

// checkTarget refuses objects that already exist on the target.
func (m *Move) checkTarget(ctx context.Context) error {
	for _, o := range m.objs {
		if o.IsDB() {
			var n int
			if err := m.dst.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", o.DB).Scan(&n); err != nil {
				return fmt.Errorf("move: target: %w", err)
			}
			if n > 0 {
				return refused("database %s already exists on the target cluster %s", o.DB, m.spec.Target.Cluster)
			}
		}
	}
	for _, t := range m.tables {
		var n int
		if err := m.dst.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", t.DB, t.Name).Scan(&n); err != nil {
			return fmt.Errorf("move: target: %w", err)
		}
		if n > 0 {
			return refused("table %s already exists on the target cluster %s", t.object(), m.spec.Target.Cluster)
		}
	}
	return nil
}

// inList returns "(?,?,…)" and its arguments.
func inList(vals []string) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "(" + strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",") + ")", args
}

// queryMaps returns every row of a SHOW statement as column → value.
func queryMaps(ctx context.Context, db replstatus.Queryer, query string) ([]map[string]string, error) {
	return replstatus.Rows(ctx, db, query)
}
