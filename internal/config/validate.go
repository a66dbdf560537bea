package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
	"github.com/sluice-proxy/sluice/internal/hooks"
)

// validate checks what the types alone cannot: required keys, allowed
// values, ranges and cross-references. It runs even when decoding found
// problems, so one run of `sluice check` shows everything. It also resolves
// password_env, token_env and relative file paths, which is why it writes
// to c.
func (d *decoder) validate(c *Config, getenv func(string) string) {
	d.checkListeners(c, getenv)
	d.checkUsers(c, getenv)
	if len(c.Clusters) > 0 {
		d.checkClusters(c, getenv)
	} else {
		d.checkServers(c)
	}
	d.checkMonitor(c, getenv)
	d.checkMoves(c, getenv)
	d.reportAll(c.Health.Validate("health"))
	d.reportAll(c.Routing.Validate("routing"))
	d.checkTimeouts(c.Timeouts)
	d.reportAll(c.Pool.Validate("pool"))
	d.checkTLS(&c.TLS)
	d.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	d.oneOf("log.format", c.Log.Format, "text", "json")
	if p := c.MaxAllowedPacket; p < minPacket || p > maxPacket {
		d.report("max_allowed_packet", "must be between %v and %v, got %v", minPacket, maxPacket, p)
	}
	if p := c.MaxLongData; p < minPacket || p > maxPacket {
		d.report("max_long_data", "must be between %v and %v, got %v", minPacket, maxPacket, p)
	}
	if c.MaxClientConnections < 0 {
		d.report("max_client_connections", "must not be negative (0 sizes it from the file descriptor limit), got %d", c.MaxClientConnections)
	}
	if c.HTTPMaxConnections < 1 {
		d.report("http_max_connections", "must be at least 1, got %d", c.HTTPMaxConnections)
	}
	if l := c.Login; l.MaxFailures < 0 {
		d.report("login.max_failures", "must not be negative (0 turns throttling off), got %d", l.MaxFailures)
	} else if l.MaxFailures > 0 && (l.Block <= 0 || l.MaxBlock < l.Block) {
		d.report("login.block", "must be greater than 0 and at most login.max_block (%v), got %v", l.MaxBlock, l.Block)
	}
	if n := c.Digests.Max; n < 1 || n > maxDigests {
		d.report("digests.max", "must be between 1 and %d, got %d", maxDigests, n)
	}
	d.checkSlowQuery(&c.SlowQuery)
	d.checkGraphite(c.Graphite)
	d.checkFailover(c, getenv)
	if len(c.Clusters) > 0 {
		// After the top-level sections are checked and their secrets
		// resolved: clusters start from copies of them.
		for i := range c.Clusters {
			d.overlay(fmt.Sprintf("clusters[%d]", i), &c.Clusters[i], c, getenv)
		}
	}
	d.checkPlacement(c)
}

// maxDigests bounds digests.max: an entry takes about 1 KiB with its text.
const maxDigests = 1_000_000

// minGraphiteInterval: Graphite keeps at most one point a second.
const minGraphiteInterval = Duration(time.Second)

// MySQL's own bounds for max_allowed_packet.
const (
	minPacket ByteSize = 1 << 10
	maxPacket ByteSize = 1 << 30
)

// report adds a problem about path, placed where path (or its closest
// ancestor present in the file) was written.
func (d *decoder) report(path, format string, args ...any) {
	if d.failedAt(path) {
		return
	}
	d.errorf(d.pos(path), "%s: %s", path, fmt.Sprintf(format, args...))
}

// reportAll places the problems a section's Validate returned.
func (d *decoder) reportAll(ps []confval.Problem) {
	for _, p := range ps {
		d.report(p.Path, "%s", p.Message)
	}
}

// line is where path was written, for "first at line N" references.
func (d *decoder) line(path string) int {
	if n := d.pos(path); n != nil {
		return n.Line
	}
	return 0
}

func (d *decoder) oneOf(path, value string, allowed ...string) {
	d.reportAll(confval.OneOf(path, value, allowed...))
}

