// Package replstatus reads a server's replication status, shared by the
// monitor and the failover steps so both see the same columns the same way.
package replstatus

import (
	"context"
	"database/sql"
)

// Queryer is a *sql.DB or *sql.Conn.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SlaveStatus returns SHOW SLAVE STATUS by column name, or nil when the
// server has no replication configured. It is a SHOW statement, so it does
// not move the server's Com_select counter.
func SlaveStatus(ctx context.Context, q Queryer) (map[string]string, error) {
	rows, err := Rows(ctx, q, "SHOW SLAVE STATUS")
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0], nil
}

// Rows returns every row of a statement (a SHOW, typically) by column
// name, NULL as "".
func Rows(ctx context.Context, q Queryer, query string) ([]map[string]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			m[c] = vals[i].String
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
