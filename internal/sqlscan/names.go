package sqlscan

// The functions here read the names of state a statement creates or drops
// on its connection (temporary tables, text prepared statements), so the
// session can tell when the last is gone. Like the *Target functions they
// expect one statement and allocate only what they return; anything they
// do not recognise gives ok false, and the caller keeps what it tracks.

// TableName is a table name as written, unquoted; DB is empty when the
// name is not qualified.
type TableName struct {
	DB, Name string
}

// CreateTempTarget returns the table of CREATE [OR REPLACE] TEMPORARY
// {TABLE|SEQUENCE} [IF NOT EXISTS] [db.]name ….
func CreateTempTarget(sql []byte) (TableName, bool) {
	st := newStream(sql)
	if st.word().id != kwCreate {
		return TableName{}, false
	}
	st.shift()
	if st.is(kwOr) {
		st.shift()
		if !st.is(kwReplace) {
			return TableName{}, false
		}
		st.shift()
	}
	if !st.is(kwTemporary) {
		return TableName{}, false
	}
	st.shift()
	if !st.is(kwTable) && !st.is(kwSequence) {
		return TableName{}, false
	}
	st.shift()
	if !st.skipIfExists(true) {
		return TableName{}, false
	}
	return st.tableName()
}

// DropTableTargets returns the tables of DROP [TEMPORARY]
// {TABLE|TABLES|SEQUENCE} [IF EXISTS] name [, name …] [WAIT n | NOWAIT]
// [RESTRICT | CASCADE].
func DropTableTargets(sql []byte) ([]TableName, bool) {
	st := newStream(sql)
	if st.word().id != kwDrop {
		return nil, false
	}
	st.shift()
	if st.is(kwTemporary) {
		st.shift()
	}
	if !st.is(kwTable) && !st.is(kwTables) && !st.is(kwSequence) {
		return nil, false
	}
	st.shift()
	if !st.skipIfExists(false) {
		return nil, false
	}
	var names []TableName
	for {
		n, ok := st.tableName()
		if !ok {
			return nil, false
		}
		names = append(names, n)
		if !st.op(',') {
			break
		}
		st.shift()
	}
	for !st.end() {
		switch w := st.text(); {
		case st.cur.kind == tNumber:
		case st.cur.kind == tWord && (equalFold(w, "WAIT") || equalFold(w, "NOWAIT") ||
			equalFold(w, "RESTRICT") || equalFold(w, "CASCADE")):
		default:
			return nil, false
		}
		st.shift()
	}
	if !st.onlyEnd() {
		return nil, false
	}
	return names, true
}

// RenamesTable reports whether a statement may give a table another name:
// RENAME TABLE …, or ALTER TABLE … with RENAME in it.
func RenamesTable(sql []byte) bool {
	st := newStream(sql)
	switch {
	case st.cur.kind == tWord && equalFold(st.text(), "RENAME"):
		return true
	case st.word().id != kwAlter:
		return false
	}
	for ; st.cur.kind != tEOF; st.shift() {
		if st.cur.kind == tWord && equalFold(st.text(), "RENAME") {
			return true
		}
	}
	return false
}

// PreparedName returns the statement name of PREPARE name FROM …,
// DEALLOCATE PREPARE name or DROP PREPARE name, in lower case: prepared
// statement names are case-insensitive.
func PreparedName(sql []byte) (string, bool) {
	st := newStream(sql)
	switch k := st.word(); {
	case k.head == KindPrepare:
		st.shift()
	case k.id == kwDeallocate || k.id == kwDrop:
		st.shift()
		if st.word().head != KindPrepare {
			return "", false
		}
		st.shift()
	default:
		return "", false
	}
	var name []byte
	switch st.cur.kind {
	case tWord:
		name = st.text()
	case tQuoted:
		s, ok := unquote(st.text())
		if !ok {
			return "", false
		}
		name = []byte(s)
	default:
		return "", false
	}
	if len(name) == 0 {
		return "", false
	}
	return lower("", name), true
}

// skipIfExists moves past IF NOT EXISTS (not set: after CREATE) or IF
// EXISTS (after DROP); it returns false for anything else after IF.
func (st *stream) skipIfExists(not bool) bool {
	if st.cur.kind != tWord || !equalFold(st.text(), "IF") {
		return true
	}
	st.shift()
	if not {
		if !st.is(kwNot) {
			return false
		}
		st.shift()
	}
	if st.cur.kind != tWord || !equalFold(st.text(), "EXISTS") {
		return false
	}
	st.shift()
	return true
}

// tableName reads [db.]name at cur and moves past it.
func (st *stream) tableName() (TableName, bool) {
	first, ok := st.name()
	if !ok {
		return TableName{}, false
	}
	st.shift()
	if !st.op('.') {
		return TableName{Name: first}, true
	}
	st.shift()
	second, ok := st.name()
	if !ok {
		return TableName{}, false
	}
	st.shift()
	return TableName{DB: first, Name: second}, true
}

// name returns the identifier at cur, unquoted.
func (st *stream) name() (string, bool) {
	switch st.cur.kind {
	case tWord:
		return string(st.text()), true
	case tQuoted:
		s, ok := unquote(st.text())
		return s, ok && s != ""
	}
	return "", false
}
