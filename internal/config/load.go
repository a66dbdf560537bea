package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/failover"
	"github.com/sluice-proxy/sluice/internal/hooks"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// Load reads and validates the file at path. getenv resolves password_env;
// pass os.Getenv (nil means os.Getenv). An invalid file yields Problems
// listing everything wrong with it; a file that cannot be read yields an
// ordinary error.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path, getenv)
}

// MaxFileSize bounds a configuration file. Real ones are a few KiB; the
// bound keeps `sluice check -c /dev/zero` from reading until memory runs out.
const MaxFileSize = 1 << 20

// readFile reads a regular file of at most MaxFileSize bytes. Devices and
// FIFOs are refused before they are opened for reading (a FIFO would block
// the open itself), and the read stops at the bound even if the file grows.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes; a configuration file may have at most %d", path, fi.Size(), MaxFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s grew past %d bytes while being read", path, MaxFileSize)
	}
	return data, nil
}

// Parse decodes and validates a config held in memory. name is the file
// name: messages start with it, and relative paths in tls are resolved
// against its directory. Defaults fill every key the file leaves out.
func Parse(data []byte, name string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	d := &decoder{file: name, nodes: map[string]*yaml.Node{}, failed: map[string]bool{}}
	c := Default()
	root, p := parseYAML(data, name)
	if p != nil {
		return nil, Problems{*p}
	}
	if root != nil {
		d.value(root, reflect.ValueOf(c).Elem(), "")
	}
	d.validate(c, getenv)
	if len(d.problems) > 0 {
		d.problems.sort()
		return nil, d.problems
	}
	return c, nil
}

