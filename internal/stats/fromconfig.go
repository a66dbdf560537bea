package stats

import (
	"io"

	"github.com/sluice-proxy/sluice/internal/config"
)

// OptionsFromConfig returns the Options a configuration asks for. slowLog
// is the writer OpenSlowLog returned for c.SlowQuery.File; it is ignored
// (and may be nil) when the slow log is off. The caller opens and closes
// it, so that a reload can swap files (see Update).
func OptionsFromConfig(c *config.Config, slowLog io.Writer) Options {
	o := Options{
		MaxDigests:     c.Digests.Max,
		SlowThreshold:  c.SlowQuery.Threshold.D(),
		MaxQueryLength: c.SlowQuery.MaxQueryLength,
	}
	if c.SlowQuery.Enabled() {
		o.SlowLog = slowLog
	}
	if o.MaxQueryLength == 0 {
		o.MaxQueryLength = -1 // config: 0 leaves the text out; Options: 0 is the default
	}
	return o
}
