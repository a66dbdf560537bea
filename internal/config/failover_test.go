package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/hooks"
)

func TestFailoverStateFile(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(t.TempDir(), "state.json")
	for _, tc := range []struct {
		name string
		file string // config file name
		line string // failover section, "" for none
		want string
	}{
		// Relative to the config file, not to the working directory, even
		// when the value is the default.
		{"default", filepath.Join(dir, "sluice.yaml"), "", filepath.Join(dir, "sluice-state.json")},
		{"relative", filepath.Join(dir, "sluice.yaml"), "failover: {state_file: state/s.json}", filepath.Join(dir, "state", "s.json")},
		{"dot relative", filepath.Join(dir, "sluice.yaml"), "failover: {state_file: ./s.json}", filepath.Join(dir, "s.json")},
		{"absolute", filepath.Join(dir, "sluice.yaml"), "failover: {state_file: " + abs + "}", abs},
		{"bare config name", "sluice.yaml", "", "sluice-state.json"},
		// The directory need not exist yet: sluice creates the file.
		{"config in a directory that does not exist", filepath.Join("no-such-dir", "t.yaml"), "", filepath.Join("no-such-dir", "sluice-state.json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := []string{U, M, S}
			if tc.line != "" {
				lines = append(lines, tc.line)
			}
			c, err := Parse([]byte(doc(lines...)), tc.file, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.Failover.StateFile != tc.want {
				t.Errorf("state_file = %q, want %q", c.Failover.StateFile, tc.want)
			}
		})
	}

	// A state_file naming a directory is refused, at its line.
	if err := os.Mkdir(filepath.Join(dir, "statedir"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(doc(U, M, S, "failover:", "  state_file: statedir")), filepath.Join(dir, "sluice.yaml"), nil)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Line != 5 ||
		ps[0].Message != `failover.state_file: "`+filepath.Join(dir, "statedir")+`" is a directory, not a file` {
		t.Errorf("state_file naming a directory: %v", err)
	}
}

func TestFailoverExplicitValues(t *testing.T) {
	c := mustParse(t, doc(U, M,
		"servers:",
		"  - {name: db1, address: 127.0.0.1:3306, priority: 5}",
		"  - {name: db2, address: 127.0.0.1:3307, priority: -1, no_promotion: true}",
		"failover:",
		"  auto: true",
		"  max_lag: 0s",
		"  max_catchup: 1m",
		"  hold_timeout: 2s",
		"  drain_timeout: 1500ms",
		"  min_interval: 0s",
		"  replication: {user: repl, password_env: REPL_PW}",
		"  hooks:",
		`    command: ["/usr/local/bin/update-dns", "--ttl", 5]`,
		"    webhook: https://hooks.example/dns",
		"    timeout: 3s",
		"    token_env: HOOK_TOKEN",
	), fakeEnv)
	f := c.Failover
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"auto", f.Auto, true},
		{"max_lag", f.MaxLag.D(), time.Duration(0)},
		{"max_catchup", f.MaxCatchup.D(), time.Minute},
		{"hold_timeout", f.HoldTimeout.D(), 2 * time.Second},
		{"drain_timeout", f.DrainTimeout.D(), 1500 * time.Millisecond},
		{"min_interval", f.MinInterval.D(), time.Duration(0)},
		{"replication.user", f.Replication.User, "repl"},
		{"replication secret", f.Replication.Secret(), "env-s3cret-repl"},
		{"hooks.command", strings.Join(f.Hooks.Command, " "), "/usr/local/bin/update-dns --ttl 5"},
		{"hooks.webhook", f.Hooks.Webhook, "https://hooks.example/dns"},
		{"hooks.timeout", f.Hooks.Timeout.D(), 3 * time.Second},
		{"hooks token", f.Hooks.TokenSecret(), "env-s3cret-hook"},
		{"hooks.token", f.Hooks.Token, ""},
		{"servers[0].priority", c.Servers[0].Priority, 5},
		{"servers[1].priority", c.Servers[1].Priority, -1},
		{"servers[1].no_promotion", c.Servers[1].NoPromotion, true},
	} {
		if tc.got != tc.want {
			t.Errorf("failover %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestFailoverSecrets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		section   string
		repl, tok string
	}{
		{"none", "failover: {auto: false}", "", ""},
		{"from the environment", "failover: {replication: {user: repl, password_env: REPL_PW}, hooks: {token_env: HOOK_TOKEN}}", "env-s3cret-repl", "env-s3cret-hook"},
		{"in the file", "failover: {replication: {user: repl, password: 1234}, hooks: {token: abc}}", "1234", "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, doc(U, M, S, tc.section), fakeEnv)
			if got := c.Failover.Replication.Secret(); got != tc.repl {
				t.Errorf("replication secret = %q, want %q", got, tc.repl)
			}
			if got := c.Failover.Hooks.TokenSecret(); got != tc.tok {
				t.Errorf("hooks token = %q, want %q", got, tc.tok)
			}
		})
	}
	if got := (Hooks{Token: "t"}).TokenSecret(); got != "t" {
		t.Errorf("Hooks.TokenSecret() of a Hooks built in code = %q, want Token", got)
	}
}

// TestFailoverAutoNeedsOnePromotable: auto is accepted with a replication
// account and at least one server that may be promoted.
func TestFailoverAutoNeedsOnePromotable(t *testing.T) {
	for _, tc := range []struct {
		servers string
		problem string
	}{
		{"[{name: db1, address: 127.0.0.1:3306}]", ""},
		{"[{name: db1, address: 127.0.0.1:3306, no_promotion: true}, {name: db2, address: 127.0.0.1:3307}]", ""},
		{"[{name: db1, address: 127.0.0.1:3306, no_promotion: true}]", "every server has no_promotion"},
	} {
		src := doc(U, M, "servers: "+tc.servers, "failover: {auto: true, replication: {user: repl, password_env: REPL_PW}}")
		_, err := Parse([]byte(src), "t.yaml", fakeEnv)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("servers %s: %v", tc.servers, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("servers %s: got %v, want a problem containing %q", tc.servers, err, tc.problem)
		}
	}
	// Without auto, no_promotion everywhere is allowed: nothing is promoted
	// automatically, and an operator may still edit the file first.
	mustParse(t, doc(U, M, "servers: [{name: db1, address: 127.0.0.1:3306, no_promotion: true}]"), nil)
}

// TestHooksProblemsPlacedAtTheirKeys: hooks.Config.Validate reports the
// command and the webhook together; each problem goes to its own key.
func TestHooksProblemsPlacedAtTheirKeys(t *testing.T) {
	src := doc(U, M, S,
		"failover:",                           // 4
		"  hooks:",                            // 5
		`    command: [""]`,                   // 6
		"    webhook: gopher://hooks.example", // 7
	)
	_, err := Parse([]byte(src), "t.yaml", nil)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse = %v; want Problems", err)
	}
	want := []struct {
		line int
		msg  string
	}{
		{6, "failover.hooks.command: empty program name"},
		{7, "failover.hooks.webhook: gopher://hooks.example: scheme must be http or https"},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if ps[i].Line != w.line || ps[i].Message != w.msg {
			t.Errorf("problem %d = %v; want line %d: %s", i, ps[i], w.line, w.msg)
		}
	}
}

