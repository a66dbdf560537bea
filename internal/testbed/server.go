package testbed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Server is one mariadbd of a topology.
type Server struct {
	Name     string // "db1" (the primary at start), "db2", …
	Host     string // "127.0.0.1"
	Port     int
	DataDir  string
	Socket   string
	ServerID int

	dir      string // parent of DataDir: holds the error log and pid file
	semiSync bool
	domain   uint32 // gtid_domain_id; 0 is the server default and not passed
	extra    []string
	users    []User // Options.Users, created again by Rebuild

	mu      sync.Mutex
	replica bool     // starts with read_only=1; see SetPrimary and Rebuild
	proc    *process // nil before the first start
	paused  bool
	admin   *sql.DB
}

// maxSocketPath leaves room under the 108-byte sun_path limit.
const maxSocketPath = 100

// startAttempts is how many ports a first start tries when another process
// grabs the chosen port before mariadbd binds it.
const startAttempts = 5

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN returns a go-sql-driver DSN for user over TCP, with a 5 s dial timeout
// and no read or write timeout.
func (s *Server) DSN(user, password, db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, db
	cfg.Net, cfg.Addr = "tcp", s.Addr()
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// LogPath is the server's error log.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "error.log") }

func (s *Server) pidPath() string { return filepath.Join(s.dir, "mariadbd.pid") }

// Admin returns a pool of root connections over the unix socket. It is
// cached; Stop, Kill and Close close it, so call Admin again after a
// restart. Statements may hold several queries (multiStatements) and
// arguments are interpolated client-side.
func (s *Server) Admin() (*sql.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil {
		return s.admin, nil
	}
	cfg := mysql.NewConfig()
	cfg.User = RootUser
	cfg.Net, cfg.Addr = "unix", s.Socket
	cfg.Timeout = 5 * time.Second
	cfg.MultiStatements = true
	cfg.InterpolateParams = true
	cfg.Logger = &mysql.NopLogger{} // restarts and kills make the driver complain
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("testbed: %s: admin connector: %w", s.Name, err)
	}
	s.admin = sql.OpenDB(conn)
	s.admin.SetMaxIdleConns(2)
	return s.admin, nil
}

func (s *Server) closeAdmin() {
	s.mu.Lock()
	db := s.admin
	s.admin = nil
	s.mu.Unlock()
	if db != nil {
		db.Close()
	}
}

// Exec runs query as root through the socket.
func (s *Server) Exec(ctx context.Context, query string, args ...any) error {
	db, err := s.Admin()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
}

var statusName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// GlobalStatus returns a numeric global status counter such as "Com_select".
// It uses SHOW GLOBAL STATUS, which moves Com_show_status, not Com_select.
func (s *Server) GlobalStatus(ctx context.Context, name string) (int64, error) {
	m, err := s.GlobalStatuses(ctx, name)
	if err != nil {
		return 0, err
	}
	return m[name], nil
}

// GlobalStatuses returns several numeric global status counters, keyed by
// the names as given; ON and OFF (Rpl_semi_sync_master_status…) read as 1
// and 0. A name the server does not know is an error.
func (s *Server) GlobalStatuses(ctx context.Context, names ...string) (map[string]int64, error) {
	raw, err := s.show(ctx, "STATUS", names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(names))
	for _, n := range names {
		v := raw[strings.ToLower(n)]
		i, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err == nil:
		case strings.EqualFold(v, "ON"):
			i, err = 1, nil
		case strings.EqualFold(v, "OFF"):
			i, err = 0, nil
		}
		if err != nil {
			return nil, fmt.Errorf("testbed: %s: status %s = %q is not an integer", s.Name, n, v)
		}
		out[n] = i
	}
	return out, nil
}

// GlobalVariable returns a global system variable (SHOW GLOBAL VARIABLES,
// so Com_select does not move).
func (s *Server) GlobalVariable(ctx context.Context, name string) (string, error) {
	raw, err := s.show(ctx, "VARIABLES", []string{name})
	if err != nil {
		return "", err
	}
	return raw[strings.ToLower(name)], nil
}

