// Package failover owns the primary. The Manager (manager.go) keeps the
// durable epoch and imposes it on the monitor's snapshots; detect.go
// watches for a lost primary, a revived old one and changes made by other
// tools; change.go runs failovers, switchovers and rejoins. The SQL steps
// they are made of — read every server's replication facts, choose a
// candidate, wait for it to apply its relay log, promote it, repoint the
// other replicas, fence the old primary, rejoin it — are in status.go,
// choose.go and actions.go, each one bounded step.
//
// Every step takes a *sql.DB opened by the caller for one server with
// the monitor account (it needs SUPER, READ_ONLY ADMIN, REPLICATION SLAVE
// ADMIN, CONNECTION ADMIN, BINLOG MONITOR, SLAVE MONITOR and PROCESS). The
// pool must not set a read timeout shorter than the longest wait asked of
// WaitApplied. Every step is bounded by its context; one without a
// deadline gets DefaultTimeout.
//
// The GTID rules these steps follow are in the gtid package documentation.
package failover

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
	"github.com/sluice-proxy/sluice/internal/replstatus"
)

// DefaultTimeout bounds an action whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// Server is the configuration of one server as far as failover cares.
type Server struct {
	Name, Addr string
	// NoPromotion servers are never chosen as the new primary.
	NoPromotion bool
	// Priority breaks ties between equally advanced candidates; higher wins.
	Priority int
}

// Status is one server's replication facts, read on one connection.
type Status struct {
	Name      string
	Reachable bool
	ReadOnly  bool
	ServerID  uint32

	// Replicating: SHOW SLAVE STATUS has a configured source.
	Replicating  bool
	IORunning    bool // Slave_IO_Running = Yes (not Connecting)
	SQLRunning   bool
	IOState      string
	LastSQLErrno int
	LastIOErrno  int
	SourceAddr   string // host:port of the configured source

	CurrentPos gtid.Pos // @@gtid_current_pos
	SlavePos   gtid.Pos // @@gtid_slave_pos
	BinlogPos  gtid.Pos // @@gtid_binlog_pos
	IOPos      gtid.Pos // Gtid_IO_Pos: received into the relay log (memory only)

	BinlogState gtid.State // @@gtid_binlog_state

	StrictMode      bool // gtid_strict_mode
	LogSlaveUpdates bool
}

// Received is what the server has received from its source: Gtid_IO_Pos,
// or gtid_slave_pos when the IO position is empty (after a restart or
// RESET SLAVE, before the IO thread reconnected).
func (s Status) Received() gtid.Pos {
	if len(s.IOPos) > 0 {
		return s.IOPos
	}
	return s.SlavePos
}

// bound gives ctx DefaultTimeout when it has no deadline.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

var statusVars = []string{
	"read_only", "server_id", "gtid_current_pos", "gtid_slave_pos", "gtid_binlog_pos",
	"gtid_binlog_state", "gtid_strict_mode", "log_slave_updates",
}

// ReadStatus reads a server's replication facts with SHOW statements on one
// connection (Com_select stays untouched). When the server cannot be
// queried the returned Status has only Name set (Reachable false); when a
// position does not parse, the rest is returned with Reachable true, the
// bad position empty, and an error.
func ReadStatus(ctx context.Context, db *sql.DB, name string) (Status, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	st := Status{Name: name}
	conn, err := db.Conn(ctx)
	if err != nil {
		return st, fmt.Errorf("failover: status of %s: %w", name, err)
	}
	defer conn.Close()

	vars, err := globalVars(ctx, conn, statusVars...)
	if err != nil {
		return st, fmt.Errorf("failover: status of %s: %w", name, err)
	}
	slave, err := replstatus.SlaveStatus(ctx, conn)
	if err != nil {
		return st, fmt.Errorf("failover: status of %s: show slave status: %w", name, err)
	}

	out := Status{Name: name, Reachable: true}
	out.ReadOnly = isOn(vars["read_only"])
	out.StrictMode = isOn(vars["gtid_strict_mode"])
	out.LogSlaveUpdates = isOn(vars["log_slave_updates"])
	if id, err := strconv.ParseUint(vars["server_id"], 10, 32); err == nil {
		out.ServerID = uint32(id)
	}
	var errs []error
	parse := func(dst *gtid.Pos, what, v string) {
		p, err := gtid.Parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			p = gtid.Pos{}
		}
		*dst = p
	}
	parse(&out.CurrentPos, "gtid_current_pos", vars["gtid_current_pos"])
	parse(&out.SlavePos, "gtid_slave_pos", vars["gtid_slave_pos"])
	parse(&out.BinlogPos, "gtid_binlog_pos", vars["gtid_binlog_pos"])
	if bs, err := gtid.ParseState(vars["gtid_binlog_state"]); err != nil {
		errs = append(errs, fmt.Errorf("gtid_binlog_state: %w", err))
		out.BinlogState = gtid.State{}
	} else {
		out.BinlogState = bs
	}
	out.IOPos = gtid.Pos{}
	if slave != nil && slave["Master_Host"] != "" {
		out.Replicating = true
		out.IORunning = slave["Slave_IO_Running"] == "Yes"
		out.SQLRunning = slave["Slave_SQL_Running"] == "Yes"
		out.IOState = slave["Slave_IO_State"]
		out.LastSQLErrno, _ = strconv.Atoi(slave["Last_SQL_Errno"])
		out.LastIOErrno, _ = strconv.Atoi(slave["Last_IO_Errno"])
		out.SourceAddr = net.JoinHostPort(slave["Master_Host"], slave["Master_Port"])
		parse(&out.IOPos, "Gtid_IO_Pos", slave["Gtid_IO_Pos"])
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("failover: status of %s: %v", name, errs)
	}
	return out, nil
}

func isOn(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// globalVars reads global variables with SHOW GLOBAL VARIABLES; names are
// constants of this package, never user input.
func globalVars(ctx context.Context, q queryer, names ...string) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('"+strings.Join(names, "','")+"')")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]string, len(names))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[strings.ToLower(k)] = v
	}
	return out, rows.Err()
}
