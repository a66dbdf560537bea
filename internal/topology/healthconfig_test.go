package topology

import (
	"reflect"
	"testing"

	"github.com/sluice-proxy/sluice/internal/confval"
)

func TestHealthConfigValidate(t *testing.T) {
	if ps := DefaultHealthConfig().Validate("health"); ps != nil {
		t.Errorf("defaults: %v", ps)
	}
	h := DefaultHealthConfig()
	h.Timeout, h.Fall = 0, 0
	want := []confval.Problem{
		{Path: "clusters[1].health.timeout", Message: "must be greater than 0"},
		{Path: "clusters[1].health.fall", Message: "must be at least 1, got 0"},
	}
	if ps := h.Validate("clusters[1].health"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v, want %+v", ps, want)
	}
}
