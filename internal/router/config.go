package router

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// Config is the `routing:` section, and a cluster's override of it: the
// read/write split policy as written in the file. The proxy turns it into
// a Policy.
type Config struct {
	MaxReplicationLag confval.Duration `yaml:"max_replication_lag" json:"max_replication_lag"` // default 5s; 0 disables the check
	ReadFallback      string           `yaml:"read_fallback" json:"read_fallback"`             // primary (default) | error
	Balance           string           `yaml:"balance" json:"balance"`                         // least-connections (default) | round-robin | weighted
	// Consistency says which writes a read must see: eventual (none in
	// particular), session (default: the session's own, by GTID) or
	// global (every write committed through this sluice before the read).
	Consistency string `yaml:"consistency" json:"consistency"`
	// CausalTimeout bounds how long a read waits for a replica to apply
	// the GTID it needs; then it goes to the primary, or fails when
	// CausalFallback is error.
	CausalTimeout  confval.Duration `yaml:"causal_timeout" json:"causal_timeout"`   // default 1s; must be > 0
	CausalFallback string           `yaml:"causal_fallback" json:"causal_fallback"` // primary (default) | error
	// ReadYourWrites, the older knob, sends a session's reads to the
	// primary for this long after it wrote, whatever the consistency.
	// YAML accepts true (2s), false (the default: off), or a duration.
	ReadYourWrites ReadYourWrites `yaml:"read_your_writes" json:"read_your_writes"`
	// HeartbeatTable (db.table) switches lag measurement from
	// Seconds_Behind_Master to a pt-heartbeat-compatible table, for
	// sub-second precision. The monitor writes the primary's row itself
	// (REPLACE of ts and server_id), so no pt-heartbeat daemon is needed;
	// the table must exist with at least columns ts VARCHAR(26) and
	// server_id INT UNSIGNED PRIMARY KEY.
	HeartbeatTable string `yaml:"heartbeat_table" json:"heartbeat_table"`
}

// Values of the enumerated keys.
const (
	FallbackPrimary = "primary" // read_fallback: send reads to the primary when no replica can take them
	FallbackError   = "error"   // read_fallback: fail such reads instead

	ConsistencyEventual = "eventual"
	ConsistencySession  = "session"
	ConsistencyGlobal   = "global"

	BalanceRoundRobin       = "round-robin"
	BalanceLeastConnections = "least-connections"
	BalanceWeighted         = "weighted"
)

// DefaultConfig is the policy of a file that leaves routing out.
func DefaultConfig() Config {
	return Config{
		MaxReplicationLag: confval.Duration(5 * time.Second),
		ReadFallback:      FallbackPrimary,
		Balance:           BalanceLeastConnections,
		Consistency:       ConsistencySession,
		CausalTimeout:     confval.Duration(time.Second),
		CausalFallback:    FallbackPrimary,
	}
}

// Validate checks the section written at prefix ("routing",
// "clusters[0].routing").
func (c Config) Validate(prefix string) []confval.Problem {
	var ps []confval.Problem
	ps = append(ps, confval.OneOf(prefix+".read_fallback", c.ReadFallback, FallbackPrimary, FallbackError)...)
	ps = append(ps, confval.OneOf(prefix+".balance", c.Balance, BalanceRoundRobin, BalanceLeastConnections, BalanceWeighted)...)
	ps = append(ps, confval.OneOf(prefix+".consistency", c.Consistency, ConsistencyEventual, ConsistencySession, ConsistencyGlobal)...)
	ps = append(ps, confval.OneOf(prefix+".causal_fallback", c.CausalFallback, FallbackPrimary, FallbackError)...)
	if c.CausalTimeout <= 0 {
		ps = append(ps, confval.Problemf(prefix+".causal_timeout", "must be > 0, got %s", c.CausalTimeout))
	}
	// The monitor writes the name into its SQL unquoted.
	if t := c.HeartbeatTable; t != "" {
		db, table, ok := strings.Cut(t, ".")
		if !ok || !confval.PlainName(db) || !confval.PlainName(table) {
			ps = append(ps, confval.Problemf(prefix+".heartbeat_table", "%q must be written db.table (letters, digits, '_', '-')", t))
		}
	}
	return ps
}

// ReadYourWrites is the read-after-write window; zero means off.
type ReadYourWrites struct {
	Window time.Duration
}

// defaultReadYourWrites is what "read_your_writes: true" means. Absent,
// the window is off: routing.consistency does its job by GTID.
const defaultReadYourWrites = 2 * time.Second

// String is "off" for a zero window, else the window as a duration.
func (r ReadYourWrites) String() string {
	if r.Window == 0 {
		return "off"
	}
	return confval.Duration(r.Window).String()
}

// UnmarshalYAML accepts true (the default 2s window), false (off) or a
// duration ("500ms"; "0s" is off as well).
func (r *ReadYourWrites) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var on bool
		if err := n.Decode(&on); err != nil {
			return err
		}
		r.Window = 0
		if on {
			r.Window = defaultReadYourWrites
		}
		return nil
	}
	switch {
	case n.Kind != yaml.ScalarNode:
	case n.ShortTag() == "!!str", n.ShortTag() == "!!int", n.ShortTag() == "!!float":
		// Duration's syntax and messages, a bare number included.
		var d confval.Duration
		if err := d.UnmarshalYAML(n); err != nil {
			return err
		}
		r.Window = d.D()
		return nil
	}
	return fmt.Errorf("must be true, false or a duration like \"500ms\", got %s", confval.Describe(n))
}

// MarshalYAML writes false for off, else the window.
func (r ReadYourWrites) MarshalYAML() (any, error) {
	if r.Window == 0 {
		return false, nil
	}
	return confval.Duration(r.Window).String(), nil
}

// MarshalText writes "off" or the window.
func (r ReadYourWrites) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText accepts what MarshalText writes, plus "true" and "false".
func (r *ReadYourWrites) UnmarshalText(t []byte) error {
	switch s := strings.TrimSpace(string(t)); s {
	case "true":
		r.Window = defaultReadYourWrites
	case "false", "off":
		r.Window = 0
	default:
		var d confval.Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			return err
		}
		r.Window = d.D()
	}
	return nil
}
