package config

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// Listeners are the addresses of the MySQL protocol listener: host:port
// for TCP, or an absolute path (anything with a '/') for a Unix socket.
// The YAML value is one address or a list of them.
type Listeners []string

// IsSocketPath reports whether a listen address is a Unix socket path.
func IsSocketPath(addr string) bool { return strings.Contains(addr, "/") }

// String joins the addresses for messages.
func (l Listeners) String() string { return strings.Join(l, ", ") }

// Equal reports whether two listener lists are the same, in order.
func (l Listeners) Equal(o Listeners) bool {
	if len(l) != len(o) {
		return false
	}
	for i := range l {
		if l[i] != o[i] {
			return false
		}
	}
	return true
}

func (l *Listeners) UnmarshalYAML(n *yaml.Node) error {
	scalar := func(n *yaml.Node) (string, error) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" && n.ShortTag() != "!!int" {
			return "", fmt.Errorf("must be host:port or a socket path, got %s", confval.Describe(n))
		}
		return n.Value, nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s, err := scalar(n)
		if err != nil {
			return err
		}
		*l = Listeners{s}
		return nil
	case yaml.SequenceNode:
		out := make(Listeners, 0, len(n.Content))
		for i, item := range n.Content {
			s, err := scalar(item)
			if err != nil {
				return fmt.Errorf("[%d] %v", i, err)
			}
			out = append(out, s)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("must be host:port, a socket path or a list of them, got %s", confval.Describe(n))
}

// MarshalYAML and MarshalJSON write one address as a plain string, as it
// was most likely written.
func (l Listeners) MarshalYAML() (any, error) {
	if len(l) == 1 {
		return l[0], nil
	}
	return []string(l), nil
}

func (l Listeners) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]string(l))
}
