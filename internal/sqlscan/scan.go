package sqlscan

// Scan classifies a SQL text without allocating. Kind is the kind of the
// first statement; Flags are the union over all statements, plus FlagMulti
// when there is more than one. Empty statements (";;", a trailing ';' or
// comment) do not count.
func Scan(sql []byte) Statement { return scan(sql, nil) }

// ScanDigest is Scan and DigestHash in one pass over the text, without
// allocating: a text query needs both, and lexing it once costs less.
func ScanDigest(sql []byte) (Statement, uint64) {
	d := digester{hash: true, h: fnvOffset}
	s := scan(sql, &d)
	return s, d.h
}

// scan is Scan that also feeds every token to d, when d is not nil.
func scan(sql []byte, d *digester) Statement {
	var s Statement
	st := newStream(sql)
	n := 0
	for st.cur.kind != tEOF {
		if st.op(';') {
			if d != nil {
				d.token(&st)
			}
			st.shift()
			continue
		}
		kind, flags, body := classify(st)
		if n == 0 {
			s.Kind = kind
		}
		n++
		if flags&FlagCompound != 0 {
			st.enterCompound()
		}
		s.Flags |= flags | scanFlags(&st, body, kind, d)
		st.leaveCompound()
	}
	if n > 1 {
		s.Flags |= FlagMulti
	}
	s.Flags |= st.lx.hints
	return s
}

// Split calls fn with each non-empty statement of sql, without its ';' and
// without surrounding whitespace (comments stay: they may hold hints). It
// stops when fn returns false.
//
// A compound statement (see FlagCompound) is one statement, ';' and all.
func Split(sql []byte, fn func(stmt []byte) bool) {
	st := newStream(sql)
	start, last := 0, -1 // last is the end of the statement's last token
	for {
		if st.end() {
			if last >= 0 && !fn(trimSpace(sql, start, st.cur.start, last)) {
				return
			}
			if st.cur.kind == tEOF {
				return
			}
			st.leaveCompound()
			start, last = st.cur.end, -1
		} else {
			if last < 0 {
				if _, flags, _ := classify(st); flags&FlagCompound != 0 {
					st.enterCompound()
				}
			}
			last = st.cur.end
		}
		st.shift()
	}
}

// trimSpace returns sql[start:end] without surrounding whitespace, but not
// shorter than keep: an unterminated string may end in a space.
func trimSpace(sql []byte, start, end, keep int) []byte {
	for start < end && isSpace(sql[start]) {
		start++
	}
	for end > keep && isSpace(sql[end-1]) {
		end--
	}
	return sql[start:end]
}

// sysVar returns the name of a system variable token (@@name,
// @@session.name, …) without its scope, and whether the scope reaches
// beyond the session. It returns nil for a user variable.
func sysVar(v []byte) (name []byte, global bool) {
	if len(v) < 2 || v[1] != '@' {
		return nil, false
	}
	name = v[2:]
	for i, c := range name {
		if c == '.' {
			switch scope := name[:i]; {
			case equalFold(scope, "GLOBAL"), equalFold(scope, "PERSIST"), equalFold(scope, "PERSIST_ONLY"):
				global = true
			case !equalFold(scope, "SESSION") && !equalFold(scope, "LOCAL"):
				return name, false // a structured variable: default.key_buffer_size
			}
			return name[i+1:], global
		}
	}
	return name, false
}

