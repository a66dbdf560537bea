package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// rawConn is a minimal MySQL client written against the protocol, for what
// go-sql-driver does not expose: the connection id and scramble of the
// greeting, commands the driver never sends, and the exact packets sent
// back. Every operation has a deadline, so a server that hangs fails the
// test instead of freezing it.
type rawConn struct {
	*wire.Conn
	hs      wire.Handshake
	timeout time.Duration
	// auth records the AuthMoreData and AuthSwitch packets of the last
	// login: "switch:<plugin>", "fast-ok", "full-auth", "public-key".
	auth []string
}

// rawCaps are the capabilities rawConn asks for: protocol 4.1 with EOF
// packets, no multi-statements, no LOCAL INFILE, no connect attributes.
const rawCaps = wire.ClientLongPassword | wire.ClientLongFlag | wire.ClientProtocol41 |
	wire.ClientTransactions | wire.ClientSecureConnection | wire.ClientMultiResults |
	wire.ClientPluginAuth | wire.ClientPluginAuthLenencClientData

// rawDial opens a TCP connection and reads the server's greeting.
func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{Conn: wire.NewConn(nc), timeout: 10 * time.Second}
	p, err := c.read()
	if err != nil {
		t.Fatalf("read greeting from %s: %v", addr, err)
	}
	hs, ok := wire.ParseHandshake(p)
	if !ok {
		t.Fatalf("unreadable greeting from %s: %q", addr, p)
	}
	c.hs = hs
	return c
}

// rawLogin dials and logs in, failing the test on any error.
func rawLogin(t testing.TB, addr, user, password, db string) *rawConn {
	t.Helper()
	c := rawDial(t, addr)
	if err := c.login(user, password, db, rawCaps); err != nil {
		t.Fatalf("login %s@%s: %v", user, addr, err)
	}
	return c
}

func (c *rawConn) deadline() { c.NC.SetDeadline(time.Now().Add(c.timeout)) }

// read returns a copy of the next packet.
func (c *rawConn) read() ([]byte, error) {
	c.deadline()
	p, err := c.ReadPacket(0)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), p...), nil
}

// write sends one packet with the current sequence id.
func (c *rawConn) write(p []byte) error {
	c.deadline()
	return c.WriteFlush(p)
}

// send starts a command.
func (c *rawConn) send(payload []byte) error {
	c.Seq = 0
	return c.write(payload)
}

// login answers the greeting as user, with mysql_native_password first and
// whatever the server switches to (native or caching_sha2_password, fast
// path or full authentication with the RSA key exchange).
func (c *rawConn) login(user, password, db string, caps uint32) error {
	if db != "" {
		caps |= wire.ClientConnectWithDB
	}
	resp := wire.HandshakeResponse{
		Capabilities: caps, MaxPacket: wire.MaxPayload, Collation: wire.DefaultCollation,
		User: user, AuthResponse: wire.NativePasswordHash(c.hs.Scramble, password),
		Database: db, AuthPlugin: wire.NativePassword,
	}
	if err := c.write(wire.AppendHandshakeResponse(nil, resp)); err != nil {
		return err
	}
	return c.authResult(wire.NativePassword, c.hs.Scramble, password)
}

// authResult follows the server through the rest of an authentication
// exchange until OK or ERR.
func (c *rawConn) authResult(plugin string, scramble []byte, password string) error {
	c.auth = nil
	for {
		p, err := c.read()
		if err != nil {
			return err
		}
		switch {
		case wire.IsOK(p):
			return nil
		case wire.IsERR(p):
			return wire.ParseError(p)
		case p[0] == 0xfe:
			sw, ok := wire.ParseAuthSwitch(p)
			if !ok {
				return fmt.Errorf("bad AuthSwitchRequest %q", p)
			}
			c.auth = append(c.auth, "switch:"+sw.Plugin)
			plugin, scramble = sw.Plugin, sw.Data
			answer := wire.NativePasswordHash(scramble, password)
			if plugin == wire.CachingSHA2Password {
				answer = wire.CachingSHA2Hash(scramble, password)
			}
			if err := c.write(answer); err != nil {
				return err
			}
		case wire.IsAuthMoreData(p) && plugin == wire.CachingSHA2Password && len(p) == 2:
			switch p[1] {
			case wire.SHA2FastAuthOK:
				c.auth = append(c.auth, "fast-ok")
			case wire.SHA2FullAuth:
				c.auth = append(c.auth, "full-auth")
				if err := c.write([]byte{wire.SHA2RequestPubKey}); err != nil {
					return err
				}
				kp, err := c.read()
				if err != nil {
					return err
				}
				if !wire.IsAuthMoreData(kp) {
					return fmt.Errorf("expected the public key, got %q", kp)
				}
				c.auth = append(c.auth, "public-key")
				pub, err := wire.ParsePublicKeyPEM(kp[1:])
				if err != nil {
					return err
				}
				enc, err := wire.EncryptPassword(pub, scramble, password)
				if err != nil {
					return err
				}
				if err := c.write(enc); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unexpected caching_sha2_password state %d", p[1])
			}
		default:
			return fmt.Errorf("unexpected packet during authentication: %q", p)
		}
	}
}

// errLocalInfileRequest is returned when a server asks rawConn, which never
// offers CLIENT_LOCAL_FILES, for a file.
var errLocalInfileRequest = errors.New("server sent a LOCAL INFILE request to a client without CLIENT_LOCAL_FILES")

