package topology

import (
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// HealthConfig is the `health:` section, and a cluster's override of it:
// the monitor's timing. Rise/Fall follow HAProxy: a server is up after
// Rise good checks in a row and down after Fall bad ones.
type HealthConfig struct {
	Interval confval.Duration `yaml:"interval" json:"interval"` // default 1s; must be > 0
	// Timeout bounds one check, default 1s; must be > 0. It may exceed
	// Interval: checks then simply run back to back.
	Timeout confval.Duration `yaml:"timeout" json:"timeout"`
	Rise    int              `yaml:"rise" json:"rise"` // default 2; at least 1
	Fall    int              `yaml:"fall" json:"fall"` // default 3; at least 1
}

// DefaultHealthConfig is the timing of a file that leaves health out.
func DefaultHealthConfig() HealthConfig {
	return HealthConfig{
		Interval: confval.Duration(time.Second),
		Timeout:  confval.Duration(time.Second),
		Rise:     2,
		Fall:     3,
	}
}

// Validate checks the section written at prefix ("health",
// "clusters[0].health"). Zero is refused for every key: the monitor would
// spin, give up at once, or never change a server's state.
func (h HealthConfig) Validate(prefix string) []confval.Problem {
	var ps []confval.Problem
	if h.Interval <= 0 {
		ps = append(ps, confval.Problemf(prefix+".interval", "must be greater than 0"))
	}
	if h.Timeout <= 0 {
		ps = append(ps, confval.Problemf(prefix+".timeout", "must be greater than 0"))
	}
	if h.Rise < 1 {
		ps = append(ps, confval.Problemf(prefix+".rise", "must be at least 1, got %d", h.Rise))
	}
	if h.Fall < 1 {
		ps = append(ps, confval.Problemf(prefix+".fall", "must be at least 1, got %d", h.Fall))
	}
	return ps
}
