package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/gtid"
	"github.com/sluice-proxy/sluice/internal/replstatus"
)

// MariaDB error numbers the actions handle.
const (
	errUnknownThread   = 1094 // KILL of a thread that already ended
	errLockWaitTimeout = 1205
)

// ErrRefused wraps every refusal of Rejoin: the server's data forbids the
// step, retrying will not help.
var ErrRefused = errors.New("refused")

// waitMargin is how much earlier than the context deadline the server-side
// MASTER_GTID_WAIT timeout ends, so the server answers before the client
// gives up on the connection.
const waitMargin = 100 * time.Millisecond

// WaitApplied waits until the server's SQL thread has applied pos
// (MASTER_GTID_WAIT, which compares seq_no per domain with gtid_slave_pos),
// with the context's deadline as timeout. Pass a received position
// (Plan.CatchUpTo), never a gtid_current_pos. On timeout the error names the
// GTIDs still missing and the SQL thread's state.
func WaitApplied(ctx context.Context, db *sql.DB, pos gtid.Pos) error {
	if len(pos) == 0 {
		return nil
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	// A server that has pos in its own binary log already (an old primary
	// rejoined with current_pos that has applied nothing since) would wait
	// in vain: MASTER_GTID_WAIT looks at gtid_slave_pos only.
	if vars, err := globalVars(ctx, db, "gtid_current_pos"); err == nil {
		if cur, err := gtid.Parse(vars["gtid_current_pos"]); err == nil && cur.Contains(pos) {
			return nil
		}
	}
	dl, _ := ctx.Deadline()
	timeout := time.Until(dl) - waitMargin
	if timeout < 0 {
		timeout = 0
	}
	var res sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos.String(), timeout.Seconds()).Scan(&res)
	switch {
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("failover: wait for %s: %w", pos, err)
	case err == nil && res.Valid && res.Int64 == 0:
		return nil
	case err == nil && !res.Valid:
		return fmt.Errorf("failover: wait for %s: MASTER_GTID_WAIT returned NULL", pos)
	}
	// Timed out (server side -1 or the context): say what is missing.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer dcancel()
	msg := fmt.Sprintf("failover: wait for %s timed out after %s", pos, timeout.Round(time.Millisecond))
	vars, verr := globalVars(dctx, db, "gtid_slave_pos")
	if verr != nil {
		return fmt.Errorf("%s (gtid_slave_pos unreadable: %v)", msg, verr)
	}
	have, perr := gtid.Parse(vars["gtid_slave_pos"])
	if perr != nil {
		return fmt.Errorf("%s (gtid_slave_pos %q: %v)", msg, vars["gtid_slave_pos"], perr)
	}
	var missing []string
	for d, g := range pos {
		if h, ok := have[d]; !ok || h.Seq < g.Seq {
			from := uint64(1)
			if ok {
				from = h.Seq + 1
			}
			missing = append(missing, fmt.Sprintf("domain %d seq %d..%d", d, from, g.Seq))
		}
	}
	slices.Sort(missing)
	shown := have.String()
	if shown == "" {
		shown = "empty"
	}
	msg += fmt.Sprintf(": gtid_slave_pos is %s, %d transaction(s) not applied (%s)", shown, gtid.Behind(have, pos), strings.Join(missing, ", "))
	if st, serr := replstatus.SlaveStatus(dctx, db); serr == nil && st != nil {
		msg += fmt.Sprintf(" (Slave_SQL_Running=%s Last_SQL_Errno=%s)", st["Slave_SQL_Running"], st["Last_SQL_Errno"])
	} else if serr == nil {
		msg += " (replication not configured)"
	}
	return errors.New(msg)
}

// Promote makes a replica the primary: STOP SLAVE, RESET SLAVE ALL,
// read_only=OFF. It is idempotent. It does not wait for the relay log:
// call WaitApplied first, or transactions received but not applied are
// lost.
func Promote(ctx context.Context, db *sql.DB) error {
	return execAll(ctx, db, "promote",
		"STOP SLAVE",
		"RESET SLAVE ALL",
		"SET GLOBAL read_only = OFF")
}