// show runs SHOW GLOBAL <what> WHERE Variable_name IN (names) and returns
// the values keyed by lower-cased name; every name must be present.
func (s *Server) show(ctx context.Context, what string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return map[string]string{}, nil
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		if !statusName.MatchString(n) {
			return nil, fmt.Errorf("testbed: invalid variable name %q", n)
		}
		quoted[i] = "'" + n + "'"
	}
	db, err := s.Admin()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL "+what+" WHERE Variable_name IN ("+strings.Join(quoted, ",")+")")
	if err != nil {
		return nil, fmt.Errorf("testbed: %s: show global %s: %w", s.Name, strings.ToLower(what), err)
	}
	defer rows.Close()
	out := make(map[string]string, len(names))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("testbed: %s: %w", s.Name, err)
		}
		out[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	for _, n := range names {
		if _, ok := out[strings.ToLower(n)]; !ok {
			return nil, fmt.Errorf("testbed: %s: no global %s %q", s.Name, strings.ToLower(what), n)
		}
	}
	return out, nil
}

// GTIDPos returns @@gtid_current_pos (read with SHOW GLOBAL VARIABLES).
func (s *Server) GTIDPos(ctx context.Context) (string, error) {
	return s.GlobalVariable(ctx, "gtid_current_pos")
}

// SlaveStatus returns SHOW SLAVE STATUS as column name → value, or nil if
// the server is not configured as a replica.
func (s *Server) SlaveStatus(ctx context.Context) (map[string]string, error) {
	db, err := s.Admin()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("testbed: %s: show slave status: %w", s.Name, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	out := make(map[string]string, len(cols))
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, rows.Err()
}

// Running reports whether the mariadbd process exists (paused or not).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// Paused reports whether the server is stopped by Pause.
func (s *Server) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused && s.proc != nil && !s.proc.exited()
}

// running returns the live process or an error.
func (s *Server) running() (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return nil, fmt.Errorf("testbed: %s is not running", s.Name)
	}
	return s.proc, nil
}

// Stop shuts the server down cleanly (SIGTERM, as the init system would)
// and waits for it to exit. If ctx ends first it is killed with SIGKILL.
func (s *Server) Stop(ctx context.Context) error {
	p, err := s.running()
	if err != nil {
		return err
	}
	s.closeAdmin()
	if err := p.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	p.signal(syscall.SIGCONT) // a paused server must run to shut down
	select {
	case <-p.done:
		s.setPaused(false)
		return nil
	case <-ctx.Done():
		p.signal(syscall.SIGKILL)
		<-p.done
		s.setPaused(false)
		return fmt.Errorf("testbed: %s: clean shutdown did not finish, killed: %w", s.Name, ctx.Err())
	}
}

// Kill sends SIGKILL and waits until the process is gone: a crash.
func (s *Server) Kill() error { return s.kill(true) }

func (s *Server) kill(mustRun bool) error {
	s.closeAdmin()
	p, err := s.running()
	if err != nil {
		if mustRun {
			return err
		}
		return nil
	}
	p.signal(syscall.SIGKILL)
	<-p.done
	s.setPaused(false)
	return nil
}

// Pause freezes the server with SIGSTOP: connections stay open and hang,
// like a stalled host. It returns once every thread has stopped.
func (s *Server) Pause() error {
	p, err := s.running()
	if err != nil {
		return err
	}
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	s.setPaused(true)
	// kill(2) returns before every thread has stopped; on a busy machine
	// a thread could still answer a query. Wait until all have.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !allThreadsStopped(p.cmd.Process.Pid) {
		if p.exited() {
			return fmt.Errorf("testbed: %s exited while being paused", s.Name)
		}
		if sleepCtx(ctx, time.Millisecond) != nil {
			return fmt.Errorf("testbed: %s: threads still running 5 s after SIGSTOP", s.Name)
		}
	}
	return nil
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped). Without /proc it reports true.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // thread gone
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			continue
		}
		if st := b[i+2]; st != 'T' && st != 't' {
			return false
		}
	}
	return true
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error {
	p, err := s.running()
	if err != nil {
		return err
	}
	if err := p.signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	s.setPaused(false)
	return nil
}

func (s *Server) isReplica() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replica
}

func (s *Server) setReplica(v bool) {
	s.mu.Lock()
	s.replica = v
	s.mu.Unlock()
}

func (s *Server) setPaused(v bool) {
	s.mu.Lock()
	s.paused = v
	s.mu.Unlock()
}

