package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-proxy/sluice/internal/confval"
)

// decoder walks a yaml.Node tree into a Config by hand. yaml.v3's own
// decoding stops at the first type error and reports unknown keys without
// saying which keys would have been right; walking the tree lets Parse
// report every problem with its position, and remember where each value
// came from so that validation can point at it too.
type decoder struct {
	file     string
	problems Problems
	// nodes maps a key path ("servers[1].address") to the node holding its
	// value, for validation messages. Paths absent from the file are absent
	// here.
	nodes map[string]*yaml.Node
	// failed holds the paths whose values could not be decoded.
	failed map[string]bool
	// visits and aliasDepth bound the walk: aliases may form cycles or
	// expand exponentially ("billion laughs"), and Parse must finish on any
	// input.
	visits     int
	aliasDepth int
	exhausted  bool
}

const (
	maxVisits     = 100_000
	maxAliasDepth = 32
)

// fail reports that the value at path could not be decoded, and remembers
// it so that validation does not pile further problems on the same spot
// ("no password" after "password must be a string").
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.errorf(n, "%s: %s", displayPath(path), fmt.Sprintf(format, args...))
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	p := Problem{File: d.file, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// defaulter is implemented by list elements that have per-element defaults,
// so that a server without "weight" gets weight 1 while "weight: 0" stays 0.
type defaulter interface{ setDefaults() }

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// value decodes n into v, which already holds the defaults: a key that is
// absent leaves its default alone, so an explicit zero ("rise: 0") can be
// told apart from a missing key and rejected.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	d.nodes[path] = n
	n, ok := d.deref(n, path)
	if !ok {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		// An empty mapping or list ("tls:" with its keys commented out) is
		// as good as none. An empty scalar is almost always a value someone
		// forgot to fill in, so say so rather than quietly use a default.
		if v.Kind() != reflect.Struct && v.Kind() != reflect.Slice || v.Addr().Type().Implements(unmarshalerType) {
			msg := "has no value (give one, or remove the key to use the default)"
			if path == "http_listen" {
				msg += `; "" disables the HTTP listener`
			}
			d.fail(n, path, "%s", msg)
		}
		return
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "must be a mapping of keys, got %s", confval.Describe(n))
			return
		}
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "must be a list, got %s", confval.Describe(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			elem := reflect.New(v.Type().Elem())
			if def, ok := elem.Interface().(defaulter); ok {
				def.setDefaults()
			}
			d.value(item, elem.Elem(), fmt.Sprintf("%s[%d]", path, i))
			out = reflect.Append(out, elem.Elem())
		}
		v.Set(out)
	case reflect.String:
		// Unquoted numbers are fine as strings (a password of 1234), but
		// true/false are not: "password: yes" is a string and
		// "password: true" is a boolean, and guessing which the user meant
		// would be wrong half the time. The value is never echoed since it
		// may be a password.
		switch {
		case n.Kind != yaml.ScalarNode:
			d.fail(n, path, "must be a string, got %s", confval.Describe(n))
		case n.ShortTag() == "!!str" || n.ShortTag() == "!!int" || n.ShortTag() == "!!float":
			v.SetString(n.Value)
		default:
			d.fail(n, path, "must be a string, got %s (quote it)", confval.Describe(n))
		}
	case reflect.Int, reflect.Int64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && isDigits(strings.TrimLeft(n.Value, "+-")) {
			// yaml.v3 resolves integers too large for int64 as floats.
			d.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			hint := ""
			if _, err := strconv.Atoi(n.Value); err == nil && n.Kind == yaml.ScalarNode {
				hint = " (remove the quotes)"
			}
			d.fail(n, path, "must be an integer, got %s%s", confval.Describe(n), hint)
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			d.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "must be true or false, got %s", confval.Describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic("config: no decoder for " + v.Type().String())
	}
}

// deref follows aliases and charges the walk's budget. It reports false when
// the walk must not go on.
func (d *decoder) deref(n *yaml.Node, path string) (*yaml.Node, bool) {
	if d.exhausted {
		return nil, false
	}
	d.visits++
	if d.visits > maxVisits {
		d.exhausted = true
		d.fail(n, path, "the document expands to too many values (aliases nested too deeply?)")
		return nil, false
	}
	for depth := 0; n.Kind == yaml.AliasNode; depth++ {
		if n.Alias == nil || depth > maxAliasDepth {
			d.fail(n, path, "alias *%s cannot be resolved (does it refer to itself?)", n.Value)
			return nil, false
		}
		n = n.Alias
	}
	return n, true
}

// field is one YAML key of a struct. The keys of a section embedded with
// `yaml:",inline"` (failover.Section in Failover) are the struct's own
// keys, in the embedding's place: such a key is the field at inner within
// the embedded one at index.
type field struct {
	name  string
	index int
	inner []int
}

func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if sf.Anonymous && name == "" && opts == "inline" && sf.Type.Kind() == reflect.Struct {
			for _, f := range fieldsOf(sf.Type) {
				fs = append(fs, field{f.name, i, append([]int{f.index}, f.inner...)})
			}
			continue
		}
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name: name, index: i})
	}
	return fs
}

// of is the field's value in v, a struct of the type fieldsOf read.
func (f field) of(v reflect.Value) reflect.Value {
	v = v.Field(f.index)
	if f.inner != nil {
		v = v.FieldByIndex(f.inner)
	}
	return v
}