// command sends a command answered by one packet (OK, EOF, ERR or a
// string) and returns that packet, or the ERR as *wire.Error.
func (c *rawConn) command(payload []byte) ([]byte, error) {
	if err := c.send(payload); err != nil {
		return nil, err
	}
	p, err := c.read()
	if err != nil {
		return nil, err
	}
	if wire.IsERR(p) {
		return p, wire.ParseError(p)
	}
	return p, nil
}

// query runs SQL and returns the rows of its result sets, concatenated
// (NULL reads "NULL"), or the ERR as *wire.Error.
func (c *rawConn) query(sql string) ([][]string, error) {
	if err := c.send(append([]byte{wire.ComQuery}, sql...)); err != nil {
		return nil, err
	}
	return c.readResults()
}

func (c *rawConn) readResults() ([][]string, error) {
	var rows [][]string
	for {
		p, err := c.read()
		if err != nil {
			return rows, err
		}
		var status uint16
		switch {
		case wire.IsERR(p):
			return rows, wire.ParseError(p)
		case p[0] == 0xfb:
			return rows, errLocalInfileRequest
		case wire.IsOK(p):
			ok, _ := wire.ParseOK(p)
			status = ok.Status
		default:
			n, _, _, _ := wire.ReadLenEncInt(p)
			for range n + 1 { // column definitions and their EOF
				if _, err := c.read(); err != nil {
					return rows, err
				}
			}
			for {
				p, err := c.read()
				if err != nil {
					return rows, err
				}
				if wire.IsERR(p) {
					return rows, wire.ParseError(p)
				}
				if wire.IsEOF(p) {
					_, status, _ = wire.ParseEOF(p)
					break
				}
				var row []string
				for len(p) > 0 {
					s, k, ok := wire.ReadLenEncString(p)
					if !ok {
						return rows, fmt.Errorf("bad row %q", p)
					}
					if s == nil && p[0] == 0xfb {
						row = append(row, "NULL")
					} else {
						row = append(row, string(s))
					}
					p = p[k:]
				}
				rows = append(rows, row)
			}
		}
		if status&wire.StatusMoreResultsExists == 0 {
			return rows, nil
		}
	}
}

// value runs a query that returns one value.
func (c *rawConn) value(t testing.TB, sql string) string {
	t.Helper()
	rows, err := c.query(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: got %v, want one value", sql, rows)
	}
	return rows[0][0]
}

// fieldList sends COM_FIELD_LIST and returns the column names.
func (c *rawConn) fieldList(table string) ([]string, error) {
	if err := c.send(append(append([]byte{wire.ComFieldList}, table...), 0)); err != nil {
		return nil, err
	}
	var names []string
	for {
		p, err := c.read()
		if err != nil {
			return names, err
		}
		if wire.IsERR(p) {
			return names, wire.ParseError(p)
		}
		if wire.IsEOF(p) {
			return names, nil
		}
		// ColumnDefinition41: catalog, schema, table, org_table, name, …
		b := p
		var name []byte
		for range 5 {
			s, k, ok := wire.ReadLenEncString(b)
			if !ok {
				return names, fmt.Errorf("bad column definition %q", p)
			}
			name, b = s, b[k:]
		}
		names = append(names, string(name))
	}
}

// changeUser sends COM_CHANGE_USER answered with mysql_native_password over
// the greeting's scramble, and follows an AuthSwitchRequest if one comes.
func (c *rawConn) changeUser(user, password, db string) error {
	auth := wire.NativePasswordHash(c.hs.Scramble, password)
	b := []byte{wire.ComChangeUser}
	b = append(b, user...)
	b = append(b, 0, byte(len(auth)))
	b = append(b, auth...)
	b = append(b, db...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, wire.DefaultCollation)
	b = append(b, wire.NativePassword...)
	b = append(b, 0)
	if err := c.send(b); err != nil {
		return err
	}
	return c.authResult(wire.NativePassword, c.hs.Scramble, password)
}

// closedWithin reports whether the peer closes the connection within d,
// returning what it sent before closing.
func (c *rawConn) closedWithin(d time.Duration) (bool, []byte) {
	c.NC.SetReadDeadline(time.Now().Add(d))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.R.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return !wire.IsTimeout(err), got
		}
	}
}

// errCode is the MySQL error code carried by err, from go-sql-driver or
// rawConn; 0 when err is no MySQL error.
func errCode(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}

func wantCode(t testing.TB, what string, err error, code uint16) {
	t.Helper()
	if got := errCode(err); got != code {
		t.Fatalf("%s: got %v, want MySQL error %d", what, err, code)
	}
}

// describe renders one command's answer for a transcript. Messages sluice
// writes itself differ from the server's wording, so withMessage is off
// for them; codes and SQLSTATEs must always agree.
func describe(p []byte, err error, withMessage bool) string {
	var we *wire.Error
	switch {
	case errors.As(err, &we) && withMessage:
		return fmt.Sprintf("ERR %d (%s) %s", we.Code, we.State, we.Message)
	case errors.As(err, &we):
		return fmt.Sprintf("ERR %d (%s)", we.Code, we.State)
	case err != nil:
		return "failed: " + err.Error()
	case p == nil:
		return "ok"
	case wire.IsOK(p):
		return "OK"
	case wire.IsEOF(p):
		return "EOF"
	default:
		return fmt.Sprintf("%d-byte packet", len(p))
	}
}

// compareTranscripts fails the test where sluice answered differently
// from the server itself.
func compareTranscripts(t *testing.T, server, sluice []string) {
	t.Helper()
	for i := range max(len(server), len(sluice)) {
		var a, b string
		if i < len(server) {
			a = server[i]
		}
		if i < len(sluice) {
			b = sluice[i]
		}
		if a != b {
			t.Errorf("step %d:\n  MariaDB: %s\n  sluice:  %s", i, a, b)
		}
	}
	if !t.Failed() {
		t.Logf("sluice answered like MariaDB %d times:\n  %s", len(server), strings.Join(server, "\n  "))
	}
}

