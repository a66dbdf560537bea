package config

import "github.com/sluice-proxy/sluice/internal/confval"

// The scalar types live in confval, where the packages owning a section
// can use them without importing config.
type (
	Duration = confval.Duration
	ByteSize = confval.ByteSize
)

// ParseByteSize parses "1048576", "64MiB", "16M", "1 G"; see
// confval.ParseByteSize.
func ParseByteSize(s string) (ByteSize, error) { return confval.ParseByteSize(s) }