func TestRedactedFailover(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section string
		webhook string // the redacted webhook
	}{
		{"from the environment", "failover: {replication: {user: repl, password_env: REPL_PW}, hooks: {token_env: HOOK_TOKEN, command: [/bin/dns], webhook: 'https://hooks.example/dns'}}",
			"https://hooks.example/dns"},
		{"in the file", "failover: {replication: {user: repl, password: s3cret-repl}, hooks: {token: s3cret-tok, command: [/bin/dns], webhook: 'https://u:s3cret-url@hooks.example/dns?key=s3cret-q#s3cret-f'}}",
			"https://u:xxxxx@hooks.example/dns?***"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, doc(U, M, S, tc.section), fakeEnv)
			orig := *c
			r := c.Redacted()
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if js := string(b); strings.Contains(js, "s3cret") {
				t.Errorf("redacted JSON holds a secret: %s", js)
			}
			rf := r.Failover
			if rf.Replication.Secret() != "***" || rf.Hooks.TokenSecret() != "***" {
				t.Errorf("redacted replication secret %q, hooks token %q; want ***", rf.Replication.Secret(), rf.Hooks.TokenSecret())
			}
			if rf.Hooks.Webhook != tc.webhook {
				t.Errorf("redacted webhook = %q, want %q", rf.Hooks.Webhook, tc.webhook)
			}
			if rf.Replication.User != "repl" || rf.Replication.PasswordEnv != c.Failover.Replication.PasswordEnv || rf.Hooks.TokenEnv != c.Failover.Hooks.TokenEnv {
				t.Errorf("redacted failover lost a name that is not secret: %+v", rf)
			}
			// The original is untouched, and shares no slice with the copy.
			if !reflect.DeepEqual(*c, orig) || !strings.Contains(c.Failover.Replication.Secret(), "s3cret") || !strings.Contains(c.Failover.Hooks.TokenSecret(), "s3cret") {
				t.Error("Redacted changed the original config")
			}
			r.Failover.Hooks.Command[0] = "changed"
			if c.Failover.Hooks.Command[0] != "/bin/dns" {
				t.Error("Redacted shares hooks.command with the original")
			}
		})
	}
}

func TestHooksConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		section string
		want    hooks.Config
	}{
		{"defaults", "", hooks.Config{Timeout: 10 * time.Second}},
		{"everything", "failover: {hooks: {command: [/bin/dns, --ttl, '5'], webhook: 'https://hooks.example/dns', timeout: 2s, token_env: HOOK_TOKEN}}",
			hooks.Config{Command: []string{"/bin/dns", "--ttl", "5"}, Webhook: "https://hooks.example/dns", Timeout: 2 * time.Second, Token: "env-s3cret-hook"}},
		{"token in the file", "failover: {hooks: {webhook: 'http://127.0.0.1:9/x', token: abc}}",
			hooks.Config{Webhook: "http://127.0.0.1:9/x", Timeout: 10 * time.Second, Token: "abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := []string{U, M, S}
			if tc.section != "" {
				lines = append(lines, tc.section)
			}
			c := mustParse(t, doc(lines...), fakeEnv)
			got := c.HooksConfig()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("HooksConfig() = %+v, want %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("HooksConfig() of a valid file does not validate: %v", err)
			}
			if len(got.Command) > 0 {
				got.Command[0] = "changed"
				if c.Failover.Hooks.Command[0] == "changed" {
					t.Error("HooksConfig shares hooks.command with the Config")
				}
			}
		})
	}
}

// TestAdminEndpoint: the CLI finds the admin API in a file whose other
// secrets its shell does not hold, and says which variable it lacks.
func TestAdminEndpoint(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "sluice.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{"TOK": "s3cret", "SLUICE_HTTP_TOKEN": "from-env"}
	getenv := func(k string) string { return env[k] }

	p := write(Example()) // password_env for every account, none of them set
	listen, token, err := AdminEndpoint(p, getenv)
	if err != nil || listen == "" || token != "from-env" {
		t.Fatalf("example: %q %q %v", listen, token, err)
	}
	p = write("http_listen: 127.0.0.1:9999\nhttp_token_env: TOK\nservers: [{name: db1, address: nowhere}]\n")
	if listen, token, err = AdminEndpoint(p, getenv); err != nil || listen != "127.0.0.1:9999" || token != "s3cret" {
		t.Errorf("got %q %q %v", listen, token, err)
	}
	delete(env, "TOK")
	if _, _, err = AdminEndpoint(p, getenv); err == nil || !strings.Contains(err.Error(), "TOK") {
		t.Errorf("unset token variable: %v", err)
	}
	p = write("http_listen: \"\"\n")
	if listen, _, err = AdminEndpoint(p, getenv); err != nil || listen != "" {
		t.Errorf("http_listen off: %q %v", listen, err)
	}
	p = write("http_listen: [\n")
	if _, _, err = AdminEndpoint(p, getenv); err == nil {
		t.Error("broken YAML accepted")
	}
}
