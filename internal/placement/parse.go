package placement

import (
	"fmt"
	"strings"
)

// maxParsedObjects bounds what one ParseObjects expands a family to: a
// move of more tables than this is several moves.
const maxParsedObjects = 10000

// ParseObjects reads what `sluice move` and POST /api/moves name: "db"
// (the whole database) or "db.t1,t2,bucket_{0000..0255}" (tables of db,
// exact names or numbered families, see Pattern).
func ParseObjects(s string) ([]Object, error) {
	s = strings.TrimSpace(s)
	db, tables, hasTables := strings.Cut(s, ".")
	if db == "" {
		return nil, fmt.Errorf("%q: name a database (db) or tables of one (db.t1,t2 or db.bucket_{0000..0015})", s)
	}
	if !hasTables {
		return []Object{{DB: db}}, nil
	}
	var out []Object
	for _, t := range strings.Split(tables, ",") {
		t = strings.TrimSpace(t)
		p, err := ParsePattern(t)
		if err != nil {
			return nil, fmt.Errorf("tables of %s: %w", db, err)
		}
		if uint64(len(out))+p.Len() > maxParsedObjects {
			return nil, fmt.Errorf("%q names more than %d tables; move them in several moves", s, maxParsedObjects)
		}
		p.Names(func(name string) bool {
			out = append(out, Object{DB: db, Table: name})
			return true
		})
	}
	return out, nil
}
