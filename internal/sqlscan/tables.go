package sqlscan

import "bytes"

// Objects calls fn with every table a SQL text names — db is empty when
// the name is not qualified (the session's current database then) — and
// with every database it names without a table (table nil: CREATE
// DATABASE d, SHOW TABLES FROM d, CALL d.proc(), d.func(…)). It stops when
// fn returns false. Names are as written, without their backquotes;
// the slices alias sql except for a quoted name with a doubled backquote.
//
// It reads the text once, like Scan, and allocates nothing for names
// without doubled backquotes. It finds the names after FROM, JOIN, INTO,
// UPDATE, TABLE(S), USING, REFERENCES, INSERT/REPLACE, DESCRIBE, TRUNCATE,
// RENAME … TO, CREATE … LIKE, CREATE/DROP INDEX/TRIGGER … ON, and
// DATABASE/SCHEMA; a FROM inside a function's parentheses (EXTRACT(x FROM
// d), TRIM(… FROM …)) is not a table, while one in a subquery is. Names of
// common table expressions (WITH x AS (…)) are not tables when used
// unqualified. A name it cannot see (dynamic SQL in PREPARE … FROM @v, a
// view's or routine's body) is, of course, not reported.
func Objects(sql []byte, fn func(db, table []byte) bool) {
	o := objScan{st: newStream(sql), fn: fn}
	o.run()
}

type objScan struct {
	st    stream
	fn    func(db, table []byte) bool
	stop  bool
	head  []byte // first word of the current statement
	show  bool   // the statement is SHOW
	index bool   // a CREATE/DROP statement naming an INDEX or TRIGGER: ON names a table
	depth int
	sub   uint64 // bit d: the parenthesis at depth d+1 holds a subquery
	ctes  [8][]byte
	nctes int
	prev  []byte // the previous word
}

func (o *objScan) word(upper string) bool {
	return o.st.cur.kind == tWord && !o.st.curDot && equalFold(o.st.text(), upper)
}

func (o *objScan) nxtWord(upper string) bool {
	st := &o.st
	return st.nxt.kind == tWord && equalFold(st.lx.sql[st.nxt.start:st.nxt.end], upper)
}

// inFunction reports whether cur is inside parentheses that are not a
// subquery: a function's arguments or a column list.
func (o *objScan) inFunction() bool {
	if o.depth == 0 {
		return false
	}
	if o.depth > 64 {
		return true
	}
	return o.sub&(1<<(o.depth-1)) == 0
}

func (o *objScan) run() {
	st := &o.st
	for st.cur.kind != tEOF && !o.stop {
		if st.op(';') && o.depth == 0 {
			o.head, o.show, o.index, o.nctes = nil, false, false, 0
			st.shift()
			continue
		}
		if st.op('(') {
			o.depth++
			st.shift()
			if o.depth <= 64 {
				if o.word("SELECT") || o.word("WITH") || o.word("VALUES") || o.word("TABLE") || st.op('(') {
					o.sub |= 1 << (o.depth - 1)
				} else {
					o.sub &^= 1 << (o.depth - 1)
				}
			}
			continue
		}
		if st.op(')') {
			if o.depth > 0 {
				o.depth--
			}
			st.shift()
			continue
		}
		if (st.cur.kind == tWord || st.cur.kind == tQuoted) && !st.curDot && st.nxt.kind == tOp && st.lx.sql[st.nxt.start] == '.' {
			o.qualifiedCall()
			continue
		}
		if st.cur.kind == tWord && !st.curDot {
			o.keyword()
			continue
		}
		st.shift()
	}
}

// qualifiedCall reports the database of db.func(…) and db.proc(…); a
// db.table.column reference needs no report (its table is named in FROM).
func (o *objScan) qualifiedCall() {
	st := &o.st
	first := o.name()
	st.shift() // the name
	st.shift() // '.'
	if st.cur.kind == tWord || st.cur.kind == tQuoted {
		st.shift()
		if st.op('(') && first != nil {
			o.emit(first, nil)
		}
	}
}

