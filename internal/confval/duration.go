package confval

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The scalar types of this package implement yaml.Unmarshaler so that the
// config loader's walker (and anyone decoding a section with yaml.v3
// directly) gets the same syntax. Their errors carry no key path: the
// caller adds it, because only the caller knows where the value sits.
// MarshalText makes the admin API's JSON show "1s" and "64MiB" instead of
// raw nanoseconds and bytes.

// Duration is a time.Duration written as "1s", "250ms" in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d the way a user would write it: "1s", "1m30s", "8h"
// rather than time.Duration's "8h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// UnmarshalYAML accepts Go duration syntax ("1s", "250ms", "1m30s").
// A bare number is refused rather than guessed at: "5" could mean seconds
// or milliseconds, and the wrong guess is off by a factor of 1000.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDurationNode(n)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the same syntax UnmarshalYAML reads.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes the same syntax UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func parseDurationNode(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("must be a duration like \"1s\", got %s", Describe(n))
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return 0, noUnit(n.Value)
	case "!!str":
		return parseDuration(n.Value)
	default:
		return 0, fmt.Errorf("must be a duration like \"1s\", got %s", Describe(n))
	}
}

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil {
			return 0, noUnit(s)
		}
		return 0, fmt.Errorf("invalid duration %q (use Go syntax: \"1s\", \"250ms\", \"1m30s\")", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return v, nil
}

func noUnit(v string) error {
	v = strings.TrimSpace(v)
	return fmt.Errorf("duration %s has no unit: write %q or %q", v, v+"s", v+"ms")
}
