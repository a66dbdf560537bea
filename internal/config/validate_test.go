package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Valid one-line sections the cases below combine with the line under test.
// The passwords are distinctive so that a test can prove they never reach
// an error message.
const (
	U = "users: [{name: app, password: s3cret-pw}]"
	M = "monitor: {user: mon, password: s3cret-pw}"
	S = "servers: [{name: db1, address: 127.0.0.1:3306}]"
)

func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func fakeEnv(name string) string {
	return map[string]string{
		"APP_PW":     "env-s3cret",
		"MON_PW":     "env-s3cret-mon",
		"REPL_PW":    "env-s3cret-repl",
		"HOOK_TOKEN": "env-s3cret-hook",
	}[name]
}

type problemCase struct {
	name string
	yaml string
	line int    // 0: position unknown
	want string // fragment of the problem's message
	// count is how many problems the file has in all; 0 means 1.
	count int
}

// problemCases has one case per rule. Each file has exactly the one mistake
// the case is about, unless count says otherwise.
var problemCases = []problemCase{
	// Unknown keys.
	{name: "unknown top-level key with suggestion", yaml: doc(U, M, S, "lissten: 127.0.0.1:1"), line: 4,
		want: `unknown key "lissten" at top level (did you mean "listen"?); allowed: listen, http_listen, http_token, http_token_env, users`},
	{name: "typo in health", yaml: doc(U, M, S, "health:", "  interval: 1s", "  intervall: 1s"), line: 6,
		want: `unknown key "intervall" in health (did you mean "interval"?); allowed: interval, timeout, rise, fall`},
	{name: "unknown key in a server", yaml: doc(U, M, "servers:", "  - {name: db1, address: 127.0.0.1:3306, wieght: 2}"), line: 4,
		want: `unknown key "wieght" in servers[0] (did you mean "weight"?)`},
	{name: "dashes for underscores", yaml: doc(U, M, S, "routing: {max-replication-lag: 1s}"), line: 4,
		want: `unknown key "max-replication-lag" in routing (did you mean "max_replication_lag"?)`},
	{name: "key in the wrong section", yaml: doc(U, M, S, "health: {rise: 2}", "routing: {timeout: 2s}"), line: 5,
		want: `unknown key "timeout" in routing (it belongs under health or failover.hooks); allowed: max_replication_lag`},
	{name: "top-level key that belongs in a section", yaml: doc(U, M, S, "interval: 2s"), line: 4,
		want: `unknown key "interval" at top level (it belongs under health or graphite)`},
	{name: "key of a new section in the wrong section", yaml: doc(U, M, S, "graphite: {threshold: 1s}"), line: 4,
		want: `unknown key "threshold" in graphite (it belongs under slow_query); allowed: address, prefix, interval`},
	{name: "unknown key without a near match", yaml: doc(U, M, S, "log: {colour: true}"), line: 4,
		want: `unknown key "colour" in log; allowed: level, format`},
	{name: "password written as a key is not echoed", yaml: doc("users: [{name: app, s3cret-pw}]", M, S), line: 1,
		want: `users[0]: a key without a value (not shown: it may be a password`, count: 2},

	// Wrong types.
	{name: "integer given as a word", yaml: doc(U, M, S, "health: {rise: two}"), line: 4,
		want: `health.rise: must be an integer, got a string`},
	{name: "quoted integer", yaml: doc(U, M, S, `health: {fall: "3"}`), line: 4,
		want: `health.fall: must be an integer, got a string (remove the quotes)`},
	{name: "servers as a mapping", yaml: doc(U, M, "servers: {name: db1}"), line: 3,
		want: `servers: must be a list, got a mapping`},
	{name: "user as a string", yaml: doc("users: [app]", M, S), line: 1,
		want: `users[0]: must be a mapping of keys, got a string`},
	{name: "section as a scalar", yaml: doc(U, M, S, "health: fast"), line: 4,
		want: `health: must be a mapping of keys, got a string`},
	{name: "boolean password is not echoed", yaml: doc("users: [{name: app, password: true}]", M, S), line: 1,
		want: `users[0].password: must be a string, got a boolean (quote it)`},
	{name: "backup not a boolean", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:3306, backup: yes}]"), line: 3,
		want: `servers[0].backup: must be true or false, got a string`},
	{name: "integer out of range", yaml: doc(U, M, S, "pool: {max_idle: 99999999999999999999}"), line: 4,
		want: `pool.max_idle: integer 99999999999999999999 is out of range`},
	{name: "empty scalar", yaml: doc(U, M, S, "health:", "  interval:"), line: 5,
		want: `health.interval: has no value (give one, or remove the key to use the default)`},
	{name: "the file is a list", yaml: doc("- listen: 1"), line: 1,
		want: `the file: must be a mapping of keys, got a list`},

	// Durations.
	{name: "bad duration", yaml: doc(U, M, S, "health: {interval: 1x}"), line: 4,
		want: `health.interval: invalid duration "1x" (use Go syntax: "1s", "250ms", "1m30s")`},
	{name: "bare integer duration", yaml: doc(U, M, S, "timeouts:", "  connect: 5"), line: 5,
		want: `timeouts.connect: duration 5 has no unit: write "5s" or "5ms"`},
	{name: "quoted bare integer duration", yaml: doc(U, M, S, `timeouts: {query: "30"}`), line: 4,
		want: `timeouts.query: duration 30 has no unit: write "30s" or "30ms"`},
	{name: "negative duration", yaml: doc(U, M, S, "routing: {max_replication_lag: -1s}"), line: 4,
		want: `routing.max_replication_lag: must not be negative, got "-1s"`},
	{name: "read_your_writes as a word", yaml: doc(U, M, S, "routing: {read_your_writes: always}"), line: 4,
		want: `routing.read_your_writes: invalid duration "always"`},
	{name: "read_your_writes as a number", yaml: doc(U, M, S, "routing: {read_your_writes: 2}"), line: 4,
		want: `routing.read_your_writes: duration 2 has no unit`},
	{name: "read_your_writes as a list", yaml: doc(U, M, S, "routing: {read_your_writes: [1s]}"), line: 4,
		want: `routing.read_your_writes: must be true, false or a duration like "500ms", got a list`},

	// Duplicate keys and names.
	{name: "duplicate top-level key", yaml: doc(U, M, S, "listen: 127.0.0.1:1", "listen: 127.0.0.1:2"), line: 5,
		want: `duplicate key "listen" at top level (first at line 4)`},
	{name: "duplicate key in a server", yaml: doc(U, M, "servers:", "  - name: db1", "    address: 127.0.0.1:3306", "    name: db2"), line: 6,
		want: `duplicate key "name" in servers[0] (first at line 4)`},
	{name: "duplicate server name", yaml: doc(U, M, "servers:", "  - {name: db1, address: 127.0.0.1:3306}", "  - {name: db1, address: 127.0.0.1:3307}"), line: 5,
		want: `servers[1].name: duplicate server name "db1" (first at line 4)`},
	{name: "duplicate server address", yaml: doc(U, M, "servers:", "  - {name: db1, address: DB.example:3306}", "  - {name: db2, address: db.example:3306}"), line: 5,
		want: `servers[1].address: duplicate address "db.example:3306": server "db1" at line 4 has it already`},
	{name: "duplicate user name", yaml: doc("users:", "  - {name: app, password: a}", "  - {name: app, password: b}", M, S), line: 3,
		want: `users[1].name: duplicate user name "app" (first at line 2)`},

	// Passwords.
	{name: "user without a password", yaml: doc("users:", "  - name: app", M, S), line: 2,
		want: `users[0]: user "app" has no password: set password_env (preferred) or password`},
	{name: "password_env unset", yaml: doc("users: [{name: app, password_env: NOPE}]", M, S), line: 1,
		want: `users[0].password_env: environment variable "NOPE" is not set or is empty`},
	{name: "password and password_env", yaml: doc("users: [{name: app, password: s3cret-pw, password_env: APP_PW}]", M, S), line: 1,
		want: `users[0]: user "app" has both password and password_env; keep one`},
	{name: "monitor without a password", yaml: doc(U, "monitor: {user: mon}", S), line: 2,
		want: `monitor: the monitor has no password`},
	{name: "monitor password_env unset", yaml: doc(U, "monitor:", "  user: mon", "  password_env: NOPE", S), line: 4,
		want: `monitor.password_env: environment variable "NOPE" is not set or is empty`},
	{name: "monitor without a user", yaml: doc(U, "monitor: {password: s3cret-pw}", S), line: 2,
		want: `monitor.user: required: the monitor logs in to every server`},
	{name: "no monitor at all", yaml: doc(U, S), line: 0,
		want: `monitor.user: required`},

	// Required lists.
	{name: "no servers key", yaml: doc(U, M), line: 0,
		want: `servers: no servers configured; list at least one`},
	{name: "empty servers list", yaml: doc(U, M, "servers: []"), line: 3,
		want: `servers: no servers configured`},
	{name: "no users", yaml: doc(M, S, "users:"), line: 3,
		want: `users: no users configured; add at least one`},
	{name: "user without a name", yaml: doc("users: [{password: s3cret-pw}]", M, S), line: 1,
		want: `users[0].name: required`},
	{name: "server without a name", yaml: doc(U, M, "servers: [{address: 127.0.0.1:3306}]"), line: 3,
		want: `servers[0].name: required`},
	{name: "server name with a space", yaml: doc(U, M, `servers: [{name: "db 1", address: 127.0.0.1:3306}]`), line: 3,
		want: `servers[0].name: "db 1" may contain only letters, digits, '.', '_' and '-'`},
	{name: "server without an address", yaml: doc(U, M, "servers: [{name: db1}]"), line: 3,
		want: `servers[0].address: required (host:port)`},

	// Addresses.
	{name: "server address without a port", yaml: doc(U, M, "servers: [{name: db1, address: db1.example}]"), line: 3,
		want: `servers[0].address: "db1.example" is not host:port (missing port in address)`},
	{name: "server port 0", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:0}]"), line: 3,
		want: `servers[0].address: "127.0.0.1:0": port must be a number from 1 to 65535`},
	{name: "server port too large", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:70000}]"), line: 3,
		want: `port must be a number from 1 to 65535`},
	{name: "server port by name", yaml: doc(U, M, "servers: [{name: db1, address: 'db1:mysql'}]"), line: 3,
		want: `"db1:mysql": port must be a number from 1 to 65535`},
	{name: "server without a host", yaml: doc(U, M, "servers: [{name: db1, address: ':3306'}]"), line: 3,
		want: `servers[0].address: ":3306" has no host`},
	{name: "listen without a port", yaml: doc(U, M, S, "listen: 127.0.0.1"), line: 4,
		want: `listen: "127.0.0.1" is not host:port (missing port in address)`},
	{name: "listen empty", yaml: doc(U, M, S, `listen: ""`), line: 4,
		want: `listen: must not be empty`},
	{name: "http_listen bad", yaml: doc(U, M, S, "http_listen: localhost:http"), line: 4,
		want: `http_listen: "localhost:http": port must be a number from 0 to 65535`},
	{name: "http_listen without a value", yaml: doc(U, M, S, "http_listen:"), line: 4,
		want: `http_listen: has no value (give one, or remove the key to use the default); "" disables the HTTP listener`},
	{name: "http_listen same as listen", yaml: doc(U, M, S, "listen: 127.0.0.1:5000", "http_listen: 127.0.0.1:5000"), line: 5,
		want: `http_listen: same address as listen (127.0.0.1:5000)`},

	// Health.
	{name: "rise 0", yaml: doc(U, M, S, "health: {rise: 0}"), line: 4, want: `health.rise: must be at least 1, got 0`},
	{name: "fall negative", yaml: doc(U, M, S, "health: {fall: -2}"), line: 4, want: `health.fall: must be at least 1, got -2`},
	{name: "timeout 0", yaml: doc(U, M, S, "health: {timeout: 0s}"), line: 4, want: `health.timeout: must be greater than 0`},
	{name: "interval 0", yaml: doc(U, M, S, "health: {interval: 0ms}"), line: 4, want: `health.interval: must be greater than 0`},

	// Enumerations.
	{name: "read_fallback", yaml: doc(U, M, S, "routing: {read_fallback: replica}"), line: 4,
		want: `routing.read_fallback: unknown value "replica"; allowed: primary, error`},
	{name: "balance typo", yaml: doc(U, M, S, "routing: {balance: round_robin}"), line: 4,
		want: `routing.balance: unknown value "round_robin" (did you mean "round-robin"?); allowed: round-robin, least-connections, weighted`},
	{name: "auth_plugin", yaml: doc("users: [{name: app, password: s3cret-pw, auth_plugin: sha256_password}]", M, S), line: 1,
		want: `users[0].auth_plugin: unknown value "sha256_password"; allowed: mysql_native_password, caching_sha2_password`},
	{name: "log level", yaml: doc(U, M, S, "log: {level: verbose}"), line: 4,
		want: `log.level: unknown value "verbose"; allowed: debug, info, warn, error`},
	{name: "log format", yaml: doc(U, M, S, "log:", "  format: jsn"), line: 5,
		want: `log.format: unknown value "jsn" (did you mean "json"?); allowed: text, json`},

	// Timeouts and pool.
	{name: "query timeout 0", yaml: doc(U, M, S, "timeouts: {query: 0s}"), line: 4,
		want: `timeouts.query: must be greater than 0: every wait on the network needs a limit`},
	{name: "max_idle negative", yaml: doc(U, M, S, "pool: {max_idle: -1}"), line: 4,
		want: `pool.max_idle: must not be negative, got -1`},

	// Servers' numbers.
	{name: "weight negative", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:3306, weight: -1}]"), line: 3,
		want: `servers[0].weight: must not be negative, got -1`},
	{name: "max_connections negative", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:3306, max_connections: -5}]"), line: 3,
		want: `servers[0].max_connections: must not be negative, got -5 (0 means unlimited)`},

	// Sizes.
	{name: "packet too small", yaml: doc(U, M, S, "max_allowed_packet: 512"), line: 4,
		want: `max_allowed_packet: must be between 1KiB and 1GiB, got 512B`},
	{name: "packet too large", yaml: doc(U, M, S, "max_allowed_packet: 2G"), line: 4,
		want: `max_allowed_packet: must be between 1KiB and 1GiB, got 2GiB`},
	{name: "packet unknown unit", yaml: doc(U, M, S, "max_allowed_packet: 1T"), line: 4,
		want: `max_allowed_packet: invalid size "1T": unknown unit "T"`},
	{name: "packet negative", yaml: doc(U, M, S, "max_allowed_packet: -5"), line: 4,
		want: `max_allowed_packet: must not be negative, got "-5"`},
	{name: "packet as a float", yaml: doc(U, M, S, "max_allowed_packet: 1.5"), line: 4,
		want: `max_allowed_packet: must be a size like 1048576 or "64MiB", got a number`},

	// TLS. The test runs in a directory holding cert.pem and key.pem.
	{name: "cert without key", yaml: doc(U, M, S, "tls: {cert: cert.pem}"), line: 4,
		want: `tls.cert: set without tls.key; TLS needs both`},
	{name: "key without cert", yaml: doc(U, M, S, "tls:", "  key: key.pem"), line: 5,
		want: `tls.key: set without tls.cert; TLS needs both`},
	{name: "missing cert file", yaml: doc(U, M, S, "tls:", "  cert: missing.pem", "  key: key.pem"), line: 5,
		want: `missing.pem" does not exist`},
	{name: "missing rsa_key file", yaml: doc(U, M, S, "tls: {rsa_key: /nonexistent/rsa.pem}"), line: 4,
		want: `tls.rsa_key: file "/nonexistent/rsa.pem" does not exist`},
	{name: "tls file is a directory", yaml: doc(U, M, S, "tls: {rsa_key: .}"), line: 4,
		want: `is a directory, not a file`},

	// Digests, slow query log, Graphite.
	{name: "digests.max 0", yaml: doc(U, M, S, "digests: {max: 0}"), line: 4,
		want: `digests.max: must be between 1 and 1000000, got 0`},
	{name: "digests.max too large", yaml: doc(U, M, S, "digests:", "  max: 5000000"), line: 5,
		want: `digests.max: must be between 1 and 1000000, got 5000000`},
	{name: "slow_query threshold without unit", yaml: doc(U, M, S, "slow_query: {threshold: 2}"), line: 4,
		want: `slow_query.threshold: duration 2 has no unit: write "2s" or "2ms"`},
	{name: "slow_query threshold negative", yaml: doc(U, M, S, "slow_query: {threshold: -1s}"), line: 4,
		want: `slow_query.threshold: must not be negative, got "-1s"`},
	{name: "slow_query file empty", yaml: doc(U, M, S, "slow_query:", `  file: ""`), line: 5,
		want: `slow_query.file: must not be empty: write "stderr" or a file path`},
	{name: "slow_query file in a missing directory", yaml: doc(U, M, S, "slow_query: {file: /nonexistent/slow.log}"), line: 4,
		want: `slow_query.file: directory "/nonexistent" does not exist`},
	{name: "slow_query file is a directory", yaml: doc(U, M, S, "slow_query: {file: .}"), line: 4,
		want: `is a directory, not a file`},
	{name: "slow_query max_query_length negative", yaml: doc(U, M, S, "slow_query: {max_query_length: -1}"), line: 4,
		want: `slow_query.max_query_length: must not be negative, got -1 (0 leaves the query text out)`},
	{name: "graphite address without port", yaml: doc(U, M, S, "graphite: {address: graphite.example}"), line: 4,
		want: `graphite.address: "graphite.example" is not host:port (missing port in address)`},
	{name: "graphite address without host", yaml: doc(U, M, S, "graphite: {address: ':2003'}"), line: 4,
		want: `graphite.address: ":2003" has no host`},
	{name: "graphite prefix with a space", yaml: doc(U, M, S, "graphite:", "  prefix: my sluice"), line: 5,
		want: `graphite.prefix: "my sluice" must be names of letters, digits, '_' and '-' joined by single dots`},
	{name: "graphite prefix with an empty node", yaml: doc(U, M, S, "graphite: {prefix: prod..sluice}"), line: 4,
		want: `graphite.prefix: "prod..sluice" must be names`},
	{name: "graphite interval too short", yaml: doc(U, M, S, "graphite: {interval: 500ms}"), line: 4,
		want: `graphite.interval: must be at least 1s (Graphite keeps at most one point a second), got 500ms`},

	// Failover.
	{name: "failover duration negative", yaml: doc(U, M, S, "failover: {max_lag: -1s}"), line: 4,
		want: `failover.max_lag: must not be negative, got "-1s"`},
	{name: "failover hold_timeout negative", yaml: doc(U, M, S, "failover: {hold_timeout: -10s}"), line: 4,
		want: `failover.hold_timeout: must not be negative, got "-10s"`},
	{name: "hooks timeout negative", yaml: doc(U, M, S, "failover: {hooks: {timeout: -1s}}"), line: 4,
		want: `failover.hooks.timeout: must not be negative, got "-1s"`},
	{name: "failover min_interval without unit", yaml: doc(U, M, S, "failover:", "  min_interval: 300"), line: 5,
		want: `failover.min_interval: duration 300 has no unit`},
	{name: "failover hold_timeout 0", yaml: doc(U, M, S, "failover: {hold_timeout: 0s}"), line: 4,
		want: `failover.hold_timeout: must be greater than 0`},
	{name: "failover max_catchup 0", yaml: doc(U, M, S, "failover: {max_catchup: 0s}"), line: 4,
		want: `failover.max_catchup: must be greater than 0`},
	{name: "failover drain_timeout 0", yaml: doc(U, M, S, "failover: {drain_timeout: 0s}"), line: 4,
		want: `failover.drain_timeout: must be greater than 0`},
	{name: "failover drain_timeout not under hold_timeout", yaml: doc(U, M, S, "failover:", "  hold_timeout: 3s", "  drain_timeout: 3s"), line: 6,
		want: `failover.drain_timeout: must be less than failover.hold_timeout (3s), got 3s`},
	{name: "failover drain_timeout over the default hold_timeout", yaml: doc(U, M, S, "failover: {drain_timeout: 1m}"), line: 4,
		want: `failover.drain_timeout: must be less than failover.hold_timeout (10s), got 1m`},
	{name: "failover state_file empty", yaml: doc(U, M, S, "failover:", `  state_file: ""`), line: 5,
		want: `failover.state_file: state_file must name a file`},
	{name: "failover state_file is a directory", yaml: doc(U, M, S, "failover: {state_file: .}"), line: 4,
		want: `failover.state_file: "`},
	{name: "failover auto without replication user", yaml: doc(U, M, S, "failover:", "  auto: true"), line: 5,
		want: `failover.auto needs failover.replication.user: the account replicas use to connect to the new primary`},
	{name: "failover auto not a boolean", yaml: doc(U, M, S, "failover: {auto: yes}"), line: 4,
		want: `failover.auto: must be true or false, got a string`},
	{name: "failover auto with every server no_promotion", yaml: doc(U, M,
		"servers: [{name: db1, address: 127.0.0.1:3306, no_promotion: true}, {name: db2, address: 127.0.0.1:3307, no_promotion: true}]",
		"failover: {auto: true, replication: {user: repl, password_env: REPL_PW}}"), line: 4,
		want: `failover.auto: every server has no_promotion; nothing could be promoted`},
	{name: "no_promotion not a boolean", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:3306, no_promotion: 1}]"), line: 3,
		want: `servers[0].no_promotion: must be true or false, got an integer`},
	{name: "priority not an integer", yaml: doc(U, M, "servers: [{name: db1, address: 127.0.0.1:3306, priority: high}]"), line: 3,
		want: `servers[0].priority: must be an integer, got a string`},
	{name: "replication password and password_env", yaml: doc(U, M, S, "failover: {replication: {user: repl, password: s3cret-pw, password_env: REPL_PW}}"), line: 4,
		want: `failover.replication: the replication account has both password and password_env; keep one`},
	{name: "replication password_env unset", yaml: doc(U, M, S, "failover:", "  replication:", "    user: repl", "    password_env: NOPE"), line: 7,
		want: `failover.replication.password_env: environment variable "NOPE" is not set or is empty`},
	{name: "replication without a password", yaml: doc(U, M, S, "failover: {replication: {user: repl}}"), line: 4,
		want: `failover.replication: the replication account has no password: set password_env (preferred) or password`},
	{name: "replication password without a user", yaml: doc(U, M, S, "failover:", "  replication: {password: s3cret-pw}"), line: 5,
		want: `failover.replication.user: required when a password is given`},
	{name: "hooks timeout 0", yaml: doc(U, M, S, "failover: {hooks: {timeout: 0s}}"), line: 4,
		want: `failover.hooks.timeout: must be greater than 0`},
	{name: "hooks command as a string", yaml: doc(U, M, S, "failover: {hooks: {command: /usr/local/bin/update-dns}}"), line: 4,
		want: `failover.hooks.command: must be a list, got a string`},
	{name: "hooks command without a program", yaml: doc(U, M, S, "failover:", "  hooks:", `    command: ["", "--ttl", "5"]`), line: 6,
		want: `failover.hooks.command: empty program name`},
	{name: "hooks webhook scheme, password not shown", yaml: doc(U, M, S, "failover:", "  hooks:", "    webhook: ftp://u:s3cret-pw@hooks.example/x"), line: 6,
		want: `failover.hooks.webhook: ftp://u:xxxxx@hooks.example/x: scheme must be http or https`},
	{name: "hooks webhook without a host", yaml: doc(U, M, S, "failover: {hooks: {webhook: 'https:///dns'}}"), line: 4,
		want: `failover.hooks.webhook: https:///dns: no host`},
	{name: "hooks webhook unparsable", yaml: doc(U, M, S, "failover: {hooks: {webhook: 'http://[::1'}}"), line: 4,
		want: `failover.hooks.webhook: URL: missing ']' in host`},
	{name: "hooks token and token_env", yaml: doc(U, M, S, "failover: {hooks: {token: s3cret-pw, token_env: HOOK_TOKEN}}"), line: 4,
		want: `failover.hooks.token: both token and token_env are set; keep one`},
	{name: "hooks token_env unset", yaml: doc(U, M, S, "failover:", "  hooks:", "    token_env: NOPE"), line: 6,
		want: `failover.hooks.token_env: environment variable "NOPE" is not set or is empty`},

	// YAML itself.
	{name: "syntax error", yaml: doc(U, M, S, "health:", "\tinterval: 1s"), line: 5,
		want: `YAML syntax: found character that cannot start any token`},
	{name: "two documents", yaml: doc(U, M, S, "---", "listen: 127.0.0.1:1"), line: 4,
		want: `a second YAML document (after ---)`},
	{name: "merge of a scalar", yaml: doc(U, M, "servers: [{<<: 1, name: db1, address: 127.0.0.1:3306}]"), line: 3,
		want: `servers[0]: a merge (<<) needs a mapping or a list of mappings, got an integer`},
	{name: "merge cycle", yaml: doc(U, M, S, "health: &h {<<: *h}"), line: 4,
		want: `health: merge keys nested too deeply`},
}

