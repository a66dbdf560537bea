package sqlscan

// tokKind is the lexical class of a token.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tWord           // unquoted identifier or keyword
	tQuoted         // `backquoted identifier`
	tString         // '…', "…", N'…', _charset'…'
	tNumber         // 12, 1.5, .5, 1e-3
	tHex            // 0x1F, X'1F', 0b01, B'01'
	tParam          // ? placeholder
	tVar            // @user, @'user', @@sys, @@session.sys
	tOp             // punctuation and operators, one token each
)

// token is a span of the input; tokens never copy bytes.
type token struct {
	kind       tokKind
	start, end int
}

// lexer walks a SQL text token by token. It is a small value: callers that
// need to look ahead copy it and throw the copy away.
type lexer struct {
	sql     []byte
	pos     int
	exec    bool  // inside an executable comment /*! … */
	hints   Flags // routing hints seen in comments so far
	prev    tokKind
	prevEnd int
	prevDot bool // the previous token is a '.' that follows a name: what comes next is a name
}

func newLexer(sql []byte) lexer { return lexer{sql: sql} }

// Byte classes, looked up in a table because the lexer asks for each byte.
const (
	bSpace = 1 << iota // whitespace: MySQL rejects the other control bytes anyway
	bDigit
	bHex
	bIdent // may appear in an unquoted name; bytes from 0x80 up are UTF-8, which MySQL accepts
	bSkip  // may start a comment or end an executable one: # - / *
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c <= ' ':
			t[c] = bSpace
		case c >= '0' && c <= '9':
			t[c] = bDigit | bHex | bIdent
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			t[c] = bHex | bIdent
		case c|0x20 >= 'g' && c|0x20 <= 'z', c == '_', c == '$', c >= 0x80:
			t[c] = bIdent
		case c == '#', c == '-', c == '/', c == '*':
			t[c] = bSkip
		}
	}
	return t
}()

func isSpace(c byte) bool  { return byteClass[c]&bSpace != 0 }
func isDigit(c byte) bool  { return byteClass[c]&bDigit != 0 }
func isHex(c byte) bool    { return byteClass[c]&bHex != 0 }
func isIdent(c byte) bool  { return byteClass[c]&bIdent != 0 }
func isBinary(c byte) bool { return c == '0' || c == '1' }

func identEnd(s []byte, i int) int {
	for i < len(s) && isIdent(s[i]) {
		i++
	}
	return i
}

func digitsEnd(s []byte, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// stringEnd returns the end of a quoted string whose opening quote q is at
// i-1. An unterminated string runs to the end of the input.
func stringEnd(s []byte, i int, q byte) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			if q != '`' {
				i++
			}
		case q:
			if i+1 < len(s) && s[i+1] == q {
				i++
			} else {
				return i + 1
			}
		}
		i++
	}
	return len(s)
}

// next returns the next token, skipping whitespace and comments; at the end
// it returns tEOF forever.
func (lx *lexer) next() token {
	lx.skip()
	s, start := lx.sql, lx.pos
	if start >= len(s) {
		return token{kind: tEOF, start: len(s), end: len(s)}
	}
	c := s[start]
	var k tokKind
	switch {
	case isDigit(c):
		k = lx.number(start)
	case isIdent(c):
		k = lx.word(start)
	case c == '\'' || c == '"':
		k, lx.pos = tString, stringEnd(s, start+1, c)
	case c == '`':
		k, lx.pos = tQuoted, stringEnd(s, start+1, c)
	case c == '.' && start+1 < len(s) && isDigit(s[start+1]) && !lx.afterName(start):
		k, lx.pos = tNumber, exponentEnd(s, digitsEnd(s, start+1))
	case c == '@':
		k = lx.variable(start)
	case c == '?':
		k, lx.pos = tParam, start+1
	default:
		k, lx.pos = tOp, opEnd(s, start)
	}
	lx.prevDot = k == tOp && c == '.' && (lx.prev == tWord || lx.prev == tQuoted)
	lx.prev, lx.prevEnd = k, lx.pos
	return token{kind: k, start: start, end: lx.pos}
}

