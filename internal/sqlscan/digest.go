package sqlscan

// Digest appends the normalized text of sql to dst, so that statements
// that differ only in literals, comments, spacing or keyword case share a
// digest. It allocates only to grow dst.
//
// Tokens:
//   - comments go; executable comments /*! … */ keep their content as code;
//   - literals (numbers, strings '…' and "…", 0x…, X'…', 0b…, B'…', ?)
//     become ?, and so does a literal with a sign where a sign is unary:
//     after an operator, '(', ',', a keyword or at the start;
//   - IN (…) becomes IN (...) when the list holds only literals;
//   - VALUES (…), (…) rows become VALUES (...) whatever they hold, so that
//     batch inserts of any size share a digest. VALUES(col) in an
//     expression (after an operator, '(' or ',') is a function and stays;
//   - keywords listed in keywords.go are upper-cased, other words keep
//     their case (a column that shares a keyword's name is upper-cased
//     too: column names ignore case anyway); a word next to a '.' is a
//     name; backquoted names keep their quotes;
//   - NULL, TRUE and FALSE stay;
//   - empty statements and trailing ';' go; statements are joined by "; ".
//
// Spacing depends on the tokens only, never on the original spacing: one
// space between tokens, except none after '(', none before ')', ',' and
// ';', none around a '.' that qualifies a name (db.t), and none between a
// name or function keyword (COUNT, VALUES) and the '(' that follows it. So
// "SELECT a,b FROM t WHERE id=1" and "select a , b from t where id = 2"
// both give "SELECT a, b FROM t WHERE id = ?", and
// "INSERT INTO t(a) VALUES(1)" gives "INSERT INTO t(a) VALUES (...)".
//
// Digest is idempotent: Digest(Digest(q)) == Digest(q).
func Digest(dst, sql []byte) []byte {
	d := digester{out: dst}
	d.run(sql)
	return d.out
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// DigestHash returns the 64-bit FNV-1a hash of what Digest would append,
// without building it.
func DigestHash(sql []byte) uint64 {
	d := digester{hash: true, h: fnvOffset}
	d.run(sql)
	return d.h
}

// class is what the digester wrote last, which decides the space before
// the next token and whether a '-' after it is unary.
type class uint8

const (
	cNone  class = iota // nothing yet
	cOpen               // (
	cDot                // .
	cSemi               // ; between statements
	cName               // a name or function keyword: no space before '('
	cValue              // literal, variable, ')', value keyword: '-' after it subtracts
	cWord               // other keyword
	cOp                 // operator or ','
)

// digester writes either into out or into the hash h, so that Digest and
// DigestHash cannot disagree. It is fed one token at a time (token), so
// that Scan can digest a text in the same pass that classifies it.
type digester struct {
	out  []byte
	h    uint64
	hash bool
	prev class
	skip int  // tokens that start before this offset were written already: IN lists, VALUES rows, signs
	semi bool // a ';' came since the last token written
}

func (d *digester) byte(c byte) {
	if d.hash {
		d.h = (d.h ^ uint64(c)) * fnvPrime
	} else {
		d.out = append(d.out, c)
	}
}

func (d *digester) bytes(b []byte) {
	if !d.hash {
		d.out = append(d.out, b...)
		return
	}
	for _, c := range b {
		d.h = (d.h ^ uint64(c)) * fnvPrime
	}
}

func (d *digester) string(s string) {
	if !d.hash {
		d.out = append(d.out, s...)
		return
	}
	for i := 0; i < len(s); i++ {
		d.h = (d.h ^ uint64(s[i])) * fnvPrime
	}
}

// sep writes the space, if any, that goes before a token: next is the
// token's byte when it is one of ( ) , ; and a '.' that qualifies a name,
// and 0 otherwise.
func (d *digester) sep(next byte) {
	switch d.prev {
	case cNone, cOpen, cDot:
		return
	case cSemi:
		// A statement digests the same alone or after others.
		d.byte(' ')
		return
	}
	switch next {
	case ')', ',', ';', '.':
		return
	case '(':
		if d.prev == cName {
			return
		}
	}
	d.byte(' ')
}

// put writes one token.
func (d *digester) put(c class, next byte, b []byte) {
	d.sep(next)
	d.bytes(b)
	d.prev = c
}

func (d *digester) putString(c class, next byte, s string) {
	d.sep(next)
	d.string(s)
	d.prev = c
}

// unary reports whether a '-' or '+' written now would be a sign.
func (d *digester) unary() bool {
	return d.prev != cName && d.prev != cValue
}

func (d *digester) run(sql []byte) {
	st := newStream(sql)
	for st.cur.kind != tEOF {
		d.token(&st)
		st.shift()
	}
}

// token writes the token at st.cur, unless an earlier token already wrote
// it. It looks ahead on copies of st and never moves st itself, so the
// caller may be reading the same stream for something else.
func (d *digester) token(st *stream) {
	if st.cur.start < d.skip || st.cur.kind == tEOF {
		return
	}
	if st.op(';') {
		d.semi = true
		return
	}
	if d.semi {
		d.semi = false
		if d.prev != cNone {
			d.putString(cSemi, ';', ";")
		}
	}
	switch st.cur.kind {
	case tWord:
		d.word(st)
	case tQuoted:
		d.put(cName, 0, st.text())
	case tVar:
		d.put(cValue, 0, st.text())
	case tString, tNumber, tHex, tParam:
		d.putString(cValue, 0, "?")
	case tOp:
		d.op(st)
	}
}

// word writes the word at st.cur and, when it writes what follows too,
// marks those tokens as written.
func (d *digester) word(st *stream) {
	k := st.word()
	if k.attr&upper == 0 || st.nxt.isOp(st.lx.sql, '.') {
		d.put(cName, 0, st.text())
		return
	}
	switch {
	case k.id == kwIn:
		d.putString(cWord, 0, k.name)
		la := *st
		la.blk = blocks{}
		la.shift()
		if la, ok := literalList(la); ok {
			d.putString(cValue, '(', "(...)")
			d.skip = la.cur.start
		}
		return
	case (k.id == kwValues || k.id == kwValue) && d.prev != cOp && d.prev != cOpen:
		// A stream that follows the blocks of a compound statement would
		// look through a ';' in a block: Digest reads them as ends.
		la := *st
		la.blk = blocks{}
		if la, row, ok := valueRows(la); ok {
			d.putString(cWord, 0, k.name)
			if row {
				d.putString(cName, 0, "ROW")
			}
			d.putString(cValue, '(', "(...)")
			d.skip = la.cur.start
			return
		}
	}
	c := cWord
	switch {
	case k.attr&fn != 0:
		c = cName
	case k.attr&operand != 0:
		c = cValue
	}
	d.putString(c, 0, k.name)
}

// literalList reports whether st.cur opens a list of literals, or the
// "(...)" Digest writes for one, and returns the stream moved past its ')'.
func literalList(st stream) (stream, bool) {
	if !st.op('(') {
		return st, false
	}
	if la := st; la.nxt.isOp(la.lx.sql, '.') {
		for i := 0; i < 3; i++ {
			if la.shift(); !la.op('.') {
				return st, false
			}
		}
		if la.shift(); la.op(')') {
			la.shift()
			return la, true
		}
		return st, false
	}
	for {
		st.shift()
		for st.op('-') || st.op('+') {
			st.shift()
		}
		if !st.cur.isLiteral() {
			return st, false
		}
		st.shift()
		if st.op(')') {
			st.shift()
			return st, true
		}
		if !st.op(',') {
			return st, false
		}
	}
}

// valueRows reports whether rows follow VALUES at st.cur, as "(…), (…)" or
// "ROW(…), ROW(…)", and returns the stream moved past them.
func valueRows(st stream) (after stream, row, ok bool) {
	st.shift()
	row = st.is(kwRow)
	for {
		if st.is(kwRow) {
			st.shift()
		}
		if !st.op('(') {
			return st, row, false
		}
		st.skipGroup()
		if !st.op(',') || !(st.nxt.isOp(st.lx.sql, '(') || st.nxtIs(kwRow)) {
			return st, row, true
		}
		st.shift()
	}
}

// op writes the operator at st.cur (';' never comes here) and, for a run
// of signs, what it wrote with them.
func (d *digester) op(st *stream) {
	s := st.lx.sql
	var b byte // the operator when it has one byte
	if st.cur.end-st.cur.start == 1 {
		b = s[st.cur.start]
	}
	switch b {
	case '(':
		d.put(cOpen, b, st.text())
	case ')':
		d.put(cValue, b, st.text())
	case '.':
		// Only a '.' after a name is written tight, as in db.t: elsewhere
		// ". 5" must not come out as the number ".5".
		if st.nxtDot {
			d.put(cDot, b, st.text())
		} else {
			d.put(cOp, 0, st.text())
		}
	case '-', '+':
		if !d.unary() {
			d.put(cOp, b, st.text())
			break
		}
		la := *st
		la.blk = blocks{}
		for la.op('-') || la.op('+') {
			la.shift()
		}
		if la.cur.isLiteral() {
			d.putString(cValue, 0, "?")
			d.skip = la.cur.end
			break
		}
		// Not a signed literal: write the signs as they are, all at once,
		// so that a long run of them is not looked through again for each.
		for sg := *st; sg.cur != la.cur; sg.shift() {
			d.put(cOp, 0, sg.text())
		}
		d.skip = la.cur.start
	default:
		d.put(cOp, b, st.text())
	}
}
