package confval

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size written as 1048576, "64MiB", "16M", "1G". Every unit
// is a binary multiple, as in MySQL: K, KB and KiB all mean 1024.
type ByteSize int64

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
		return fmt.Errorf("must be a size like 1048576 or \"64MiB\", got %s", Describe(n))
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
