package config

// MoveCredentials returns the account online moves log in with to the
// source and target primaries: `moves:` when it names a user, else the
// monitor's. It needs SELECT on the moved objects on the source and, on
// the target, ALL on them plus SUPER, REPLICATION SLAVE ADMIN and BINLOG
// MONITOR (it creates the copy and a named replication connection). The
// target's replication connection logs in to the source with the
// source cluster's failover.replication account.
func (c *Config) MoveCredentials() (user, password string) {
	if c.Moves.User != "" {
		return c.Moves.User, c.Moves.Secret()
	}
	return c.Monitor.User, c.Monitor.Secret()
}

func (d *decoder) checkMoves(c *Config, getenv func(string) string) {
	m := &c.Moves
	if m.User == "" {
		if m.Password != "" || m.PasswordEnv != "" {
			d.report("moves.user", "required when moves.password or moves.password_env is set")
		}
		return
	}
	m.secret = d.password("moves", "the move account", m.Password, m.PasswordEnv, getenv)
}
