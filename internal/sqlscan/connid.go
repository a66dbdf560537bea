package sqlscan

import (
	"bytes"
	"strconv"
)

// HasConnectionID is a fast test for a possible CONNECTION_ID() call: it
// looks for the name in any case, ignoring quoting, so it may say yes for
// a string or a comment; RewriteConnectionID is exact.
func HasConnectionID(sql []byte) bool {
	const name = "CONNECTION_ID"
	for i := 0; ; {
		j := bytes.IndexByte(sql[i:], '_')
		if j < 0 {
			return false
		}
		at := i + j - len("CONNECTION")
		if at >= 0 && at+len(name) <= len(sql) && equalFold(sql[at:at+len(name)], name) {
			return true
		}
		i += j + 1
	}
}

// RewriteConnectionID appends to dst sql with every call CONNECTION_ID()
// replaced by id, and reports whether there was one (dst is then the
// result; otherwise it is returned unchanged). Behind a proxy the backend
// thread id means nothing to the client: KILL takes the proxy's ids, so
// CONNECTION_ID() must return that one. A call that is a whole item of a
// select list keeps its column name with an alias, as clients show it.
func RewriteConnectionID(dst, sql []byte, id uint32) ([]byte, bool) {
	if !HasConnectionID(sql) {
		return dst, false
	}
	lx := newLexer(sql)
	var toks []token
	for {
		t := lx.next()
		if t.kind == tEOF {
			break
		}
		toks = append(toks, t)
	}
	num := strconv.AppendUint(nil, uint64(id), 10)
	out := dst
	last := 0
	found := false
	depth := 0
	inList := false // in the select list of a SELECT at depth 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.isOp(sql, '('):
			depth++
		case t.isOp(sql, ')'):
			depth--
		case t.kind == tWord && depth == 0:
			w := sql[t.start:t.end]
			if equalFold(w, "SELECT") {
				inList = true
			} else if isClauseAfterList(w) {
				inList = false
			}
		}
		if t.kind != tWord || !equalFold(sql[t.start:t.end], "CONNECTION_ID") ||
			i+2 >= len(toks) || !toks[i+1].isOp(sql, '(') || !toks[i+2].isOp(sql, ')') {
			continue
		}
		end := toks[i+2].end
		alias := false
		if inList && depth == 0 {
			prevOK := i > 0 && (toks[i-1].isOp(sql, ',') || toks[i-1].kind == tWord &&
				(equalFold(sql[toks[i-1].start:toks[i-1].end], "SELECT") || equalFold(sql[toks[i-1].start:toks[i-1].end], "DISTINCT") ||
					equalFold(sql[toks[i-1].start:toks[i-1].end], "ALL")))
			nextOK := i+3 >= len(toks) || toks[i+3].isOp(sql, ',') || toks[i+3].isOp(sql, ';') ||
				toks[i+3].kind == tWord && isClauseAfterList(sql[toks[i+3].start:toks[i+3].end])
			alias = prevOK && nextOK
		}
		out = append(out, sql[last:t.start]...)
		out = append(out, num...)
		if alias {
			out = append(out, " AS `"...)
			out = append(out, bytes.ReplaceAll(sql[t.start:end], []byte("`"), []byte("``"))...)
			out = append(out, '`')
		}
		last = end
		found = true
		i += 2
	}
	if !found {
		return dst, false
	}
	return append(out, sql[last:]...), true
}

func isClauseAfterList(w []byte) bool {
	for _, k := range [...]string{"FROM", "INTO", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "EXCEPT", "INTERSECT", "WINDOW", "FOR", "LOCK"} {
		if equalFold(w, k) {
			return true
		}
	}
	return false
}
