// Package testbed starts real MariaDB topologies — one primary and N replicas
// joined by GTID replication — on free loopback ports in temporary
// directories. Integration tests, `sluice demo` and the benchmarks use it;
// there are no mocks.
//
// Speed: mariadb-install-db runs once per machine and server version into a
// cached template directory (os.TempDir()/sluice-testbed-template-…, built
// atomically so concurrent test binaries do not clash). Every server gets a
// copy of the template, so a 1+2 topology is up and replicating in well
// under a second on a 2-core machine.
//
// Durability is traded for speed: servers run with
// innodb_flush_log_at_trx_commit=2 and sync_binlog=0. A killed mariadbd
// (SIGKILL) loses nothing, because the data is in the OS page cache; only an
// OS crash could. Do not copy these settings to production.
//
// Failover tests kill the primary (Server.Kill), promote a replica (by hand
// or through the proxy), record it with Topology.SetPrimary, and bring the
// old primary back either as it was (Server.Start: writable, a split
// brain) or as a fresh replica of the new primary (Server.Rebuild, about
// 0.3 s).
//
// Cleanup: Close kills every server and removes the directory. Servers are
// started with PR_SET_PDEATHSIG=SIGKILL (Linux), so a test binary that
// crashes or is killed by the -timeout panic leaves no mariadbd behind; the
// directories it leaves are swept by the next process that uses the testbed.
//
// Accounts (identical on every server, created in the template, so never in
// any binary log):
//
//	root@localhost   no password, unix socket only (Server.Admin)
//	app / app        ALL PRIVILEGES ON *.* except READ_ONLY ADMIN, so that
//	                 read_only=1 on replicas stops it like a real application
//	sluice_monitor / monitor
//	                 monitoring and failover: see MonitorGrants
//	repl / repl      REPLICATION SLAVE, used by the replicas
//
// Every server also has an empty database "test".
package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed accounts present on every server of every topology.
const (
	// RootUser connects only through the unix socket (Server.Socket), without
	// a password. TCP connections as root are refused.
	RootUser = "root"

	// AppUser is the default application account for tests and the demo. It
	// has every privilege except READ_ONLY ADMIN, so read_only replicas
	// reject its writes with error 1290 (ER_OPTION_PREVENTS_STATEMENT).
	AppUser     = "app"
	AppPassword = "app"

	// MonitorUser is the account sluice uses for health checks, lag checks
	// and failover (read_only, STOP/START SLAVE, CHANGE MASTER, KILL).
	MonitorUser     = "sluice_monitor"
	MonitorPassword = "monitor"

	// ReplUser is the account the replicas' IO threads use.
	ReplUser     = "repl"
	ReplPassword = "repl"
)

// Privileges of the fixed accounts, as granted ON *.*.
const (
	AppGrants = "ALL PRIVILEGES (minus READ_ONLY ADMIN)"
	// MonitorGrants: in MariaDB 10.11 SUPER no longer implies READ_ONLY
	// ADMIN, SLAVE MONITOR, BINLOG MONITOR etc., so each is granted. BINLOG
	// MONITOR is the 10.5+ name of REPLICATION CLIENT, SLAVE MONITOR the one
	// SHOW SLAVE STATUS needs.
	MonitorGrants = "SUPER, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, CONNECTION ADMIN, BINLOG ADMIN, " +
		"REPLICATION MASTER ADMIN, SLAVE MONITOR, BINLOG MONITOR, PROCESS, RELOAD"
	ReplGrants = "REPLICATION SLAVE"
	// DefaultGrants is used for a User whose Grants is empty.
	DefaultGrants = "ALL PRIVILEGES ON *.* WITH GRANT OPTION"
)

// Options configure a topology.
type Options struct {
	// Replicas is the number of replicas; 0 means a lone primary.
	Replicas int
	// SemiSync enables semi-synchronous replication. Every server gets both
	// rpl_semi_sync_master_enabled and rpl_semi_sync_slave_enabled, so any
	// of them can be promoted without touching them;
	// rpl_semi_sync_master_timeout is 10 s. rpl_semi_sync_master_wait_no_slave
	// is OFF: otherwise a replica (a "master" with no semi-sync replicas of
	// its own) would wait 10 s for an ack on the first event it applies, and
	// a primary whose replicas are all gone would stall 10 s before going
	// async. With it OFF the primary goes async at once when no semi-sync
	// replica is connected and back to semi-sync when one reconnects.
	SemiSync bool
	// Dir is the base directory. "" means a new directory under os.TempDir()
	// that Close removes; a given Dir is left in place.
	Dir string
	// Users are extra accounts created on every server before replication
	// starts (with sql_log_bin=0, so no server has them in its binlog).
	Users []User
	// ExtraArgs are appended to every mariadbd command line; later options
	// win, so they can override the defaults (e.g. the buffer pool size).
	ExtraArgs []string
	// Log receives the servers' error logs when Start fails (nil: discard).
	// The returned error holds the tail of the failing server's log anyway.
	Log io.Writer
	// GTIDDomainID is every server's gtid_domain_id (default 0). Clusters
	// that replicate into each other (online moves use a named replication
	// connection from one cluster's primary to another's) need distinct
	// domains, or their GTID sequences collide; StartClusters sets it.
	GTIDDomainID uint32
	// ServerIDBase is added to every server_id: the servers get
	// ServerIDBase+1, ServerIDBase+2, … (default 0: 1, 2, …). A replica
	// ignores events carrying its own server_id, so servers of clusters
	// that replicate into each other need distinct ids; StartClusters sets
	// it.
	ServerIDBase int
}

