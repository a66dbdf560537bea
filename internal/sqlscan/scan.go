package sqlscan

// Scan classifies a SQL text without allocating. Kind is the kind of the
// first statement; Flags are the union over all statements, plus FlagMulti
// when there is more than one. Empty statements (";;", a trailing ';' or
// comment) do not count.
func Scan(sql []byte) Statement {
	var s Statement
	st := newStream(sql)
	n := 0
	for st.cur.kind != tEOF {
		if st.op(';') {
			st.shift()
			continue
		}
		kind, flags, body := classify(st)
		if n == 0 {
			s.Kind = kind
		}
		n++
		s.Flags |= flags | scanFlags(&st, body, kind)
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
func Split(sql []byte, fn func(stmt []byte) bool) {
	st := newStream(sql)
	start, empty := 0, true
	for {
		if st.end() {
			if !empty && !fn(trimSpace(sql[start:st.cur.start])) {
				return
			}
			if st.cur.kind == tEOF {
				return
			}
			start, empty = st.cur.end, true
		} else {
			empty = false
		}
		st.shift()
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// classify reads the head of the statement at st.cur, on its own copy of
// the stream. It returns the kind, the flags only the head shows, and the
// offset where the statement that the flags are about begins: the start,
// or the inner statement of SET STATEMENT … FOR.
func classify(st stream) (kind Kind, flags Flags, body int) {
	body = st.cur.start
	analyze := false // EXPLAIN ANALYZE or ANALYZE <statement>: it runs
loop:
	for {
		for st.op('(') {
			st.shift()
		}
		k := st.word()
		switch k.id {
		case kwWith:
			if !st.skipWith() {
				kind = KindUnknown
				break loop
			}
			continue
		case kwExplain, kwDescribe, kwDesc:
			st.shift()
			if !st.is(kwAnalyze) {
				kind = KindShow
				break loop
			}
			st.shift()
			st.skipFormat()
			analyze = true
			continue
		case kwAnalyze:
			st.shift()
			switch st.word().id {
			case kwTable, kwTables, kwNoWriteToBinlog, kwLocal:
				kind = KindDDL
				break loop
			}
			st.skipFormat()
			analyze = true
			continue
		case kwSet:
			st.shift()
			var inner bool
			if kind, inner = st.set(); inner {
				body = st.cur.start
				continue
			}
		case kwShow:
			kind = KindShow
			flags = st.show()
		case kwBegin:
			// BEGIN NOT ATOMIC … END is a MariaDB compound statement.
			kind = KindOther
			st.shift()
			if st.is(kwWork) {
				st.shift()
			}
			if st.end() {
				kind = KindBegin
			}
		case kwStart:
			kind = st.start()
		case kwCommit, kwRollback:
			kind, flags = st.commit(k.id == kwRollback)
		case kwRelease:
			kind = KindOther
			if st.nxtIs(kwSavepoint) {
				kind = KindSavepoint
			}
		case kwCreate:
			kind = KindDDL
			st.shift()
			if st.is(kwOr) { // OR REPLACE
				st.shift()
				st.shift()
			}
			if st.is(kwTemporary) && (st.nxtIs(kwTable) || st.nxtIs(kwSequence)) {
				flags = FlagCreateTemp
			}
		case kwDrop:
			kind = KindDDL
			st.shift()
			switch {
			case st.word().head == KindPrepare:
				kind = KindDeallocate
			case st.is(kwTemporary) && (st.nxtIs(kwTable) || st.nxtIs(kwSequence)):
				flags = FlagDropTemp
			}
		case kwLoad:
			kind = KindOther // LOAD INDEX INTO CACHE
			if st.nxtIs(kwData) || st.nxtIs(kwXML) {
				kind = KindWrite
			}
		case kwLock, kwUnlock:
			kind = KindOther // LOCK/UNLOCK INSTANCE
			if st.nxtIs(kwTable) || st.nxtIs(kwTables) {
				kind = KindLockTables
				if k.id == kwUnlock {
					kind = KindUnlockTables
				}
			}
		default:
			kind = k.head
		}
		break
	}
	if analyze && kind != KindSelect {
		kind = KindWrite
	}
	return kind, flags, body
}

// skipWith moves from WITH to the statement that follows the common table
// expressions, and reports whether they had the expected shape:
// WITH [RECURSIVE] name [(columns)] AS (query) [, …].
func (st *stream) skipWith() bool {
	st.shift()
	if st.is(kwRecursive) {
		st.shift()
	}
	for {
		if st.cur.kind != tWord && st.cur.kind != tQuoted {
			return false
		}
		st.shift()
		if st.op('(') {
			st.skipGroup()
		}
		if !st.is(kwAs) {
			return false
		}
		st.shift()
		if !st.op('(') {
			return false
		}
		st.skipGroup()
		if !st.op(',') {
			return true
		}
		st.shift()
	}
}

// skipFormat moves past FORMAT=name after EXPLAIN ANALYZE / ANALYZE.
func (st *stream) skipFormat() {
	if st.is(kwFormat) {
		st.shift()
		if st.op('=') {
			st.shift()
		}
		st.shift()
	}
}

// show returns FlagDiagnostics for the SHOW statements that report on the
// session's previous statements, st.cur being SHOW.
func (st *stream) show() Flags {
	st.shift()
	switch st.word().id {
	case kwWarnings, kwErrors, kwProfile, kwProfiles:
		return FlagDiagnostics
	case kwCount: // SHOW COUNT(*) WARNINGS
		for i := 0; i < 5 && !st.end(); i++ {
			st.shift()
			if st.is(kwWarnings) || st.is(kwErrors) {
				return FlagDiagnostics
			}
		}
	}
	return 0
}

// start classifies START …, st.cur being START.
func (st *stream) start() Kind {
	st.shift()
	if !st.is(kwTransaction) {
		return KindOther // START SLAVE, START REPLICA, …
	}
	kind := KindBegin
	for st.shift(); !st.end(); st.shift() {
		if st.is(kwRead) && st.nxtIs(kwOnly) {
			kind = KindBeginReadOnly
		}
	}
	return kind
}

// commit classifies COMMIT and ROLLBACK, st.cur being the verb.
func (st *stream) commit(rollback bool) (Kind, Flags) {
	st.shift()
	if st.is(kwWork) {
		st.shift()
	}
	if rollback && st.is(kwTo) {
		return KindSavepoint, 0
	}
	kind := KindCommit
	if rollback {
		kind = KindRollback
	}
	if st.is(kwAnd) && st.nxtIs(kwChain) {
		return kind, FlagChain
	}
	return kind, 0
}

// set classifies a SET statement, st.cur being the word after SET. inner
// reports SET STATEMENT … FOR, with st.cur left on the inner statement.
func (st *stream) set() (kind Kind, inner bool) {
	switch st.word().id {
	case kwTransaction:
		return KindSetTransaction, false
	case kwPassword, kwDefault: // SET PASSWORD, SET DEFAULT ROLE
		return KindSetGlobal, false
	case kwRole:
		return KindSet, false
	case kwResource: // SET RESOURCE GROUP may name other threads
		return KindOther, false
	case kwStatement:
		if st.nxt.isOp(st.lx.sql, '=') || st.nxt.isOp2(st.lx.sql, ':', '=') {
			break // a variable named statement
		}
		depth := 0
		for st.shift(); !st.end(); st.shift() {
			switch {
			case st.op('('):
				depth++
			case st.op(')'):
				depth--
			case depth == 0 && st.is(kwFor):
				st.shift()
				return KindUnknown, true
			}
		}
		return KindUnknown, false
	}
	// Each assignment has its own scope; SET is global if any is.
	kind = KindSet
	depth, item := 0, true
	for ; !st.end(); st.shift() {
		if item {
			item = false
			switch st.word().id {
			case kwGlobal, kwPersist, kwPersistOnly:
				kind = KindSetGlobal
			}
			if st.cur.kind == tVar {
				if _, global := sysVar(st.text()); global {
					kind = KindSetGlobal
				}
			}
		}
		switch {
		case st.op('('):
			depth++
		case st.op(')'):
			depth--
		case st.op(',') && depth == 0:
			item = true
		}
	}
	return kind, false
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
// stream on: they belong to a SET STATEMENT prefix.
func scanFlags(st *stream, body int, kind Kind) Flags {
	var f Flags
	// In a SET, "@x :=" at the start of an assignment is the SET itself,
	// not a side effect of an expression.
	set, item := false, false
	if st.is(kwSet) && st.cur.start == body {
		set, item = true, true
		st.shift()
	}
	depth := 0
	for ; !st.end(); st.shift() {
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

// wordFlags returns the flags the word at st.cur raises.
func (st *stream) wordFlags(kind Kind) Flags {
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
			return FlagLastInsertID
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