func (d *decoder) checkListeners(c *Config, getenv func(string) string) {
	if len(c.Listen) == 0 {
		d.report("listen", "must not be empty: it is where clients connect")
	}
	seen := map[string]bool{}
	for i, addr := range c.Listen {
		path := "listen"
		if len(c.Listen) > 1 {
			path = fmt.Sprintf("listen[%d]", i)
		}
		switch {
		case addr == "":
			d.report(path, "must not be empty: give host:port or a socket path")
		case seen[addr] && !strings.HasSuffix(addr, ":0"):
			d.report(path, "%s is listed twice", addr)
		case IsSocketPath(addr):
			if err := checkSocketPath(addr); err != nil {
				d.report(path, "%v", err)
			}
		default:
			if err := checkAddr(addr, 0); err != nil {
				d.report(path, "%v", err)
			}
		}
		seen[addr] = true
	}
	if c.HTTPListen == "" {
		return // disabled on purpose
	}
	if err := checkAddr(c.HTTPListen, 0); err != nil {
		d.report("http_listen", "%v", err)
		return
	}
	if seen[c.HTTPListen] && !strings.HasSuffix(c.HTTPListen, ":0") {
		d.report("http_listen", "same address as listen (%s); give each its own port", c.HTTPListen)
	}
	switch {
	case c.HTTPToken != "" && c.HTTPTokenEnv != "":
		d.report("http_token", "both http_token and http_token_env are set; keep one")
	case c.HTTPTokenEnv != "":
		if v := getenvOrEmpty(getenv, c.HTTPTokenEnv); v != "" {
			c.httpToken = &v
		} else {
			d.report("http_token_env", "environment variable %q is not set or is empty", c.HTTPTokenEnv)
		}
	}
	if c.HTTPTokenSecret() == "" && c.httpToken == nil && !loopback(c.HTTPListen) {
		d.report("http_listen", "%s is reachable from other hosts: set http_token_env (or http_token) so the admin API requires a bearer token", c.HTTPListen)
	}
}

func getenvOrEmpty(getenv func(string) string, name string) string {
	if getenv == nil {
		return ""
	}
	return getenv(name)
}

// loopback reports whether a listener address accepts local connections
// only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// maxSocketPath is the longest Unix socket path: sun_path holds 108
// bytes on Linux, with a terminating NUL.
const maxSocketPath = 107

// checkSocketPath checks a Unix socket path for the listener.
func checkSocketPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q: a socket path must be absolute", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%q: a socket path names a file, not a directory", p)
	case len(p) > maxSocketPath:
		return fmt.Errorf("%q: a socket path may have at most %d bytes", p, maxSocketPath)
	}
	return nil
}

// checkAddr checks a host:port with a numeric port of at least minPort.
// Listeners accept port 0 (any free port, for tests) and an empty host
// (every interface); servers need both.
func checkAddr(addr string, minPort int) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%q is not host:port (%v)", addr, err)
	}
	if minPort > 0 && host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 {
		return fmt.Errorf("%q: port must be a number from %d to 65535", addr, minPort)
	}
	return nil
}

func (d *decoder) checkUsers(c *Config, getenv func(string) string) {
	if len(c.Users) == 0 {
		d.report("users", "no users configured; add at least one so that clients can log in")
	}
	seen := map[string]int{}
	for i := range c.Users {
		u := &c.Users[i]
		p := fmt.Sprintf("users[%d]", i)
		who := fmt.Sprintf("user %q", u.Name)
		switch j, dup := seen[u.Name]; {
		case u.Name == "":
			d.report(p+".name", "required")
			who = "this user"
		case dup:
			d.report(p+".name", "duplicate user name %q (first at line %d)", u.Name, d.line(fmt.Sprintf("users[%d].name", j)))
		default:
			seen[u.Name] = i
		}
		d.oneOf(p+".auth_plugin", u.AuthPlugin, AuthNativePassword, AuthCachingSHA2)
		u.secret = d.password(p, who, u.Password, u.PasswordEnv, getenv)
	}
}

func (d *decoder) checkMonitor(c *Config, getenv func(string) string) {
	m := &c.Monitor
	if m.User == "" {
		if len(c.Servers) > 0 {
			d.report("monitor.user", "required: the monitor logs in to every server to check health, roles and lag")
		}
		return
	}
	m.secret = d.password("monitor", "the monitor", m.Password, m.PasswordEnv, getenv)
}

// password checks a password/password_env pair and returns the value read
// from the environment, or nil when the password is written in the file.
// Messages name the variable, never its value.
func (d *decoder) password(path, who, password, env string, getenv func(string) string) *string {
	if d.failed[path+".password"] || d.failed[path+".password_env"] {
		return nil
	}
	switch {
	case password != "" && env != "":
		d.report(path, "%s has both password and password_env; keep one", who)
	case env != "":
		v := getenv(env)
		if v == "" {
			d.report(path+".password_env", "environment variable %q is not set or is empty", env)
			return nil
		}
		return &v
	case password == "":
		d.report(path, "%s has no password: set password_env (preferred) or password", who)
	}
	return nil
}