// Start restarts a stopped or killed server with the same data directory,
// port and options, and waits until it accepts connections. A replica
// resumes replication by itself and comes back with read_only=ON. A primary
// comes back writable: also one that a failover replaced (a split brain,
// for fencing tests), until Rebuild makes it a replica; and so does a
// server promoted with Topology.SetPrimary.
func (s *Server) Start(ctx context.Context) error {
	if s.Running() {
		return fmt.Errorf("testbed: %s is already running", s.Name)
	}
	return s.start(ctx, false)
}

// args builds the mariadbd command line.
func (s *Server) args(restart bool) []string {
	a := []string{
		"--no-defaults", // must be first
		"--datadir=" + s.DataDir,
		"--port=" + strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--socket=" + s.Socket,
		"--pid-file=" + s.pidPath(),
		"--log-error=" + s.LogPath(),
		"--server-id=" + strconv.Itoa(s.ServerID),
		"--log-bin=mysql-bin",
		"--relay-log=relay-bin",
		"--log-slave-updates=ON",
		"--binlog-format=ROW",
		"--gtid-strict-mode=ON",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=" + innodbLogFileSize,
		"--innodb-temp-data-file-path=ibtmp1:1M:autoextend", // not 12M written at every start
		"--innodb-flush-log-at-trx-commit=2",                // fast; see the package doc
		"--sync-binlog=0",
		"--max-connections=500",
		"--local-infile=ON",
		"--performance-schema=OFF",
		"--slave-net-timeout=5",
	}
	if s.domain != 0 {
		a = append(a, "--gtid-domain-id="+strconv.FormatUint(uint64(s.domain), 10))
	}
	if s.isReplica() {
		a = append(a, "--read-only=ON")
	}
	if s.semiSync {
		a = append(a,
			"--rpl-semi-sync-master-enabled=ON",
			"--rpl-semi-sync-slave-enabled=ON",
			"--rpl-semi-sync-master-timeout=10000",
			"--rpl-semi-sync-master-wait-no-slave=OFF")
	}
	if os.Geteuid() == 0 {
		a = append(a, "--user=root") // mariadbd refuses to run as root otherwise
	}
	if restart {
		// The port was ours before; wait if something holds it briefly.
		a = append(a, "--port-open-timeout=5")
	}
	return append(a, s.extra...)
}

// start launches mariadbd and waits for it to accept connections. With
// pickPort it chooses a free port, and picks another if bind fails.
func (s *Server) start(ctx context.Context, pickPort bool) error {
	for attempt := 1; ; attempt++ {
		if pickPort {
			port, err := freePort()
			if err != nil {
				return fmt.Errorf("testbed: %s: %w", s.Name, err)
			}
			s.Port = port
		}
		err := s.startOnce(ctx, !pickPort)
		var be *bindError
		if pickPort && errors.As(err, &be) && attempt < startAttempts {
			continue
		}
		return err
	}
}

type bindError struct{ error }

func (s *Server) startOnce(ctx context.Context, restart bool) error {
	logOffset := int64(0)
	if fi, err := os.Stat(s.LogPath()); err == nil {
		logOffset = fi.Size()
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	cmd := exec.Command(binaries.mariadbd, s.args(restart)...)
	cmd.Stdout, cmd.Stderr = logf, logf // output before --log-error takes over
	cmd.Dir = s.dir
	p, err := startProcess(cmd)
	logf.Close()
	if err != nil {
		return fmt.Errorf("testbed: %s: start %s: %w", s.Name, binaries.mariadbd, err)
	}
	s.mu.Lock()
	s.proc, s.paused = p, false
	s.mu.Unlock()

	db, err := s.Admin()
	if err != nil {
		s.kill(false)
		return err
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			tail := s.logTail(logOffset, 4<<10)
			err := fmt.Errorf("testbed: %s: mariadbd exited during startup (%v); error log %s ends:\n%s",
				s.Name, p.err, s.LogPath(), tail)
			s.closeAdmin()
			if strings.Contains(tail, "Address already in use") && strings.Contains(tail, "TCP/IP") {
				return &bindError{err}
			}
			return err
		default:
		}
		if sleepCtx(ctx, pollInterval) != nil {
			s.kill(false)
			return fmt.Errorf("testbed: %s: not accepting connections on %s (%w, last error: %v); error log %s ends:\n%s",
				s.Name, s.Socket, ctx.Err(), err, s.LogPath(), s.logTail(logOffset, 4<<10))
		}
	}
}

