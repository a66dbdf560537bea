// Package config loads, validates and documents sluice's YAML configuration.
//
// A Config is immutable once Load returns it: reloads build a new one and the
// caller swaps it in atomically, so a file that fails validation never touches
// the running state.
package config

import (
	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Config is the whole sluice configuration file. The json tags mirror the
// YAML keys so that the admin API shows Redacted() in the file's own terms.
type Config struct {
	// Listen is the MySQL protocol listener, default 127.0.0.1:4040: one
	// address or a list. host:port is TCP (an empty host listens on every
	// interface; port 0 picks a free port, meant for tests); an absolute
	// path is a Unix socket.
	Listen Listeners `yaml:"listen" json:"listen"`
	// HTTPListen is the admin HTTP listener, default 127.0.0.1:4041. An
	// explicit "" disables it; a key that is absent gets the default.
	HTTPListen string `yaml:"http_listen" json:"http_listen"`
	// HTTPToken (or the variable HTTPTokenEnv names) is the bearer token the
	// admin API requires. Required when http_listen is not a loopback
	// address; optional otherwise.
	HTTPToken    string `yaml:"http_token" json:"http_token"`
	HTTPTokenEnv string `yaml:"http_token_env" json:"http_token_env"`
	httpToken    *string
	// movesSecret is moves.password_env resolved; see MoveCredentials.
	movesSecret *string

	Users   []User      `yaml:"users" json:"users"`
	Monitor Credentials `yaml:"monitor" json:"monitor"`
	// Moves configures online moves between clusters (the account they
	// use, how long a cutover may hold statements); see Moves.
	Moves   Moves    `yaml:"moves" json:"moves"`
	Servers []Server `yaml:"servers" json:"servers"`
	// Clusters replaces Servers when sluice fronts several clusters; see
	// Cluster. Servers alone form one cluster named "default".
	Clusters []Cluster `yaml:"clusters" json:"clusters,omitempty"`
	// Placement says which cluster owns each database and table: the
	// initial map, until the state store holds one.
	Placement placement.Config `yaml:"placement" json:"placement"`

	Health   Health   `yaml:"health" json:"health"`
	Routing  Routing  `yaml:"routing" json:"routing"`
	Timeouts Timeouts `yaml:"timeouts" json:"timeouts"`
	Pool     Pool     `yaml:"pool" json:"pool"`
	TLS      TLS      `yaml:"tls" json:"tls"`
	Log      Log      `yaml:"log" json:"log"`

	Digests   Digests   `yaml:"digests" json:"digests"`
	SlowQuery SlowQuery `yaml:"slow_query" json:"slow_query"`
	Graphite  Graphite  `yaml:"graphite" json:"graphite"`

	Failover Failover `yaml:"failover" json:"failover"`

	// MaxAllowedPacket bounds one client command (after 16 MiB packets are
	// joined). Larger commands get error 1153. Default 64 MiB; between
	// 1 KiB and 1 GiB, as in MySQL.
	MaxAllowedPacket ByteSize `yaml:"max_allowed_packet" json:"max_allowed_packet"`
	// MaxLongData bounds the COM_STMT_SEND_LONG_DATA bytes one session
	// may have buffered across all its prepared statements (sluice holds
	// them until the execute picks a backend). Default 64 MiB.
	MaxLongData ByteSize `yaml:"max_long_data" json:"max_long_data"`

	// MaxClientConnections caps client connections; one more is answered
	// with error 1040 and closed. 0 (default) sizes it from the file
	// descriptor limit, leaving a reserve for backends, health checks and
	// the admin API.
	MaxClientConnections int `yaml:"max_client_connections" json:"max_client_connections"`
	// HTTPMaxConnections caps the admin API's connections (default 64);
	// past it, idle keep-alive connections are closed first, then new ones.
	HTTPMaxConnections int `yaml:"http_max_connections" json:"http_max_connections"`

	Login Login `yaml:"login" json:"login"`
}

// Login throttles password guessing, like MariaDB's max_password_errors
// and max_connect_errors: after MaxFailures failed logins in a row from
// one client host, or for one account, further logins from that host (for
// that account) are refused for Block, doubled with every further failure
// up to MaxBlock. A successful login resets the count.
type Login struct {
	MaxFailures int      `yaml:"max_failures" json:"max_failures"` // default 10; 0 turns throttling off
	Block       Duration `yaml:"block" json:"block"`               // default 1s
	MaxBlock    Duration `yaml:"max_block" json:"max_block"`       // default 1m
}

// User is an account clients log in with. The same credentials open the
// backend connections for that user's sessions.
type User struct {
	Name        string `yaml:"name" json:"name"`
	Password    string `yaml:"password" json:"password"`         // plain text; prefer password_env
	PasswordEnv string `yaml:"password_env" json:"password_env"` // name of an environment variable holding the password
	// AuthPlugin is the plugin clients must use: mysql_native_password
	// (default) or caching_sha2_password.
	AuthPlugin string `yaml:"auth_plugin" json:"auth_plugin"`

	// secret is the password resolved at load time; see Secret.
	secret *string
}

// Credentials are the monitor's login.
type Credentials struct {
	User        string `yaml:"user" json:"user"`
	Password    string `yaml:"password" json:"password"`
	PasswordEnv string `yaml:"password_env" json:"password_env"`

	// secret is the password resolved at load time; see Secret.
	secret *string
}

// Server is one MariaDB/MySQL server of the topology.
type Server struct {
	Name    string `yaml:"name" json:"name"`
	Address string `yaml:"address" json:"address"` // host:port
	Backup  bool   `yaml:"backup" json:"backup"`   // takes reads only when no normal replica can
	// Weight is the share of reads under balance: weighted, default 1; 0
	// takes the server out of rotation without removing it.
	Weight int `yaml:"weight" json:"weight"`
	// MaxConnections caps backend connections to this server across all
	// pools; 0 means unlimited.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// Priority breaks ties between equally advanced promotion candidates;
	// higher wins, default 0.
	Priority int `yaml:"priority" json:"priority"`
	// NoPromotion servers are never made primary by a failover or
	// switchover (a backup in another data centre, a delayed replica).
	NoPromotion bool `yaml:"no_promotion" json:"no_promotion"`
}

// The sections below belong to the packages that use them, which define
// their defaults and checks; the aliases keep config.Health and friends
// meaning what they always did for the rest of the code.
type (
	// Health is the monitor's timing; see topology.HealthConfig.
	Health = topology.HealthConfig
	// Routing is the read/write split policy; see router.Config.
	Routing = router.Config
	// ReadYourWrites is routing.read_your_writes.
	ReadYourWrites = router.ReadYourWrites
	// Pool tunes the per-server backend pools; see backend.PoolConfig.
	Pool = backend.PoolConfig
)

// Values of the enumerated keys.
const (
	AuthNativePassword = "mysql_native_password"
	AuthCachingSHA2    = "caching_sha2_password"

	FallbackPrimary = router.FallbackPrimary
	FallbackError   = router.FallbackError

	ConsistencyEventual = router.ConsistencyEventual
	ConsistencySession  = router.ConsistencySession
	ConsistencyGlobal   = router.ConsistencyGlobal

	BalanceRoundRobin       = router.BalanceRoundRobin
	BalanceLeastConnections = router.BalanceLeastConnections
	BalanceWeighted         = router.BalanceWeighted
)

// Timeouts bound every wait on the network. All must be > 0: a frozen
// server must never freeze a client forever.
type Timeouts struct {
	Connect    Duration `yaml:"connect" json:"connect"`         // backend connect + handshake, default 2s
	Query      Duration `yaml:"query" json:"query"`             // longest silence from a backend while a command runs, default 1h
	Handshake  Duration `yaml:"handshake" json:"handshake"`     // client handshake, default 10s
	ClientIdle Duration `yaml:"client_idle" json:"client_idle"` // idle client connection, default 8h
	PoolWait   Duration `yaml:"pool_wait" json:"pool_wait"`     // wait for a backend connection when max_connections is reached, default 5s
	// ClientWrite bounds each write to a client that stopped reading
	// (MySQL's net_write_timeout), default 60s: such a client would
	// otherwise hold a backend connection, and its locks, for
	// timeouts.query.
	ClientWrite Duration `yaml:"client_write" json:"client_write"`
	// ClientRead bounds the rest of a client command whose first bytes
	// arrived, and each packet of a LOAD DATA LOCAL file (MySQL's
	// net_read_timeout), default 30s: a client stalled mid-packet would
	// otherwise hold its buffer until client_idle.
	ClientRead Duration `yaml:"client_read" json:"client_read"`
	// WarningsPin is how long an idle session keeps the backend connection
	// its last statement left warnings or an error on, for SHOW WARNINGS,
	// default 5s; then the connection goes back to the pool.
	WarningsPin Duration `yaml:"warnings_pin" json:"warnings_pin"`
}

// TLS enables TLS for clients when Cert and Key are set. Relative paths
// are resolved against the config file's directory when the file is
// parsed: the file's meaning must not depend on where sluice was started.
type TLS struct {
	Cert string `yaml:"cert" json:"cert"`
	Key  string `yaml:"key" json:"key"`
	// RSAKey is a PEM private key for caching_sha2_password's public-key
	// exchange; when empty sluice generates one at start.
	RSAKey string `yaml:"rsa_key" json:"rsa_key"`
}

// Log configures the structured logger.
type Log struct {
	Level  string `yaml:"level" json:"level"`   // debug | info (default) | warn | error
	Format string `yaml:"format" json:"format"` // text (default) | json
}

// Digests bounds the query digest table (GET /api/digests).
type Digests struct {
	// Max is how many digests (normalized statement, user and schema) are
	// kept, default 1000, from 1 to 1000000. When the table is full, a new
	// digest replaces one with the least total time.
	Max int `yaml:"max" json:"max"`
}

// SlowQuery is the slow query log: one JSON line for each command that
// took at least Threshold.
type SlowQuery struct {
	Threshold Duration `yaml:"threshold" json:"threshold"` // default 1s; 0s turns the log off
	// File is "stderr" (default) or a path, appended to. A relative path
	// is resolved against the config file's directory when the file is
	// parsed; write ./stderr for a file of that name.
	File string `yaml:"file" json:"file"`
	// MaxQueryLength cuts the query text, in bytes, default 1024. 0 leaves
	// the text out: it holds the statement's literals, which may be
	// personal data. The digest is written either way.
	MaxQueryLength int `yaml:"max_query_length" json:"max_query_length"`
}

// SlowQueryStderr is the slow_query.file value that means standard error.
const SlowQueryStderr = "stderr"

// Enabled reports whether the slow query log is on.
func (s SlowQuery) Enabled() bool { return s.Threshold > 0 }

// Graphite pushes the metrics to a carbon plaintext listener.
type Graphite struct {
	Address  string   `yaml:"address" json:"address"`   // host:port; "" (default) turns the push off
	Prefix   string   `yaml:"prefix" json:"prefix"`     // first nodes of every metric path, default "sluice"
	Interval Duration `yaml:"interval" json:"interval"` // default 10s; at least 1s
}

// Enabled reports whether metrics are pushed to Graphite.
func (g Graphite) Enabled() bool { return g.Address != "" }

// Failover is the `failover:` section. Its own keys, with their defaults
// and checks, are failover.Section's, embedded so that the file and the
// code name them as before. The replication account and the hooks stay
// here: the loader keeps their password and token, resolved from the
// environment, in unexported fields beside them (out of JSON and fmt),
// which only this package can set.
type Failover struct {
	failover.Section `yaml:",inline"`
	// Replication is the account replicas use to connect to a new primary
	// (CHANGE MASTER TO MASTER_USER). Required for failover and switchover.
	Replication Credentials `yaml:"replication" json:"replication"`
	Hooks       Hooks       `yaml:"hooks" json:"hooks"`
}

// Hooks tell the outside world about topology changes.
type Hooks struct {
	// Command is an argv run without a shell, with SLUICE_* variables in
	// its environment; [] for none.
	Command []string `yaml:"command" json:"command"`
	// Webhook is an http(s) URL POSTed a JSON body; "" for none.
	Webhook string `yaml:"webhook" json:"webhook"`
	// Timeout bounds each hook run, default 10s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Token (or the variable TokenEnv names) is sent to the webhook as
	// "Authorization: Bearer <token>".
	Token    string `yaml:"token" json:"token"`
	TokenEnv string `yaml:"token_env" json:"token_env"`

	// secret is the token resolved at load time; see TokenSecret.
	secret *string
}

// DefaultStateFile is failover.state_file's default, relative to the config
// file's directory.
const DefaultStateFile = failover.DefaultStateFile
