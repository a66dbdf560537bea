package confval

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is a mistake at a key path ("health.rise",
// "clusters[1].routing.balance"). A section knows its keys but not where
// the file wrote them: the config loader turns the path into a line and
// column.
type Problem struct{ Path, Message string }

// Problemf builds a Problem with a formatted message.
func Problemf(path, format string, args ...any) Problem {
	return Problem{Path: path, Message: fmt.Sprintf(format, args...)}
}

// OneOf checks an enumerated key: no problem when value is allowed, else
// one that lists what is, with the value most likely meant.
func OneOf(path, value string, allowed ...string) []Problem {
	if slices.Contains(allowed, value) {
		return nil
	}
	msg := fmt.Sprintf("unknown value %q", value)
	if s := Closest(value, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return []Problem{Problemf(path, "%s; allowed: %s", msg, strings.Join(allowed, ", "))}
}

// Closest returns the candidate a typo most likely meant, or "" when none
// is near enough to be a helpful guess.
func Closest(s string, candidates []string) string {
	norm := func(x string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(x))
	}
	best, bestDist := "", 0
	for _, c := range candidates {
		if norm(c) == norm(s) {
			return c
		}
		dist := levenshtein(s, c)
		if best == "" || dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best == "" || bestDist > max(2, len(s)/3) || bestDist >= len(s) {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// PlainName reports whether s uses only letters, digits, '.', '_' and
// '-': the rule for server names, and for names sluice writes into SQL
// unquoted (routing.heartbeat_table's parts; '.' is allowed there, so
// "db.t.x" is table "t.x" of db).
func PlainName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
