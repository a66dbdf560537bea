package move

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// sessionSetup makes both ends of the copy read and write values the same
// way: TIMESTAMPs in UTC, no implicit conversions, and (on the target) no
// checks that the source already made.
var (
	snapshotSetup = []string{
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	}
	targetSetup = []string{
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"SET SESSION foreign_key_checks = 0",
		"SET SESSION unique_checks = 0",
		"SET SESSION check_constraint_checks = 0",
	}
)

// pickSnapshotServer returns the source replica when it is usable (its
// replication threads run, it logs what it applies, so its binary log
// carries the source's GTIDs, and it reaches the primary's current
// position within 10 s), else the source primary.
func (m *Move) pickSnapshotServer(ctx context.Context) (*sql.DB, string) {
	addr := m.spec.Source.Replica
	if addr == "" {
		return m.src, m.spec.Source.Primary
	}
	db, err := openDB(addr, m.spec.Source.User, m.spec.Source.Password)
	if err != nil {
		m.warn("snapshot: replica %s unusable (%v); copying from the primary", addr, err)
		return m.src, m.spec.Source.Primary
	}
	reason := ""
	v, err := readVars(ctx, db)
	switch {
	case err != nil:
		reason = err.Error()
	case !v.logBin || !v.logSlaveUpdates:
		reason = "it has no binary log with log_slave_updates"
	default:
		st, err := queryMaps(ctx, db, "SHOW SLAVE STATUS")
		switch {
		case err != nil:
			reason = err.Error()
		case len(st) == 0:
			reason = "it is not a replica"
		case st[0]["Slave_IO_Running"] != "Yes" || st[0]["Slave_SQL_Running"] != "Yes":
			reason = "its replication is not running"
		}
	}
	if reason == "" {
		// The tables were checked on the primary; a replica behind it
		// might not have them yet. Let it reach the primary's position
		// first (briefly: a lagging replica is no help).
		var pos string
		var r sql.NullInt64
		if err := m.src.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
			reason = err.Error()
		} else if err := db.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 10)", pos).Scan(&r); err != nil {
			reason = err.Error()
		} else if !r.Valid || r.Int64 != 0 {
			reason = "it is more than 10 s behind the primary"
		}
	}
	if reason != "" {
		db.Close()
		m.warn("snapshot: replica %s unusable (%s); copying from the primary", addr, reason)
		return m.src, m.spec.Source.Primary
	}
	m.snapDB = db
	return db, addr
}

// copySnapshot copies the moved tables from one consistent snapshot and
// records its GTID position.
func (m *Move) copySnapshot(ctx context.Context) error {
	sdb, saddr := m.pickSnapshotServer(ctx)
	sc, err := sdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("move: snapshot server %s: %w", saddr, err)
	}
	defer sc.Close()
	tc, err := m.dst.Conn(ctx)
	if err != nil {
		return fmt.Errorf("move: target primary %s: %w", m.spec.Target.Primary, err)
	}
	defer tc.Close()
	for _, q := range snapshotSetup {
		if _, err := sc.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("move: snapshot server %s: %s: %w", saddr, q, err)
		}
	}
	for _, q := range targetSetup {
		if _, err := tc.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("move: target primary %s: %s: %w", m.spec.Target.Primary, q, err)
		}
	}
	pos, err := m.startSnapshot(ctx, sc, saddr)
	if err != nil {
		return err
	}
	defer sc.ExecContext(context.Background(), "ROLLBACK")
	m.snapPos = pos
	m.update(func(s *Status) { s.SnapshotFrom, s.SnapshotGTID = saddr, pos.String() })
	m.log.Info("move: snapshot", "from", saddr, "gtid", pos.String(), "tables", len(m.tables))

	if err := m.createOnTarget(ctx, sc, tc); err != nil {
		return err
	}
	start := time.Now()
	var copied int64
	for _, t := range m.tables {
		n, err := m.copyTable(ctx, sc, tc, t, func(n int64) {
			copied += n
			el := time.Since(start).Seconds()
			m.update(func(s *Status) {
				s.RowsCopied = copied
				if el > 0 {
					s.RowsPerSec = float64(copied) / el
				}
			})
		})
		if err != nil {
			return err
		}
		_ = n
	}
	el := time.Since(start)
	m.update(func(s *Status) {
		s.CopyTime = el
		s.RowsTotal = max(s.RowsTotal, copied)
		if el > 0 {
			s.RowsPerSec = float64(copied) / el.Seconds()
		}
	})
	if _, err := sc.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("move: snapshot server %s: end snapshot: %w", saddr, err)
	}
	return nil
}

