package failover

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

func TestSectionValidate(t *testing.T) {
	if ps := DefaultSection().Validate("failover"); ps != nil {
		t.Errorf("defaults: %v", ps)
	}
	s := DefaultSection()
	s.MaxCatchup, s.DrainTimeout, s.ReplayMaxSize = 0, s.HoldTimeout, 512
	want := []confval.Problem{
		{Path: "failover.max_catchup", Message: "must be greater than 0: a candidate that never catches up must not stall the failover"},
		{Path: "failover.drain_timeout", Message: "must be less than failover.hold_timeout (10s), got 10s: writes are held while transactions drain"},
		{Path: "failover.replay_max_size", Message: "must be between 1KiB and 1GiB, got 512B: it is kept per open transaction"},
	}
	if ps := s.Validate("failover"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v\nwant %+v", ps, want)
	}
	// With no hold limit, the drain limit cannot be weighed against it:
	// only the missing hold limit is reported.
	s = DefaultSection()
	s.HoldTimeout = 0
	want = []confval.Problem{{Path: "failover.hold_timeout", Message: "must be greater than 0: held writes need a limit"}}
	if ps := s.Validate("failover"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v\nwant %+v", ps, want)
	}
}

// A cluster's section is checked by the same rules, at its own path (its
// replay keys are the top level's: config refuses them in a cluster).
func TestSectionValidateAtAClustersPath(t *testing.T) {
	s := DefaultSection()
	s.HoldTimeout = confval.Duration(2 * time.Second)
	want := []confval.Problem{
		{Path: "clusters[1].failover.drain_timeout", Message: "must be less than clusters[1].failover.hold_timeout (2s), got 5s: writes are held while transactions drain"},
	}
	if ps := s.Validate("clusters[1].failover"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v\nwant %+v", ps, want)
	}
}
