package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/move"
)

// TestStartMoveRefusals checks what StartMove refuses before it looks at
// any server (the moves themselves run against real clusters in e2e).
func TestStartMoveRefusals(t *testing.T) {
	yaml := `listen: 127.0.0.1:0
http_listen: ""
users: [{name: app, password: x}]
monitor: {user: mon, password: x}
failover: {state_file: ` + filepath.Join(t.TempDir(), "state.json") + `}
clusters:
  - {name: c1, servers: [{name: a1, address: "127.0.0.1:1"}]}
  - {name: c2, servers: [{name: b1, address: "127.0.0.1:2"}]}
placement:
  default_cluster: c1
  databases: [{name: shop, cluster: c2}]
  tables: [{database: app, tables: "bucket_{0000..0003}", cluster: c2}]
`
	cfg, err := config.Parse([]byte(yaml), "test.yaml", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		objs []string
		to   string
		want error
		msg  string
	}{
		{[]string{"shop"}, "c9", move.ErrNotFound, "no cluster named"},
		{[]string{"app.t{1.."}, "c2", move.ErrInvalid, "without"},
		{[]string{"mysql"}, "c2", move.ErrInvalid, "system database"},
		{[]string{"shop"}, "c2", move.ErrRefused, "already on cluster c2"},
		{[]string{"shop", "blog"}, "c2", move.ErrRefused, "one move takes objects from one cluster"},
		{[]string{"app"}, "c2", move.ErrRefused, "tables placed apart"},
		{[]string{"app.bucket_{0000..0001}"}, "c1", move.ErrRefused, "no primary"},
	} {
		_, err := p.StartMove(c.objs, c.to)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("StartMove(%v, %s) = %v, want %v mentioning %q", c.objs, c.to, err, c.want, c.msg)
		}
	}
	if l := p.Moves(); len(l) != 0 {
		t.Errorf("refused moves are listed: %v", l)
	}
	if _, err := p.CancelMove("m1"); !errors.Is(err, move.ErrNotFound) {
		t.Errorf("CancelMove(m1) = %v, want ErrNotFound", err)
	}
}
