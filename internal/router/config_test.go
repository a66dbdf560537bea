package router

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/confval"
)

func TestConfigValidate(t *testing.T) {
	if ps := DefaultConfig().Validate("routing"); ps != nil {
		t.Errorf("defaults: %v", ps)
	}
	c := DefaultConfig()
	c.Balance, c.CausalTimeout, c.HeartbeatTable = "weigthed", 0, "heartbeat"
	want := []confval.Problem{
		{Path: "clusters[0].routing.balance", Message: `unknown value "weigthed" (did you mean "weighted"?); allowed: round-robin, least-connections, weighted`},
		{Path: "clusters[0].routing.causal_timeout", Message: "must be > 0, got 0s"},
		{Path: "clusters[0].routing.heartbeat_table", Message: `"heartbeat" must be written db.table (letters, digits, '_', '-')`},
	}
	if ps := c.Validate("clusters[0].routing"); !reflect.DeepEqual(ps, want) {
		t.Errorf("Validate = %+v\nwant %+v", ps, want)
	}
}

func TestReadYourWritesText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"true", 2 * time.Second}, {"false", 0}, {"off", 0}, {"750ms", 750 * time.Millisecond}} {
		var r ReadYourWrites
		if err := r.UnmarshalText([]byte(tc.in)); err != nil || r.Window != tc.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tc.in, r.Window, err, tc.want)
		}
	}
	var r ReadYourWrites
	if err := r.UnmarshalText([]byte("-1s")); err == nil {
		t.Error("negative window accepted")
	}
	b, _ := json.Marshal(struct{ A, B ReadYourWrites }{ReadYourWrites{}, ReadYourWrites{time.Second}})
	if string(b) != `{"A":"off","B":"1s"}` {
		t.Errorf("json = %s", b)
	}
}
