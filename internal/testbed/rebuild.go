package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// catchUpServerIDBase + ServerID is the server_id a server uses while
// Rebuild replays the primary's binary log (see Rebuild). It is above any
// ServerID a topology hands out and differs for every server, so two
// servers rebuilt at once do not clash at the primary.
const catchUpServerIDBase = 1 << 31

// Rebuild turns s into a fresh replica of primary, as an operator rebuilds
// a crashed primary after a failover: a killed primary may hold
// transactions the new one never got, so it cannot simply rejoin.
//
// It kills s if it runs (SIGKILL), replaces its data directory with a new
// copy of the template, starts it on the same port with the same name and
// server_id, now with read_only=ON (a later Start keeps it a replica), and
// creates Options.Users again. Then it replicates from primary with
// MASTER_USE_GTID=slave_pos from an empty gtid_slave_pos: the replica
// applies primary's whole binary log. That is complete because every
// server starts from the same template and runs with log_slave_updates, so
// do not PURGE BINARY LOGS on a primary that servers will be rebuilt from.
// Semi-sync settings are those the topology started with.
//
// A replica skips events that carry its own server_id, and a server that
// was primary wrote many of those (--replicate-same-server-id cannot be
// combined with log_slave_updates). So the replay runs under a temporary
// server_id (catchUpServerIDBase + ServerID) until the replica has applied
// everything primary had logged when Rebuild began; then replication
// restarts under the real server_id. When Rebuild returns, both
// replication threads run, @@server_id is ServerID, and with SemiSync the
// replica acknowledges as a semi-sync replica.
//
// Afterwards call Topology.SetPrimary if the topology's roles changed, so
// that WaitReplicated waits for s. Call Admin again: the old pool is
// closed. On error s is left stopped; its error log is kept, with a line
// marking the rebuild. Without a context deadline Rebuild gives up after
// two minutes.
func (s *Server) Rebuild(ctx context.Context, primary *Server) error {
	if primary == nil || primary == s {
		return fmt.Errorf("testbed: rebuild %s: needs another server as primary", s.Name)
	}
	if !primary.Running() {
		return fmt.Errorf("testbed: rebuild %s: primary %s is not running", s.Name, primary.Name)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	tpl, err := template()
	if err != nil {
		return err
	}
	s.kill(false)
	if err := os.RemoveAll(s.DataDir); err != nil {
		return fmt.Errorf("testbed: rebuild %s: %w", s.Name, err)
	}
	if err := copyDataDir(tpl, s.DataDir); err != nil {
		return fmt.Errorf("testbed: rebuild %s: copy template: %w", s.Name, err)
	}
	s.setReplica(true)
	s.markLog(fmt.Sprintf("testbed: data directory replaced by the template; rebuilding as a replica of %s (%s)", primary.Name, primary.Addr()))
	if err := s.start(ctx, false); err != nil {
		return err
	}
	if err := s.replicateFresh(ctx, primary); err != nil {
		s.kill(false)
		return fmt.Errorf("testbed: rebuild %s from %s: %w", s.Name, primary.Name, err)
	}
	return nil
}

func (s *Server) replicateFresh(ctx context.Context, primary *Server) error {
	if err := s.createUsers(ctx, s.users); err != nil {
		return err
	}
	// Every event of s's own server_id is in primary's binary log by now:
	// s is a new, empty server.
	target, err := primary.GlobalVariable(ctx, "gtid_binlog_pos")
	if err != nil {
		return err
	}
	if err := s.Exec(ctx, "SET GLOBAL server_id = ?", catchUpServerIDBase+s.ServerID); err != nil {
		return err
	}
	if err := s.Exec(ctx, "SET GLOBAL gtid_slave_pos = ''"); err != nil {
		return err
	}
	if err := s.replicateFrom(ctx, primary); err != nil {
		return err
	}
	if err := s.waitApplied(ctx, target); err != nil {
		return err
	}
	if err := s.Exec(ctx, "STOP SLAVE"); err != nil {
		return err
	}
	if err := s.Exec(ctx, "SET GLOBAL server_id = ?", s.ServerID); err != nil {
		return err
	}
	if err := s.Exec(ctx, "START SLAVE"); err != nil {
		return err
	}
	if err := s.WaitSlaveRunning(ctx); err != nil {
		return err
	}
	if s.semiSync {
		return s.waitStatus(ctx, "Rpl_semi_sync_slave_status", 1)
	}
	return nil
}

// waitApplied waits until s's @@gtid_current_pos covers the GTID list
// target; it fails at once if replication stops with an error.
func (s *Server) waitApplied(ctx context.Context, target string) error {
	want, err := parseGTIDList(target)
	if err != nil {
		return err
	}
	var pos string
	for {
		pos, err = s.GTIDPos(ctx)
		if err == nil {
			have, err := parseGTIDList(pos)
			if err != nil {
				return err
			}
			if covers(have, want) {
				return nil
			}
		}
		if st, err := s.SlaveStatus(ctx); err == nil && st != nil &&
			(st["Last_SQL_Error"] != "" || (st["Slave_IO_Running"] == "No" && st["Last_IO_Error"] != "")) {
			return fmt.Errorf("replication stopped at gtid_current_pos=%q: Last_IO_Error=%q Last_SQL_Error=%q",
				pos, st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		if sleepCtx(ctx, pollInterval) != nil {
			return fmt.Errorf("gtid_current_pos=%q did not reach %q (%w, last error: %v)", pos, target, ctx.Err(), err)
		}
	}
}

// markLog appends a line to the error log while mariadbd is not running.
func (s *Server) markLog(msg string) {
	f, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s ==== %s ====\n", time.Now().Format("2006-01-02 15:04:05"), msg)
	f.Close()
}

// SetPrimary records a failover: p becomes Primary and every other server
// of Servers (in their order) a member of Replicas, so that WaitReplicated
// waits for them. It changes nothing on any server: promoting p (STOP
// SLAVE, RESET SLAVE ALL, read_only=OFF) and repointing the replicas is the
// caller's or the proxy's job. From now on Start restarts p writable, as
// if its configuration had been changed with its role. The others keep how
// they start: a former primary restarted with Start comes back writable and
// replicating from nothing — a split brain, and WaitReplicated would wait
// for it in vain — until Kill or Rebuild. SetPrimary panics if p is not
// one of Servers.
func (t *Topology) SetPrimary(p *Server) {
	if !slices.Contains(t.Servers, p) {
		panic(errors.New("testbed: SetPrimary: server is not in this topology"))
	}
	t.Primary = p
	t.Replicas = make([]*Server, 0, len(t.Servers)-1)
	for _, s := range t.Servers {
		if s != p {
			t.Replicas = append(t.Replicas, s)
		}
	}
	p.setReplica(false)
}
