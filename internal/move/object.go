package move

import (
	"fmt"
	"slices"
	"strings"
)

// Object is a database (Table == "") or one table of it. The placement
// package of the clusters work defines the same shape; the two are meant
// to become one type.
type Object struct{ DB, Table string }

// IsDB reports whether o is a whole database.
func (o Object) IsDB() bool { return o.Table == "" }

// String is "db" or "db.table".
func (o Object) String() string {
	if o.IsDB() {
		return o.DB
	}
	return o.DB + "." + o.Table
}

// systemDBs are never moved: they belong to the server, not to the
// application.
var systemDBs = []string{"mysql", "information_schema", "performance_schema", "sys"}

// Normalize validates objs and returns them sorted, without duplicates and
// without tables whose whole database is in the set too. Names are kept as
// given: table names are case-sensitive on the servers sluice runs with
// (lower_case_table_names=0).
func Normalize(objs []Object) ([]Object, error) {
	if len(objs) == 0 {
		return nil, fmt.Errorf("move: no objects to move")
	}
	dbs := make(map[string]bool)
	for _, o := range objs {
		if err := checkName("database", o.DB); err != nil {
			return nil, err
		}
		if slices.Contains(systemDBs, strings.ToLower(o.DB)) {
			return nil, fmt.Errorf("move: %s is a system database and cannot be moved", o.DB)
		}
		if o.IsDB() {
			dbs[o.DB] = true
		} else if err := checkName("table", o.Table); err != nil {
			return nil, err
		}
	}
	out := make([]Object, 0, len(objs))
	for _, o := range objs {
		if !o.IsDB() && dbs[o.DB] {
			continue
		}
		out = append(out, o)
	}
	slices.SortFunc(out, compareObjects)
	return slices.Compact(out), nil
}

func compareObjects(a, b Object) int {
	if c := strings.Compare(a.DB, b.DB); c != 0 {
		return c
	}
	return strings.Compare(a.Table, b.Table)
}

// checkName refuses names the replication filters cannot express: a comma
// separates entries of replicate_do_table, and MariaDB identifiers are at
// most 64 characters.
func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("move: empty %s name", kind)
	case len(name) > 64:
		return fmt.Errorf("move: %s name %.20q… is longer than 64 characters", kind, name)
	case strings.ContainsAny(name, ",\x00"):
		return fmt.Errorf("move: %s name %q contains a comma or NUL, which replication filters cannot express", kind, name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("move: %s name %q has leading or trailing spaces, which replication filters drop", kind, name)
	}
	return nil
}

// Contains reports whether the set objs (as Normalize returns it) covers
// table db.table: the table itself or its whole database is in it.
func Contains(objs []Object, db, table string) bool {
	for _, o := range objs {
		if o.DB == db && (o.IsDB() || o.Table == table) {
			return true
		}
	}
	return false
}

// Filters are the replication filters of the move's named connection: the
// row events of the moved tables pass, everything else is skipped (its
// GTID still advances gtid_slave_pos, so MASTER_GTID_WAIT sees it).
type Filters struct {
	// DoTable is replicate_do_table: "db.t1,db.t2" for moved tables.
	DoTable string
	// WildDoTable is replicate_wild_do_table: "db.%" for moved databases,
	// with % and _ in the database name escaped.
	WildDoTable string
}

// BuildFilters returns the filters for a normalized set.
func BuildFilters(objs []Object) Filters {
	var tables, wild []string
	for _, o := range objs {
		if o.IsDB() {
			wild = append(wild, escapeWild(o.DB)+".%")
		} else {
			tables = append(tables, o.DB+"."+o.Table)
		}
	}
	return Filters{DoTable: strings.Join(tables, ","), WildDoTable: strings.Join(wild, ",")}
}

// escapeWild escapes the wildcard characters of replicate_wild_do_table.
func escapeWild(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// quoteIdent quotes an identifier with backticks.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// qualified is `db`.`table`.
func qualified(db, table string) string { return quoteIdent(db) + "." + quoteIdent(table) }

// sqlString quotes s as a string literal (the servers run without
// NO_BACKSLASH_ESCAPES on the mover's sessions: see session setup).
func sqlString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
