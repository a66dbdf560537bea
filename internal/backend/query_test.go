package backend

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// answer runs QueryRows on a connection whose server writes pkts (after
// reading the query) and returns what it gave.
func answer(t *testing.T, pkts ...[]byte) (Rows, error, *Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() {
		srv := wire.NewConn(b)
		if _, err := srv.ReadPacket(0); err != nil {
			return
		}
		srv.Seq = 1
		for _, p := range pkts {
			srv.WritePacket(p)
		}
		srv.Flush()
	}()
	c := Open(a)
	rs, err := c.QueryRows("SHOW DATABASES", time.Second)
	return rs, err, c
}

func col(name string) []byte {
	return wire.AppendColumnDef(nil, wire.Column{Name: name, Type: wire.TypeVarString})
}
func row(vals ...string) []byte {
	var b []byte
	for _, v := range vals {
		b = wire.AppendLenEncString(b, []byte(v))
	}
	return b
}

func TestQueryRows(t *testing.T) {
	eof := wire.AppendEOF(nil, 0, wire.StatusAutocommit)
	rs, err, c := answer(t, []byte{2}, col("Tables_in_d"), col("Table_type"), eof, row("a", "BASE TABLE"), row("b", "VIEW"), eof)
	if err != nil || len(rs.Columns) != 2 || len(rs.Rows) != 2 || string(rs.Rows[1]) != string(row("b", "VIEW")) || c.IsBroken() {
		t.Fatalf("result set: %+v, %v, broken %v", rs, err, c.IsBroken())
	}

	_, err, c = answer(t, wire.AppendError(nil, wire.Errorf(1049, "42000", "Unknown database 'x'")))
	if me, ok := err.(*wire.Error); !ok || me.Code != 1049 || c.IsBroken() {
		t.Fatalf("server error: %v, broken %v", err, c.IsBroken())
	}

	// Answers QueryRows cannot take leave the connection unusable: it is
	// discarded, never pooled out of step.
	for name, pkts := range map[string][][]byte{
		"OK":             {wire.AppendOK(nil, wire.OK{})},
		"several sets":   {[]byte{1}, col("x"), eof, row("1"), wire.AppendEOF(nil, 0, wire.StatusMoreResultsExists)},
		"column count":   {[]byte{2}, col("x"), eof, row("1"), eof},
		"LOCAL INFILE":   {append([]byte{0xFB}, "f"...)},
		"truncated rows": {[]byte{1}, col("x"), eof, row("1")},
	} {
		_, err, c := answer(t, pkts...)
		if err == nil || !c.IsBroken() {
			t.Errorf("%s: err %v, broken %v; want an error and a broken connection", name, err, c.IsBroken())
		}
		if name == "OK" && !strings.Contains(err.Error(), "no result set") {
			t.Errorf("OK: %v", err)
		}
	}
}