// createAccount creates name/password with the app account's privileges
// on the primary (replicated everywhere) and drops it when the test ends.
func createAccount(t testing.TB, topo *testbed.Topology, name, password string) {
	t.Helper()
	ctx := context.Background()
	acct := fmt.Sprintf("'%s'@'%%'", name)
	q := fmt.Sprintf("CREATE OR REPLACE USER %s IDENTIFIED BY '%s'; GRANT ALL PRIVILEGES ON *.* TO %s; REVOKE READ_ONLY ADMIN ON *.* FROM %s",
		acct, password, acct, acct)
	if err := topo.Primary.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	syncReplicas(t, topo)
	t.Cleanup(func() {
		if topo.Primary.Running() {
			topo.Primary.Exec(context.Background(), "DROP USER IF EXISTS "+acct)
		}
	})
}

// resultSets reads every result set of rows as strings.
func resultSets(t testing.TB, rows *sql.Rows) [][][]string {
	t.Helper()
	defer rows.Close()
	var sets [][][]string
	for {
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		var set [][]string
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := make([]string, len(cols))
			for i, v := range vals {
				row[i] = v.String
			}
			set = append(set, row)
		}
		sets = append(sets, set)
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sets
}

func TestMultiStatementsReturnEveryResultSet(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO t VALUES (1, 'a')")
	ctx := context.Background()

	t.Run("CLIENT_MULTI_STATEMENTS", func(t *testing.T) {
		c := conn(t, openDB(t, p, db, "multiStatements=true"))
		rows, err := c.QueryContext(ctx, "SELECT 1; SELECT 2, 'two'; SELECT 'x' UNION ALL SELECT 'y'; SELECT @@port")
		if err != nil {
			t.Fatal(err)
		}
		sets := resultSets(t, rows)
		if got := fmt.Sprint(sets[:3]); got != "[[[1]] [[2 two]] [[x] [y]]]" || len(sets) != 4 {
			t.Fatalf("result sets = %v", sets)
		}
		if port := sets[3][0][0]; port == fmt.Sprint(shared.Primary.Port) {
			t.Errorf("a multi-statement of reads ran on the primary (port %s)", port)
		}
		// A write among them sends the whole statement to the primary,
		// where the later SELECT sees the row at once.
		rows, err = c.QueryContext(ctx, "INSERT INTO t VALUES (2, 'b'); SELECT v, @@port FROM t WHERE id = 2")
		if err != nil {
			t.Fatal(err)
		}
		sets = resultSets(t, rows)
		last := sets[len(sets)-1]
		if len(last) != 1 || last[0][0] != "b" || last[0][1] != fmt.Sprint(shared.Primary.Port) {
			t.Fatalf("mixed multi-statement: result sets %v, want the row from the primary (port %d)", sets, shared.Primary.Port)
		}
		// An error in the middle ends the response with that error.
		rows, err = c.QueryContext(ctx, "SELECT 1; SELECT * FROM no_such_table; SELECT 3")
		if err == nil {
			for rows.NextResultSet() {
			}
			err = rows.Err()
			rows.Close()
		}
		wantCode(t, "multi-statement with a failing part", err, 1146)
		if got := queryString(t, c, "SELECT 'still usable'"); got != "still usable" {
			t.Fatalf("session after a failed multi-statement: %q", got)
		}
	})

	t.Run("refused without CLIENT_MULTI_STATEMENTS", func(t *testing.T) {
		c := conn(t, openDB(t, p, db))
		_, err := c.ExecContext(ctx, "DELETE FROM t; SELECT 1")
		wantCode(t, "multi-statement without the capability", err, 1064)
		if got := queryString(t, c, "/* sluice:primary */ SELECT COUNT(*) FROM t"); got != "2" {
			t.Fatalf("the refused multi-statement ran anyway: %s rows left, want 2", got)
		}
	})

	t.Run("COM_SET_OPTION", func(t *testing.T) {
		rc := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, db)
		_, err := rc.query("SELECT 1; SELECT 2")
		wantCode(t, "multi-statement before COM_SET_OPTION", err, 1064)
		pk, err := rc.command([]byte{wire.ComSetOption, 0, 0}) // MYSQL_OPTION_MULTI_STATEMENTS_ON
		if err != nil || !wire.IsEOF(pk) {
			t.Fatalf("COM_SET_OPTION on: %q %v, want EOF", pk, err)
		}
		if rows, err := rc.query("SELECT 1; SELECT 2"); err != nil || fmt.Sprint(rows) != "[[1] [2]]" {
			t.Fatalf("multi-statement after COM_SET_OPTION on: %v %v", rows, err)
		}
		pk, err = rc.command([]byte{wire.ComSetOption, 1, 0}) // MYSQL_OPTION_MULTI_STATEMENTS_OFF
		if err != nil || !wire.IsEOF(pk) {
			t.Fatalf("COM_SET_OPTION off: %q %v, want EOF", pk, err)
		}
		_, err = rc.query("SELECT 1; SELECT 2")
		wantCode(t, "multi-statement after COM_SET_OPTION off", err, 1064)
		_, err = rc.command([]byte{wire.ComSetOption, 9, 0})
		wantCode(t, "COM_SET_OPTION with an unknown option", err, 1047)
		if v := rc.value(t, "SELECT 'alive'"); v != "alive" {
			t.Fatal(v)
		}
	})
}

