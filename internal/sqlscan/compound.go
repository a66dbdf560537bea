package sqlscan

// Compound statements (stored program definitions, BEGIN NOT ATOMIC …
// END, and MariaDB's IF/CASE/LOOP/WHILE/REPEAT/FOR outside programs) hold
// ';' that do not end them: a client without multi-statements sends one
// such statement, and the server runs it as one. The stream follows their
// blocks only inside such a statement, so no other text pays for it.
//
// It is a token heuristic, not the grammar, and errs towards ending a
// statement early: a client then gets the multi-statement error it got
// before sluice knew compound statements, never a second statement run in
// its name. BEGIN and END are also column names (ranges with begin and end
// columns are common), so they count only where a block can begin or end:
// a block's END follows ';' (or an empty block's BEGIN), a CASE
// expression's END follows a value, never an operator or a keyword that
// expects an expression.

// blocks is the state of the block tracking, kept in the stream by value
// so that a copy made to look ahead does not disturb the original.
type blocks struct {
	on       bool
	depth    int32
	prevKind tokKind
	prevOp   byte // the previous token when it is a one-byte operator
	prevID   wordID
	afterEnd bool // cur follows an END that closed a block: END IF, END LOOP …
}

// enterCompound starts following blocks from cur, the first token of a
// compound statement.
func (st *stream) enterCompound() {
	st.blk = blocks{on: true}
	st.track()
}

func (st *stream) leaveCompound() { st.blk = blocks{} }

// inBlock reports whether cur lies inside a block, where ';' separates the
// block's statements rather than ending the compound statement.
func (st *stream) inBlock() bool { return st.blk.depth > 0 && st.cur.kind != tEOF }

// track updates the block depth for cur, the token just shifted in.
func (st *stream) track() {
	b := &st.blk
	t := st.cur
	id := kwNone
	if t.kind == tWord && !st.curDot {
		id = lookup(st.text()).id
	}
	afterEnd := b.afterEnd
	b.afterEnd = false
	switch id {
	case kwBegin:
		if !b.exprBefore(false) {
			b.depth++
		}
	case kwEnd:
		if b.depth > 0 && !b.exprBefore(true) {
			b.depth--
			b.afterEnd = true
		}
	case kwIf:
		if !afterEnd && !b.exprBefore(false) && st.thenAhead() {
			b.depth++
		}
	case kwCase, kwLoop, kwWhile:
		if !afterEnd {
			b.depth++
		}
	case kwRepeat: // REPEAT('ab', 3) is a function
		if !afterEnd && !b.exprBefore(false) && !st.nxt.isOp(st.lx.sql, '(') {
			b.depth++
		}
	case kwFor: // FOR x IN … DO … END FOR; FOR UPDATE, FOR EACH ROW are not loops
		if !afterEnd && st.forLoop() {
			b.depth++
		}
	}
	b.prevKind, b.prevID, b.prevOp = t.kind, id, 0
	if t.kind == tOp && t.end-t.start == 1 {
		b.prevOp = st.lx.sql[t.start]
	}
}

// exprBefore reports whether the previous token expects an expression
// after it, so that a BEGIN or END there is a column name. THEN and ELSE
// start statements (IF … THEN BEGIN …) but an END never follows them.
func (b *blocks) exprBefore(end bool) bool {
	if b.prevKind == tOp {
		switch b.prevOp {
		case ';', ':', ')':
			return false
		}
		return true
	}
	switch b.prevID {
	case kwSelect, kwWhere, kwAnd, kwOr, kwXor, kwNot, kwBy, kwOn, kwSet, kwHaving,
		kwWhen, kwReturn, kwIn, kwAs, kwLike, kwIs, kwBetween, kwDistinct, kwUntil,
		kwIf, kwElseif, kwCase, kwWhile:
		return true
	case kwThen, kwElse:
		return end
	}
	return false
}

// maxCondition bounds thenAhead's look-ahead, so that a text of many IFs
// costs linear time: a longer condition counts as no IF statement.
const maxCondition = 512

// thenAhead reports whether the IF at cur is a statement (IF cond THEN)
// rather than the IF() function or IF [NOT] EXISTS: its THEN comes before
// anything that would end a condition.
func (st *stream) thenAhead() bool {
	lx := st.lx
	t := st.nxt
	depth := 0
	for n := 0; n < maxCondition; n++ {
		switch t.kind {
		case tEOF:
			return false
		case tOp:
			switch {
			case t.isOp(lx.sql, '('):
				depth++
			case t.isOp(lx.sql, ')'):
				if depth == 0 {
					return false
				}
				depth--
			case depth == 0 && (t.isOp(lx.sql, ';') || t.isOp(lx.sql, ',')):
				return false
			}
		case tWord:
			if depth == 0 {
				switch lookup(lx.sql[t.start:t.end]).id {
				case kwThen:
					return true
				case kwWhen, kwElse, kwElseif, kwEnd, kwBegin, kwIf, kwCase, kwDo, kwLoop, kwWhile, kwRepeat:
					return false
				}
			}
		}
		t = lx.next()
	}
	return false
}

// forLoop reports whether the FOR at cur starts a FOR loop: FOR name IN.
func (st *stream) forLoop() bool {
	if st.nxt.kind != tWord && st.nxt.kind != tQuoted {
		return false
	}
	lx := st.lx
	t := lx.next()
	return t.kind == tWord && lookup(lx.sql[t.start:t.end]).id == kwIn
}

// compoundHead classifies the words after CREATE [OR REPLACE] or ALTER,
// st.cur being the first of them: whether they define a stored program
// (PROCEDURE, FUNCTION, TRIGGER, EVENT), whose body may be compound.
func (st *stream) compoundHead() bool {
	if st.is(kwDefiner) {
		st.shift()
		if st.op('=') {
			st.shift()
		}
		st.shift() // the account: 'u'@'h', `u`@`h`, u@h, CURRENT_USER[()]
		switch {
		case st.cur.kind == tVar:
			st.shift()
		case st.op('@'):
			st.shift()
			st.shift()
		case st.op('('):
			st.shift()
			if st.op(')') {
				st.shift()
			}
		}
	}
	if st.is(kwAggregate) {
		st.shift()
	}
	switch st.word().id {
	case kwProcedure, kwFunction, kwTrigger, kwEvent:
		return true
	}
	return false
}

// anonymousCompound reports whether the statement at cur is a compound
// statement outside a stored program (MariaDB): [label:] BEGIN NOT ATOMIC,
// IF … THEN, CASE, LOOP, WHILE, REPEAT, FOR … IN.
func (st *stream) anonymousCompound() bool {
	if st.cur.kind == tWord && st.nxt.isOp(st.lx.sql, ':') {
		st.shift() // a label
		st.shift()
		switch st.word().id {
		case kwBegin, kwLoop, kwWhile, kwRepeat, kwFor:
			return true
		}
		return false
	}
	switch st.word().id {
	case kwIf:
		return st.thenAhead()
	case kwCase, kwLoop, kwWhile:
		return true
	case kwRepeat:
		return !st.nxt.isOp(st.lx.sql, '(')
	case kwFor:
		return st.forLoop()
	}
	return false
}