// typeIn is the field's type in t, the type fieldsOf read.
func (f field) typeIn(t reflect.Type) reflect.Type {
	sf := t.Field(f.index)
	if f.inner != nil {
		sf = sf.Type.FieldByIndex(f.inner)
	}
	return sf.Type
}

func fieldNames(fs []field) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return names
}

// mapping decodes the keys of n into struct v. Merge keys ("<<: *common")
// are applied first so that keys written out in the mapping override them,
// as YAML specifies.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	fs := fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for pass := range 2 {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			isMerge := k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
			if isMerge != (pass == 0) {
				continue
			}
			if isMerge {
				d.merge(val, v, path)
				continue
			}
			d.key(k, val, v, path, fs, seen)
		}
	}
}

func (d *decoder) merge(val *yaml.Node, v reflect.Value, path string) {
	src, ok := d.deref(val, path)
	if !ok {
		return
	}
	d.aliasDepth++
	defer func() { d.aliasDepth-- }()
	if d.aliasDepth > maxAliasDepth {
		d.errorf(val, "%s: merge keys nested too deeply", displayPath(path))
		return
	}
	var sources []*yaml.Node
	switch src.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{src}
	case yaml.SequenceNode:
		// The first mapping listed wins, so apply them last to first.
		for i := len(src.Content) - 1; i >= 0; i-- {
			sources = append(sources, src.Content[i])
		}
	default:
		d.errorf(val, "%s: a merge (<<) needs a mapping or a list of mappings, got %s", displayPath(path), confval.Describe(src))
		return
	}
	for _, s := range sources {
		m, ok := d.deref(s, path)
		if !ok {
			continue
		}
		if m.Kind != yaml.MappingNode {
			d.errorf(s, "%s: a merge (<<) needs a mapping or a list of mappings, got %s", displayPath(path), confval.Describe(m))
			continue
		}
		d.mapping(m, v, path)
	}
}

func (d *decoder) key(k, val *yaml.Node, v reflect.Value, path string, fs []field, seen map[string]*yaml.Node) {
	k, ok := d.deref(k, path)
	if !ok {
		return
	}
	if k.Kind != yaml.ScalarNode {
		d.errorf(k, "%s: keys must be plain names, got %s", displayPath(path), confval.Describe(k))
		return
	}
	name := k.Value
	if first, dup := seen[name]; dup {
		d.errorf(k, "duplicate key %q %s (first at line %d)", name, where(path), first.Line)
		return
	}
	seen[name] = k
	for _, f := range fs {
		if f.name == name {
			d.value(val, f.of(v), joinPath(path, name))
			return
		}
	}
	d.unknownKey(k, val, v.Type(), path, fs)
}

var (
	userType        = reflect.TypeFor[User]()
	credentialsType = reflect.TypeFor[Credentials]()
)

func (d *decoder) unknownKey(k, val *yaml.Node, t reflect.Type, path string, fs []field) {
	names := fieldNames(fs)
	allowed := "allowed: " + strings.Join(names, ", ")
	if (t == userType || t == credentialsType) && val.Kind == yaml.ScalarNode && val.ShortTag() == "!!null" {
		// "{name: app, hunter2}" parses as a key with no value. Echoing the
		// key would print the password.
		d.errorf(k, "%s: a key without a value (not shown: it may be a password; did you mean \"password: ...\"?); %s", displayPath(path), allowed)
		return
	}
	msg := fmt.Sprintf("unknown key %q %s", k.Value, where(path))
	if s := confval.Closest(k.Value, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if other := keyPaths[k.Value]; len(other) > 0 {
		// Usually a line indented one level too little or too much.
		msg += fmt.Sprintf(" (it belongs under %s)", strings.Join(other, " or "))
	}
	d.errorf(k, "%s; %s", msg, allowed)
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func where(path string) string {
	if path == "" {
		return "at top level"
	}
	return "in " + path
}

func displayPath(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// pos returns where path was written, or where its closest written ancestor
// was: a missing "password" is reported at its user's entry.
func (d *decoder) pos(path string) *yaml.Node {
	for ; path != ""; path = parent(path) {
		if n, ok := d.nodes[path]; ok {
			return n
		}
	}
	return nil
}

// failedAt reports whether path or one of its ancestors failed to decode.
func (d *decoder) failedAt(path string) bool {
	for ; path != ""; path = parent(path) {
		if d.failed[path] {
			return true
		}
	}
	return d.failed[""]
}

// parent strips the last element of a path: "servers[1].name" ->
// "servers[1]" -> "servers" -> "".
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// keyPaths maps each key name to the sections it belongs in, e.g.
// "interval" -> ["health"], "password" -> ["users[]", "monitor"].
var keyPaths = func() map[string][]string {
	m := map[string][]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for _, f := range fieldsOf(t) {
			if path != "" {
				m[f.name] = append(m[f.name], path)
			}
			ft := f.typeIn(t)
			sub := joinPath(path, f.name)
			if ft.Kind() == reflect.Slice {
				ft, sub = ft.Elem(), sub+"[]"
			}
			if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) && sub != "clusters[]" {
				// A cluster's sections mirror the top-level ones: hints
				// name those.
				walk(ft, sub)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return m
}()
