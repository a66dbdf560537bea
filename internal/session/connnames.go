package session

import (
	"github.com/sluice-proxy/sluice/internal/sqlscan"
)

// connNames are the names of the temporary tables and text prepared
// statements the session made on its pinned connection, so that the pin
// ends when the last of them is gone. Anything sluice cannot follow
// (a name it could not read, a rename) marks the set unknown, and the pin
// then lasts as before, until the session ends or resets.
//
// Temporary table names are compared exactly, with their schema, as the
// server does with lower_case_table_names=0 (the default on Linux). On a
// server that folds case (1 or 2) a DROP spelled in another case than the
// CREATE drops the table but keeps the pin: wrong towards safety only.
// Prepared statement names are case-insensitive on every server, so they
// are kept in lower case.
type connNames struct {
	temps       map[sqlscan.TableName]struct{}
	tempUnknown bool
	prepared    map[string]struct{}
	prepUnknown bool
}

// noteTempTable records a successful CREATE TEMPORARY TABLE/SEQUENCE.
// fresh says the session had no temporary table pin before: names from an
// earlier pin (since dropped with its connection) are forgotten.
func (n *connNames) noteTempTable(sql []byte, schema string, fresh bool) {
	if fresh {
		n.temps, n.tempUnknown = nil, false
	}
	t, ok := sqlscan.CreateTempTarget(sql)
	if !ok {
		n.tempUnknown = true
		return
	}
	if n.temps == nil {
		n.temps = map[sqlscan.TableName]struct{}{}
	}
	n.temps[qualify(t, schema)] = struct{}{}
}

// noteTableDDL follows a successful DDL statement other than CREATE
// TEMPORARY. It reports whether the last temporary table is gone.
// DROP TABLE (without TEMPORARY) drops a temporary table of that name
// first, so it counts too.
func (n *connNames) noteTableDDL(sql []byte, schema string) (allGone bool) {
	if names, ok := sqlscan.DropTableTargets(sql); ok {
		for _, t := range names {
			delete(n.temps, qualify(t, schema))
		}
	} else if sqlscan.RenamesTable(sql) {
		n.tempUnknown = true
	}
	return len(n.temps) == 0 && !n.tempUnknown
}

// notePrepare records a successful PREPARE; fresh as for noteTempTable.
func (n *connNames) notePrepare(sql []byte, fresh bool) {
	if fresh {
		n.prepared, n.prepUnknown = nil, false
	}
	name, ok := sqlscan.PreparedName(sql)
	if !ok {
		n.prepUnknown = true
		return
	}
	if n.prepared == nil {
		n.prepared = map[string]struct{}{}
	}
	n.prepared[name] = struct{}{}
}

// noteDeallocate follows a successful DEALLOCATE/DROP PREPARE and reports
// whether the last prepared statement is gone.
func (n *connNames) noteDeallocate(sql []byte) (allGone bool) {
	if name, ok := sqlscan.PreparedName(sql); ok {
		delete(n.prepared, name)
	} else {
		n.prepUnknown = true
	}
	return len(n.prepared) == 0 && !n.prepUnknown
}

// qualify gives an unqualified table name the schema it was used in.
func qualify(t sqlscan.TableName, schema string) sqlscan.TableName {
	if t.DB == "" {
		t.DB = schema
	}
	return t
}

// noteConnNames updates the pins for temporary tables and text prepared
// statements after a successful single statement.
func (s *engine) noteConnNames(st sqlscan.Statement, sql []byte) {
	switch {
	case st.Flags&sqlscan.FlagCreateTemp != 0:
		s.names.noteTempTable(sql, s.state.Schema, s.pins&pinTempTable == 0)
		s.pins |= pinTempTable
	case st.Kind == sqlscan.KindDDL && s.pins&pinTempTable != 0:
		if s.names.noteTableDDL(sql, s.state.Schema) {
			s.pins &^= pinTempTable
		}
	case st.Kind == sqlscan.KindPrepare:
		s.names.notePrepare(sql, s.pins&pinTextPrepare == 0)
		s.pins |= pinTextPrepare
	case st.Kind == sqlscan.KindDeallocate && s.pins&pinTextPrepare != 0:
		if s.names.noteDeallocate(sql) {
			s.pins &^= pinTextPrepare
		}
	}
}
