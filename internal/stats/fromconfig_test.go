package stats

import (
	"os"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
)

func TestOptionsFromConfig(t *testing.T) {
	c := config.Default()
	o := OptionsFromConfig(c, os.Stderr)
	if o.MaxDigests != 1000 || o.SlowThreshold != time.Second || o.SlowLog != os.Stderr || o.MaxQueryLength != 1024 {
		t.Errorf("defaults: %+v", o)
	}
	c.Digests.Max = 10
	c.SlowQuery.MaxQueryLength = 0
	if o := OptionsFromConfig(c, os.Stderr); o.MaxQueryLength >= 0 || o.MaxDigests != 10 {
		t.Errorf("max_query_length 0 must leave the text out: %+v", o)
	}
	c.SlowQuery.Threshold = 0
	if o := OptionsFromConfig(c, os.Stderr); o.SlowLog != nil || o.SlowThreshold != 0 {
		t.Errorf("threshold 0s must turn the slow log off: %+v", o)
	}
}