func (o *objScan) keyword() {
	st := &o.st
	w := st.text()
	if o.head == nil {
		o.head = w
		o.show = equalFold(w, "SHOW")
		st.shift()
		switch {
		case equalFold(w, "WITH"):
			o.ctes1()
		case equalFold(w, "INSERT") || equalFold(w, "REPLACE"):
			o.skipWords("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO")
			o.refs(false)
		case equalFold(w, "UPDATE"):
			o.skipWords("LOW_PRIORITY", "IGNORE")
			o.refs(true)
		case equalFold(w, "TABLE"):
			o.refs(false)
		case equalFold(w, "TRUNCATE"):
			o.skipWords("TABLE")
			o.refs(false)
		case equalFold(w, "DESCRIBE") || equalFold(w, "DESC") || equalFold(w, "EXPLAIN"):
			if st.cur.kind == tQuoted || st.cur.kind == tWord && lookup(st.text()).head == KindUnknown && lookup(st.text()).id == kwNone &&
				!o.word("EXTENDED") && !o.word("PARTITIONS") {
				o.refs(false)
			}
		case equalFold(w, "CALL"):
			if (st.cur.kind == tWord || st.cur.kind == tQuoted) && st.nxt.kind == tOp && st.lx.sql[st.nxt.start] == '.' {
				if db := o.name(); db != nil {
					o.emit(db, nil)
				}
			}
		}
		return
	}
	defer func() { o.prev = w }()
	switch {
	case equalFold(w, "FROM") || equalFold(w, "IN") && o.show:
		st.shift()
		if o.inFunction() {
			return
		}
		if o.show {
			o.showFrom()
			return
		}
		o.refs(true)
	case equalFold(w, "UPDATE") && equalFold(o.head, "WITH") && o.depth == 0:
		st.shift()
		o.skipWords("LOW_PRIORITY", "IGNORE")
		o.refs(true)
	case equalFold(w, "VIEW") && (equalFold(o.head, "CREATE") || equalFold(o.head, "DROP") || equalFold(o.head, "ALTER")):
		st.shift()
		o.skipIfExists()
		o.refs(equalFold(o.head, "DROP"))
	case equalFold(w, "JOIN") || equalFold(w, "STRAIGHT_JOIN"):
		st.shift()
		o.refs(false)
	case equalFold(w, "INTO"):
		st.shift()
		if st.cur.kind == tVar || o.word("OUTFILE") || o.word("DUMPFILE") || o.word("TABLE") {
			return // SELECT … INTO @v / OUTFILE; LOAD DATA … INTO TABLE t
		}
		o.refs(false)
	case equalFold(w, "TABLE"):
		st.shift()
		if o.show && !equalFold(o.prev, "CREATE") {
			return // SHOW TABLE STATUS
		}
		o.skipIfExists()
		o.refs(equalFold(o.head, "DROP") || equalFold(o.head, "RENAME") || equalFold(o.head, "CHECK") ||
			equalFold(o.head, "OPTIMIZE") || equalFold(o.head, "ANALYZE") || equalFold(o.head, "REPAIR") || equalFold(o.head, "LOCK"))
	case equalFold(w, "TABLES"):
		st.shift()
		if o.show {
			return
		}
		o.refs(true)
	case equalFold(w, "USING"), equalFold(w, "REFERENCES"):
		st.shift()
		if st.op('(') || st.cur.kind == tVar {
			return
		}
		o.refs(equalFold(w, "USING"))
	case equalFold(w, "TO") && (equalFold(o.head, "RENAME") || equalFold(o.head, "ALTER")):
		st.shift()
		o.refs(true)
	case equalFold(w, "LIKE") && equalFold(o.head, "CREATE"):
		st.shift()
		if st.cur.kind == tWord || st.cur.kind == tQuoted {
			o.refs(false)
		}
	case (equalFold(w, "INDEX") || equalFold(w, "TRIGGER")) && (equalFold(o.head, "CREATE") || equalFold(o.head, "DROP")):
		o.index = true
		st.shift()
	case equalFold(w, "ON") && o.index:
		o.index = false
		st.shift()
		o.refs(false)
	case equalFold(w, "DATABASE") || equalFold(w, "SCHEMA"):
		st.shift()
		if st.op('(') {
			return // DATABASE()
		}
		o.skipIfExists()
		if st.cur.kind == tWord && lookup(st.text()).id == kwNone || st.cur.kind == tQuoted {
			if db := o.name(); db != nil {
				o.emit(db, nil)
			}
			st.shift()
		}
	default:
		st.shift()
	}
}

// ctes1 records the names a WITH clause defines; cur follows WITH.
func (o *objScan) ctes1() {
	st := &o.st
	if o.word("RECURSIVE") {
		st.shift()
	}
	for !o.stop && (st.cur.kind == tWord || st.cur.kind == tQuoted) {
		if n := o.name(); n != nil && o.nctes < len(o.ctes) {
			o.ctes[o.nctes] = n
			o.nctes++
		}
		st.shift()
		if st.op('(') { // column list
			st.skipGroup()
		}
		if !o.word("AS") {
			return
		}
		st.shift()
		if !st.op('(') {
			return
		}
		// The body is scanned like any text: its tables count.
		end := o.depth
		o.depth++
		o.sub |= 1 << (min(o.depth, 64) - 1)
		st.shift()
		for st.cur.kind != tEOF && !o.stop && o.depth > end {
			if st.op('(') || st.op(')') || st.cur.kind != tWord || st.curDot {
				o.runOne()
				continue
			}
			o.keyword()
		}
		if !st.op(',') {
			return
		}
		st.shift()
	}
}

// runOne handles one non-keyword token of the main loop.
func (o *objScan) runOne() {
	st := &o.st
	switch {
	case st.op('('):
		o.depth++
		st.shift()
		if o.depth <= 64 {
			if o.word("SELECT") || o.word("WITH") || o.word("VALUES") || st.op('(') {
				o.sub |= 1 << (o.depth - 1)
			} else {
				o.sub &^= 1 << (o.depth - 1)
			}
		}
	case st.op(')'):
		o.depth--
		st.shift()
	case (st.cur.kind == tWord || st.cur.kind == tQuoted) && !st.curDot && st.nxt.kind == tOp && st.lx.sql[st.nxt.start] == '.':
		o.qualifiedCall()
	default:
		st.shift()
	}
}

