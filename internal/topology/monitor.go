package topology

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/replstatus"
)

// ServerConfig is what the monitor needs to know of a server.
type ServerConfig struct {
	Name    string
	Addr    string
	Backup  bool
	Weight  int
	MaxConn int
}

// Config drives the monitor.
type Config struct {
	Servers  []ServerConfig
	User     string
	Password string
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
	// MaxLag excludes replicas further behind (0 = lag is not checked).
	MaxLag time.Duration
	// HeartbeatTable (db.table), when set, measures lag from a
	// pt-heartbeat-compatible table the monitor writes on the primary.
	HeartbeatTable string
}

// Monitor checks every server each interval and publishes snapshots.
type Monitor struct {
	log  *slog.Logger
	cur  atomic.Pointer[Snapshot]
	cfg  atomic.Pointer[Config]
	seq  atomic.Uint64
	kick chan struct{}

	// pubMu serialises publishing: snapshots derived from the current one
	// (SetAdmin, Update) and check rounds never overwrite each other with
	// older data.
	pubMu sync.Mutex

	mu       sync.Mutex
	probes   map[string]*probe // by server name
	subs     []chan struct{}
	watchers []func(old, cur *Snapshot)
	admin    map[string]AdminState // operator states by server name; kept across reloads

	lastBeat time.Time // primary-clock time of the last heartbeat written (UTC)

	stillDownEvery time.Duration

	ctl       Control   // the failover manager's decisions, applied to every snapshot
	roundAt   time.Time // start of the last published check round
	roundDone chan struct{}
}

// Control is what the failover manager imposes on snapshots.
type Control struct {
	Epoch      uint64
	Designated string // "" = discover the primary
	Fenced     []string
	Hold       *Hold
	Alert      string
	// Promoted names a server just promoted: it is shown as a writable,
	// non-replicating primary before a check round confirms it, so held
	// writes need not wait for a round (a frozen old primary makes a round
	// last health.timeout).
	Promoted string
}

// probe keeps one monitor connection and the rise/fall counters of a server.
type probe struct {
	db        *sql.DB
	addr      string
	up        bool
	okRun     int
	failRun   int
	lagBad    bool
	lagOKRun  int
	lagJudged bool // the lag limit has been applied to a measured lag
	checkedAt time.Time
	last      Server

	downSince  time.Time // first failed check of the current outage
	downLogged time.Time // last log line about the outage; zero while up
}

// stillDownEvery is how often a server that stays down is logged again.
const stillDownEvery = 5 * time.Minute

// NewMonitor creates a monitor; call Run to start checking.
func NewMonitor(cfg Config, log *slog.Logger) *Monitor {
	m := &Monitor{log: log, probes: map[string]*probe{}, kick: make(chan struct{}, 1), admin: map[string]AdminState{}, roundDone: make(chan struct{}),
		stillDownEvery: stillDownEvery}
	m.cfg.Store(&cfg)
	m.publish(m.initial(cfg))
	return m
}

func (m *Monitor) initial(cfg Config) []Server {
	out := make([]Server, len(cfg.Servers))
	for i, s := range cfg.Servers {
		out[i] = Server{Name: s.Name, Addr: s.Addr, Backup: s.Backup, Weight: s.Weight, MaxConn: s.MaxConn}
	}
	return out
}

// Snapshot returns the latest published snapshot.
func (m *Monitor) Snapshot() *Snapshot { return m.cur.Load() }

// Update replaces the server list and thresholds (reload). Servers keep
// their counters when their name and address are unchanged.
func (m *Monitor) Update(cfg Config) {
	m.cfg.Store(&cfg)
	// Publish the new server list at once, so that routers stop choosing a
	// removed server (whose pool is gone) before the next round: kept
	// servers keep their last state with the new settings, added ones are
	// down until checked.
	m.pubMu.Lock()
	cur := m.cur.Load()
	servers := m.initial(cfg)
	for i := range servers {
		if old, ok := cur.ByName(servers[i].Name); ok && old.Addr == servers[i].Addr {
			s := *old
			s.Backup, s.Weight, s.MaxConn = servers[i].Backup, servers[i].Weight, servers[i].MaxConn
			servers[i] = s
		}
	}
	m.publish(servers)
	m.pubMu.Unlock()
	m.CheckNow()
}

