package sqlscan

// Listing is a SHOW statement that lists a cluster's databases or a
// database's tables, the listings sluice merges across clusters.
type Listing struct {
	Tables bool   // SHOW [FULL] TABLES; else SHOW DATABASES / SCHEMAS
	DB     string // the database of FROM/IN, unquoted; "" for the session's
}

// ShowListing recognises
//
//	SHOW {DATABASES | SCHEMAS} [LIKE … | WHERE …]
//	SHOW [FULL] TABLES [{FROM | IN} db] [LIKE … | WHERE …]
//
// The filter is left to the servers. It expects one statement; anything
// else after the listing's head (SHOW TABLES FROM a FROM b) is !ok, and
// the statement goes to one server, whose answer is the error.
func ShowListing(sql []byte) (l Listing, ok bool) {
	st := newStream(sql)
	if !st.is(kwShow) {
		return l, false
	}
	st.shift()
	if st.cur.kind != tWord || st.curDot {
		return l, false
	}
	switch w := st.text(); {
	case equalFold(w, "DATABASES"), equalFold(w, "SCHEMAS"):
		st.shift()
	default:
		if equalFold(w, "FULL") {
			st.shift()
		}
		if !st.is(kwTables) {
			return l, false
		}
		l.Tables = true
		st.shift()
		if st.cur.kind == tWord && !st.curDot && (equalFold(st.text(), "FROM") || st.is(kwIn)) {
			st.shift()
			db, named := st.name()
			if !named || st.nxtDot {
				return Listing{}, false
			}
			l.DB = db
			st.shift()
		}
	}
	if st.is(kwLike) || st.is(kwWhere) || st.onlyEnd() {
		return l, true
	}
	return Listing{}, false
}