// checkName checks the name of list[i] (a server, a cluster): given,
// usable in URLs and metric labels, and unique in names, where it is
// recorded.
func (d *decoder) checkName(list, kind string, i int, name string, names map[string]int) {
	p := fmt.Sprintf("%s[%d].name", list, i)
	switch j, dup := names[name]; {
	case name == "":
		d.report(p, "required")
	case !confval.PlainName(name):
		d.report(p, "%q may contain only letters, digits, '.', '_' and '-' (it appears in URLs and metric labels)", name)
	case dup:
		d.report(p, "duplicate %s name %q (first at line %d)", kind, name, d.line(fmt.Sprintf("%s[%d].name", list, j)))
	default:
		names[name] = i
	}
}

func (d *decoder) checkServers(c *Config) {
	if len(c.Servers) == 0 {
		d.report("servers", "no servers configured; list at least one")
	}
	names := map[string]int{}
	addrs := map[string]int{}
	for i, s := range c.Servers {
		p := fmt.Sprintf("servers[%d]", i)
		d.checkName("servers", "server", i, s.Name, names)
		if s.Address == "" {
			d.report(p+".address", "required (host:port)")
		} else if err := checkAddr(s.Address, 1); err != nil {
			d.report(p+".address", "%v", err)
		} else {
			key := normalizeAddr(s.Address)
			if j, dup := addrs[key]; dup {
				d.report(p+".address", "duplicate address %q: server %q at line %d has it already", s.Address, c.Servers[j].Name, d.line(fmt.Sprintf("servers[%d].address", j)))
			} else {
				addrs[key] = i
			}
		}
		if s.Weight < 0 {
			d.report(p+".weight", "must not be negative, got %d", s.Weight)
		}
		if s.MaxConnections < 0 {
			d.report(p+".max_connections", "must not be negative, got %d (0 means unlimited)", s.MaxConnections)
		}
	}
}

// normalizeAddr makes "DB1:3306" and "db1:3306" one address; it does not
// resolve names, so "localhost" and "127.0.0.1" stay distinct.
func normalizeAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(n))
}

func (d *decoder) checkTimeouts(t Timeouts) {
	for _, f := range []struct {
		path string
		v    Duration
	}{
		{"timeouts.connect", t.Connect},
		{"timeouts.query", t.Query},
		{"timeouts.handshake", t.Handshake},
		{"timeouts.client_idle", t.ClientIdle},
		{"timeouts.pool_wait", t.PoolWait},
		{"timeouts.client_write", t.ClientWrite},
		{"timeouts.client_read", t.ClientRead},
		{"timeouts.warnings_pin", t.WarningsPin},
	} {
		if f.v <= 0 {
			d.report(f.path, "must be greater than 0: every wait on the network needs a limit")
		}
	}
}

func (d *decoder) checkTLS(t *TLS) {
	if (t.Cert == "") != (t.Key == "") {
		if t.Cert != "" {
			d.report("tls.cert", "set without tls.key; TLS needs both")
		} else {
			d.report("tls.key", "set without tls.cert; TLS needs both")
		}
	}
	dir := filepath.Dir(d.file)
	for _, f := range []struct {
		path string
		v    *string
	}{{"tls.cert", &t.Cert}, {"tls.key", &t.Key}, {"tls.rsa_key", &t.RSAKey}} {
		if *f.v == "" {
			continue
		}
		if !filepath.IsAbs(*f.v) {
			*f.v = filepath.Join(dir, *f.v)
		}
		switch st, err := os.Stat(*f.v); {
		case errors.Is(err, os.ErrNotExist):
			d.report(f.path, "file %q does not exist", *f.v)
		case err != nil:
			d.report(f.path, "%v", err)
		case st.IsDir():
			d.report(f.path, "%q is a directory, not a file", *f.v)
		}
	}
}

func (d *decoder) checkSlowQuery(s *SlowQuery) {
	if s.MaxQueryLength < 0 {
		d.report("slow_query.max_query_length", "must not be negative, got %d (0 leaves the query text out)", s.MaxQueryLength)
	}
	switch {
	case s.File == "":
		d.report("slow_query.file", "must not be empty: write %q or a file path", SlowQueryStderr)
		return
	case s.File == SlowQueryStderr:
		return
	case !filepath.IsAbs(s.File):
		s.File = filepath.Join(filepath.Dir(d.file), s.File)
	}
	if !s.Enabled() {
		return // the file is not opened: nothing to check
	}
	if st, err := os.Stat(s.File); err == nil && st.IsDir() {
		d.report("slow_query.file", "%q is a directory, not a file", s.File)
		return
	}
	switch st, err := os.Stat(filepath.Dir(s.File)); {
	case errors.Is(err, os.ErrNotExist):
		d.report("slow_query.file", "directory %q does not exist", filepath.Dir(s.File))
	case err != nil:
		d.report("slow_query.file", "%v", err)
	case !st.IsDir():
		d.report("slow_query.file", "%q is not a directory", filepath.Dir(s.File))
	}
}