// CheckNow asks for a check round as soon as possible.
func (m *Monitor) CheckNow() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// SetAdmin sets an operator state for a server and publishes a new
// snapshot at once. It reports false for an unknown server.
func (m *Monitor) SetAdmin(name string, st AdminState) bool {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	cur := m.cur.Load()
	if _, ok := cur.ByName(name); !ok {
		return false
	}
	m.mu.Lock()
	if st == AdminNone {
		delete(m.admin, name)
	} else {
		m.admin[name] = st
	}
	m.mu.Unlock()
	servers := append([]Server(nil), cur.Servers...)
	m.publish(servers)
	return true
}

// SetControl applies the failover manager's decisions and publishes a new
// snapshot at once.
func (m *Monitor) SetControl(c Control) {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	m.mu.Lock()
	m.ctl = c
	m.mu.Unlock()
	m.publish(append([]Server(nil), m.cur.Load().Servers...))
}

// Refresh runs a check round that starts after the call and waits until
// it is published, so the caller sees the servers as they are now (after
// a promotion, say). It returns ctx's error if the round is not done in
// time.
func (m *Monitor) Refresh(ctx context.Context) error {
	start := time.Now()
	for {
		m.mu.Lock()
		at, done := m.roundAt, m.roundDone
		m.mu.Unlock()
		if !at.Before(start) {
			return nil
		}
		m.CheckNow()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
		}
	}
}

// Watch registers fn to run after every published snapshot with the
// previous and the new one, on the monitor's goroutine: it must be quick.
func (m *Monitor) Watch(fn func(old, cur *Snapshot)) {
	m.mu.Lock()
	m.watchers = append(m.watchers, fn)
	m.mu.Unlock()
}

// Subscribe returns a channel signalled after every published snapshot.
func (m *Monitor) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs = append(m.subs, ch)
	m.mu.Unlock()
	return ch
}

// Run checks until ctx ends.
//
// Rounds start every interval, measured from the start of the previous one
// (as HAProxy's inter), so a server whose check times out does not stretch
// the period: a frozen server is down after about fall × max(interval,
// timeout).
func (m *Monitor) Run(ctx context.Context) {
	defer m.closeProbes()
	for {
		start := time.Now()
		m.round(ctx)
		cfg := m.cfg.Load()
		t := time.NewTimer(max(cfg.Interval-time.Since(start), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.kick:
			t.Stop()
		}
	}
}

func (m *Monitor) closeProbes() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.probes {
		p.db.Close()
	}
	m.probes = map[string]*probe{}
}

// round checks all servers in parallel, so one frozen server delays the
// round by at most Timeout.
func (m *Monitor) round(ctx context.Context) {
	start := time.Now()
	cfg := m.cfg.Load()
	m.mu.Lock()
	live := map[string]bool{}
	probes := make([]*probe, len(cfg.Servers))
	for i, s := range cfg.Servers {
		live[s.Name] = true
		p := m.probes[s.Name]
		if p != nil && p.addr != s.Addr {
			p.db.Close()
			p = nil
		}
		if p == nil {
			p = &probe{addr: s.Addr, db: m.openDB(cfg, s.Addr)}
			m.probes[s.Name] = p
		}
		probes[i] = p
	}
	for name, p := range m.probes {
		if !live[name] {
			p.db.Close()
			delete(m.probes, name)
		}
	}
	m.mu.Unlock()

	var wg sync.WaitGroup
	for i, s := range cfg.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.check(ctx, cfg, s, probes[i])
		}()
	}
	wg.Wait()
	servers := make([]Server, len(cfg.Servers))
	for i := range probes {
		servers[i] = probes[i].last
	}
	if cfg.HeartbeatTable != "" {
		m.mu.Lock()
		designated := m.ctl.Designated
		m.mu.Unlock()
		if i := pickPrimary(servers, designated); i >= 0 {
			m.writeHeartbeat(ctx, cfg, probes[i].db, servers[i].Name)
		}
	}
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	if m.cfg.Load() != cfg {
		return // reloaded meanwhile: Update published the new list, and a new round follows
	}
	m.publish(servers)
	m.mu.Lock()
	m.roundAt = start
	close(m.roundDone)
	m.roundDone = make(chan struct{})
	m.mu.Unlock()
}

