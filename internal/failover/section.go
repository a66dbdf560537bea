package failover

import (
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// Section is the `failover:` section as the file writes it, and a
// cluster's override of it. It is not what a Manager runs with: Config is
// that, built by the proxy from a Section together with the cluster's
// servers, the monitor's account, the replication account and the hooks.
// The replication account and the hooks stay with the config loader,
// which resolves their password and token from the environment; config
// composes them with this.
type Section struct {
	// Auto promotes a replica when the primary is lost (down for fall
	// checks and confirmed by the replicas). Default false: sluice then
	// only reports the loss, and an operator triggers the failover.
	Auto bool `yaml:"auto" json:"auto"`
	// StateFile keeps the current epoch, its primary and the fenced
	// servers across restarts, default sluice-state.json, relative to the
	// config file's directory.
	StateFile string `yaml:"state_file" json:"state_file"`
	// MaxLag refuses a candidate whose replication lag, last measured
	// while the primary was up, exceeded this (default 10s); unknown lag
	// counts as over. 0s accepts any lag.
	MaxLag confval.Duration `yaml:"max_lag" json:"max_lag"`
	// MaxCatchup bounds the wait for the candidate to apply the relay log
	// it received (default 30s); past it the failover is refused.
	MaxCatchup confval.Duration `yaml:"max_catchup" json:"max_catchup"`
	// HoldTimeout bounds how long new writes and transactions are held
	// during a switchover or failover (default 10s).
	HoldTimeout confval.Duration `yaml:"hold_timeout" json:"hold_timeout"`
	// DrainTimeout bounds the wait, in a switchover, for transactions
	// already running on the old primary (default 5s, less than
	// hold_timeout); past it they are rolled back with an error.
	DrainTimeout confval.Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// MinInterval forbids a second automatic failover this soon after the
	// previous primary change (default 5m); operators can still trigger one.
	MinInterval confval.Duration `yaml:"min_interval" json:"min_interval"`
	// TransactionReplay replays a transaction cut by a primary change on
	// the new primary, and carries on only if every result the client saw
	// comes out the same there (default true).
	TransactionReplay bool `yaml:"transaction_replay" json:"transaction_replay"`
	// ReplayMaxSize bounds the statement bytes one transaction keeps for
	// a replay (default 1MiB); a bigger transaction is not replayed.
	ReplayMaxSize confval.ByteSize `yaml:"replay_max_size" json:"replay_max_size"`
}

// DefaultStateFile is failover.state_file's default, relative to the config
// file's directory.
const DefaultStateFile = "sluice-state.json"

// Bounds of failover.replay_max_size: below 1KiB hardly a transaction
// fits; above 1GiB a few sessions could hold the machine's memory.
const (
	minReplayMaxSize confval.ByteSize = 1 << 10
	maxReplayMaxSize confval.ByteSize = 1 << 30
)

// DefaultSection is the section of a file that leaves failover out.
func DefaultSection() Section {
	return Section{
		StateFile:    DefaultStateFile,
		MaxLag:       confval.Duration(10 * time.Second),
		MaxCatchup:   confval.Duration(30 * time.Second),
		HoldTimeout:  confval.Duration(10 * time.Second),
		DrainTimeout: confval.Duration(5 * time.Second),
		MinInterval:  confval.Duration(5 * time.Minute),

		// Transaction replay is on: it carries on only when the client
		// cannot tell (see the session package).
		TransactionReplay: true,
		ReplayMaxSize:     1 << 20,
	}
}

// Validate checks the top-level section written at prefix ("failover").
// Zero is meaningful for max_lag (any lag) and min_interval (no pause) but
// not for the bounds checked here; negative durations never get here, as
// Duration's decoder refuses them at their key. state_file is the
// loader's to check: it is resolved against the config file's directory.
func (s Section) Validate(prefix string) []confval.Problem {
	var ps []confval.Problem
	if s.MaxCatchup <= 0 {
		ps = append(ps, confval.Problemf(prefix+".max_catchup", "must be greater than 0: a candidate that never catches up must not stall the failover"))
	}
	if s.HoldTimeout <= 0 {
		ps = append(ps, confval.Problemf(prefix+".hold_timeout", "must be greater than 0: held writes need a limit"))
	}
	switch {
	case s.DrainTimeout <= 0:
		ps = append(ps, confval.Problemf(prefix+".drain_timeout", "must be greater than 0: running transactions need a limit"))
	case s.HoldTimeout > 0 && s.DrainTimeout >= s.HoldTimeout:
		ps = append(ps, confval.Problemf(prefix+".drain_timeout", "must be less than %s.hold_timeout (%v), got %v: writes are held while transactions drain", prefix, s.HoldTimeout, s.DrainTimeout))
	}
	if s.ReplayMaxSize < minReplayMaxSize || s.ReplayMaxSize > maxReplayMaxSize {
		ps = append(ps, confval.Problemf(prefix+".replay_max_size", "must be between %v and %v, got %v: it is kept per open transaction", minReplayMaxSize, maxReplayMaxSize, s.ReplayMaxSize))
	}
	return ps
}
