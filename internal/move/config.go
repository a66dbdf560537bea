package move

import (
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// Config is the `moves:` section: how sluice runs online moves between
// clusters. Keys left zero take their defaults where they are used, so
// the admin API shows what the file wrote.
type Config struct {
	// User and Password (or PasswordEnv) are the account the mover logs
	// in with to the source and target primaries; default: the monitor's.
	// It needs SELECT on the moved objects on the source and, on the
	// target, ALL on them plus SUPER, REPLICATION SLAVE ADMIN and BINLOG
	// MONITOR (it creates the copy and a named replication connection).
	// The target's replication connection logs in to the source with the
	// source cluster's failover.replication account.
	User        string `yaml:"user" json:"user"`
	Password    string `yaml:"password" json:"password"`
	PasswordEnv string `yaml:"password_env" json:"password_env"`
	// HoldTimeout bounds one cutover attempt: how long the moved
	// objects' statements may wait for statements in flight and for the
	// target to apply the source's last changes (default 800ms; the
	// CHECKSUM TABLE comparison comes on top). An attempt that runs out
	// releases them, catches up and tries again (5 attempts).
	HoldTimeout confval.Duration `yaml:"hold_timeout" json:"hold_timeout"`
	// BatchRows is the rows per INSERT of the snapshot copy (default 1000).
	BatchRows int `yaml:"batch_rows" json:"batch_rows"`
}

// DefaultHoldTimeout is moves.hold_timeout's default: a cutover attempt
// holds the moved objects' statements for less than a second. It is
// stricter than Options' fallback, which serves callers without a config.
const DefaultHoldTimeout = 800 * time.Millisecond

// HoldTimeoutOrDefault is HoldTimeout, or DefaultHoldTimeout when the
// file leaves it out (or writes 0s).
func (c Config) HoldTimeoutOrDefault() time.Duration {
	if c.HoldTimeout > 0 {
		return c.HoldTimeout.D()
	}
	return DefaultHoldTimeout
}

// Validate checks the section written at prefix ("moves"). Resolving
// password_env is left to the loader, which reads the environment.
func (c Config) Validate(prefix string) []confval.Problem {
	var ps []confval.Problem
	if c.HoldTimeout < 0 {
		ps = append(ps, confval.Problemf(prefix+".hold_timeout", "must not be negative, got %v", c.HoldTimeout.D()))
	}
	if c.BatchRows < 0 {
		ps = append(ps, confval.Problemf(prefix+".batch_rows", "must not be negative, got %d", c.BatchRows))
	}
	if c.User == "" && (c.Password != "" || c.PasswordEnv != "") {
		ps = append(ps, confval.Problemf(prefix+".user", "required when %[1]s.password or %[1]s.password_env is set", prefix))
	}
	return ps
}