// heartbeatTime is pt-heartbeat's ts format (UTC with microseconds).
const heartbeatTime = "2006-01-02T15:04:05.000000"

// writeHeartbeat stamps the primary's row, as pt-heartbeat --update does.
func (m *Monitor) writeHeartbeat(ctx context.Context, cfg *Config, db *sql.DB, name string) {
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var ts string
	err := db.QueryRowContext(cctx, "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%f')").Scan(&ts)
	if err == nil {
		_, err = db.ExecContext(cctx, "REPLACE INTO "+cfg.HeartbeatTable+" (ts, server_id) VALUES (?, @@server_id)", ts)
	}
	if err != nil {
		m.log.Warn("heartbeat write failed", "server", name, "table", cfg.HeartbeatTable, "err", err)
		return
	}
	if t, err := time.Parse(heartbeatTime, ts); err == nil {
		m.mu.Lock()
		m.lastBeat = t
		m.mu.Unlock()
	}
}

// heartbeatLag replaces Seconds_Behind_Master with the age of the newest
// heartbeat the replica has applied, relative to the newest one written:
// sub-second, and immune to Seconds_Behind_Master's blind spots.
func (m *Monitor) heartbeatLag(ctx context.Context, cfg *Config, db *sql.DB, s *Server) {
	m.mu.Lock()
	last := m.lastBeat
	m.mu.Unlock()
	s.Lag, s.LagKnown = 0, false
	if last.IsZero() || !(s.IORunning || s.IOReconnecting) || !s.SQLRunning {
		return
	}
	var ts string
	err := db.QueryRowContext(ctx, "SELECT ts FROM "+cfg.HeartbeatTable+" ORDER BY ts DESC LIMIT 1").Scan(&ts)
	if err != nil {
		return
	}
	t, err := time.Parse(heartbeatTime, ts)
	if err != nil {
		return
	}
	s.Lag, s.LagKnown = max(last.Sub(t), 0), true
}

