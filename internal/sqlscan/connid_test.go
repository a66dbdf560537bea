package sqlscan

import "testing"

func TestRewriteConnectionID(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT CONNECTION_ID()", "SELECT 41 AS `CONNECTION_ID()`"},
		{"select connection_id( ) as id", "select 41 as id"},
		{"SELECT connection_id(), 1 FROM t", "SELECT 41 AS `connection_id()`, 1 FROM t"},
		{"KILL CONNECTION_ID()", "KILL 41"},
		{"KILL QUERY CONNECTION_ID()", "KILL QUERY 41"},
		{"SELECT * FROM p WHERE id = CONNECTION_ID()", "SELECT * FROM p WHERE id = 41"},
		{"SELECT CONNECTION_ID() + 1", "SELECT 41 + 1"},
		{"SELECT 'CONNECTION_ID()', `CONNECTION_ID`", ""},
		{"SELECT 1 /* CONNECTION_ID() */", ""},
		{"SELECT my_connection_id()", ""},
		{"SELECT 1", ""},
	} {
		got, ok := RewriteConnectionID(nil, []byte(c.in), 41)
		if c.want == "" {
			if ok {
				t.Errorf("%q rewritten to %q, want it left alone", c.in, got)
			}
			continue
		}
		if !ok || string(got) != c.want {
			t.Errorf("%q -> %q (%v), want %q", c.in, got, ok, c.want)
		}
	}
}

func FuzzRewriteConnectionID(f *testing.F) {
	f.Add([]byte("SELECT CONNECTION_ID(), 'x' FROM t"))
	f.Add([]byte("KILL QUERY connection_id()"))
	f.Fuzz(func(t *testing.T, sql []byte) {
		out, ok := RewriteConnectionID(nil, sql, 7)
		if !ok && out != nil {
			t.Fatal("no rewrite but output")
		}
	})
}
