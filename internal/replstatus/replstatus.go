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
	rows, err := q.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cols))
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, rows.Err()
}