// startSnapshot opens the consistent snapshot and returns its GTID
// position: the binary log coordinates MariaDB records at START
// TRANSACTION WITH CONSISTENT SNAPSHOT, turned into GTIDs with
// BINLOG_GTID_POS. A snapshot behind what the target already holds of the
// source's domain (an earlier, aborted attempt applied more from a primary
// that a lagging replica has not reached) would replay GTIDs out of order,
// so it waits for the snapshot server to get there first.
func (m *Move) startSnapshot(ctx context.Context, sc *sql.Conn, saddr string) (gtid.Pos, error) {
	var tpos string
	if err := m.dst.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&tpos); err != nil {
		return nil, fmt.Errorf("move: target primary: %w", err)
	}
	held, err := gtid.Parse(tpos)
	if err != nil {
		return nil, fmt.Errorf("move: target primary gtid_binlog_pos: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := sc.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
			return nil, fmt.Errorf("move: snapshot server %s: %w", saddr, err)
		}
		st, err := queryMaps(ctx, sc, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return nil, fmt.Errorf("move: snapshot server %s: %w", saddr, err)
		}
		var file, off string
		for _, r := range st {
			switch strings.ToLower(r["Variable_name"]) {
			case "binlog_snapshot_file":
				file = r["Value"]
			case "binlog_snapshot_position":
				off = r["Value"]
			}
		}
		if file == "" {
			return nil, fmt.Errorf("move: snapshot server %s reports no binlog snapshot position (binary log off?)", saddr)
		}
		var ps sql.NullString
		if err := sc.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, off).Scan(&ps); err != nil {
			return nil, fmt.Errorf("move: snapshot server %s: BINLOG_GTID_POS(%s, %s): %w", saddr, file, off, err)
		}
		pos, err := gtid.Parse(ps.String)
		if err != nil {
			return nil, fmt.Errorf("move: snapshot server %s: %w", saddr, err)
		}
		h, ok := held[m.domain]
		if !ok || pos[m.domain].Seq >= h.Seq {
			return pos, nil
		}
		sc.ExecContext(ctx, "ROLLBACK")
		if time.Now().After(deadline) {
			return nil, refused("the target cluster already holds GTID %s of the source's domain %d from an earlier attempt, and the source (%s at %s) has not reached it: the source lost transactions in a failover; drop the target's binary logs of that domain or choose another target", h, m.domain, saddr, pos.String())
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// createOnTarget creates the databases and tables from the snapshot's
// definitions, remembering what it created so that undo drops only that.
func (m *Move) createOnTarget(ctx context.Context, sc, tc *sql.Conn) error {
	for _, o := range m.objs {
		var create string
		if o.IsDB() {
			var name string
			if err := sc.QueryRowContext(ctx, "SHOW CREATE DATABASE "+quoteIdent(o.DB)).Scan(&name, &create); err != nil {
				return fmt.Errorf("move: source: %w", err)
			}
		} else {
			var n int
			if err := tc.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", o.DB).Scan(&n); err != nil {
				return fmt.Errorf("move: target: %w", err)
			}
			if n > 0 || contains(m.createdDBs, o.DB) {
				continue
			}
			var name string
			if err := sc.QueryRowContext(ctx, "SHOW CREATE DATABASE "+quoteIdent(o.DB)).Scan(&name, &create); err != nil {
				return fmt.Errorf("move: source: %w", err)
			}
		}
		if _, err := tc.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("move: target: create database %s: %w", o.DB, err)
		}
		m.createdDBs = append(m.createdDBs, o.DB)
	}
	for _, t := range m.tables {
		var name string
		if err := sc.QueryRowContext(ctx, "SHOW CREATE TABLE "+qualified(t.DB, t.Name)).Scan(&name, &t.Create); err != nil {
			return fmt.Errorf("move: source: %s: %w", t.object(), err)
		}
		rows, err := sc.QueryContext(ctx, "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME IS NULL FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION", t.DB, t.Name)
		if err != nil {
			return fmt.Errorf("move: source: %s: %w", t.object(), err)
		}
		t.Columns = nil
		for rows.Next() {
			var c column
			var typ string
			var noCharset bool
			if err := rows.Scan(&c.Name, &typ, &noCharset); err != nil {
				rows.Close()
				return err
			}
			c.Binary = noCharset && binaryType(typ)
			t.Columns = append(t.Columns, c)
		}
		rows.Close()
		if _, err := tc.ExecContext(ctx, "USE "+quoteIdent(t.DB)); err != nil {
			return fmt.Errorf("move: target: %w", err)
		}
		if _, err := tc.ExecContext(ctx, t.Create); err != nil {
			return fmt.Errorf("move: target: create table %s: %w", t.object(), err)
		}
		if !contains(m.createdDBs, t.DB) {
			m.createdTables = append(m.createdTables, t.object())
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// binaryType: values of these types go over as bytes; the rest as text in
// the connection's character set.
func binaryType(typ string) bool {
	switch strings.ToLower(typ) {
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return true
	}
	return false
}

// maxBatchBytes bounds one INSERT well below max_allowed_packet (16 MiB
// by default).
const maxBatchBytes = 4 << 20

// copyTable streams the table's rows from the snapshot into multi-row
// INSERTs on the target, each its own transaction.
func (m *Move) copyTable(ctx context.Context, sc, tc *sql.Conn, t *table, progress func(int64)) (int64, error) {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = quoteIdent(c.Name)
	}
	cols := strings.Join(names, ",")
	rows, err := sc.QueryContext(ctx, "SELECT "+cols+" FROM "+qualified(t.DB, t.Name))
	if err != nil {
		return 0, fmt.Errorf("move: copy %s: read: %w", t.object(), err)
	}
	defer rows.Close()
	prefix := "INSERT INTO " + qualified(t.DB, t.Name) + " (" + cols + ") VALUES "
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(t.Columns)), ",") + ")"
	raw := make([]sql.RawBytes, len(t.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var (
		args  []any
		nrows int
		bytes int
		total int64
	)
	flush := func() error {
		if nrows == 0 {
			return nil
		}
		var b strings.Builder
		b.Grow(len(prefix) + nrows*(len(tuple)+1))
		b.WriteString(prefix)
		for i := range nrows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(tuple)
		}
		if _, err := tc.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("move: copy %s: write to the target primary %s: %w", t.object(), m.spec.Target.Primary, err)
		}
		total += int64(nrows)
		progress(int64(nrows))
		args, nrows, bytes = args[:0], 0, 0
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return total, fmt.Errorf("move: copy %s: read: %w", t.object(), err)
		}
		for i, v := range raw {
			switch {
			case v == nil:
				args = append(args, nil)
			case t.Columns[i].Binary:
				args = append(args, append([]byte(nil), v...))
			default:
				args = append(args, string(v))
			}
			bytes += len(v) + 8
		}
		nrows++
		if nrows >= m.opts.BatchRows || bytes >= maxBatchBytes {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return total, fmt.Errorf("move: copy %s: read: %w", t.object(), err)
	}
	return total, flush()
}

var autoIncrement = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

// sameDefinition compares two SHOW CREATE TABLE texts, ignoring the
// AUTO_INCREMENT counter, which inserts move.
func sameDefinition(a, b string) bool {
	return autoIncrement.ReplaceAllString(a, "") == autoIncrement.ReplaceAllString(b, "")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
