package sqlscan

// stream is a lexer with one token of lookahead. Like the lexer it is a
// small value: looking further ahead means copying it.
type stream struct {
	lx       lexer
	cur, nxt token
	curDot   bool // cur follows a '.' after a name, so cur is a name too
	nxtDot   bool
	blk      blocks // inside a compound statement: its blocks (compound.go)
}

func newStream(sql []byte) stream {
	st := stream{lx: newLexer(sql)}
	st.nxt = st.lx.next()
	st.shift()
	return st
}

// shift moves to the next token.
func (st *stream) shift() {
	st.cur, st.curDot = st.nxt, st.nxtDot
	st.nxtDot = st.lx.prevDot // lx.prevDot describes the token just lexed: the new cur
	st.nxt = st.lx.next()
	if st.blk.on {
		st.track()
	}
}

func (st *stream) text() []byte { return st.lx.sql[st.cur.start:st.cur.end] }

// word returns the keyword cur spells, or an empty entry when cur is not
// a keyword (or is a name qualified by a '.').
func (st *stream) word() *keyword {
	if st.cur.kind != tWord || st.curDot {
		return &noKeyword
	}
	return lookup(st.text())
}

func (st *stream) is(id wordID) bool { return st.word().id == id }

// nxtIs reports whether the token after cur is the keyword id.
func (st *stream) nxtIs(id wordID) bool {
	return st.nxt.kind == tWord && lookup(st.lx.sql[st.nxt.start:st.nxt.end]).id == id
}

func (st *stream) op(c byte) bool { return st.cur.isOp(st.lx.sql, c) }

// end reports whether cur ends the statement: ';' or the end of the text,
// but not a ';' inside a block of a compound statement.
func (st *stream) end() bool {
	return st.cur.endsStatement(st.lx.sql) && !(st.blk.on && st.inBlock())
}

// skipGroup moves past the parenthesised group that starts at cur. It
// stops early at the end of the statement: a ';' never belongs to a group.
func (st *stream) skipGroup() {
	depth := 0
	for !st.end() {
		switch {
		case st.op('('):
			depth++
		case st.op(')'):
			depth--
		}
		st.shift()
		if depth <= 0 {
			return
		}
	}
}

// onlyEnd reports whether nothing but ';' follows cur (cur included).
func (st *stream) onlyEnd() bool {
	for st.op(';') {
		st.shift()
	}
	return st.cur.kind == tEOF
}
