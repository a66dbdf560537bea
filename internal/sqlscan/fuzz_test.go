package sqlscan

import (
	"bytes"
	"testing"
)

// The fuzz targets check invariants that hold for any input: no panic, no
// endless loop (the fuzzer's per-input timeout catches those), no
// allocation in Scan, Split and FlagMulti agreeing, ScanDigest telling
// what Scan and Digest tell, a text scanning and digesting like its
// statements one by one, DigestHash matching Digest,
// and Digest being idempotent.

func FuzzScan(f *testing.F) {
	for _, q := range allInputs() {
		f.Add([]byte(q))
	}
	f.Fuzz(func(t *testing.T, sql []byte) {
		s := Scan(sql)
		if s.Kind > KindOther {
			t.Fatalf("Scan(%q) returned kind %d", sql, s.Kind)
		}
		checkTokens(t, sql)
		checkSplitAgrees(t, sql)
		Split(sql, func(stmt []byte) bool {
			// A statement may end in a space inside an unterminated string.
			if len(stmt) == 0 || isSpace(stmt[0]) {
				t.Fatalf("Split(%q) gave %q", sql, stmt)
			}
			return true
		})
		checkSplitConsistent(t, sql)
		UseTarget(sql)
		SetTarget(sql)
		KillTarget(sql)
		CreateTempTarget(sql)
		DropTableTargets(sql)
		PreparedName(sql)
		RenamesTable(sql)
		ShowListing(sql)
		if n := testing.AllocsPerRun(1, func() { Scan(sql) }); n != 0 {
			t.Fatalf("Scan(%q): %v allocations", sql, n)
		}
	})
}

func FuzzDigest(f *testing.F) {
	for _, q := range allInputs() {
		f.Add([]byte(q))
	}
	f.Fuzz(func(t *testing.T, sql []byte) {
		checkDigestHash(t, sql)
		checkScanDigest(t, sql)
		checkIdempotent(t, sql)
	})
}

// checkSplitConsistent checks that Scan and Digest of a text agree with
// Scan and Digest of the statements Split finds in it. Two cuts change
// the meaning of a statement, so those texts are left out: through an
// executable comment that holds a ';', and after "--", which starts a
// comment at the end of a text but not before a ';'.
func checkSplitConsistent(t *testing.T, sql []byte) {
	t.Helper()
	if bytes.Contains(sql, []byte("/*!")) || bytes.Contains(sql, []byte("/*M!")) || bytes.Contains(sql, []byte("--;")) {
		return
	}
	const ignore = FlagMulti | FlagHintPrimary | FlagHintReplica
	var flags Flags
	var digest []byte
	first := true
	var kind Kind
	Split(sql, func(stmt []byte) bool {
		s := Scan(stmt)
		if first {
			kind = s.Kind
		} else {
			digest = append(digest, "; "...)
		}
		first = false
		flags |= s.Flags &^ ignore
		digest = Digest(digest, stmt)
		return true
	})
	s := Scan(sql)
	if s.Kind != kind || s.Flags&^ignore != flags {
		t.Errorf("Scan(%q) = %v [%v], statement by statement %v [%v]", sql, s.Kind, s.Flags&^ignore, kind, flags)
	}
	if d := Digest(nil, sql); !bytes.Equal(d, digest) {
		t.Errorf("Digest(%q) = %q, statement by statement %q", sql, d, digest)
	}
}

// checkTokens checks that the lexer moves forward: every token but EOF is
// non-empty and starts where or after the previous one ended.
func checkTokens(t *testing.T, sql []byte) {
	t.Helper()
	lx := newLexer(sql)
	end := 0
	for {
		tok := lx.next()
		if tok.kind == tEOF {
			return
		}
		if tok.start < end || tok.end <= tok.start || tok.end > len(sql) {
			t.Fatalf("lexing %q: token %d [%d:%d] after offset %d", sql, tok.kind, tok.start, tok.end, end)
		}
		end = tok.end
	}
}
