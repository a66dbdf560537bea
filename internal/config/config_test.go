package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// designSketch is the config sketch from DESIGN.md, verbatim.
const designSketch = `listen: 127.0.0.1:4040
http_listen: 127.0.0.1:4041
users:
  - {name: app, password_env: APP_DB_PASSWORD}
monitor: {user: sluice_monitor, password_env: SLUICE_MONITOR_PASSWORD}
servers:
  - {name: db1, address: 127.0.0.1:3306}
  - {name: db2, address: 127.0.0.1:3307}
  - {name: db3, address: 127.0.0.1:3308, backup: true}
health: {interval: 1s, timeout: 1s, rise: 2, fall: 3}
routing: {max_replication_lag: 5s, read_fallback: primary, balance: least-connections}
`

func sketchEnv(name string) string {
	return map[string]string{
		"APP_DB_PASSWORD":         "app-pw",
		"SLUICE_MONITOR_PASSWORD": "mon-pw",
		"SLUICE_HTTP_TOKEN":       "token",
		"SLUICE_REPL_PASSWORD":    "repl-pw",
	}[name]
}

func mustParse(t *testing.T, src string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), "test.yaml", getenv)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return c
}

func TestDesignSketchParsesWithDefaults(t *testing.T) {
	c := mustParse(t, designSketch, sketchEnv)

	want := Default()
	want.Users = []User{{Name: "app", PasswordEnv: "APP_DB_PASSWORD", AuthPlugin: AuthNativePassword}}
	want.Monitor = Credentials{User: "sluice_monitor", PasswordEnv: "SLUICE_MONITOR_PASSWORD"}
	want.Servers = []Server{
		{Name: "db1", Address: "127.0.0.1:3306", Weight: 1},
		{Name: "db2", Address: "127.0.0.1:3307", Weight: 1},
		{Name: "db3", Address: "127.0.0.1:3308", Backup: true, Weight: 1},
	}
	// Secrets are compared through Secret(), not field by field.
	got := *c
	got.Users = []User{c.Users[0]}
	got.Users[0].secret = nil
	got.Monitor.secret = nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("config =\n%+v\nwant\n%+v", &got, want)
	}
	if s := c.Users[0].Secret(); s != "app-pw" {
		t.Errorf("user secret = %q, want the value of APP_DB_PASSWORD", s)
	}
	if s := c.Monitor.Secret(); s != "mon-pw" {
		t.Errorf("monitor secret = %q, want the value of SLUICE_MONITOR_PASSWORD", s)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, doc(U, M, S), nil)
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"listen", c.Listen.String(), "127.0.0.1:4040"},
		{"http_listen", c.HTTPListen, "127.0.0.1:4041"},
		{"health.interval", c.Health.Interval.D(), time.Second},
		{"health.timeout", c.Health.Timeout.D(), time.Second},
		{"health.rise", c.Health.Rise, 2},
		{"health.fall", c.Health.Fall, 3},
		{"routing.max_replication_lag", c.Routing.MaxReplicationLag.D(), 5 * time.Second},
		{"routing.read_fallback", c.Routing.ReadFallback, "primary"},
		{"routing.balance", c.Routing.Balance, "least-connections"},
		{"routing.read_your_writes", c.Routing.ReadYourWrites.Window, time.Duration(0)},
		{"routing.consistency", c.Routing.Consistency, "session"},
		{"routing.causal_timeout", c.Routing.CausalTimeout.D(), time.Second},
		{"routing.causal_fallback", c.Routing.CausalFallback, "primary"},
		{"timeouts.connect", c.Timeouts.Connect.D(), 2 * time.Second},
		{"timeouts.query", c.Timeouts.Query.D(), time.Hour},
		{"timeouts.handshake", c.Timeouts.Handshake.D(), 10 * time.Second},
		{"timeouts.client_idle", c.Timeouts.ClientIdle.D(), 8 * time.Hour},
		{"timeouts.pool_wait", c.Timeouts.PoolWait.D(), 5 * time.Second},
		{"pool.max_idle", c.Pool.MaxIdle, 64},
		{"pool.idle_timeout", c.Pool.IdleTimeout.D(), 60 * time.Second},
		{"pool.max_lifetime", c.Pool.MaxLifetime.D(), time.Hour},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"max_allowed_packet", c.MaxAllowedPacket, ByteSize(64 << 20)},
		{"digests.max", c.Digests.Max, 1000},
		{"slow_query.threshold", c.SlowQuery.Threshold.D(), time.Second},
		{"slow_query.file", c.SlowQuery.File, "stderr"},
		{"slow_query.max_query_length", c.SlowQuery.MaxQueryLength, 1024},
		{"slow_query enabled", c.SlowQuery.Enabled(), true},
		{"graphite.address", c.Graphite.Address, ""},
		{"graphite.prefix", c.Graphite.Prefix, "sluice"},
		{"graphite.interval", c.Graphite.Interval.D(), 10 * time.Second},
		{"graphite enabled", c.Graphite.Enabled(), false},
		{"failover.auto", c.Failover.Auto, false},
		{"failover.state_file", c.Failover.StateFile, "sluice-state.json"},
		{"failover.max_lag", c.Failover.MaxLag.D(), 10 * time.Second},
		{"failover.max_catchup", c.Failover.MaxCatchup.D(), 30 * time.Second},
		{"failover.hold_timeout", c.Failover.HoldTimeout.D(), 10 * time.Second},
		{"failover.drain_timeout", c.Failover.DrainTimeout.D(), 5 * time.Second},
		{"failover.min_interval", c.Failover.MinInterval.D(), 5 * time.Minute},
		{"failover.replication.user", c.Failover.Replication.User, ""},
		{"failover.hooks.command", len(c.Failover.Hooks.Command), 0},
		{"failover.hooks.webhook", c.Failover.Hooks.Webhook, ""},
		{"failover.hooks.timeout", c.Failover.Hooks.Timeout.D(), 10 * time.Second},
		{"failover.hooks token", c.Failover.Hooks.TokenSecret(), ""},
		{"servers[0].priority", c.Servers[0].Priority, 0},
		{"servers[0].no_promotion", c.Servers[0].NoPromotion, false},
		{"servers[0].weight", c.Servers[0].Weight, 1},
		{"servers[0].max_connections", c.Servers[0].MaxConnections, 0},
		{"users[0].auth_plugin", c.Users[0].AuthPlugin, "mysql_native_password"},
		{"tls.cert", c.TLS.Cert, ""},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if !c.HTTPEnabled() {
		t.Error("HTTP disabled by default")
	}
}