// Repoint makes a replica replicate from the new primary with GTID
// auto-positioning from its gtid_slave_pos, and waits until both
// replication threads run (failing at once on a replication error, e.g.
// 1236 when the new primary lacks what it asks for).
func Repoint(ctx context.Context, db *sql.DB, newPrimaryHost string, port int, replUser, replPassword string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	if err := execAll(ctx, db, "repoint",
		"STOP SLAVE",
		changeMaster(newPrimaryHost, port, replUser, replPassword, "slave_pos"),
		"START SLAVE"); err != nil {
		return err
	}
	return WaitReplicating(ctx, db)
}

// Rejoin makes an old primary a replica of the new primary, using
// MASTER_USE_GTID=current_pos (its own writes are not in its slave
// position). It sets read_only=ON first, then re-reads its binlog state and
// refuses (ErrRefused, read_only left ON) when self's or the fresh state has
// transactions the new primary lacks: they were lost in the failover or
// written afterwards, and the server must be rebuilt or reconciled by hand.
// The new primary's state is read (through primary) after each of the
// server's, so a server already replicating from it is not mistaken for a
// diverged one by what it received in between.
func Rejoin(ctx context.Context, db, primary *sql.DB, newPrimaryHost string, port int, replUser, replPassword string, self Status) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	primaryState := func() (gtid.State, error) {
		vars, err := globalVars(ctx, primary, "gtid_binlog_state")
		if err != nil {
			return nil, fmt.Errorf("failover: rejoin %s: read the new primary's gtid_binlog_state: %w", self.Name, err)
		}
		return gtid.ParseState(vars["gtid_binlog_state"])
	}
	ps, err := primaryState()
	if err != nil {
		return err
	}
	if err := refuseDiverged(self.Name, self.BinlogState, ps); err != nil {
		return err
	}
	if err := execAll(ctx, db, "rejoin", "SET GLOBAL read_only = ON"); err != nil {
		return err
	}
	// Writes may have happened between self's read and read_only=ON.
	vars, err := globalVars(ctx, db, "gtid_binlog_state")
	if err != nil {
		return fmt.Errorf("failover: rejoin %s: read gtid_binlog_state: %w", self.Name, err)
	}
	fresh, err := gtid.ParseState(vars["gtid_binlog_state"])
	if err != nil {
		return fmt.Errorf("failover: rejoin %s: %w", self.Name, err)
	}
	if ps, err = primaryState(); err != nil {
		return err
	}
	if err := refuseDiverged(self.Name, fresh, ps); err != nil {
		return err
	}
	if err := execAll(ctx, db, "rejoin",
		"STOP SLAVE",
		changeMaster(newPrimaryHost, port, replUser, replPassword, "current_pos"),
		"START SLAVE"); err != nil {
		return err
	}
	return WaitReplicating(ctx, db)
}

func refuseDiverged(name string, self, primary gtid.State) error {
	missing := self.MissingFrom(primary)
	if len(missing) == 0 {
		return nil
	}
	s := make([]string, len(missing))
	for i, g := range missing {
		s[i] = g.String()
	}
	return fmt.Errorf("failover: rejoin %s: %w: it has transactions the new primary lacks (%s): lost in the failover or written after it, its data has diverged; rebuild it from the new primary",
		name, ErrRefused, strings.Join(s, ","))
}