func (d *decoder) checkGraphite(g Graphite) {
	if g.Address != "" {
		if err := checkAddr(g.Address, 1); err != nil {
			d.report("graphite.address", "%v", err)
		}
	}
	if g.Prefix != "" && !validGraphitePrefix(g.Prefix) {
		d.report("graphite.prefix", "%q must be names of letters, digits, '_' and '-' joined by single dots, e.g. \"prod.sluice\"", g.Prefix)
	}
	if g.Interval < minGraphiteInterval {
		d.report("graphite.interval", "must be at least %v (Graphite keeps at most one point a second), got %v", minGraphiteInterval, g.Interval)
	}
}

func validGraphitePrefix(p string) bool {
	for part := range strings.SplitSeq(p, ".") {
		if part == "" || strings.ContainsFunc(part, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}) {
			return false
		}
	}
	return true
}

// checkFailover places failover.Section's problems and adds the checks
// that need the loader: state_file is resolved against the config file's
// directory, the replication password and the hooks token are read from
// the environment, and auto is weighed against the servers.
func (d *decoder) checkFailover(c *Config, getenv func(string) string) {
	f := &c.Failover
	d.checkStateFile(f)
	d.reportAll(f.Section.Validate("failover"))
	r := &f.Replication
	switch {
	case r.User != "":
		r.secret = d.password("failover.replication", "the replication account", r.Password, r.PasswordEnv, getenv)
	case f.Auto:
		if !d.failedAt("failover.auto") && !d.failedAt("failover.replication.user") {
			d.errorf(d.pos("failover.auto"), "failover.auto needs failover.replication.user: the account replicas use to connect to the new primary")
		}
	case r.Password != "" || r.PasswordEnv != "":
		d.report("failover.replication.user", "required when a password is given: the account replicas use to connect to the new primary")
	}
	if f.Auto && len(c.Servers) > 0 && !slices.ContainsFunc(c.Servers, func(s Server) bool { return !s.NoPromotion }) {
		d.report("failover.auto", "every server has no_promotion; nothing could be promoted")
	}
	d.checkHooks(&f.Hooks, getenv)
}

// checkStateFile resolves a relative state_file against the config file's
// directory, as for tls and slow_query.file. The directory is not required
// to exist yet: only a path that names a directory is refused.
func (d *decoder) checkStateFile(f *Failover) {
	switch {
	case f.StateFile == "":
		d.report("failover.state_file", "state_file must name a file: it keeps the epoch and the primary across restarts")
		return
	case !filepath.IsAbs(f.StateFile):
		f.StateFile = filepath.Join(filepath.Dir(d.file), f.StateFile)
	}
	if st, err := os.Stat(f.StateFile); err == nil && st.IsDir() {
		d.report("failover.state_file", "%q is a directory, not a file", f.StateFile)
	}
}

func (d *decoder) checkHooks(h *Hooks, getenv func(string) string) {
	if h.Timeout <= 0 {
		d.report("failover.hooks.timeout", "must be greater than 0: a hook that hangs must not hold up a failover")
	}
	switch {
	case h.Token != "" && h.TokenEnv != "":
		d.report("failover.hooks.token", "both token and token_env are set; keep one")
	case h.TokenEnv != "":
		if v := getenvOrEmpty(getenv, h.TokenEnv); v != "" {
			h.secret = &v
		} else {
			d.report("failover.hooks.token_env", "environment variable %q is not set or is empty", h.TokenEnv)
		}
	}
	// hooks.Config.Validate is the one definition of a valid command and
	// webhook; its messages are placed at the key they are about. The
	// timeout is checked above, with the stricter rule.
	err := hooks.Config{Command: h.Command, Webhook: h.Webhook}.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		msg := strings.TrimPrefix(e.Error(), "hooks: ")
		path := "failover.hooks"
		for _, key := range []string{"command", "webhook"} {
			if rest, ok := strings.CutPrefix(msg, key); ok {
				path, msg = "failover.hooks."+key, strings.TrimLeft(rest, ": ")
				break
			}
		}
		d.report(path, "%s", msg)
	}
}
