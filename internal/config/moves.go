package config

import "time"

// Moves is the `moves:` section: how sluice runs online moves between
// clusters.
type Moves struct {
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
	HoldTimeout Duration `yaml:"hold_timeout" json:"hold_timeout"`
	// BatchRows is the rows per INSERT of the snapshot copy (default 1000).
	BatchRows int `yaml:"batch_rows" json:"batch_rows"`

	secret *string
}

// DefaultMoveHoldTimeout is moves.hold_timeout's default: a cutover
// attempt holds the moved objects' statements for less than a second.
const DefaultMoveHoldTimeout = 800 * time.Millisecond

// MoveCredentials returns the account online moves log in with:
// `moves:` when it names a user, else the monitor's.
func (c *Config) MoveCredentials() (user, password string) {
	if c.Moves.User != "" {
		pw := c.Moves.Password
		if c.Moves.secret != nil {
			pw = *c.Moves.secret
		}
		return c.Moves.User, pw
	}
	return c.Monitor.User, c.Monitor.Secret()
}

// MoveHoldTimeout is moves.hold_timeout with its default.
func (c *Config) MoveHoldTimeout() time.Duration {
	if c.Moves.HoldTimeout > 0 {
		return c.Moves.HoldTimeout.D()
	}
	return DefaultMoveHoldTimeout
}

func (d *decoder) checkMoves(c *Config, getenv func(string) string) {
	m := &c.Moves
	if m.HoldTimeout < 0 {
		d.report("moves.hold_timeout", "must not be negative, got %v", m.HoldTimeout.D())
	}
	if m.BatchRows < 0 {
		d.report("moves.batch_rows", "must not be negative, got %d", m.BatchRows)
	}
	if m.User == "" {
		if m.Password != "" || m.PasswordEnv != "" {
			d.report("moves.user", "required when moves.password or moves.password_env is set")
		}
		return
	}
	m.secret = d.password("moves", "the move account", m.Password, m.PasswordEnv, getenv)
}
