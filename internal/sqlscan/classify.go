package sqlscan

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
			} else if st.is(kwNot) && st.nxtIs(kwAtomic) {
				flags = FlagCompound
			}
		case kwIf, kwCase, kwLoop, kwWhile, kwRepeat, kwFor:
			kind = KindUnknown
			if st.anonymousCompound() {
				kind, flags = KindOther, FlagCompound
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
			} else if st.compoundHead() {
				// Defining a stored program runs none of its body.
				flags, body = FlagCompound, noBody
			}
		case kwAlter:
			kind = KindDDL
			st.shift()
			if st.compoundHead() { // ALTER EVENT … DO body
				flags, body = FlagCompound, noBody
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
			if kind == KindUnknown && st.cur.kind == tWord && st.nxt.isOp(st.lx.sql, ':') && st.anonymousCompound() {
				kind, flags = KindOther, FlagCompound // label: BEGIN NOT ATOMIC …
			}
		}
		break
	}
	if analyze && kind != KindSelect {
		kind = KindWrite
	}
	return kind, flags, body
}

// noBody is the body offset of a statement none of whose tokens raise
// flags: a stored program's definition, whose body runs later, when called.
const noBody = int(^uint(0) >> 1)

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
	case kwMaster: // SHOW MASTER STATUS, SHOW MASTER LOGS
		return FlagPrimaryOnly
	case kwBinary: // SHOW BINARY LOGS
		if st.nxtIs(kwLogs) {
			return FlagPrimaryOnly
		}
	case kwBinlog: // SHOW BINLOG EVENTS, SHOW BINLOG STATUS (MariaDB 10.5.2)
		if st.nxtIs(kwEvents) || st.nxt.kind == tWord && equalFold(st.lx.sql[st.nxt.start:st.nxt.end], "STATUS") {
			return FlagPrimaryOnly
		}
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
	// A scope keyword also covers the assignments after it, so a SET is
	// global as soon as one assignment names a global scope.
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