func TestProblems(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "sluice.yaml")
	for _, tc := range problemCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), file, fakeEnv)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse = %v, %v; want Problems", c, err)
			}
			if c != nil {
				t.Errorf("Parse returned a Config along with problems")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("a password leaked into the error:\n%v", err)
			}
			want := max(tc.count, 1)
			if len(ps) != want {
				t.Errorf("got %d problems, want %d:\n%v", len(ps), want, err)
			}
			for _, p := range ps {
				if strings.Contains(p.Message, tc.want) {
					if p.Line != tc.line {
						t.Errorf("problem %q at line %d, want line %d", p.Message, p.Line, tc.line)
					}
					if p.File != file {
						t.Errorf("problem names file %q, want %q", p.File, file)
					}
					return
				}
			}
			t.Errorf("no problem contains %q; got:\n%v", tc.want, err)
		})
	}
}

// TestEveryProblemReported: one run of `sluice check` must show all the
// mistakes, in file order, not only the first.
func TestEveryProblemReported(t *testing.T) {
	src := doc(
		"listen: 127.0.0.1",                  // 1: no port
		"users:",                             // 2
		"  - name: app",                      // 3: no password
		"monitor: {user: mon, password: pw}", // 4
		"servers:",                           // 5
		"  - {name: db1, address: 127.0.0.1:3306}", // 6
		"health:",                    // 7
		"  intervall: 2s",            // 8: typo
		"  timeout: 1x",              // 9: bad duration
		"routing: {balance: random}", // 10: unknown value
	)
	_, err := Parse([]byte(src), "five.yaml", fakeEnv)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error = %v; want Problems", err)
	}
	want := []struct {
		line int
		msg  string
	}{
		{1, `listen: "127.0.0.1" is not host:port`},
		{3, `users[0]: user "app" has no password`},
		{8, `unknown key "intervall" in health (did you mean "interval"?)`},
		{9, `health.timeout: invalid duration "1x"`},
		{10, `routing.balance: unknown value "random"`},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if ps[i].Line != w.line || !strings.Contains(ps[i].Message, w.msg) {
			t.Errorf("problem %d = %v; want line %d containing %q", i, ps[i], w.line, w.msg)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "five.yaml:1:9: listen: ") {
		t.Errorf("Error() =\n%s\nwant one problem per line as file:line:col: message", err)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{"a.yaml", 3, 7, "bad"}, "a.yaml:3:7: bad"},
		{Problem{"a.yaml", 3, 0, "bad"}, "a.yaml:3: bad"},
		{Problem{"a.yaml", 0, 0, "bad"}, "a.yaml: bad"},
		{Problem{"", 2, 1, "bad"}, "2:1: bad"},
		{Problem{"", 0, 0, "bad"}, "bad"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestProblemsSortedWithUnknownPositionsLast(t *testing.T) {
	ps := Problems{{Line: 0, Message: "a"}, {Line: 5, Column: 2, Message: "b"}, {Line: 5, Column: 1, Message: "c"}, {Line: 1, Message: "d"}}
	ps.sort()
	var got []string
	for _, p := range ps {
		got = append(got, p.Message)
	}
	if strings.Join(got, "") != "dcba" {
		t.Errorf("order = %v, want d c b a", got)
	}
}

func TestHTTPTokenRules(t *testing.T) {
	base := "users: [{name: app, password: x}]\nmonitor: {user: m, password: y}\nservers: [{name: db1, address: 127.0.0.1:3306}]\n"
	env := func(n string) string {
		if n == "TOK" {
			return "s3cret"
		}
		return ""
	}
	cases := []struct{ extra, problem, token string }{
		{"http_listen: 127.0.0.1:4041\n", "", ""},
		{"http_listen: '[::1]:4041'\n", "", ""},
		{"http_listen: 0.0.0.0:4041\n", "reachable from other hosts", ""},
		{"http_listen: :4041\n", "reachable from other hosts", ""},
		{"http_listen: 0.0.0.0:4041\nhttp_token_env: TOK\n", "", "s3cret"},
		{"http_listen: 0.0.0.0:4041\nhttp_token: abc\n", "", "abc"},
		{"http_token_env: NOPE\n", `environment variable "NOPE"`, ""},
		{"http_token: a\nhttp_token_env: TOK\n", "keep one", ""},
		{"routing: {heartbeat_table: percona.heartbeat}\n", "", ""},
		{"routing: {heartbeat_table: heartbeat}\n", "db.table", ""},
	}
	for _, c := range cases {
		cfg, err := Parse([]byte(base+c.extra), "t.yaml", env)
		if c.problem == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", c.extra, err)
			} else if cfg.HTTPTokenSecret() != c.token {
				t.Errorf("%q: token %q, want %q", c.extra, cfg.HTTPTokenSecret(), c.token)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("%q: got %v, want a problem containing %q", c.extra, err, c.problem)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("token leaked in %v", err)
		}
	}
}