// afterName reports whether the token before position i is a name that
// touches it, as in t.5 (column 5 of t) as opposed to t .5 (t aliased .5).
func (lx *lexer) afterName(i int) bool {
	return lx.prevEnd == i && (lx.prev == tWord || lx.prev == tQuoted)
}

func (lx *lexer) skip() {
	s := lx.sql
	for lx.pos < len(s) {
		i := lx.pos
		c := s[i]
		if byteClass[c]&(bSpace|bSkip) == 0 {
			return
		}
		switch {
		case isSpace(c):
			lx.pos++
		case c == '#':
			lx.lineComment(i + 1)
		case c == '-' && i+1 < len(s) && s[i+1] == '-' && (i+2 == len(s) || isSpace(s[i+2])):
			// "--" starts a comment only before a space: 1--1 is 1 - -1.
			lx.lineComment(i + 2)
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			if n := execMarker(s, i); n > 0 {
				lx.exec, lx.pos = true, i+n
				continue
			}
			end := i + 2
			for end+1 < len(s) && !(s[end] == '*' && s[end+1] == '/') {
				end++
			}
			if end+1 >= len(s) {
				lx.hints |= hintsIn(s[i+2:])
				lx.pos = len(s)
			} else {
				lx.hints |= hintsIn(s[i+2 : end])
				lx.pos = end + 2
			}
		case c == '*' && lx.exec && i+1 < len(s) && s[i+1] == '/':
			lx.exec, lx.pos = false, i+2
		default:
			return
		}
	}
}

func (lx *lexer) lineComment(i int) {
	s := lx.sql
	end := i
	for end < len(s) && s[end] != '\n' {
		end++
	}
	lx.hints |= hintsIn(s[i:end])
	lx.pos = end
}

// execMarker returns the length of an executable-comment opening at i
// ("/*!", "/*M!" and the version number after it), or 0. A version has 5
// digits (MySQL, 50700) or, after /*M!, 6 (MariaDB, 100100); fewer digits
// are code, as in /*!1 */.
func execMarker(s []byte, i int) int {
	n := 3
	switch {
	case i+2 < len(s) && s[i+2] == '!':
	case i+3 < len(s) && s[i+2] == 'M' && s[i+3] == '!':
		n = 4
	default:
		return 0
	}
	d := digitsEnd(s, i+n) - (i + n)
	switch {
	case d >= 6 && n == 4:
		n += 6
	case d >= 5:
		n += 5
	}
	return n
}

// number lexes a token that starts with a digit. MySQL lets names start
// with digits (1st_place, 0xZZ), so a digit run that runs on into letters
// is a word unless it is a well-formed literal.
func (lx *lexer) number(start int) tokKind {
	s := lx.sql
	run := identEnd(s, start)
	if lx.prevDot { // t.1col: a name, whatever it looks like
		lx.pos = run
		return tWord
	}
	// 0x and 0b are case-sensitive: 0X1F is a name.
	if s[start] == '0' && run-start > 2 && (s[start+1] == 'x' || s[start+1] == 'b') {
		digit := isHex
		if s[start+1] == 'b' {
			digit = isBinary
		}
		ok := true
		for _, c := range s[start+2 : run] {
			ok = ok && digit(c)
		}
		if ok {
			lx.pos = run
			return tHex
		}
	}
	j := digitsEnd(s, start)
	if j < len(s) && s[j] == '.' {
		lx.pos = exponentEnd(s, digitsEnd(s, j+1))
		return tNumber
	}
	if e := exponentEnd(s, j); e > j && (e == len(s) || !isIdent(s[e])) {
		lx.pos = e
		return tNumber
	}
	if j == run {
		lx.pos = j
		return tNumber
	}
	lx.pos = run
	return tWord
}

// exponentEnd returns the end of an exponent (e5, E-3) at i, or i.
func exponentEnd(s []byte, i int) int {
	if i < len(s) && s[i]|0x20 == 'e' {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			return digitsEnd(s, j)
		}
	}
	return i
}