// TestExplicitValuesOverrideDefaults: a key written with a zero value is
// kept, not mistaken for an absent key and replaced by the default.
func TestExplicitValuesOverrideDefaults(t *testing.T) {
	c := mustParse(t, doc(U, M,
		"servers: [{name: db1, address: 127.0.0.1:3306, weight: 0, max_connections: 10}]",
		`http_listen: ""`,
		"routing: {max_replication_lag: 0s, read_your_writes: false, balance: weighted, read_fallback: error}",
		"pool: {max_idle: 0, idle_timeout: 0s, max_lifetime: 0s}",
		"health: {interval: 250ms, timeout: 2s, rise: 1, fall: 1}",
		"listen: ':0'",
		"max_allowed_packet: 16M",
		"log: {level: debug, format: json}",
		"slow_query: {threshold: 0s, max_query_length: 0}",
		`graphite: {address: "graphite.example:2003", prefix: "", interval: 1s}`,
	), nil)
	if c.Servers[0].Weight != 0 || c.Servers[0].MaxConnections != 10 {
		t.Errorf("server = %+v, want weight 0 and max_connections 10", c.Servers[0])
	}
	if c.HTTPListen != "" || c.HTTPEnabled() {
		t.Errorf(`http_listen "" should disable HTTP, got %q`, c.HTTPListen)
	}
	if c.Routing.MaxReplicationLag != 0 || c.Routing.ReadYourWrites.Window != 0 {
		t.Errorf("routing = %+v, want lag check and read-your-writes off", c.Routing)
	}
	if c.Pool != (Pool{}) {
		t.Errorf("pool = %+v, want all zero", c.Pool)
	}
	if c.Health.Timeout.D() != 2*time.Second || c.Health.Interval.D() != 250*time.Millisecond {
		t.Errorf("health = %+v; a timeout longer than the interval is allowed", c.Health)
	}
	if c.MaxAllowedPacket != 16<<20 {
		t.Errorf("max_allowed_packet = %d, want 16M as 16 MiB", c.MaxAllowedPacket)
	}
	if c.SlowQuery.Enabled() || c.SlowQuery.MaxQueryLength != 0 || c.SlowQuery.File != "stderr" {
		t.Errorf("slow_query = %+v, want off, no query text, file still stderr", c.SlowQuery)
	}
	if want := (Graphite{Address: "graphite.example:2003", Interval: Duration(time.Second)}); c.Graphite != want || !c.Graphite.Enabled() {
		t.Errorf("graphite = %+v, want %+v (an empty prefix is kept)", c.Graphite, want)
	}
}

func TestSlowQueryFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "sluice.yaml")
	parse := func(file string) *Config {
		t.Helper()
		c, err := Parse([]byte(doc(U, M, S, "slow_query: {file: "+file+"}")), name, nil)
		if err != nil {
			t.Fatalf("file %s: %v", file, err)
		}
		return c
	}
	// Relative to the config file, not to the working directory.
	if got, want := parse("slow.log").SlowQuery.File, filepath.Join(dir, "slow.log"); got != want {
		t.Errorf("relative file = %q, want %q", got, want)
	}
	if got, want := parse("./stderr").SlowQuery.File, filepath.Join(dir, "stderr"); got != want {
		t.Errorf("./stderr = %q, want the file %q", got, want)
	}
	abs := filepath.Join(dir, "abs.log")
	if got := parse(abs).SlowQuery.File; got != abs {
		t.Errorf("absolute file = %q, want it unchanged", got)
	}
	// A log that is off is not opened, so its directory is not checked.
	if _, err := Parse([]byte(doc(U, M, S, "slow_query: {threshold: 0s, file: /nonexistent/slow.log}")), name, nil); err != nil {
		t.Errorf("a disabled slow log's file was checked: %v", err)
	}
}

func TestReadYourWrites(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"true", 2 * time.Second},
		{"false", 0},
		{"500ms", 500 * time.Millisecond},
		{"0s", 0},
		{`"1m30s"`, 90 * time.Second},
	} {
		c := mustParse(t, doc(U, M, S, "routing: {read_your_writes: "+tc.yaml+"}"), nil)
		if got := c.Routing.ReadYourWrites.Window; got != tc.want {
			t.Errorf("read_your_writes: %s = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

func TestPasswordResolution(t *testing.T) {
	var asked []string
	getenv := func(name string) string {
		asked = append(asked, name)
		return map[string]string{"APP_PW": "from-env", "MON_PW": "mon-env"}[name]
	}
	c := mustParse(t, doc(
		"users:",
		"  - {name: app, password_env: APP_PW, auth_plugin: caching_sha2_password}",
		"  - {name: report, password: 1234}",
		"monitor: {user: mon, password_env: MON_PW}",
		S,
	), getenv)
	if got := strings.Join(asked, ","); got != "APP_PW,MON_PW" {
		t.Errorf("getenv asked for %s, want APP_PW,MON_PW", got)
	}
	app, ok := c.UserByName("app")
	if !ok || app.Secret() != "from-env" || app.Password != "" || app.AuthPlugin != AuthCachingSHA2 {
		t.Errorf("app = %+v (secret %q); want the password from APP_PW and Password left empty", app, app.Secret())
	}
	// An unquoted number is a valid password.
	if report, _ := c.UserByName("report"); report.Secret() != "1234" {
		t.Errorf("report secret = %q, want 1234", report.Secret())
	}
	if c.Monitor.Secret() != "mon-env" {
		t.Errorf("monitor secret = %q, want mon-env", c.Monitor.Secret())
	}
	if _, ok := c.UserByName("nobody"); ok {
		t.Error("UserByName found a user that does not exist")
	}
	// fmt must not print a password that came from the environment.
	if s := fmt.Sprintf("%v %+v %#v", c.Users, c.Users, c.Users); strings.Contains(s, "from-env") {
		t.Errorf("fmt printed the secret: %s", s)
	}
}

func TestNilGetenvUsesEnvironment(t *testing.T) {
	t.Setenv("SLUICE_TEST_APP_PW", "real-env")
	c := mustParse(t, doc("users: [{name: app, password_env: SLUICE_TEST_APP_PW}]", M, S), nil)
	if got := c.Users[0].Secret(); got != "real-env" {
		t.Errorf("secret = %q, want the process environment's value", got)
	}
}

func TestSecretOfConfigBuiltInCode(t *testing.T) {
	if got := (User{Name: "a", Password: "pw"}).Secret(); got != "pw" {
		t.Errorf("User.Secret() = %q, want Password", got)
	}
	if got := (Credentials{User: "m", Password: "pw"}).Secret(); got != "pw" {
		t.Errorf("Credentials.Secret() = %q, want Password", got)
	}
}

func TestRedacted(t *testing.T) {
	c := mustParse(t, doc(
		"users:",
		"  - {name: app, password_env: APP_PW}",
		"  - {name: old, password: s3cret-pw}",
		"monitor: {user: mon, password: s3cret-mon}",
		S,
	), fakeEnv)
	r := c.Redacted()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	if strings.Contains(js, "s3cret") {
		t.Errorf("redacted JSON holds a password: %s", js)
	}
	for _, want := range []string{`"password_env":"APP_PW"`, `"password":"***"`, `"interval":"1s"`, `"max_allowed_packet":"64MiB"`, `"read_your_writes":"off"`, `"consistency":"session"`} {
		if !strings.Contains(js, want) {
			t.Errorf("redacted JSON lacks %s: %s", want, js)
		}
	}
	for _, u := range r.Users {
		if u.Secret() != "***" {
			t.Errorf("redacted %s.Secret() = %q, want ***", u.Name, u.Secret())
		}
	}
	if r.Monitor.Password != "***" || r.Monitor.Secret() != "***" {
		t.Errorf("redacted monitor = %+v", r.Monitor)
	}
	// The original is untouched.
	if c.Users[0].Secret() != "env-s3cret" || c.Users[1].Password != "s3cret-pw" || c.Monitor.Password != "s3cret-mon" {
		t.Error("Redacted changed the original config")
	}
	r.Servers[0].Name = "changed"
	if c.Servers[0].Name != "db1" {
		t.Error("Redacted shares the servers slice with the original")
	}
	if (*Config)(nil).Redacted() != nil {
		t.Error("nil.Redacted() != nil")
	}
}

func TestServerByName(t *testing.T) {
	c := mustParse(t, designSketch, sketchEnv)
	s, ok := c.ServerByName("db3")
	if !ok || s.Address != "127.0.0.1:3308" || !s.Backup {
		t.Errorf("ServerByName(db3) = %+v, %v", s, ok)
	}
	if _, ok := c.ServerByName("db9"); ok {
		t.Error("ServerByName found a server that does not exist")
	}
}

func TestMergeKeys(t *testing.T) {
	c := mustParse(t, doc(U, M,
		"servers:",
		"  - &replica {name: db1, address: 127.0.0.1:3306, weight: 3, max_connections: 50}",
		"  - {<<: *replica, name: db2, address: 127.0.0.1:3307}",
		"  - <<: [{weight: 5}, *replica]",
		"    name: db3",
		"    address: 127.0.0.1:3308",
	), nil)
	db2, _ := c.ServerByName("db2")
	if db2.Weight != 3 || db2.MaxConnections != 50 || db2.Address != "127.0.0.1:3307" {
		t.Errorf("db2 = %+v; want weight and max_connections merged from db1, its own address", db2)
	}
	// In a list of merges the first mapping wins.
	if db3, _ := c.ServerByName("db3"); db3.Weight != 5 || db3.MaxConnections != 50 {
		t.Errorf("db3 = %+v; want weight 5 from the first merge, max_connections 50", db3)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "sluice.yaml")
	src := doc(U, M, S, "tls: {cert: cert.pem, key: "+filepath.Join(dir, "key.pem")+"}")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, fakeEnv)
	if err != nil {
		t.Fatal(err)
	}
	// Relative paths are relative to the config file, not the working
	// directory.
	if want := filepath.Join(dir, "cert.pem"); c.TLS.Cert != want {
		t.Errorf("tls.cert = %q, want %q", c.TLS.Cert, want)
	}
	if want := filepath.Join(dir, "key.pem"); c.TLS.Key != want {
		t.Errorf("tls.key = %q, want %q", c.TLS.Key, want)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"), fakeEnv)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want fs.ErrNotExist", err)
	}
	var ps Problems
	if errors.As(err, &ps) {
		t.Errorf("an unreadable file is not a Problems error: %v", err)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "~\n"} {
		_, err := Parse([]byte(src), "empty.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), "no users configured") || !strings.Contains(err.Error(), "no servers configured") {
			t.Errorf("Parse(%q) = %v; want no users and no servers reported", src, err)
		}
	}
}

func TestExampleParses(t *testing.T) {
	c, err := Parse([]byte(Example()), "example.yaml", sketchEnv)
	if err != nil {
		t.Fatalf("Example() does not parse:\n%v", err)
	}
	// The example shows the defaults, so it must mean the same as leaving
	// every optional key out.
	want := mustParse(t, designSketch, sketchEnv)
	if c.Health != want.Health || c.Routing != want.Routing || c.Timeouts != want.Timeouts ||
		c.Pool != want.Pool || c.Log != want.Log || c.MaxAllowedPacket != want.MaxAllowedPacket ||
		!c.Listen.Equal(want.Listen) || c.HTTPListen != want.HTTPListen ||
		c.Digests != want.Digests || c.SlowQuery != want.SlowQuery || c.Graphite != want.Graphite {
		t.Errorf("Example() settings differ from the defaults:\n%+v\nwant\n%+v", c, want)
	}
	// failover differs from the defaults only in the replication account
	// and the empty command list the example writes out.
	got, wantF := c.Failover, want.Failover
	if len(got.Hooks.Command) != 0 {
		t.Errorf("example hooks.command = %q, want none", got.Hooks.Command)
	}
	if r := got.Replication; r.User != "repl" || r.PasswordEnv != "SLUICE_REPL_PASSWORD" || r.Secret() != "repl-pw" {
		t.Errorf("example failover.replication = %+v (secret %q)", r, r.Secret())
	}
	got.Hooks.Command, wantF.Hooks.Command = nil, nil
	got.Replication, wantF.Replication = Credentials{}, Credentials{}
	if !reflect.DeepEqual(got, wantF) {
		t.Errorf("Example() failover differs from the defaults:\n%+v\nwant\n%+v", got, wantF)
	}
}

// TestExampleNamesEveryKey keeps Example() in step with the types: a key
// added to Config must be documented there (commented out is fine).
func TestExampleNamesEveryKey(t *testing.T) {
	ex := Example()
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for _, f := range fieldsOf(typ) {
			p := joinPath(path, f.name)
			if !strings.Contains(ex, f.name+":") {
				t.Errorf("Example() does not mention %s", p)
			}
			ft := typ.Field(f.index).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

func TestGraphitePrefix(t *testing.T) {
	for _, p := range []string{"sluice", "prod.sluice", "eu-west_1.db.sluice", ""} {
		c := mustParse(t, doc(U, M, S, `graphite: {prefix: "`+p+`"}`), nil)
		if c.Graphite.Prefix != p {
			t.Errorf("prefix %q read as %q", p, c.Graphite.Prefix)
		}
	}
	for _, p := range []string{".sluice", "sluice.", "a..b", "a b", "sluice/x", "é"} {
		if _, err := Parse([]byte(doc(U, M, S, `graphite: {prefix: "`+p+`"}`)), "t.yaml", nil); err == nil || !strings.Contains(err.Error(), "graphite.prefix") {
			t.Errorf("prefix %q: got %v, want a graphite.prefix problem", p, err)
		}
	}
}

func TestConsistency(t *testing.T) {
	c := mustParse(t, doc(U, M, S, "routing: {consistency: global, causal_timeout: 250ms, causal_fallback: error, read_your_writes: true}"), nil)
	if c.Routing.Consistency != "global" || c.Routing.CausalTimeout.D() != 250*time.Millisecond ||
		c.Routing.CausalFallback != "error" || c.Routing.ReadYourWrites.Window != 2*time.Second {
		t.Errorf("routing = %+v", c.Routing)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"routing: {consistency: strong}", "routing.consistency"},
		{"routing: {causal_fallback: replica}", "routing.causal_fallback"},
		{"routing: {causal_timeout: 0s}", "routing.causal_timeout"},
	} {
		_, err := Parse([]byte(doc(U, M, S, tc.yaml)), "t.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.yaml, err, tc.want)
		}
	}
}
