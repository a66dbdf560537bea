package placement

import (
	"fmt"
	"strconv"
	"strings"
)

// Pattern is an exact table name, or a numbered family written with one
// range in braces: "bucket_{0000..1023}" is bucket_0000 … bucket_1023.
// When the first bound is written with a leading zero, both bounds must
// have the same number of digits and every name is zero-padded to it;
// otherwise numbers are written plainly ("t{1..12}" is t1 … t12). Text
// may come before and after the braces.
type Pattern struct {
	text           string
	prefix, suffix string
	lo, hi         uint64
	width          int // digits of a padded family; 0: plain numbers
	ranged         bool
}

// ParsePattern reads a pattern; see Pattern.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{text: s}
	open := strings.IndexByte(s, '{')
	if open < 0 {
		if strings.IndexByte(s, '}') >= 0 {
			return p, fmt.Errorf("%q has a '}' without '{'", s)
		}
		if s == "" {
			return p, fmt.Errorf("empty table name")
		}
		p.prefix = s
		return p, nil
	}
	end := strings.IndexByte(s[open:], '}')
	if end < 0 {
		return p, fmt.Errorf("%q: '{' without '}'", s)
	}
	end += open
	if strings.ContainsAny(s[end+1:], "{}") {
		return p, fmt.Errorf("%q: only one {A..B} range is allowed", s)
	}
	a, b, ok := strings.Cut(s[open+1:end], "..")
	if !ok || !digits(a) || !digits(b) {
		return p, fmt.Errorf("%q: a range is written {A..B} with decimal numbers, such as bucket_{0000..1023}", s)
	}
	lo, err1 := strconv.ParseUint(a, 10, 64)
	hi, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || lo > hi {
		return p, fmt.Errorf("%q: the range must go from a smaller number to a larger one", s)
	}
	if len(a) > 1 && a[0] == '0' {
		if len(b) != len(a) {
			return p, fmt.Errorf("%q: a zero-padded range needs both bounds of the same width (%d digits)", s, len(a))
		}
		p.width = len(a)
	}
	p.prefix, p.suffix, p.lo, p.hi, p.ranged = s[:open], s[end+1:], lo, hi, true
	return p, nil
}

func digits(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// Exact reports whether the pattern is one name, not a family.
func (p Pattern) Exact() bool { return !p.ranged }

// Len is how many names the pattern stands for.
func (p Pattern) Len() uint64 {
	if !p.ranged {
		return 1
	}
	return p.hi - p.lo + 1
}

// Names calls fn with every name of the pattern in order, until fn
// returns false.
func (p Pattern) Names(fn func(string) bool) {
	if !p.ranged {
		fn(p.prefix)
		return
	}
	for n := p.lo; ; n++ {
		num := strconv.FormatUint(n, 10)
		if len(num) < p.width {
			num = strings.Repeat("0", p.width-len(num)) + num
		}
		if !fn(p.prefix+num+p.suffix) || n == p.hi {
			return
		}
	}
}

// Match reports whether name is one of the pattern's names. It does not
// allocate.
func (p Pattern) Match(name []byte) bool {
	if !p.ranged {
		return string(name) == p.prefix
	}
	if len(name) <= len(p.prefix)+len(p.suffix) || string(name[:len(p.prefix)]) != p.prefix ||
		string(name[len(name)-len(p.suffix):]) != p.suffix {
		return false
	}
	mid := name[len(p.prefix) : len(name)-len(p.suffix)]
	if p.width > 0 && len(mid) != p.width || p.width == 0 && len(mid) > 1 && mid[0] == '0' || len(mid) > 19 {
		return false
	}
	var n uint64
	for _, c := range mid {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	return n >= p.lo && n <= p.hi
}
