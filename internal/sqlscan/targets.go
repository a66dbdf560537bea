package sqlscan

import "math"

// The *Target functions read the operand of a statement the session layer
// acts on itself. Each expects a text holding that one statement (a
// trailing ';' is fine); given several, they report !ok and the caller
// can Split. They allocate only the returned string.

// UseTarget returns the database of "USE db", unquoted.
func UseTarget(sql []byte) (db string, ok bool) {
	st := newStream(sql)
	if st.word().head != KindUse {
		return "", false
	}
	st.shift()
	switch st.cur.kind {
	case tWord:
		db = string(st.text())
	case tQuoted:
		if db, ok = unquote(st.text()); !ok {
			return "", false
		}
	default:
		return "", false
	}
	st.shift()
	if !st.onlyEnd() {
		return "", false
	}
	return db, true
}

// SetTarget returns a canonical lower-case key for what a session SET
// statement sets, when it sets exactly one thing:
//
//	SET autocommit=0, SET SESSION x=1, SET @@local.x=1     "autocommit", "x"
//	SET @a := 1, SET @`A b` = 1                             "@a", "@a b"
//	SET NAMES …, SET CHARACTER SET …, SET CHARSET …         "names"
//	SET SESSION TRANSACTION ISOLATION LEVEL …               "transaction_isolation"
//	SET SESSION TRANSACTION READ ONLY / READ WRITE          "transaction_read_only"
//	SET ROLE …                                              "role"
//
// The old names tx_isolation and tx_read_only map to the new ones. single
// is false for several assignments, for global, persistent or next-
// transaction-only settings, for SET STATEMENT … FOR, and for anything
// that is not a SET.
func SetTarget(sql []byte) (key string, single bool) {
	st := newStream(sql)
	if !st.is(kwSet) {
		return "", false
	}
	st.shift()
	scoped := false
	switch st.word().id {
	case kwRole:
		return endKey(st, "role", true)
	case kwSession, kwLocal:
		scoped = true
		st.shift()
	}
	if st.is(kwTransaction) {
		if !scoped {
			return "", false // SET TRANSACTION: the next transaction only
		}
		return transactionKey(st)
	}
	switch st.word().id {
	case kwNames, kwCharset:
		return endKey(st, "names", false)
	case kwCharacter:
		if st.nxtIs(kwSet) {
			return endKey(st, "names", false)
		}
		return "", false
	case kwGlobal, kwPersist, kwPersistOnly, kwStatement, kwPassword, kwDefault, kwResource:
		return "", false
	}
	var name []byte
	var quoted bool
	switch st.cur.kind {
	case tWord:
		name = st.text()
	case tQuoted:
		name, quoted = st.text(), true
	case tVar:
		v := st.text()
		if sys, global := sysVar(v); sys != nil {
			if global || scoped {
				return "", false
			}
			name = sys
		} else {
			if scoped {
				return "", false
			}
			return userVarKey(st, v[1:])
		}
	default:
		return "", false
	}
	if !st.nxt.isOp(st.lx.sql, '=') && !st.nxt.isOp2(st.lx.sql, ':', '=') {
		return "", false
	}
	if quoted {
		s, ok := unquote(name)
		if !ok {
			return "", false
		}
		name = []byte(s)
	}
	switch {
	case equalFold(name, "TX_ISOLATION"):
		return endKey(st, "transaction_isolation", false)
	case equalFold(name, "TX_READ_ONLY"):
		return endKey(st, "transaction_read_only", false)
	}
	return endKey(st, lower("", name), false)
}

// userVarKey finishes SetTarget for a user variable; name is the token
// without its '@'.
func userVarKey(st stream, name []byte) (string, bool) {
	if len(name) > 0 && (name[0] == '`' || name[0] == '\'' || name[0] == '"') {
		s, ok := unquote(name)
		if !ok {
			return "", false
		}
		name = []byte(s)
	}
	if len(name) == 0 {
		return "", false
	}
	return endKey(st, lower("@", name), false)
}

// transactionKey finishes SetTarget for SET SESSION TRANSACTION, st.cur
// being TRANSACTION.
func transactionKey(st stream) (string, bool) {
	var isolation, access bool
	for st.shift(); !st.end(); st.shift() {
		switch {
		case st.is(kwRead) && (st.nxtIs(kwOnly) || st.nxt.kind == tWord && equalFold(st.lx.sql[st.nxt.start:st.nxt.end], "WRITE")):
			access = true
		case st.word().name == "ISOLATION":
			isolation = true
		}
	}
	if !st.onlyEnd() {
		return "", false
	}
	switch {
	case isolation && !access:
		return "transaction_isolation", true
	case access && !isolation:
		return "transaction_read_only", true
	}
	return "", false
}

// endKey returns key if the rest of the statement, from st.cur on, holds
// no second assignment. list says commas are part of the one setting, as
// in SET ROLE a, b.
func endKey(st stream, key string, list bool) (string, bool) {
	depth := 0
	for ; !st.end(); st.shift() {
		switch {
		case st.op('('):
			depth++
		case st.op(')'):
			depth--
		case st.op(',') && depth == 0 && !list:
			return "", false
		}
	}
	if !st.onlyEnd() {
		return "", false
	}
	return key, true
}

// KillTarget reads KILL [HARD|SOFT] [CONNECTION|QUERY] id. queryOnly is
// true for KILL QUERY. MariaDB's KILL QUERY ID (a query id, not a
// connection id) and KILL USER are not supported: ok is false.
func KillTarget(sql []byte) (id uint64, queryOnly bool, ok bool) {
	st := newStream(sql)
	if st.word().head != KindKill {
		return 0, false, false
	}
	st.shift()
	if st.cur.kind == tWord && (equalFold(st.text(), "HARD") || equalFold(st.text(), "SOFT")) {
		st.shift()
	}
	switch st.word().id {
	case kwConnection:
		st.shift()
	case kwQuery:
		queryOnly = true
		st.shift()
	}
	if st.cur.kind != tNumber {
		return 0, false, false
	}
	for _, c := range st.text() {
		d := uint64(c - '0')
		if !isDigit(c) || id > (math.MaxUint64-d)/10 {
			return 0, false, false
		}
		id = id*10 + d
	}
	st.shift()
	if !st.onlyEnd() {
		return 0, false, false
	}
	return id, queryOnly, true
}

// unquote returns the content of a quoted name or string, in which a
// doubled quote or (in strings) a backslash escapes a quote. ok is false
// for an unterminated one.
func unquote(q []byte) (string, bool) {
	if len(q) < 2 || q[len(q)-1] != q[0] {
		return "", false
	}
	quote := q[0]
	body := q[1 : len(q)-1]
	b := make([]byte, 0, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\' && quote != '`' && i+1 < len(body):
			i++
			c = body[i]
		case c == quote && i+1 < len(body) && body[i+1] == quote:
			i++
		case c == quote, c == '\\' && quote != '`':
			return "", false // the closing quote was escaped
		}
		b = append(b, c)
	}
	return string(b), true
}

// lower returns prefix followed by name in ASCII lower case.
func lower(prefix string, name []byte) string {
	b := make([]byte, len(prefix), len(prefix)+len(name))
	copy(b, prefix)
	for _, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}