// WaitReplicating polls SHOW SLAVE STATUS until both replication threads
// run; it fails at once when a thread stopped with an error.
func WaitReplicating(ctx context.Context, db *sql.DB) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	var last map[string]string
	for {
		st, err := replstatus.SlaveStatus(ctx, db)
		if err == nil && st == nil {
			return errors.New("failover: not a replica")
		}
		if err == nil {
			last = st
			if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
				return nil
			}
			if st["Last_SQL_Errno"] != "0" || (st["Slave_IO_Running"] == "No" && st["Last_IO_Errno"] != "0") {
				return fmt.Errorf("failover: replication stopped: Last_IO_Errno=%s Last_IO_Error=%q Last_SQL_Errno=%s Last_SQL_Error=%q",
					st["Last_IO_Errno"], st["Last_IO_Error"], st["Last_SQL_Errno"], st["Last_SQL_Error"])
			}
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("failover: replication threads not running (%w): Slave_IO_Running=%q Slave_SQL_Running=%q Last_IO_Error=%q, last error: %v",
				ctx.Err(), last["Slave_IO_Running"], last["Slave_SQL_Running"], last["Last_IO_Error"], err)
		case <-t.C:
		}
	}
}

// Fence stops a (old) primary from taking writes: read_only=ON, then KILL
// CONNECTION of every client thread except this one and those of keepUser.
// Replication threads (Binlog Dump to replicas, the server's own slave
// threads) and system threads are left alone: replicas may still need to
// catch up from a fenced primary in a switchover. If read_only=ON waits on
// a lock past half the budget (a long write holds it), the clients are
// killed first and it is retried. It returns how many threads it killed.
func Fence(ctx context.Context, db *sql.DB, keepUser string) (killed int, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("failover: fence: %w", err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	lockWait := max(int(time.Until(dl).Seconds()/2), 1)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", lockWait)); err != nil {
		return 0, fmt.Errorf("failover: fence: %w", err)
	}
	_, err = conn.ExecContext(ctx, "SET GLOBAL read_only = ON")
	if isErrno(err, errLockWaitTimeout) {
		n, kerr := killClients(ctx, conn, keepUser)
		killed += n
		if kerr != nil {
			return killed, kerr
		}
		_, err = conn.ExecContext(ctx, "SET GLOBAL read_only = ON")
	}
	if err != nil {
		return killed, fmt.Errorf("failover: fence: set read_only: %w", err)
	}
	n, err := killClients(ctx, conn, keepUser)
	return killed + n, err
}

func killClients(ctx context.Context, conn *sql.Conn, keepUser string) (int, error) {
	rows, err := conn.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
		WHERE ID <> CONNECTION_ID() AND USER <> ?
		AND USER NOT IN ('system user', 'event_scheduler')
		AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Slave_IO', 'Slave_SQL', 'Slave_worker', 'Killed')`, keepUser)
	if err != nil {
		return 0, fmt.Errorf("failover: fence: list connections: %w", err)
	}
	var ids []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("failover: fence: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("failover: fence: list connections: %w", err)
	}
	killed := 0
	for _, id := range ids {
		_, err := conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
		switch {
		case err == nil:
			killed++
		case isErrno(err, errUnknownThread):
			// Gone by itself.
		default:
			return killed, fmt.Errorf("failover: fence: kill connection %d: %w", id, err)
		}
	}
	return killed, nil
}

// execAll runs statements in order on one connection.
func execAll(ctx context.Context, db *sql.DB, step string, stmts ...string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("failover: %s: %w", step, err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("failover: %s: %s: %w", step, redact(q), err)
		}
	}
	return nil
}

func changeMaster(host string, port int, user, password, useGTID string) string {
	return fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_USE_GTID=%s, MASTER_CONNECT_RETRY=1", quote(host), port, quote(user), quote(password), useGTID)
}

// redact keeps passwords out of error messages.
func redact(q string) string {
	if i := strings.Index(q, "MASTER_PASSWORD="); i >= 0 {
		if j := strings.Index(q[i:], ", MASTER_USE_GTID"); j >= 0 {
			return q[:i] + "MASTER_PASSWORD='…'" + q[i+j:]
		}
	}
	return q
}

// quote makes a SQL string literal for the default sql_mode (backslash is
// an escape character); the values are host and account names from config.
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func isErrno(err error, n uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == n
}
