package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestListenTakesOneAddressOrAList(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string
		json string
	}{
		{"listen: 127.0.0.1:4040", "127.0.0.1:4040", `"127.0.0.1:4040"`},
		{"listen: /run/sluice/sluice.sock", "/run/sluice/sluice.sock", `"/run/sluice/sluice.sock"`},
		{"listen: [127.0.0.1:4040, /tmp/sluice.sock]", "127.0.0.1:4040, /tmp/sluice.sock", `["127.0.0.1:4040","/tmp/sluice.sock"]`},
		{"listen:\n  - \":4040\"\n  - /tmp/a.sock\n  - /tmp/b.sock", ":4040, /tmp/a.sock, /tmp/b.sock", `[":4040","/tmp/a.sock","/tmp/b.sock"]`},
	} {
		c := mustParse(t, doc(U, M, S, tc.yaml), nil)
		if got := c.Listen.String(); got != tc.want {
			t.Errorf("%q: listen = %q, want %q", tc.yaml, got, tc.want)
		}
		if b, _ := json.Marshal(c.Listen); string(b) != tc.json {
			t.Errorf("%q: JSON %s, want %s", tc.yaml, b, tc.json)
		}
	}
}

func TestListenProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"listen: []", "listen: must not be empty"},
		{"listen: [127.0.0.1:4040, relative/sock]", "listen[1]: \"relative/sock\": a socket path must be absolute"},
		{"listen: [/tmp/a.sock, /tmp/a.sock]", "listen[1]: /tmp/a.sock is listed twice"},
		{"listen: /tmp/" + strings.Repeat("x", 120), "at most 107 bytes"},
		{"listen: /tmp/dir/", "names a file, not a directory"},
		{"listen: [4040]", "not host:port"},
		{"listen: {a: 1}", "must be host:port, a socket path or a list of them"},
		{"listen: [[a]]", "must be host:port or a socket path"},
		{"listen: [/tmp/s.sock, 127.0.0.1:4041]", "http_listen"},
	} {
		_, err := Parse([]byte(doc(U, M, S, tc.yaml)), "t.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}