// scanFlags reads the statement at st.cur up to its ';' or the end and
// returns the flags its tokens raise. Tokens before body only move the
// stream on: they belong to a SET STATEMENT prefix. Every token it moves
// past goes to d too, when d is not nil.
func scanFlags(st *stream, body int, kind Kind, d *digester) Flags {
	var f Flags
	// In a SET, "@x :=" at the start of an assignment is the SET itself,
	// not a side effect of an expression.
	set, item := false, false
	if k := kind; st.cur.start == body && (k == KindSet || k == KindSetGlobal || k == KindSetTransaction) {
		set, item = true, true
		if d != nil {
			d.token(st)
		}
		st.shift() // SET
	}
	depth := 0
	for ; !st.end(); st.shift() {
		if d != nil {
			d.token(st)
		}
		if st.cur.start < body {
			continue
		}
		target := item
		item = false
		switch st.cur.kind {
		case tWord:
			f |= st.wordFlags(kind)
		case tVar:
			if name, _ := sysVar(st.text()); name != nil {
				switch {
				case equalFold(name, "IDENTITY"), equalFold(name, "LAST_INSERT_ID"):
					f |= FlagLastInsertID
				case equalFold(name, "WARNING_COUNT"), equalFold(name, "ERROR_COUNT"):
					f |= FlagDiagnostics
				}
			} else if !target && st.nxt.isOp2(st.lx.sql, ':', '=') {
				f |= FlagUserVarAssign
			}
		case tOp:
			switch {
			case st.op('('):
				depth++
			case st.op(')'):
				depth--
			case st.op(','):
				item = set && depth == 0
			}
		}
	}
	return f
}

// flagWords tells which words may raise a flag: bit c-'a' of entry n is
// set when one of n bytes starting with letter c does. Most words are
// names, and this spares them a keyword lookup.
var flagWords = func() (m [kwMaxLen + 1]uint32) {
	for _, k := range named {
		switch k.id {
		case kwFor, kwLock, kwInto, kwSQLCalcFoundRows, kwNext, kwPrevious,
			kwLastInsertID, kwGetLock, kwReleaseLock, kwReleaseAllLocks,
			kwFoundRows, kwRowCount, kwNextval, kwSetval, kwLastval, kwCurrval, kwReturning:
			m[len(k.name)] |= 1 << (k.name[0] - 'A')
		}
	}
	return m
}()

func mayFlag(w []byte) bool {
	c := (w[0] | 0x20) - 'a'
	return len(w) <= kwMaxLen && c < 26 && flagWords[len(w)]&(1<<c) != 0
}

// wordFlags returns the flags the word at st.cur raises.
func (st *stream) wordFlags(kind Kind) Flags {
	if !mayFlag(st.text()) {
		return 0
	}
	if st.curDot {
		// seq.NEXTVAL reads a sequence in MariaDB's Oracle mode.
		switch lookup(st.text()).id {
		case kwNextval, kwCurrval, kwLastval:
			return FlagSequence
		}
		return 0
	}
	// Functions count only when called: a column may be named found_rows.
	call := st.nxt.isOp(st.lx.sql, '(')
	switch st.word().id {
	case kwFor:
		if st.nxtIs(kwUpdate) || st.nxtIs(kwShare) {
			return FlagLocking
		}
	case kwLock:
		if st.nxtIs(kwIn) {
			la := *st
			la.shift()
			if la.nxtIs(kwShare) {
				return FlagLocking
			}
		}
	case kwInto:
		if kind == KindSelect {
			return FlagInto
		}
	case kwSQLCalcFoundRows:
		return FlagCalcFoundRows
	case kwNext, kwPrevious:
		if st.nxtIs(kwValue) {
			la := *st
			la.shift()
			if la.nxtIs(kwFor) {
				return FlagSequence
			}
		}
	case kwLastInsertID:
		if call {
			// LAST_INSERT_ID(expr) sets the value as well as reading it.
			if lx := st.lx; !lx.next().isOp(st.lx.sql, ')') {
				return FlagLastInsertID | FlagSetsInsertID
			}
			return FlagLastInsertID
		}
	case kwReturning:
		if kind == KindWrite {
			return FlagSetsInsertID
		}
	case kwGetLock:
		if call {
			return FlagGetLock
		}
	case kwReleaseLock:
		if call {
			return FlagReleaseLock
		}
	case kwReleaseAllLocks:
		if call {
			return FlagReleaseAllLocks
		}
	case kwFoundRows:
		if call {
			return FlagFoundRows
		}
	case kwRowCount:
		if call {
			return FlagDiagnostics
		}
	case kwNextval, kwSetval, kwLastval:
		if call {
			return FlagSequence
		}
	}
	return 0
}