// TestProtocolCommandsAnswerLikeMariaDB sends the same commands to a
// MariaDB server and to sluice and compares the answers.
func TestProtocolCommandsAnswerLikeMariaDB(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	db := newSchema(t, shared, "CREATE TABLE fl (a INT, b TEXT, c DATETIME)")
	run := func(addr string) []string {
		c := rawLogin(t, addr, testbed.AppUser, testbed.AppPassword, "")
		var out []string
		say := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
		pk, err := c.command(append([]byte{wire.ComInitDB}, db...))
		say("COM_INIT_DB %s: %s", db, describe(pk, err, true))
		say("DATABASE() = %s", c.value(t, "SELECT DATABASE()"))
		pk, err = c.command(append([]byte{wire.ComInitDB}, "no_such_db"...))
		say("COM_INIT_DB no_such_db: %s", describe(pk, err, true))
		say("DATABASE() = %s", c.value(t, "SELECT DATABASE()"))
		_, err = c.query("USE no_such_db")
		say("USE no_such_db: %s", describe(nil, err, true))
		pk, err = c.command([]byte{wire.ComPing})
		say("COM_PING: %s", describe(pk, err, true))
		names, err := c.fieldList("fl")
		say("COM_FIELD_LIST fl: %v %s", names, describe(nil, err, true))
		names, err = c.fieldList("no_such_table")
		say("COM_FIELD_LIST no_such_table: %v %s", names, describe(nil, err, true))
		pk, err = c.command([]byte{wire.ComStatistics})
		say("COM_STATISTICS: error %v, starts with Uptime: %v", err, strings.HasPrefix(string(pk), "Uptime: "))
		pk, err = c.command([]byte{wire.ComSetOption, 0, 0})
		say("COM_SET_OPTION on: %s", describe(pk, err, true))
		rows, err := c.query("SELECT 1; SELECT 'two'")
		say("multi-statement: %v %s", rows, describe(nil, err, true))
		pk, err = c.command([]byte{wire.ComSetOption, 1, 0})
		say("COM_SET_OPTION off: %s", describe(pk, err, true))
		_, err = c.query("SELECT 1; SELECT 'two'")
		say("multi-statement: %s", describe(nil, err, false))
		_, err = c.command([]byte{wire.ComSetOption, 9, 0})
		say("COM_SET_OPTION 9: %s", describe(nil, err, false))
		_, err = c.command([]byte{wire.ComDaemon})
		say("COM_DAEMON: %s", describe(nil, err, false))
		pk, err = c.command([]byte{wire.ComPing})
		say("COM_PING: %s", describe(pk, err, true))
		if err := c.send([]byte{wire.ComQuit}); err != nil {
			t.Fatal(err)
		}
		closed, got := c.closedWithin(5 * time.Second)
		say("COM_QUIT: closed %v after %d bytes", closed, len(got))
		return out
	}
	compareTranscripts(t, run(shared.Primary.Addr()), run(p.Addr().String()))

	// The greeting: handshake v10 with the primary's version, a 20-byte
	// scramble, and sluice's own connection id, the one KILL takes.
	direct, c := rawDial(t, shared.Primary.Addr()), rawDial(t, p.Addr().String())
	const want = wire.ClientProtocol41 | wire.ClientSecureConnection | wire.ClientPluginAuth |
		wire.ClientMultiStatements | wire.ClientMultiResults | wire.ClientLocalFiles | wire.ClientConnectWithDB
	if c.hs.ServerVersion != direct.hs.ServerVersion || len(c.hs.Scramble) != 20 ||
		c.hs.Capabilities&want != want || c.hs.AuthPlugin != wire.NativePassword {
		t.Errorf("greeting %+v; the server's %+v", c.hs, direct.hs)
	}
	if err := c.login(testbed.AppUser, testbed.AppPassword, "", rawCaps); err != nil {
		t.Fatal(err)
	}
	if !hasSession(p, c.hs.ConnectionID) {
		t.Errorf("no session with the greeting's id %d: %+v", c.hs.ConnectionID, p.Sessions())
	}
}

func TestResetConnectionClearsStateButKeepsTheSchema(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY)")
	run := func(addr string) []string {
		c := rawLogin(t, addr, testbed.AppUser, testbed.AppPassword, db)
		var out []string
		say := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
		for _, q := range []string{
			"SET @u = 42", "SET SESSION sql_mode = 'ANSI_QUOTES'", "SET SESSION wait_timeout = 1234",
			"SET NAMES latin1", "SET autocommit = 0", "CREATE TEMPORARY TABLE tmp (x INT)",
			"INSERT INTO tmp VALUES (7)", "INSERT INTO t VALUES (1)", "PREPARE ps FROM 'SELECT 1'",
			"SELECT GET_LOCK('e2e-reset-lock', 0)",
		} {
			if _, err := c.query(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		const state = "SELECT IFNULL(@u, 'NULL'), @@sql_mode, @@wait_timeout, @@character_set_client, @@autocommit, DATABASE()"
		rows, err := c.query(state)
		say("before: %v %v", rows, err)
		pk, err := c.command([]byte{wire.ComResetConnection})
		say("COM_RESET_CONNECTION: %s", describe(pk, err, true))
		rows, err = c.query(state)
		say("after: %v %v", rows, err)
		_, err = c.query("SELECT x FROM tmp")
		say("temporary table: %s", describe(nil, err, true))
		_, err = c.query("EXECUTE ps")
		say("prepared statement: %s", describe(nil, err, true))
		rows, err = c.query("/* sluice:primary */ SELECT COUNT(*) FROM t")
		say("uncommitted row: %v %v", rows, err)
		rows, err = c.query("SELECT IS_FREE_LOCK('e2e-reset-lock')")
		say("user lock free: %v %v", rows, err)
		return out
	}
	compareTranscripts(t, run(shared.Primary.Addr()), run(p.Addr().String()))

	// The reset session holds nothing on the primary any more: its reads
	// go to the replicas again.
	c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, db)
	c.query("CREATE TEMPORARY TABLE tmp (x INT)")
	if port := c.value(t, "SELECT @@port"); port != fmt.Sprint(shared.Primary.Port) {
		t.Fatalf("a session with a temporary table read on port %s, not the primary's", port)
	}
	if _, err := c.command([]byte{wire.ComResetConnection}); err != nil {
		t.Fatal(err)
	}
	if port := c.value(t, "SELECT @@port"); port == fmt.Sprint(shared.Primary.Port) {
		t.Fatal("after COM_RESET_CONNECTION reads still go to the primary")
	}
}