func (m *Monitor) openDB(cfg *Config, addr string) *sql.DB {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = cfg.User, cfg.Password, "tcp", addr
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
	conn, err := mysql.NewConnector(mc)
	if err != nil { // only for invalid configs, which validation rejects
		panic(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	return db
}

func (m *Monitor) check(ctx context.Context, cfg *Config, sc ServerConfig, p *probe) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	s := Server{Name: sc.Name, Addr: sc.Addr, Backup: sc.Backup, Weight: sc.Weight, MaxConn: sc.MaxConn, LastCheck: start}
	err := probeServer(cctx, p.db, &s)
	if err == nil && cfg.HeartbeatTable != "" && s.Role == RoleReplica {
		m.heartbeatLag(cctx, cfg, p.db, &s)
	}
	s.CheckTime = time.Since(start)
	m.record(cfg, sc, p, &s, err)
}

// record applies a check's outcome to the server's state: rise and fall,
// the down log, and the lag judgement.
func (m *Monitor) record(cfg *Config, sc ServerConfig, p *probe, s *Server, err error) {
	start := s.LastCheck
	if err != nil {
		p.failRun++
		p.okRun = 0
		s.LastError = err.Error()
		switch {
		case p.up && p.failRun >= cfg.Fall:
			p.up = false
			p.downSince, p.downLogged = start, start
			m.log.Warn("server down", "server", sc.Name, "addr", sc.Addr, "err", err)
		case !p.up && p.downLogged.IsZero():
			// Never seen up (unreachable since start, or since it was
			// added): said once, at once, not at every check.
			p.downSince, p.downLogged = start, start
			m.log.Warn("server unreachable", "server", sc.Name, "addr", sc.Addr, "err", err)
		case !p.up && start.Sub(p.downLogged) >= m.stillDownEvery:
			p.downLogged = start
			m.log.Warn("server still down", "server", sc.Name, "addr", sc.Addr, "for", start.Sub(p.downSince).Round(time.Second).String(), "err", err)
		}
		// Keep the last known role so an operator sees what went down.
		s.Role, s.ReadOnly, s.Replicating = p.last.Role, p.last.ReadOnly, p.last.Replicating
		s.SourceAddr, s.GTIDPos, s.Version = p.last.SourceAddr, p.last.GTIDPos, p.last.Version
		s.MaxAllowedPacket = p.last.MaxAllowedPacket
		// A failed check says nothing about replication: a server that is
		// still up (fewer than fall failures in a row, as HAProxy counts)
		// keeps the replication state and lag it last showed. Read as
		// "threads stopped", one check timing out on a loaded machine
		// excluded every replica from reads until rise good checks.
		s.IORunning, s.IOReconnecting, s.SQLRunning = p.last.IORunning, p.last.IOReconnecting, p.last.SQLRunning
		s.Lag, s.LagKnown = p.last.Lag, p.last.LagKnown
	} else {
		p.okRun++
		p.failRun = 0
		// The first successful check after start counts as up at once:
		// a proxy that starts must not refuse traffic for Rise intervals.
		if !p.up && (p.okRun >= cfg.Rise || p.checkedAt.IsZero()) {
			p.up = true
			p.downLogged = time.Time{}
			m.log.Info("server up", "server", sc.Name, "addr", sc.Addr)
		}
	}
	p.checkedAt = start
	s.Up = p.up
	if err == nil && s.IOReconnecting && s.SQLRunning && !s.LagKnown && p.last.LagKnown {
		// Lost its source and applied all it received: it stays at the
		// lag it had when it last measured one.
		s.Lag, s.LagKnown = p.last.Lag, true
	}
	if err != nil && s.Up {
		s.LagExcluded = p.lagBad // judged again at the next check that answers
	} else {
		m.judgeLag(cfg, p, s)
	}
	p.last = *s
}

// judgeLag applies the lag limit with hysteresis: a replica is excluded as
// soon as its lag is unknown (a replication thread stopped, NULL lag) or
// over the limit, and readmitted after Rise good checks in a row. Queries
// already running on it are not touched.
func (m *Monitor) judgeLag(cfg *Config, p *probe, s *Server) {
	if s.Role != RoleReplica || !s.Up {
		p.lagOKRun = 0
		s.LagExcluded = p.lagBad
		return
	}
	// A reconnecting IO thread is judged by its lag; whether its source is
	// lost (so that it stays readable) is decided with every server's
	// state at publish.
	good := (s.IORunning || s.IOReconnecting) && s.SQLRunning && (cfg.MaxLag <= 0 || (s.LagKnown && s.Lag <= cfg.MaxLag))
	// A running replica's heartbeat lag is unknown until sluice has written
	// a first heartbeat, which says nothing about the replica: it stays
	// out until measured, and the first measured good check readmits it at
	// once, so that a start does not keep every replica out for Rise checks.
	unmeasured := cfg.HeartbeatTable != "" && cfg.MaxLag > 0 && !s.LagKnown && (s.IORunning || s.IOReconnecting) && s.SQLRunning
	first := !p.lagJudged
	if !unmeasured {
		p.lagJudged = true
	}
	switch {
	case !good && unmeasured && first:
		p.lagBad = true
	case !good:
		if !p.lagBad {
			m.log.Warn("replica excluded from reads", "server", s.Name, "io_running", s.IORunning, "sql_running", s.SQLRunning, "lag", lagString(s), "max_lag", cfg.MaxLag)
		}
		p.lagBad, p.lagOKRun = true, 0
	case p.lagBad:
		p.lagOKRun++
		if p.lagOKRun >= cfg.Rise || first {
			p.lagBad = false
			m.log.Info("replica readmitted to reads", "server", s.Name, "lag", lagString(s))
		}
	}
	s.LagExcluded = p.lagBad
}

func lagString(s *Server) string {
	if !s.LagKnown {
		return "unknown"
	}
	return s.Lag.String()
}

// probeServer reads read_only, replication status and GTID position. It uses
// SHOW statements only, so the servers' Com_select counters count
// application reads alone.
func probeServer(ctx context.Context, db *sql.DB, s *Server) error {
	vars := map[string]string{}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only','gtid_current_pos','gtid_binlog_pos','version','server_id','max_allowed_packet')")
	if err != nil {
		return fmt.Errorf("check %s: %w", s.Addr, err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return err
		}
		vars[strings.ToLower(k)] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	s.ReadOnly = vars["read_only"] == "ON" || vars["read_only"] == "1"
	s.GTIDPos = vars["gtid_current_pos"]
	s.Version = vars["version"]
	if id, err := strconv.ParseUint(vars["server_id"], 10, 32); err == nil {
		s.ServerID = uint32(id)
	}
	if n, err := strconv.Atoi(vars["max_allowed_packet"]); err == nil {
		s.MaxAllowedPacket = n
	}

	st, err := replstatus.SlaveStatus(ctx, db)
	if err != nil {
		return fmt.Errorf("replication status of %s: %w", s.Addr, err)
	}
	if st != nil {
		s.Replicating = true
		s.IORunning = st["Slave_IO_Running"] == "Yes"
		s.IOReconnecting = st["Slave_IO_Running"] == "Connecting"
		s.SQLRunning = st["Slave_SQL_Running"] == "Yes"
		s.SourceAddr = net.JoinHostPort(st["Master_Host"], st["Master_Port"])
		// With the IO thread reconnecting, the server still reports the lag
		// while its SQL thread applies what it received (NULL once done).
		if v := st["Seconds_Behind_Master"]; v != "" && (s.IORunning || s.IOReconnecting) && s.SQLRunning {
			if n, err := strconv.Atoi(v); err == nil {
				s.Lag, s.LagKnown = time.Duration(n)*time.Second, true
			}
		}
	}
	switch {
	case !s.ReadOnly && !s.Replicating:
		s.Role = RolePrimary
	case s.Replicating:
		s.Role = RoleReplica
	default:
		s.Role = RoleUnknown // read-only and replicating from nobody
	}
	return nil
}

func (m *Monitor) publish(servers []Server) {
	m.mu.Lock()
	ctl := m.ctl
	for i := range servers {
		s := &servers[i]
		s.Admin = m.admin[s.Name]
		s.Fenced = slices.Contains(ctl.Fenced, s.Name)
		if ctl.Promoted == s.Name && s.Up {
			s.Role, s.ReadOnly, s.Replicating, s.IORunning, s.SQLRunning = RolePrimary, false, false, false, false
		}
	}
	for i := range servers {
		s := &servers[i]
		s.SourceLost = s.IOReconnecting && sourceFailing(servers, s.SourceAddr)
		s.Readable = s.Up && s.Role == RoleReplica && (s.IORunning || s.SourceLost) && s.SQLRunning && !s.LagExcluded && s.Admin == AdminNone
	}
	m.mu.Unlock()
	snap := &Snapshot{Servers: servers, Primary: pickPrimary(servers, ctl.Designated), Seq: m.seq.Add(1), Time: time.Now(),
		Epoch: ctl.Epoch, Designated: ctl.Designated, Hold: ctl.Hold, Alert: ctl.Alert}
	old := m.cur.Load()
	if old != nil {
		if op, ok := old.PrimaryServer(); ok {
			if np, ok := snap.PrimaryServer(); !ok || np.Name != op.Name {
				m.log.Warn("primary changed", "old", op.Name, "new", primaryName(snap))
			}
		}
	}
	m.cur.Store(snap)
	m.mu.Lock()
	for _, ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	watchers := m.watchers
	m.mu.Unlock()
	if old != nil {
		for _, fn := range watchers {
			fn(old, snap)
		}
	}
}

func primaryName(s *Snapshot) string {
	if p, ok := s.PrimaryServer(); ok {
		return p.Name
	}
	return "(none)"
}

// pickPrimary chooses the writable, non-replicating server. With a
// designated primary (an epoch of the failover manager) only that one may
// be chosen. Otherwise, when several qualify (a split brain made by someone
// else), the one the replicas follow wins, then the first configured:
// sluice never writes to two primaries.
func pickPrimary(servers []Server, designated string) int {
	best, votes := -1, -1
	for i, s := range servers {
		if !s.Up || s.Role != RolePrimary || s.Admin == AdminMaintenance || s.Fenced {
			continue
		}
		if designated != "" && s.Name != designated {
			continue
		}
		v := 0
		for _, r := range servers {
			if r.Replicating && r.SourceAddr == s.Addr {
				v++
			}
		}
		if v > votes {
			best, votes = i, v
		}
	}
	return best
}

// sourceFailing reports whether the configured server at addr fails
// sluice's checks too (its last check failed, or it is down): a replica
// that lost it lost it because it is failing, so the replica is not behind
// anything that is still being written.
func sourceFailing(servers []Server, addr string) bool {
	for i := range servers {
		if s := &servers[i]; s.Addr == addr {
			return !s.Up || s.LastError != ""
		}
	}
	return false
}
