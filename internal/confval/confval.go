// Package confval holds the typed values configuration sections are made
// of: Duration and ByteSize with their YAML and JSON syntax, and Problem,
// what a section's Validate returns.
//
// Each section belongs to the package that uses it (topology's health
// timing, the router's policy, the mover's settings, placement, the
// backend pools, the failover manager's bounds), and
// internal/config composes them into the file. Those packages cannot import
// config, which imports them; this leaf package is what they share.
package confval

import "go.yaml.in/yaml/v3"

// Describe names what a node holds without quoting its value: the value
// may be a password.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "no value"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a value tagged " + n.Tag
}
