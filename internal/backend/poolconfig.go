package backend

import (
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// PoolConfig is the `pool:` section: how the per-server pools keep idle
// connections. The proxy turns it into each pool's Settings, together
// with the server's max_connections and the timeouts.
type PoolConfig struct {
	MaxIdle     int              `yaml:"max_idle" json:"max_idle"`         // idle connections kept per server and user, default 64
	IdleTimeout confval.Duration `yaml:"idle_timeout" json:"idle_timeout"` // default 60s; 0 keeps idle connections forever
	MaxLifetime confval.Duration `yaml:"max_lifetime" json:"max_lifetime"` // default 1h; 0 means no limit
}

// DefaultPoolConfig is the section of a file that leaves pool out.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{
		MaxIdle:     64,
		IdleTimeout: confval.Duration(60 * time.Second),
		MaxLifetime: confval.Duration(time.Hour),
	}
}

// Validate checks the section written at prefix ("pool"). Zero is valid
// for every key (no idle connections kept, no idle or lifetime limit), and
// negative durations are refused by Duration's decoder at their key.
func (c PoolConfig) Validate(prefix string) []confval.Problem {
	if c.MaxIdle < 0 {
		return []confval.Problem{confval.Problemf(prefix+".max_idle", "must not be negative, got %d", c.MaxIdle)}
	}
	return nil
}