// logTail returns at most limit bytes from the end of the error log, not
// reading before offset, starting at a line boundary.
func (s *Server) logTail(offset, limit int64) string {
	f, err := os.Open(s.LogPath())
	if err != nil {
		return fmt.Sprintf("(cannot read error log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read error log: %v)", err)
	}
	start := max(offset, fi.Size()-limit)
	buf := make([]byte, fi.Size()-start)
	n, _ := f.ReadAt(buf, start)
	buf = buf[:n]
	if start > offset {
		if i := strings.IndexByte(string(buf), '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return strings.TrimRight(string(buf), "\n")
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// createUsers creates the extra accounts on this server, outside the binlog.
func (s *Server) createUsers(ctx context.Context, users []User) error {
	if len(users) == 0 {
		return nil
	}
	db, err := s.Admin()
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_bin = 0"); err != nil {
		return fmt.Errorf("testbed: %s: %w", s.Name, err)
	}
	for _, u := range users {
		grants := strings.TrimSpace(u.Grants)
		if grants == "" {
			grants = DefaultGrants
		}
		withGrant := ""
		const wgo = " WITH GRANT OPTION"
		if strings.HasSuffix(strings.ToUpper(grants), wgo) {
			grants, withGrant = strings.TrimSpace(grants[:len(grants)-len(wgo)]), wgo
		}
		acct := sqlString(u.Name) + "@'%'"
		for _, q := range []string{
			"CREATE USER " + acct + " IDENTIFIED BY " + sqlString(u.Password),
			"GRANT " + grants + " TO " + acct + withGrant,
		} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("testbed: %s: user %q: %w", s.Name, u.Name, err)
			}
		}
	}
	return nil
}

// replicateFrom points this server at primary and waits until both
// replication threads run.
func (s *Server) replicateFrom(ctx context.Context, primary *Server) error {
	q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
		sqlString(primary.Host), primary.Port, sqlString(ReplUser), sqlString(ReplPassword))
	if err := s.Exec(ctx, q); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if err := s.Exec(ctx, "START SLAVE"); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return s.WaitSlaveRunning(ctx)
}

// WaitSlaveRunning waits until Slave_IO_Running and Slave_SQL_Running are
// both Yes; it fails at once if either thread stopped with an error.
func (s *Server) WaitSlaveRunning(ctx context.Context) error {
	var last map[string]string
	for {
		st, err := s.SlaveStatus(ctx)
		if err == nil && st == nil {
			return fmt.Errorf("testbed: %s is not a replica", s.Name)
		}
		if err == nil {
			last = st
			if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
				return nil
			}
			if st["Last_SQL_Error"] != "" || (st["Slave_IO_Running"] == "No" && st["Last_IO_Error"] != "") {
				return fmt.Errorf("testbed: %s: replication stopped: Last_IO_Error=%q Last_SQL_Error=%q",
					s.Name, st["Last_IO_Error"], st["Last_SQL_Error"])
			}
		}
		if sleepCtx(ctx, pollInterval) != nil {
			return fmt.Errorf("testbed: %s: replication threads not running (%w): Slave_IO_Running=%q Slave_SQL_Running=%q Last_IO_Error=%q Last_SQL_Error=%q, last error: %v",
				s.Name, ctx.Err(), last["Slave_IO_Running"], last["Slave_SQL_Running"], last["Last_IO_Error"], last["Last_SQL_Error"], err)
		}
	}
}

// waitStatus waits until a numeric global status reaches at least want.
func (s *Server) waitStatus(ctx context.Context, name string, want int64) error {
	var got int64
	var err error
	for {
		got, err = s.GlobalStatus(ctx, name)
		if err == nil && got >= want {
			return nil
		}
		if sleepCtx(ctx, pollInterval) != nil {
			return fmt.Errorf("testbed: %s: %s = %d, want >= %d (%w, last error: %v)", s.Name, name, got, want, ctx.Err(), err)
		}
	}
}

// PID returns the mariadbd process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}