// User is an extra account created on every server as 'Name'@'%'.
type User struct {
	Name, Password string
	// Grants is "<privileges> ON <object> [WITH GRANT OPTION]";
	// "" means DefaultGrants.
	Grants string
}

// Topology is a running primary with its replicas.
type Topology struct {
	// Primary, Replicas and Servers describe the topology as started.
	// After a failover, SetPrimary reassigns Primary and Replicas;
	// WaitReplicated uses them.
	Primary  *Server
	Replicas []*Server
	Servers  []*Server // in start order: db1 (the first primary), db2, …
	Dir      string

	ownDir    bool
	socketDir string // short directory for sockets when Dir is too long, removed on Close
	closeOnce sync.Once
	closeErr  error
}

// startTimeout bounds Start when the caller's context has no deadline.
const startTimeout = 2 * time.Minute

// Start starts a topology: copies the template data directory for each
// server, starts them all in parallel, creates opts.Users, and connects the
// replicas to the primary with MASTER_USE_GTID=slave_pos. It returns once
// every replica's IO and SQL threads run (and, with SemiSync, the primary
// sees them as semi-sync clients). On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Topology, error) {
	if opts.Replicas < 0 {
		return nil, fmt.Errorf("testbed: Replicas = %d, must be >= 0", opts.Replicas)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	tpl, err := template()
	if err != nil {
		return nil, err
	}
	sweepOnce.Do(sweepStale)

	t := &Topology{Dir: opts.Dir}
	if t.Dir == "" {
		t.Dir, err = os.MkdirTemp("", dirPrefix+"*")
		if err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		t.ownDir = true
	} else if err := os.MkdirAll(t.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if t.Dir, err = filepath.Abs(t.Dir); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if t.ownDir {
		if err := writeOwner(t.Dir); err != nil {
			t.Close()
			return nil, err
		}
	}
	if err := t.start(ctx, tpl, opts); err != nil {
		if opts.Log != nil {
			t.DumpLogs(opts.Log)
		}
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Topology) start(ctx context.Context, tpl string, opts Options) error {
	n := 1 + opts.Replicas
	for i := range n {
		name := fmt.Sprintf("db%d", i+1)
		dir := filepath.Join(t.Dir, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		sock := filepath.Join(dir, "mariadbd.sock")
		if len(sock) > maxSocketPath {
			if t.socketDir == "" {
				d, err := os.MkdirTemp(shortTempDir(), "sltb")
				if err != nil {
					return fmt.Errorf("testbed: socket dir: %w", err)
				}
				t.socketDir = d
			}
			sock = filepath.Join(t.socketDir, name+".sock")
		}
		s := &Server{
			Name:     name,
			Host:     "127.0.0.1",
			DataDir:  filepath.Join(dir, "data"),
			Socket:   sock,
			ServerID: opts.ServerIDBase + i + 1,
			dir:      dir,
			domain:   opts.GTIDDomainID,
			replica:  i > 0,
			semiSync: opts.SemiSync,
			extra:    opts.ExtraArgs,
			users:    opts.Users,
		}
		t.Servers = append(t.Servers, s)
	}
	t.Primary, t.Replicas = t.Servers[0], t.Servers[1:]

	if err := forEach(t.Servers, func(s *Server) error {
		if err := copyDataDir(tpl, s.DataDir); err != nil {
			return fmt.Errorf("testbed: %s: copy template: %w", s.Name, err)
		}
		if err := s.start(ctx, true); err != nil {
			return err
		}
		return s.createUsers(ctx, opts.Users)
	}); err != nil {
		return err
	}
	if err := forEach(t.Replicas, func(s *Server) error {
		return s.replicateFrom(ctx, t.Primary)
	}); err != nil {
		return err
	}
	if opts.SemiSync && len(t.Replicas) > 0 {
		if err := t.Primary.waitStatus(ctx, "Rpl_semi_sync_master_clients", int64(len(t.Replicas))); err != nil {
			return err
		}
	}
	return nil
}

// forEach runs f for every server concurrently and joins the errors.
func forEach(servers []*Server, f func(*Server) error) error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = f(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StartT starts a topology for a test or benchmark and registers its Close
// with tb.Cleanup. If the test has failed by then, the servers' error logs
// are copied to the test log first. Any error fails the test with tb.Fatal;
// it never skips, so a machine without MariaDB fails loudly.
func StartT(tb testing.TB, opts Options) *Topology {
	tb.Helper()
	t, err := startForTest(tb, opts)
	if err != nil {
		tb.Fatalf("testbed: start topology: %v", err)
	}
	return t
}

// startForTest starts a topology and registers its Close with tb.Cleanup;
// on error the servers' logs are in the test log. It does not fail the
// test, so it may run in a goroutine other than the test's.
func startForTest(tb testing.TB, opts Options) (*Topology, error) {
	tb.Helper()
	var logs bytes.Buffer
	if opts.Log == nil {
		opts.Log = &logs
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	t, err := Start(ctx, opts)
	if err != nil {
		if logs.Len() > 0 {
			tb.Log(logs.String())
		}
		return nil, err
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			var b strings.Builder
			t.DumpLogs(&b)
			tb.Log(b.String())
		}
		if err := t.Close(); err != nil {
			tb.Errorf("testbed: close: %v", err)
		}
	})
	return t, nil
}

// Close kills every server (SIGKILL: fast; a given Dir keeps the data) and
// removes Dir if Start created it. It is safe to call more than once.
func (t *Topology) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		var wg sync.WaitGroup
		for _, s := range t.Servers {
			wg.Go(func() { s.kill(false) })
		}
		wg.Wait()
		if t.socketDir != "" {
			errs = append(errs, os.RemoveAll(t.socketDir))
		}
		if t.ownDir {
			errs = append(errs, os.RemoveAll(t.Dir))
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// ByName returns the server called name ("db1", "db2", …) or nil.
func (t *Topology) ByName(name string) *Server {
	for _, s := range t.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// DumpLogs writes every server's error log (the last 64 KiB of each) to w.
func (t *Topology) DumpLogs(w io.Writer) {
	// A crashed server writes its backtrace (and the query it ran) after
	// the "got signal" line; give it the time before it is killed.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		crashing := false
		for _, s := range t.Servers {
			if tail := s.logTail(0, 64<<10); strings.Contains(tail, "got signal") && !strings.Contains(tail, "core file") {
				crashing = true
			}
		}
		if !crashing {
			break
		}
	}
	for _, s := range t.Servers {
		fmt.Fprintf(w, "==== %s (%s, server_id %d) error log %s ====\n%s\n",
			s.Name, s.Addr(), s.ServerID, s.LogPath(), s.logTail(0, 64<<10))
	}
}

// waitTimeout bounds WaitReplicated when the context has no deadline.
const waitTimeout = 30 * time.Second

// WaitReplicated waits until every running replica (not paused) has applied
// everything in the primary's binary log: for each replication domain in
// the primary's @@gtid_binlog_pos, the replica's @@gtid_current_pos has the
// same or a later sequence number. It polls with SHOW GLOBAL VARIABLES, so
// it does not move Com_select on any server. Without a context deadline it
// gives up after 30 s; the error describes every replica that is behind.
func (t *Topology) WaitReplicated(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, waitTimeout)
		defer cancel()
	}
	target, err := t.Primary.GlobalVariable(ctx, "gtid_binlog_pos")
	if err != nil {
		return fmt.Errorf("testbed: wait replicated: primary %s: %w", t.Primary.Name, err)
	}
	want, err := parseGTIDList(target)
	if err != nil {
		return fmt.Errorf("testbed: wait replicated: primary %s: %w", t.Primary.Name, err)
	}
	pending := make(map[*Server]string)
	for _, r := range t.Replicas {
		if r.Running() && !r.Paused() {
			pending[r] = ""
		}
	}
	for {
		for r := range pending {
			pos, err := r.GlobalVariable(ctx, "gtid_current_pos")
			if err != nil {
				pending[r] = err.Error()
				continue
			}
			have, err := parseGTIDList(pos)
			if err != nil {
				return fmt.Errorf("testbed: wait replicated: %s: %w", r.Name, err)
			}
			if covers(have, want) {
				delete(pending, r)
				continue
			}
			pending[r] = "gtid_current_pos=" + pos
		}
		if len(pending) == 0 {
			return nil
		}
		if err := sleepCtx(ctx, pollInterval); err != nil {
			return t.lagError(target, pending)
		}
	}
}

func (t *Topology) lagError(target string, pending map[*Server]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "testbed: replicas did not reach primary %s gtid_binlog_pos=%q:", t.Primary.Name, target)
	for _, r := range t.Replicas {
		state, ok := pending[r]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, " %s: %s", r.Name, state)
		if st, err := r.SlaveStatus(ctx); err == nil && st != nil {
			fmt.Fprintf(&b, " (Slave_IO_Running=%s Slave_SQL_Running=%s Last_IO_Error=%q Last_SQL_Error=%q);",
				st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
		} else {
			fmt.Fprintf(&b, " (SHOW SLAVE STATUS: %v);", err)
		}
	}
	return errors.New(b.String())
}

// pollInterval is how often state is polled while waiting.
const pollInterval = 10 * time.Millisecond

// sleepCtx waits d or until ctx is done, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
