package backend

import (
	"reflect"
	"testing"

	"github.com/sluice-proxy/sluice/internal/confval"
)

func TestPoolConfigValidate(t *testing.T) {
	if ps := DefaultPoolConfig().Validate("pool"); ps != nil {
		t.Errorf("defaults: %v", ps)
	}
	// Zero keeps no idle connection and sets no limit: all valid.
	if ps := (PoolConfig{}).Validate("pool"); ps != nil {
		t.Errorf("zero: %v", ps)
	}
	want := []confval.Problem{{Path: "pool.max_idle", Message: "must not be negative, got -1"}}
	if ps := (PoolConfig{MaxIdle: -1}).Validate("pool"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v, want %+v", ps, want)
	}
}
