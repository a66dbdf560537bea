package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The scalar types below implement yaml.Unmarshaler so that Parse's walker
// (and anyone decoding a Config with yaml.v3 directly) gets the same
// syntax. Their errors carry no key path: the caller adds it, because only
// the caller knows where the value sits. MarshalText makes the admin API's
// JSON show "1s" and "64MiB" instead of raw nanoseconds and bytes.

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
		return 0, fmt.Errorf("must be a duration like \"1s\", got %s", describe(n))
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return 0, noUnit(n.Value)
	case "!!str":
		return parseDuration(n.Value)
	default:
		return 0, fmt.Errorf("must be a duration like \"1s\", got %s", describe(n))
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

// Binary multiples for every spelling: MySQL's max_allowed_packet=64M means
// 64 MiB, and a proxy that read "64MB" as 64,000,000 would refuse packets
// the server behind it accepts.
var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
}

// String formats b with the largest binary unit that divides it exactly, so
// that String and parsing round-trip: 67108864 is "64MiB", 1000 is "1000B".
func (b ByteSize) String() string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML accepts a byte count (1048576) or a number with a unit:
// K, KB, KiB, M, MB, MiB, G, GB, GiB (case-insensitive). All of them are
// binary multiples, as in MySQL.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		return fmt.Errorf("must be a size like 1048576 or \"64MiB\", got %s", describe(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML writes the same syntax UnmarshalYAML reads.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// MarshalText writes the same syntax UnmarshalText reads.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the syntax of ParseByteSize.
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := ParseByteSize(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseByteSize parses "1048576", "64MiB", "16M", "1 G". Every unit is a
// binary multiple (K = KB = KiB = 1024).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q (write bytes, or a number with K, M or G, e.g. \"64MiB\")", s)
	}
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use K, KB, KiB, M, MB, MiB, G, GB or GiB)", s, strings.TrimSpace(t[i:]))
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * unit), nil
}

// defaultReadYourWrites is what "read_your_writes: true" means. Absent,
// the window is off: routing.consistency does its job by GTID.
const defaultReadYourWrites = 2 * time.Second

// String is "off" for a zero window, else the window as a duration.
func (r ReadYourWrites) String() string {
	if r.Window == 0 {
		return "off"
	}
	return Duration(r.Window).String()
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
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
			return noUnit(n.Value)
		}
		return fmt.Errorf("must be true, false or a duration like \"500ms\", got %s", describe(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	r.Window = v
	return nil
}

// MarshalYAML writes false for off, else the window.
func (r ReadYourWrites) MarshalYAML() (any, error) {
	if r.Window == 0 {
		return false, nil
	}
	return Duration(r.Window).String(), nil
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
		v, err := parseDuration(s)
		if err != nil {
			return err
		}
		r.Window = v
	}
	return nil
}

// describe names what a node holds without quoting its value: the value
// may be a password.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "no value"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a value tagged " + n.Tag
}