func TestChangeUserSwitchesAccountAndResetsState(t *testing.T) {
	createAccount(t, shared, "app2", "secret2")
	p := startSluice(t, sluiceOpts{users: "  - {name: app2, password: secret2}\n", yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared)
	const who = "SELECT CURRENT_USER(), IFNULL(@u, 'NULL'), IFNULL(DATABASE(), 'NULL')"
	run := func(addr string) []string {
		c := rawLogin(t, addr, testbed.AppUser, testbed.AppPassword, db)
		var out []string
		say := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
		step := func(what string, err error) {
			rows, qerr := c.query(who)
			say("%s: %s; then %v %s", what, describe(nil, err, true), rows, describe(nil, qerr, true))
		}
		c.query("SET @u = 1")
		c.query("CREATE TEMPORARY TABLE tmp (x INT)")
		step("change to app2", c.changeUser("app2", "secret2", ""))
		_, err := c.query("SELECT * FROM `" + db + "`.tmp")
		say("temporary table: %s", describe(nil, err, true))
		step("change to app with a schema", c.changeUser(testbed.AppUser, testbed.AppPassword, db))
		// A failed attempt resets the session but keeps the connection,
		// its user and its schema.
		c.query("SET @u = 2")
		step("change to app2 with a wrong password", c.changeUser("app2", "wrong", ""))
		step("change to app2", c.changeUser("app2", "secret2", db))
		step("change to an unknown user", c.changeUser("nobody", "x", ""))
		step("change to app with an unknown schema", c.changeUser(testbed.AppUser, testbed.AppPassword, "no_such_db"))
		// After three failures on one connection MariaDB refuses any
		// further COM_CHANGE_USER: a guard against guessing passwords.
		step("change to app after three failures", c.changeUser(testbed.AppUser, testbed.AppPassword, ""))
		return out
	}
	compareTranscripts(t, run(shared.Primary.Addr()), run(p.Addr().String()))

	// Through sluice the new account is the one the backends see, on the
	// replicas as on the primary.
	c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	if err := c.changeUser("app2", "secret2", ""); err != nil {
		t.Fatal(err)
	}
	rows, err := c.query("SELECT CURRENT_USER(), @@port")
	if err != nil || rows[0][0] != "app2@%" || rows[0][1] == fmt.Sprint(shared.Primary.Port) {
		t.Fatalf("read after COM_CHANGE_USER: %v %v, want app2@%% on a replica", rows, err)
	}
	if got := c.value(t, "/* sluice:primary */ SELECT CURRENT_USER()"); got != "app2@%" {
		t.Fatalf("primary sees %s", got)
	}
}

// sessionRunning returns the id of the sluice session whose current
// statement contains marker, 0 if none.
func sessionRunning(p *proxy.Proxy, marker string) uint32 {
	for _, s := range p.Sessions() {
		if strings.Contains(s.Statement, marker) {
			return s.ID
		}
	}
	return 0
}

// backendRunning counts the statements containing marker that run on any
// server of the topology.
func backendRunning(t testing.TB, topo *testbed.Topology, marker string) int {
	t.Helper()
	n := 0
	for _, s := range topo.Servers {
		db, err := s.Admin()
		if err != nil {
			t.Fatal(err)
		}
		var k int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> @@pseudo_thread_id", "%"+marker+"%").Scan(&k); err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

func TestKillQueryAndKillConnection(t *testing.T) {
	createAccount(t, shared, "app2", "secret2")
	// Without them app2 may not kill app's sessions, on MariaDB as
	// through sluice (which asks the primary).
	if err := shared.Primary.Exec(context.Background(), "REVOKE SUPER, CONNECTION ADMIN ON *.* FROM 'app2'@'%'"); err != nil {
		t.Fatal(err)
	}
	p := startSluice(t, sluiceOpts{users: "  - {name: app2, password: secret2}\n"})
	ctx := context.Background()
	killer := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")

	t.Run("KILL QUERY", func(t *testing.T) {
		victim := conn(t, openDB(t, p, ""))
		queryString(t, victim, "SELECT 1")
		errc := make(chan error, 1)
		go func() {
			_, err := victim.ExecContext(ctx, "SELECT SLEEP(30) AS kill_query_victim")
			errc <- err
		}()
		var id uint32
		waitFor(t, 5*time.Second, "the victim's SLEEP runs on a server", func() bool {
			id = sessionRunning(p, "kill_query_victim")
			return id != 0 && backendRunning(t, shared, "kill_query_victim") == 1
		})
		start := time.Now()
		if _, err := killer.query(fmt.Sprintf("KILL QUERY %d", id)); err != nil {
			t.Fatalf("KILL QUERY %d: %v", id, err)
		}
		select {
		case err := <-errc:
			wantCode(t, "the killed statement", err, 1317) // ER_QUERY_INTERRUPTED, as MariaDB sends it
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("KILL QUERY took %s to interrupt the statement", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("KILL QUERY did not interrupt SELECT SLEEP(30)")
		}
		if got := queryString(t, victim, "SELECT 'still here'"); got != "still here" {
			t.Fatalf("victim after KILL QUERY: %q", got)
		}
		waitFor(t, 2*time.Second, "no server runs the killed statement", func() bool {
			return backendRunning(t, shared, "kill_query_victim") == 0
		})
	})

	t.Run("KILL CONNECTION while a statement runs", func(t *testing.T) {
		victim := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
		errc := make(chan error, 1)
		go func() {
			_, err := victim.query("SELECT SLEEP(30) AS kill_conn_victim")
			errc <- err
		}()
		waitFor(t, 5*time.Second, "the victim's SLEEP runs on a server", func() bool {
			return sessionRunning(p, "kill_conn_victim") == victim.hs.ConnectionID &&
				backendRunning(t, shared, "kill_conn_victim") == 1
		})
		if _, err := killer.query(fmt.Sprintf("KILL CONNECTION %d", victim.hs.ConnectionID)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if err == nil || errCode(err) != 0 {
				t.Fatalf("the killed connection got %v, want it closed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("KILL CONNECTION did not close the victim's connection")
		}
		waitFor(t, 2*time.Second, "the session and its statement are gone", func() bool {
			return !hasSession(p, victim.hs.ConnectionID) && backendRunning(t, shared, "kill_conn_victim") == 0
		})
	})

	t.Run("KILL of an idle connection with COM_PROCESS_KILL", func(t *testing.T) {
		victim := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
		victim.value(t, "SELECT 1")
		if _, err := killer.command(binary.LittleEndian.AppendUint32([]byte{wire.ComProcessKill}, victim.hs.ConnectionID)); err != nil {
			t.Fatal(err)
		}
		if closed, _ := victim.closedWithin(2 * time.Second); !closed {
			t.Fatal("the killed idle connection stays open")
		}
	})

	t.Run("unknown id and someone else's session", func(t *testing.T) {
		_, err := killer.query("KILL 4000000")
		wantCode(t, "KILL 4000000", err, 1094)
		if msg := err.Error(); !strings.Contains(msg, "Unknown thread id: 4000000") {
			t.Errorf("message %q", msg)
		}
		_, err = killer.query("KILL QUERY 4000000")
		wantCode(t, "KILL QUERY 4000000", err, 1094)
		// Forms that name no sluice connection are refused precisely.
		_, err = killer.query("KILL USER app")
		wantCode(t, "KILL USER", err, 1235)
		other := rawLogin(t, p.Addr().String(), "app2", "secret2", "")
		_, err = other.query(fmt.Sprintf("KILL %d", killer.hs.ConnectionID))
		wantCode(t, "app2 kills app's session", err, 1095)
		killer.value(t, "SELECT 1")
	})
}

func hasSession(p *proxy.Proxy, id uint32) bool {
	for _, s := range p.Sessions() {
		if s.ID == id {
			return true
		}
	}
	return false
}

func TestLoadDataLocalInfile(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(32), qty INT)")
	ctx := context.Background()
	const n = 10000
	var file bytes.Buffer
	sum := 0
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&file, "%d,name-%d,%d\n", i, i, i%7)
		sum += i % 7
	}
	path := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	mysql.RegisterLocalFile(path)
	t.Cleanup(func() { mysql.DeregisterLocalFile(path) })
	count := func() string {
		admin, err := shared.Primary.Admin()
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := admin.QueryRow("SELECT CONCAT(COUNT(*), '/', IFNULL(SUM(qty), 0)) FROM `" + db + "`.t").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	c := conn(t, openDB(t, p, db))
	r := mustExec(t, c, "LOAD DATA LOCAL INFILE '"+path+"' INTO TABLE t FIELDS TERMINATED BY ','")
	if got, _ := r.RowsAffected(); got != n {
		t.Fatalf("LOAD DATA affected %d rows, want %d", got, n)
	}
	want := fmt.Sprintf("%d/%d", n, sum)
	if got := count(); got != want {
		t.Fatalf("primary has count/sum %s, want %s", got, want)
	}
	syncReplicas(t, shared)
	if got := queryString(t, c, "SELECT CONCAT(COUNT(*), '/', SUM(qty)) FROM t"); got != want {
		t.Fatalf("read through sluice: %s, want %s", got, want)
	}

	// A file the application did not allow: the driver refuses to send it,
	// sluice and the server end the statement, the session goes on.
	secret := filepath.Join(t.TempDir(), "secret.csv")
	os.WriteFile(secret, []byte("99999,secret,1\n"), 0o600)
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.ExecContext(tctx, "LOAD DATA LOCAL INFILE '"+secret+"' INTO TABLE t FIELDS TERMINATED BY ','")
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("LOAD DATA of an unregistered file: %v, want the driver's refusal", err)
	}
	if got := count(); got != want {
		t.Fatalf("after the refused file the primary has %s, want %s", got, want)
	}
	if got := queryString(t, c, "SELECT 'alive'"); got != "alive" {
		t.Fatal(got)
	}

	// A client that never offered CLIENT_LOCAL_FILES gets the server's
	// error, as from MariaDB itself, never a file request it cannot answer.
	for _, addr := range []string{shared.Primary.Addr(), p.Addr().String()} {
		rc := rawLogin(t, addr, testbed.AppUser, testbed.AppPassword, db)
		_, err := rc.query("LOAD DATA LOCAL INFILE '" + secret + "' INTO TABLE t FIELDS TERMINATED BY ','")
		wantCode(t, "LOAD DATA LOCAL from a client without CLIENT_LOCAL_FILES via "+addr, err, 4166) // ER_LOCAL_INFILE_CAPABILITY_DISABLED
		rc.value(t, "SELECT 1")
	}
	if got := count(); got != want {
		t.Fatalf("after the refused LOAD DATA the primary has %s, want %s", got, want)
	}
}

// wireProtocols are go-sql-driver's two ways of sending arguments: in a
// COM_STMT_EXECUTE (binary) or interpolated into a COM_QUERY (text).
var wireProtocols = []struct {
	name   string
	params []string
}{
	{"binary", []string{"interpolateParams=false"}},
	{"text", []string{"interpolateParams=true"}},
}

func TestPacketsOf16MiBAndMore(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE blobs (id INT PRIMARY KEY, v LONGBLOB)")
	ctx := context.Background()
	val := make([]byte, 17<<20) // two packets each way
	rand.NewChaCha8([32]byte{1}).Read(val)
	sum := sha256.Sum256(val)
	for i, proto := range wireProtocols {
		d := openDB(t, p, db, proto.params...)
		mustExec(t, d, "INSERT INTO blobs VALUES (?, ?)", i+1, val)
	}
	admin, err := shared.Primary.Admin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range wireProtocols {
		var got string
		if err := admin.QueryRow("SELECT SHA2(v, 256) FROM `"+db+"`.blobs WHERE id = ?", i+1).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s protocol: the primary stored a different value", wireProtocols[i].name)
		}
	}
	syncReplicas(t, shared)
	for i, proto := range wireProtocols {
		c := conn(t, openDB(t, p, db, proto.params...))
		var got []byte
		var port int
		if err := c.QueryRowContext(ctx, "SELECT v, @@port FROM blobs WHERE id = ?", i+1).Scan(&got, &port); err != nil {
			t.Fatalf("%s protocol: read back: %v", proto.name, err)
		}
		if sha256.Sum256(got) != sum {
			t.Fatalf("%s protocol: read back %d bytes with another hash", proto.name, len(got))
		}
		if port == shared.Primary.Port {
			t.Fatalf("%s protocol: the read ran on the primary", proto.name)
		}
		if got := queryString(t, c, "SELECT 'after'"); got != "after" {
			t.Fatal(got)
		}
	}
	// A row beyond 16 MiB that no table holds, with a column after the
	// large one: the stream must stay in step.
	c := conn(t, openDB(t, p, db))
	var big, tail string
	var port int
	if err := c.QueryRowContext(ctx, "SELECT REPEAT('ab', 9 << 20), 'tail', @@port").Scan(&big, &tail, &port); err != nil {
		t.Fatal(err)
	}
	if len(big) != 18<<20 || tail != "tail" || port == shared.Primary.Port {
		t.Fatalf("18 MiB row: len %d, tail %q, port %d", len(big), tail, port)
	}
	if got := queryString(t, c, "SELECT 'after'"); got != "after" {
		t.Fatal(got)
	}
}

// sniffer records what servers send to go-sql-driver connections dialled
// through it, so a test can see which authentication path a login took.
type sniffer struct {
	mu    sync.Mutex
	conns []*sniffConn
}

type sniffConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *sniffConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if len(c.got) < 64<<10 {
		c.got = append(c.got, b[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

var snifferSeq atomic.Int64

// newSniffer registers a dialer for go-sql-driver and returns its network
// name for mysql.Config.Net.
func newSniffer() (string, *sniffer) {
	s := &sniffer{}
	name := fmt.Sprintf("sniff%d", snifferSeq.Add(1))
	mysql.RegisterDialContext(name, func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		sc := &sniffConn{Conn: nc}
		s.mu.Lock()
		s.conns = append(s.conns, sc)
		s.mu.Unlock()
		return sc, nil
	})
	return name, s
}

// last returns what the server sent on the latest connection.
func (s *sniffer) last() []byte {
	s.mu.Lock()
	c := s.conns[len(s.conns)-1]
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.got...)
}

// authTrace names the packets a server sent during a plain-text login,
// after its greeting: "switch:<plugin>", "fast-ok", "full-auth",
// "public-key", "ok", "err".
func authTrace(b []byte) []string {
	var trace []string
	first := true
	for len(b) >= 4 {
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if len(b) < 4+n {
			break
		}
		p := b[4 : 4+n]
		b = b[4+n:]
		if first {
			first = false
			continue
		}
		switch {
		case len(p) == 0:
		case p[0] == 0xfe:
			sw, _ := wire.ParseAuthSwitch(p)
			trace = append(trace, "switch:"+sw.Plugin)
		case bytes.Equal(p, []byte{1, wire.SHA2FastAuthOK}):
			trace = append(trace, "fast-ok")
		case bytes.Equal(p, []byte{1, wire.SHA2FullAuth}):
			trace = append(trace, "full-auth")
		case p[0] == 1 && bytes.HasPrefix(p[1:], []byte("-----BEGIN PUBLIC KEY")):
			trace = append(trace, "public-key")
		case p[0] == 0:
			return append(trace, "ok")
		case p[0] == 0xff:
			return append(trace, "err")
		}
	}
	return trace
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "sluice e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// randomPassword makes every run's caching_sha2_password accounts new to
// sluice, whose cache of completed full authentications lives as long as
// the process.
func randomPassword() string {
	b := make([]byte, 8)
	crand.Read(b)
	return "pw" + hex.EncodeToString(b)
}

func TestCachingSHA2Password(t *testing.T) {
	pw := map[string]string{"sha2_rsa": randomPassword(), "sha2_tls": randomPassword(), "sha2_cli": randomPassword()}
	var users strings.Builder
	for _, name := range []string{"sha2_rsa", "sha2_tls", "sha2_cli"} {
		// The server accounts stay mysql_native_password: sluice checks the
		// client's caching_sha2_password answer itself and logs in to the
		// servers with the same password.
		createAccount(t, shared, name, pw[name])
		fmt.Fprintf(&users, "  - {name: %s, password: %s, auth_plugin: caching_sha2_password}\n", name, pw[name])
	}
	certFile, keyFile := selfSignedCert(t)
	p := startSluice(t, sluiceOpts{users: users.String(), yaml: fmt.Sprintf("tls: {cert: %q, key: %q}\n", certFile, keyFile)})
	ctx := context.Background()
	network, sniff := newSniffer()

	// login connects once with a fresh pool and returns the server's auth
	// packets and CURRENT_USER().
	login := func(t *testing.T, user, password, tlsMode string) ([]string, string, error) {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, password, network, p.Addr().String()
		cfg.Timeout = 5 * time.Second
		cfg.TLSConfig = tlsMode
		d, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var who string
		err = d.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&who)
		return authTrace(sniff.last()), who, err
	}

	t.Run("go-sql-driver over TCP: RSA key exchange, then the fast path", func(t *testing.T) {
		trace, who, err := login(t, "sha2_rsa", pw["sha2_rsa"], "")
		if err != nil || who != "sha2_rsa@%" {
			t.Fatalf("first login: %q %v", who, err)
		}
		if got := strings.Join(trace, " "); got != "switch:caching_sha2_password full-auth public-key ok" {
			t.Fatalf("first login took %q, want full authentication with the RSA public key", got)
		}
		trace, who, err = login(t, "sha2_rsa", pw["sha2_rsa"], "")
		if err != nil || who != "sha2_rsa@%" {
			t.Fatalf("second login: %q %v", who, err)
		}
		if got := strings.Join(trace, " "); got != "switch:caching_sha2_password fast-ok ok" {
			t.Fatalf("second login took %q, want the fast path", got)
		}
		_, _, err = login(t, "sha2_rsa", "wrong", "")
		wantCode(t, "wrong password", err, 1045)
		_, _, err = login(t, "sha2_rsa", "", "")
		wantCode(t, "no password", err, 1045)
	})

	t.Run("go-sql-driver over TLS: full authentication in clear text", func(t *testing.T) {
		_, who, err := login(t, "sha2_tls", pw["sha2_tls"], "skip-verify")
		if err != nil || who != "sha2_tls@%" {
			t.Fatalf("login over TLS: %q %v", who, err)
		}
		// After the greeting the server spoke TLS: a handshake record.
		b := sniff.last()
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if rest := b[4+n:]; len(rest) < 3 || rest[0] != 0x16 || rest[1] != 3 {
			t.Fatalf("no TLS after the greeting: % x", rest[:min(len(rest), 8)])
		}
		// The full authentication over TLS completed, so the next login,
		// in plain text, takes the fast path.
		trace, _, err := login(t, "sha2_tls", pw["sha2_tls"], "")
		if got := strings.Join(trace, " "); err != nil || got != "switch:caching_sha2_password fast-ok ok" {
			t.Fatalf("login after TLS full auth: %q %v, want the fast path", got, err)
		}
		_, _, err = login(t, "sha2_tls", "wrong", "skip-verify")
		wantCode(t, "wrong password over TLS", err, 1045)
		// mysql_native_password accounts log in over TLS too.
		_, who, err = login(t, testbed.AppUser, testbed.AppPassword, "skip-verify")
		if err != nil || who != "app@%" {
			t.Fatalf("app over TLS: %q %v", who, err)
		}
	})

	t.Run("mariadb CLI", func(t *testing.T) {
		host, port, _ := net.SplitHostPort(p.Addr().String())
		cli := func(password string, extra ...string) (string, error) {
			args := append([]string{"--no-defaults", "-h" + host, "-P" + port, "-usha2_cli", "-p" + password,
				"--batch", "--skip-column-names", "--connect-timeout=5", "-e", "SELECT CURRENT_USER()"}, extra...)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(cctx, "mariadb", args...).CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		if out, err := cli(pw["sha2_cli"], "--skip-ssl"); err != nil || out != "sha2_cli@%" {
			t.Fatalf("first login without TLS (RSA key exchange): %q %v", out, err)
		}
		if out, err := cli(pw["sha2_cli"], "--skip-ssl"); err != nil || out != "sha2_cli@%" {
			t.Fatalf("second login (fast path): %q %v", out, err)
		}
		if out, err := cli(pw["sha2_cli"], "--ssl"); err != nil || out != "sha2_cli@%" {
			t.Fatalf("login over TLS: %q %v", out, err)
		}
		if out, err := cli(pw["sha2_cli"], "--ssl", "-e", `\s`); err != nil || !strings.Contains(out, "Cipher in use") {
			t.Fatalf("status over TLS shows no cipher: %v\n%s", err, out)
		}
		out, err := cli("wrong", "--skip-ssl")
		if err == nil || !strings.Contains(out, "ERROR 1045 (28000): Access denied for user 'sha2_cli'@'127.0.0.1' (using password: YES)") {
			t.Fatalf("wrong password: %q %v", out, err)
		}
	})
}
