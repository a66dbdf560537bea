// Package hooks tells the outside world about topology changes: it runs the
// configured command and/or POSTs to the configured webhook for every
// failover, switchover, rejoin, and refused failover — for example to move a
// low-TTL DNS record or page someone.
//
// The failover manager calls Run twice per change, with Phase "pre" before
// traffic moves and "post" after. A failing "pre" hook aborts a planned
// switchover; for an automatic failover, the caller decides (the primary is
// already gone) and logs the failure.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Event kinds.
const (
	KindFailover   = "failover"
	KindSwitchover = "switchover"
	KindRejoin     = "rejoin"
	KindRefused    = "refused" // an automatic failover was refused
)

// Event phases.
const (
	PhasePre  = "pre"
	PhasePost = "post"
)

// DefaultTimeout bounds each hook when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// outputLimit bounds the command output and webhook response body kept for
// error messages.
const outputLimit = 4 << 10

// Event is one topology change. It is the webhook's JSON body, and the
// command's SLUICE_* environment.
type Event struct {
	Kind       string    `json:"kind"`  // KindFailover, KindSwitchover, KindRejoin, KindRefused
	Phase      string    `json:"phase"` // PhasePre or PhasePost
	OldPrimary string    `json:"old_primary"`
	NewPrimary string    `json:"new_primary"`
	OldAddress string    `json:"old_address"`
	NewAddress string    `json:"new_address"`
	Epoch      uint64    `json:"epoch"`
	Reason     string    `json:"reason"`
	Time       time.Time `json:"time"`
	// Cluster names the cluster whose primary changed when sluice fronts
	// several (SLUICE_CLUSTER); empty with one.
	Cluster string `json:"cluster,omitempty"`
}

// Config says what to run. The zero Config runs nothing.
type Config struct {
	// Command is an argv, run directly (no shell); empty for none. It gets
	// the environment of sluice plus SLUICE_EVENT, SLUICE_PHASE,
	// SLUICE_OLD_PRIMARY, SLUICE_NEW_PRIMARY, SLUICE_OLD_ADDRESS,
	// SLUICE_NEW_ADDRESS, SLUICE_EPOCH, SLUICE_REASON and SLUICE_TIME
	// (RFC 3339, UTC). Exit status 0 is success.
	Command []string
	// Webhook is an http or https URL POSTed the Event as JSON; empty for
	// none. A 2xx response is success; redirects are not followed.
	Webhook string
	// Timeout bounds each of the command and the webhook (DefaultTimeout
	// when 0). A command still running then is killed with its process
	// group.
	Timeout time.Duration
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
}

// Validate reports configuration mistakes, for `sluice check`.
func (c Config) Validate() error {
	var errs []error
	if len(c.Command) > 0 && c.Command[0] == "" {
		errs = append(errs, errors.New("hooks: command: empty program name"))
	}
	if c.Webhook != "" {
		u, err := url.Parse(c.Webhook)
		switch {
		case err != nil:
			// url.Error repeats the URL, secrets included.
			if ue := (*url.Error)(nil); errors.As(err, &ue) {
				err = ue.Err
			}
			errs = append(errs, fmt.Errorf("hooks: webhook URL: %w", err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("hooks: webhook %s: scheme must be http or https", redact(u)))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("hooks: webhook %s: no host", redact(u)))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("hooks: timeout %s is negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// Run runs the command, then the webhook, whichever are configured, each
// within the timeout and ctx, and waits for them. Both run even if the
// first fails. It returns nil when all succeeded; otherwise the command's
// error first, then the webhook's (errors.Join). An invalid Config runs
// nothing and returns Validate's error. A zero ev.Time is set to now.
func Run(ctx context.Context, cfg Config, ev Event) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	var errs []error
	if len(cfg.Command) > 0 {
		if err := runCommand(ctx, cfg, ev); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Webhook != "" {
		if err := postWebhook(ctx, cfg, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// redact prints a URL without its password and query, which may hold
// secrets.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	return c.Redacted()
}
