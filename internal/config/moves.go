package config

import (
	"time"

	"github.com/sluice-proxy/sluice/internal/move"
)

// Moves is the `moves:` section; see move.Config.
type Moves = move.Config

// DefaultMoveHoldTimeout is moves.hold_timeout's default.
const DefaultMoveHoldTimeout = move.DefaultHoldTimeout

// MoveCredentials returns the account online moves log in with:
// `moves:` when it names a user, else the monitor's.
func (c *Config) MoveCredentials() (user, password string) {
	if c.Moves.User != "" {
		pw := c.Moves.Password
		if c.movesSecret != nil {
			pw = *c.movesSecret
		}
		return c.Moves.User, pw
	}
	return c.Monitor.User, c.Monitor.Secret()
}

// MoveHoldTimeout is moves.hold_timeout with its default.
func (c *Config) MoveHoldTimeout() time.Duration { return c.Moves.HoldTimeoutOrDefault() }

// checkMoves places move.Config's problems and resolves the password,
// which needs the environment and the decoder's record of failed keys.
func (d *decoder) checkMoves(c *Config, getenv func(string) string) {
	m := &c.Moves
	d.reportAll(m.Validate("moves"))
	if m.User == "" {
		return
	}
	c.movesSecret = d.password("moves", "the move account", m.Password, m.PasswordEnv, getenv)
}