func (o *objScan) skipWords(words ...string) {
	for {
		moved := false
		for _, w := range words {
			if o.word(w) {
				o.st.shift()
				moved = true
			}
		}
		if !moved {
			return
		}
	}
}

func (o *objScan) skipIfExists() {
	if o.word("IF") {
		o.st.shift()
		if o.word("NOT") {
			o.st.shift()
		}
		if o.word("EXISTS") {
			o.st.shift()
		}
	}
}

// showFrom reads SHOW … FROM|IN x: a database after SHOW TABLES / TABLE
// STATUS / TRIGGERS / EVENTS …, a table after SHOW COLUMNS / INDEX, whose
// own FROM db may follow.
func (o *objScan) showFrom() {
	st := &o.st
	if st.cur.kind != tWord && st.cur.kind != tQuoted {
		return
	}
	first := o.name() // nil for a name the server will refuse (an unterminated quote)
	st.shift()
	if st.op('.') {
		st.shift()
		if t := o.name(); first != nil && t != nil {
			o.emit(first, t)
		}
		st.shift()
		return
	}
	if o.word("FROM") || o.word("IN") {
		st.shift()
		db := o.name()
		st.shift()
		if db != nil && first != nil {
			o.emit(db, first)
		}
		return
	}
	switch {
	case first == nil:
	case o.tableShow():
		o.emit(nil, first)
	default:
		o.emit(first, nil)
	}
}

// tableShow: SHOW [FULL] COLUMNS|FIELDS|INDEX|INDEXES|KEYS … name a table.
func (o *objScan) tableShow() bool {
	for _, w := range [...][]byte{o.prev} {
		switch {
		case equalFold(w, "COLUMNS"), equalFold(w, "FIELDS"), equalFold(w, "INDEX"), equalFold(w, "INDEXES"), equalFold(w, "KEYS"):
			return true
		}
	}
	return false
}

// refs reads a table reference at cur and, when list is set, the ones
// after it separated by commas (FROM a x, b AS y USE INDEX (i), c).
func (o *objScan) refs(list bool) {
	st := &o.st
	for !o.stop {
		if st.cur.kind != tWord && st.cur.kind != tQuoted {
			return
		}
		if st.cur.kind == tWord && (o.word("DUAL") || o.word("LATERAL") || o.clause()) {
			return
		}
		first := o.name()
		st.shift()
		if st.op('.') {
			st.shift()
			if st.cur.kind == tWord || st.cur.kind == tQuoted {
				if second := o.name(); first != nil && second != nil {
					o.emit(first, second)
				}
				st.shift()
			}
		} else if first != nil && !o.cte(first) {
			o.emit(nil, first)
		}
		if !list {
			return
		}
		// Alias, index hints, partitions, lock modes: up to the next ',' or
		// the next clause.
		for !o.stop && !st.end() && !st.op(')') && !st.op(',') && !o.clause() {
			if st.op('(') {
				st.skipGroup()
				continue
			}
			st.shift()
		}
		if !st.op(',') {
			return
		}
		st.shift()
	}
}

// clause reports whether cur is a word that ends a list of tables.
func (o *objScan) clause() bool {
	if o.st.cur.kind != tWord || o.st.curDot {
		return false
	}
	w := o.st.text()
	if len(w) < 2 || len(w) > 13 {
		return false
	}
	for _, c := range clauseWords {
		if equalFold(w, c) {
			return true
		}
	}
	return false
}

var clauseWords = [...]string{"WHERE", "JOIN", "INNER", "LEFT", "RIGHT", "CROSS", "NATURAL", "STRAIGHT_JOIN", "FULL",
	"ON", "USING", "GROUP", "ORDER", "LIMIT", "HAVING", "WINDOW", "UNION", "EXCEPT", "INTERSECT", "FOR", "SET",
	"VALUES", "VALUE", "SELECT", "INTO", "RETURNING", "LOCK", "TO", "LIKE", "PARTITION", "WITH", "FROM"}

func (o *objScan) cte(name []byte) bool {
	for i := range o.nctes {
		if bytes.Equal(o.ctes[i], name) {
			return true
		}
	}
	return false
}

// name returns the identifier at cur without backquotes; nil when cur is
// not one.
func (o *objScan) name() []byte {
	st := &o.st
	t := st.text()
	switch st.cur.kind {
	case tWord:
		return t
	case tQuoted:
		if len(t) < 2 || t[len(t)-1] != '`' {
			return nil
		}
		body := t[1 : len(t)-1]
		if bytes.IndexByte(body, '`') < 0 {
			if len(body) == 0 {
				return nil
			}
			return body
		}
		s, ok := unquote(t)
		if !ok || s == "" {
			return nil
		}
		return []byte(s)
	}
	return nil
}

func (o *objScan) emit(db, table []byte) {
	if !o.fn(db, table) {
		o.stop = true
	}
}
