package move

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

func TestConfigValidate(t *testing.T) {
	if ps := (Config{}).Validate("moves"); ps != nil {
		t.Errorf("zero config: %v", ps)
	}
	c := Config{BatchRows: -1, PasswordEnv: "MOVER_PW"}
	want := []confval.Problem{
		{Path: "moves.batch_rows", Message: "must not be negative, got -1"},
		{Path: "moves.user", Message: "required when moves.password or moves.password_env is set"},
	}
	if ps := c.Validate("moves"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v\nwant %+v", ps, want)
	}
}

func TestHoldTimeoutOrDefault(t *testing.T) {
	if got := (Config{}).HoldTimeoutOrDefault(); got != DefaultHoldTimeout {
		t.Errorf("unset: %v", got)
	}
	if got := (Config{HoldTimeout: confval.Duration(time.Second)}).HoldTimeoutOrDefault(); got != time.Second {
		t.Errorf("1s: %v", got)
	}
}