func (lx *lexer) word(start int) tokKind {
	s := lx.sql
	end := identEnd(s, start)
	if end < len(s) && s[end] == '\'' && end-start == 1 && !lx.prevDot {
		switch s[start] | 0x20 {
		case 'x', 'b':
			lx.pos = stringEnd(s, end+1, '\'')
			return tHex
		case 'n':
			lx.pos = stringEnd(s, end+1, '\'')
			return tString
		}
	}
	// A charset introducer belongs to its string: _utf8mb4'abc'.
	if end < len(s) && (s[end] == '\'' || s[end] == '"') && s[start] == '_' && end-start > 1 {
		lx.pos = stringEnd(s, end+1, s[end])
		return tString
	}
	lx.pos = end
	return tWord
}

// variable lexes @user, @'user', @`user`, @@name and @@scope.name. An '@'
// right after a quoted name is the user@host separator of account names.
func (lx *lexer) variable(start int) tokKind {
	s := lx.sql
	if lx.prevEnd == start && (lx.prev == tString || lx.prev == tQuoted) {
		lx.pos = start + 1
		return tOp
	}
	i := start + 1
	switch {
	case i < len(s) && s[i] == '@':
		i = identEnd(s, i+1)
		for i+1 < len(s) && s[i] == '.' && isIdent(s[i+1]) {
			i = identEnd(s, i+1)
		}
	case i < len(s) && (s[i] == '\'' || s[i] == '"' || s[i] == '`'):
		i = stringEnd(s, i+1, s[i])
	case i < len(s) && isIdent(s[i]):
		// Unquoted user variable names may contain dots.
		for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
			i++
		}
	}
	lx.pos = i
	return tVar
}

// opEnd returns the end of the operator at i: the longest of the
// multi-byte operators, or a single byte.
func opEnd(s []byte, i int) int {
	if i+1 < len(s) {
		a, b := s[i], s[i+1]
		switch {
		case a == '<' && b == '=' && i+2 < len(s) && s[i+2] == '>':
			return i + 3
		case a == '-' && b == '>':
			if i+2 < len(s) && s[i+2] == '>' {
				return i + 3
			}
			return i + 2
		case a == ':' && b == '=', a == '<' && (b == '=' || b == '>' || b == '<'),
			a == '>' && (b == '=' || b == '>'), a == '!' && b == '=',
			a == '&' && b == '&', a == '|' && b == '|':
			return i + 2
		}
	}
	return i + 1
}

// isOp reports whether t is the one-byte operator c.
func (t token) isOp(s []byte, c byte) bool {
	return t.kind == tOp && t.end-t.start == 1 && s[t.start] == c
}

// isOp2 reports whether t is the two-byte operator ab.
func (t token) isOp2(s []byte, a, b byte) bool {
	return t.kind == tOp && t.end-t.start == 2 && s[t.start] == a && s[t.start+1] == b
}

// endsStatement reports whether t is the end of a statement: ';' or EOF.
func (t token) endsStatement(s []byte) bool {
	return t.kind == tEOF || t.isOp(s, ';')
}

// isLiteral reports whether Digest turns t into '?'.
func (t token) isLiteral() bool {
	return t.kind == tString || t.kind == tNumber || t.kind == tHex || t.kind == tParam
}

// hintsIn finds sluice:primary and sluice:replica in a comment body, in
// any case and with spaces allowed around the colon.
func hintsIn(body []byte) Flags {
	var f Flags
	for i := 0; i+6 <= len(body); i++ {
		if body[i]|0x20 != 's' || !equalFold(body[i:i+6], "SLUICE") || i > 0 && isIdent(body[i-1]) {
			continue
		}
		j := i + 6
		for j < len(body) && isSpace(body[j]) {
			j++
		}
		if j == len(body) || body[j] != ':' {
			continue
		}
		j++
		for j < len(body) && isSpace(body[j]) {
			j++
		}
		if j+7 <= len(body) && (j+7 == len(body) || !isIdent(body[j+7])) {
			switch {
			case equalFold(body[j:j+7], "PRIMARY"):
				f |= FlagHintPrimary
			case equalFold(body[j:j+7], "REPLICA"):
				f |= FlagHintReplica
			}
		}
	}
	return f
}

// equalFold reports whether b equals the upper-case ASCII word upper,
// ignoring the case of b.
func equalFold(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}