// parseYAML returns the document's root node, nil for an empty document, or
// the syntax error as a Problem.
func parseYAML(data []byte, name string) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxProblem(name, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxProblem(name, err)
	default:
		return nil, &Problem{File: name, Line: next.Line, Column: next.Column,
			Message: "a second YAML document (after ---); sluice reads one document per file"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxProblem moves yaml.v3's "yaml: line N: " prefix into the Problem's
// position so that syntax errors print like every other problem.
func syntaxProblem(name string, err error) *Problem {
	msg := err.Error()
	p := &Problem{File: name}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.Message = "YAML syntax: " + msg
	return p
}

// Default returns a Config holding every default and no users or servers.
// Parse starts from it, so a key absent from the file keeps its default
// while a key written with a zero value is checked as written.
func Default() *Config {
	return &Config{
		Listen:     Listeners{"127.0.0.1:4040"},
		HTTPListen: "127.0.0.1:4041",
		Health:     topology.DefaultHealthConfig(),
		Routing:    router.DefaultConfig(),
		Timeouts: Timeouts{
			Connect:     Duration(2 * time.Second),
			Query:       Duration(time.Hour),
			Handshake:   Duration(10 * time.Second),
			ClientIdle:  Duration(8 * time.Hour),
			PoolWait:    Duration(5 * time.Second),
			ClientWrite: Duration(60 * time.Second),
			ClientRead:  Duration(30 * time.Second),
			WarningsPin: Duration(5 * time.Second),
		},
		Pool:    backend.DefaultPoolConfig(),
		Log:     Log{Level: "info", Format: "text"},
		Digests: Digests{Max: 1000},
		SlowQuery: SlowQuery{
			Threshold:      Duration(time.Second),
			File:           SlowQueryStderr,
			MaxQueryLength: 1024,
		},
		Graphite: Graphite{Prefix: "sluice", Interval: Duration(10 * time.Second)},
		Failover: Failover{
			Section: failover.DefaultSection(),
			Hooks:   Hooks{Timeout: Duration(hooks.DefaultTimeout)},
		},
		MaxAllowedPacket:   64 << 20,
		MaxLongData:        64 << 20,
		HTTPMaxConnections: 64,
		Login:              Login{MaxFailures: 10, Block: Duration(time.Second), MaxBlock: Duration(time.Minute)},
	}
}

func (s *Server) setDefaults() { s.Weight = 1 }

func (u *User) setDefaults() { u.AuthPlugin = AuthNativePassword }

// Secret returns the user's password: the value password_env named, read
// once when the file was loaded, or else Password. The resolved value sits
// in an unexported pointer so that encoding/json leaves it out and fmt's %v
// of a User prints an address rather than the password.
func (u User) Secret() string {
	if u.secret != nil {
		return *u.secret
	}
	return u.Password
}

// Secret returns the monitor's password, resolved as for User.Secret.
func (c Credentials) Secret() string {
	if c.secret != nil {
		return *c.secret
	}
	return c.Password
}

// HTTPTokenSecret returns the admin API's bearer token, "" when none.
func (c *Config) HTTPTokenSecret() string {
	if c.httpToken != nil {
		return *c.httpToken
	}
	return c.HTTPToken
}

// TokenSecret returns the webhook's bearer token, "" when none: the value
// token_env named, read once when the file was loaded, or else Token.
func (h Hooks) TokenSecret() string {
	if h.secret != nil {
		return *h.secret
	}
	return h.Token
}

// HooksConfig returns what package hooks needs to run the failover hooks,
// with the token resolved. Command is a copy: the Config stays immutable.
func (c *Config) HooksConfig() hooks.Config {
	h := c.Failover.Hooks
	return hooks.Config{
		Command: slices.Clone(h.Command),
		Webhook: h.Webhook,
		Timeout: h.Timeout.D(),
		Token:   h.TokenSecret(),
	}
}

// HTTPEnabled reports whether the admin HTTP listener should run.
func (c *Config) HTTPEnabled() bool { return c.HTTPListen != "" }

// ServerByName returns the server with that name.
func (c *Config) ServerByName(name string) (Server, bool) {
	for _, s := range c.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// UserByName returns the user with that name. Names are compared exactly,
// as MySQL compares user names.
func (c *Config) UserByName(name string) (User, bool) {
	for _, u := range c.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

const redactedPassword = "***"

// Redacted returns a copy fit for logs and the admin API: every password
// and token that is set reads "***", and so do Secret(), HTTPTokenSecret()
// and TokenSecret() on the copy; the webhook URL loses its password and
// query, which may hold credentials. password_env and token_env names
// stay, since they are not secret and tell an operator where the password
// comes from. The receiver is not changed.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	r := *c
	r.Users = slices.Clone(c.Users)
	r.Servers = slices.Clone(c.Servers)
	for i := range r.Users {
		redact(&r.Users[i].Password, &r.Users[i].secret)
	}
	redact(&r.Monitor.Password, &r.Monitor.secret)
	redact(&r.Moves.Password, &r.movesSecret)
	redact(&r.HTTPToken, &r.httpToken)
	redact(&r.Failover.Replication.Password, &r.Failover.Replication.secret)
	redact(&r.Failover.Hooks.Token, &r.Failover.Hooks.secret)
	r.Failover.Hooks.Command = slices.Clone(c.Failover.Hooks.Command)
	r.Failover.Hooks.Webhook = redactURL(c.Failover.Hooks.Webhook)
	r.Clusters = slices.Clone(c.Clusters)
	for i := range r.Clusters {
		f := &r.Clusters[i].Failover
		redact(&f.Replication.Password, &f.Replication.secret)
		redact(&f.Hooks.Token, &f.Hooks.secret)
		f.Hooks.Command = slices.Clone(f.Hooks.Command)
		f.Hooks.Webhook = redactURL(f.Hooks.Webhook)
	}
	return &r
}

// redactURL hides a URL's password and query string. A URL that does not
// parse (validation refused it already) is hidden whole.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redactedPassword
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = redactedPassword, false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.Redacted()
}

func redact(password *string, secret **string) {
	if *password != "" {
		*password = redactedPassword
	}
	if *secret != nil {
		s := redactedPassword
		*secret = &s
	}
}

// AdminEndpoint reads only what a client of the admin API needs from the
// file at path (http_listen and the token), without validating the rest:
// an operator's shell running `sluice switchover` need not hold every
// password the running sluice was given.
func AdminEndpoint(path string, getenv func(string) string) (listen, token string, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	data, err := readFile(path)
	if err != nil {
		return "", "", fmt.Errorf("read config: %w", err)
	}
	f := struct {
		HTTPListen   *string `yaml:"http_listen"`
		HTTPToken    string  `yaml:"http_token"`
		HTTPTokenEnv string  `yaml:"http_token_env"`
	}{}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	listen = Default().HTTPListen
	if f.HTTPListen != nil {
		listen = *f.HTTPListen
	}
	token = f.HTTPToken
	if f.HTTPTokenEnv != "" {
		if token = getenv(f.HTTPTokenEnv); token == "" {
			return "", "", fmt.Errorf("%s: http_token_env names %s, which is not set here; set it or give --token", path, f.HTTPTokenEnv)
		}
	}
	return listen, token, nil
}
