package session

import (
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// LoginGuard throttles password guessing the way MariaDB's
// max_connect_errors (per host) and max_password_errors (per account) do,
// but with a back-off instead of a block an operator must lift: after
// MaxFailures failed logins in a row, logins from that host (or for that
// account) are refused for Block, doubled with each further failure up to
// MaxBlock. sluice checks passwords itself, so the servers' own limits
// never see these attempts.
type LoginGuard struct {
	mu    sync.Mutex
	set   LoginSettings
	hosts map[string]*failures
	users map[string]*failures // configured accounts only, so the map is bounded

	lastLog    time.Time
	suppressed int
}

// LoginSettings are LoginGuard's limits; MaxFailures 0 turns it off.
type LoginSettings struct {
	MaxFailures     int
	Block, MaxBlock time.Duration
}

type failures struct {
	n     int
	until time.Time // refused until then
	last  time.Time
}

// maxTrackedHosts bounds the host table: past it, entries whose block has
// ended are dropped, and if that is not enough the table starts afresh
// (throttling fails open rather than growing without limit).
const maxTrackedHosts = 10000

// NewLoginGuard returns a guard with these limits.
func NewLoginGuard(s LoginSettings) *LoginGuard {
	return &LoginGuard{set: s, hosts: map[string]*failures{}, users: map[string]*failures{}}
}

// Update changes the limits (reload); counts are kept.
func (g *LoginGuard) Update(s LoginSettings) {
	g.mu.Lock()
	g.set = s
	g.mu.Unlock()
}

// Blocked reports whether a login from host for user must be refused now,
// and for how long still. byHost tells which limit applies.
func (g *LoginGuard) Blocked(host, user string, now time.Time) (wait time.Duration, byHost, blocked bool) {
	if g == nil {
		return 0, false, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set.MaxFailures <= 0 {
		return 0, false, false
	}
	if f := g.hosts[host]; f != nil && now.Before(f.until) {
		return f.until.Sub(now), true, true
	}
	if f := g.users[user]; f != nil && now.Before(f.until) {
		return f.until.Sub(now), false, true
	}
	return 0, false, false
}

// Failed records a failed login; known says whether user is a configured
// account (unknown names count against the host only). It returns the
// host's count of failures in a row.
func (g *LoginGuard) Failed(host, user string, known bool, now time.Time) int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set.MaxFailures <= 0 {
		return 0
	}
	if len(g.hosts) >= maxTrackedHosts && g.hosts[host] == nil {
		for k, f := range g.hosts {
			if !now.Before(f.until) && now.Sub(f.last) > g.set.MaxBlock {
				delete(g.hosts, k)
			}
		}
		if len(g.hosts) >= maxTrackedHosts {
			g.hosts = map[string]*failures{}
		}
	}
	n := g.note(g.hosts, host, now)
	if known {
		g.note(g.users, user, now)
	}
	return n
}

func (g *LoginGuard) note(m map[string]*failures, key string, now time.Time) int {
	f := m[key]
	if f == nil {
		f = &failures{}
		m[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - g.set.MaxFailures; over >= 0 {
		d := g.set.Block
		for i := 0; i < over && d < g.set.MaxBlock; i++ {
			d *= 2
		}
		f.until = now.Add(min(d, g.set.MaxBlock))
	}
	return f.n
}

// Succeeded resets the counts of host and user.
func (g *LoginGuard) Succeeded(host, user string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.hosts, host)
	delete(g.users, user)
	g.mu.Unlock()
}

// logFailure logs a failed login at info level, at most one line a second:
// a flood of guesses must not flood the log too. Lines left out are counted
// in the next one.
func (g *LoginGuard) logFailure(log *slog.Logger, host, user, reason string, inRow int, now time.Time) {
	if g == nil {
		return
	}
	g.mu.Lock()
	if now.Sub(g.lastLog) < time.Second {
		g.suppressed++
		g.mu.Unlock()
		return
	}
	g.lastLog = now
	skipped := g.suppressed
	g.suppressed = 0
	g.mu.Unlock()
	log.Info("login failed", "user", cut(user, maxNameInMessage), "host", host, "reason", reason,
		"failures_in_row", inRow, "not_logged_since_last", skipped)
}

// maxNameInMessage bounds a client-supplied name echoed in an error or a
// log line, as the server cuts its messages: a 60 KB user name must not
// come back whole.
const maxNameInMessage = 200

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
