package e2e

// Hostile and careless clients (issue 11): what a client can do to sluice
// or to other clients through it, and the error codes clients act on.

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/stats"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// lostConnection reports whether err is a client's own "connection lost"
// (the peer closed), not an error packet.
func lostConnection(err error) bool {
	return err != nil && errCode(err) == 0 &&
		(errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
			strings.Contains(err.Error(), "invalid connection") || strings.Contains(err.Error(), "connection reset"))
}

// TestLoadDataLocalFileStaysOutOfDigestsAndSlowLog: the statement event
// must carry the statement, not the file the client streamed after it
// through the same packet buffer.
func TestLoadDataLocalFileStaysOutOfDigestsAndSlowLog(t *testing.T) {
	var slow obsSyncBuffer
	s := obsStart(t, obsOpts{stats: stats.Options{SlowThreshold: time.Nanosecond, SlowLog: &slow, MaxQueryLength: 4096}})
	schema := newSchema(t, s.topo, "CREATE TABLE t (card VARCHAR(32), email VARCHAR(64), pw VARCHAR(64))")
	// A file smaller than the packet buffer, so the file's packet is
	// read into the buffer that held the statement (a bigger one would
	// get a new buffer and hide the defect).
	var file strings.Builder
	for range 2 {
		file.WriteString("4111-1111-1111-1111,alice@example.com,hunter2-password\n")
	}
	path := filepath.Join(t.TempDir(), "cards.csv")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mysql.RegisterLocalFile(path)
	t.Cleanup(func() { mysql.DeregisterLocalFile(path) })
	c := conn(t, openDB(t, s.p, schema))
	queryString(t, c, "SELECT '"+strings.Repeat("x", 4000)+"'") // grows the session's packet buffer
	stmt := "LOAD DATA LOCAL INFILE '" + path + "' INTO TABLE t FIELDS TERMINATED BY ','"
	r := mustExec(t, c, stmt)
	if n, _ := r.RowsAffected(); n != 2 {
		t.Fatalf("LOAD DATA affected %d rows", n)
	}
	queryString(t, c, "SELECT 'after'")
	var got []stats.DigestView
	s.getJSON(t, "/api/digests?limit=100", &got)
	found := false
	for _, d := range got {
		if strings.Contains(d.Digest, "alice") || strings.Contains(d.Digest, "hunter2") || strings.Contains(d.Digest, "example.com") {
			t.Errorf("digest holds the file's contents: %q", d.Digest)
		}
		if strings.HasPrefix(d.Digest, "LOAD DATA LOCAL INFILE") {
			found = true
			if d.Count != 1 || d.RowsAffected != 2 {
				t.Errorf("LOAD DATA digest: %+v", d)
			}
		}
	}
	if !found {
		t.Errorf("no LOAD DATA digest among %d", len(got))
	}
	s.st.Close()
	for _, line := range strings.Split(strings.TrimSpace(slow.String()), "\n") {
		if strings.Contains(line, "alice") || strings.Contains(line, "hunter2") {
			t.Errorf("slow log line holds the file's contents: %s", line)
		}
		var l struct{ Query string }
		json.Unmarshal([]byte(line), &l)
		if strings.HasPrefix(l.Query, "LOAD DATA") && l.Query != stmt {
			t.Errorf("slow log query %q, want %q", l.Query, stmt)
		}
	}
}

// TestConnectionIDIsTheSluiceID: CONNECTION_ID() is the id in the
// handshake, the one KILL takes, so KILL [QUERY] CONNECTION_ID() hits the
// session itself and no other client.
func TestConnectionIDIsTheSluiceID(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	ctx := context.Background()
	a := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	rows, err := a.query("SELECT CONNECTION_ID()")
	if err != nil || len(rows) != 1 {
		t.Fatalf("SELECT CONNECTION_ID(): %v %v", rows, err)
	}
	if rows[0][0] != fmt.Sprint(a.hs.ConnectionID) {
		t.Fatalf("CONNECTION_ID() = %s, handshake id %d", rows[0][0], a.hs.ConnectionID)
	}
	// Through the binary protocol too, and in an expression.
	d := openDB(t, p, "")
	b := conn(t, d)
	var viaStmt, viaText, sum uint64
	if err := b.QueryRowContext(ctx, "SELECT CONNECTION_ID() + ?", 0).Scan(&viaStmt); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRowContext(ctx, "SELECT connection_id()").Scan(&viaText); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRowContext(ctx, "SELECT CONNECTION_ID() + 1").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if viaStmt != viaText || sum != viaText+1 || !hasSession(p, uint32(viaText)) {
		t.Fatalf("prepared %d, text %d, +1 %d: not the session's sluice id", viaStmt, viaText, sum)
	}

	// A bystander runs a long statement; the victim's KILL QUERY
	// CONNECTION_ID() and KILL CONNECTION_ID() must not reach it.
	by := conn(t, d)
	queryString(t, by, "SELECT 1")
	errc := async(by, ctx, "SELECT SLEEP(3) AS connid_bystander")
	waitFor(t, 5*time.Second, "the bystander's SLEEP runs", func() bool {
		return backendRunning(t, shared, "connid_bystander") == 1
	})
	if _, err := a.query("KILL QUERY CONNECTION_ID()"); err != nil {
		t.Fatalf("KILL QUERY CONNECTION_ID(): %v", err)
	}
	a.value(t, "SELECT 'still here'")
	if _, err := a.query("KILL CONNECTION_ID()"); errCode(err) != wire.ErrConnectionKilled {
		t.Fatalf("KILL CONNECTION_ID(): %v, want 1927 and the connection closed", err)
	}
	if closed, _ := a.closedWithin(2 * time.Second); !closed {
		t.Fatal("KILL CONNECTION_ID() left the connection open")
	}
	if err := <-errc; err != nil {
		t.Fatalf("the bystander's statement was hit: %v", err)
	}
	if got := queryString(t, by, "SELECT 'bystander alive'"); got != "bystander alive" {
		t.Fatal(got)
	}
}

// TestKillOfOtherUsersNeedsTheServerPrivilege: as on MariaDB, an account
// with CONNECTION ADMIN (or SUPER) may kill other users' sessions through
// sluice; one without may not.
func TestKillOfOtherUsersNeedsTheServerPrivilege(t *testing.T) {
	createAccount(t, shared, "killer_adm", "adm-pw")
	createAccount(t, shared, "killer_no", "no-pw")
	for _, q := range []string{
		"REVOKE SUPER ON *.* FROM 'killer_adm'@'%'", // CONNECTION ADMIN alone
		"REVOKE SUPER, CONNECTION ADMIN ON *.* FROM 'killer_no'@'%'",
	} {
		if err := shared.Primary.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	syncReplicas(t, shared)
	p := startSluice(t, sluiceOpts{users: "  - {name: killer_adm, password: adm-pw}\n  - {name: killer_no, password: no-pw}\n"})
	victim := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	victim.value(t, "SELECT 1")
	plain := rawLogin(t, p.Addr().String(), "killer_no", "no-pw", "")
	_, err := plain.query(fmt.Sprintf("KILL %d", victim.hs.ConnectionID))
	wantCode(t, "KILL by an account without CONNECTION ADMIN", err, wire.ErrKillDenied)
	victim.value(t, "SELECT 'not killed'")
	adm := rawLogin(t, p.Addr().String(), "killer_adm", "adm-pw", "")
	if _, err := adm.query(fmt.Sprintf("KILL %d", victim.hs.ConnectionID)); err != nil {
		t.Fatalf("KILL by an account with CONNECTION ADMIN: %v", err)
	}
	if closed, _ := victim.closedWithin(2 * time.Second); !closed {
		t.Fatal("the killed session stays open")
	}
}

// TestCClientSeesLostConnectionWhenTheBackendDies: a server that dies
// under a statement reaches the mariadb client (libmariadb) as its own
// 2013 "Lost connection", which applications retry on. An ERR packet with
// code 2013 would come out as 2027 "Received malformed packet".
func TestCClientSeesLostConnectionWhenTheBackendDies(t *testing.T) {
	t.Parallel() // own servers
	topo := testbed.StartT(t, testbed.Options{Replicas: 1, ExtraArgs: serverArgs})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: "routing: {read_your_writes: false}\n"})
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mariadb", mariadbArgs(sluiceAddr(p), testbed.AppPassword,
		"-e", "START TRANSACTION READ ONLY; SELECT SLEEP(20) AS c_client_dies")...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var victim *testbed.Server
	waitFor(t, 10*time.Second, "the statement runs on a server", func() bool {
		victim = runningOn(t, topo, "c_client_dies")
		return victim != nil
	})
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	msg := strings.TrimSpace(errb.String())
	t.Logf("mariadb client after %s died under its statement: %s", victim.Name, msg)
	if err == nil || !strings.Contains(msg, "ERROR 2013") || strings.Contains(msg, "2027") {
		t.Fatalf("mariadb: %v\n%s\nwant ERROR 2013 (Lost connection), not 2027", err, msg)
	}
}

// TestIdleSessionsWithWarningsGiveTheirConnectionsBack: a warning pins the
// session's backend connection for a possible SHOW WARNINGS, but only for
// timeouts.warnings_pin; idle sessions then hold no backend threads.
func TestIdleSessionsWithWarningsGiveTheirConnectionsBack(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "timeouts: {warnings_pin: 1s}\n"})
	inUse := func() int {
		n := 0
		for _, st := range p.PoolStats() {
			n += st.InUse
		}
		return n
	}
	// SHOW WARNINGS right after still reads the statement's warnings.
	w := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	if _, err := w.query("SELECT 1/0"); err != nil {
		t.Fatal(err)
	}
	rows, err := w.query("SHOW WARNINGS")
	if err != nil || len(rows) != 1 || rows[0][1] != "1365" {
		t.Fatalf("SHOW WARNINGS after SELECT 1/0: %v %v", rows, err)
	}
	const n = 60
	var sessions []*rawConn
	for i := 0; i < n; i++ {
		c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
		if _, err := c.query("SELECT 1/0"); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, c)
	}
	held := inUse()
	start := time.Now()
	waitFor(t, 15*time.Second, "idle sessions give back the connections their warnings pinned", func() bool { return inUse() == 0 })
	t.Logf("%d idle sessions after SELECT 1/0: %d backend connections in use, 0 after %s", n, held, time.Since(start).Round(100*time.Millisecond))
	for _, c := range sessions[:5] {
		c.value(t, "SELECT 'works'")
	}
}

// rawPrepare prepares sql on c and returns the statement id.
func rawPrepare(t testing.TB, c *rawConn, sql string) uint32 {
	t.Helper()
	first, err := c.command(append([]byte{wire.ComStmtPrepare}, sql...))
	if err != nil {
		t.Fatalf("prepare %s: %v", sql, err)
	}
	pok, ok := wire.ParsePrepareOK(first)
	if !ok {
		t.Fatalf("prepare %s: %q", sql, first)
	}
	n := 0
	if pok.Params > 0 {
		n += int(pok.Params) + 1
	}
	if pok.Columns > 0 {
		n += int(pok.Columns) + 1
	}
	for i := 0; i < n; i++ {
		if _, err := c.read(); err != nil {
			t.Fatal(err)
		}
	}
	return pok.StmtID
}

// rawExecuteBlob executes a statement with one BLOB parameter whose value
// was sent as long data, and drains the answer.
func rawExecuteBlob(c *rawConn, id uint32) error {
	p := []byte{wire.ComStmtExecute}
	p = binary.LittleEndian.AppendUint32(p, id)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, 1)
	p = append(p, 0, 1, 0xfc, 0) // null bitmap, types follow, MYSQL_TYPE_BLOB
	if err := c.send(p); err != nil {
		return err
	}
	eofs := 0
	for first := true; ; first = false {
		q, err := c.read()
		if err != nil {
			return err
		}
		if wire.IsERR(q) {
			return wire.ParseError(q)
		}
		if first && wire.IsOK(q) {
			return nil
		}
		if wire.IsEOF(q) {
			if eofs++; eofs == 2 {
				return nil
			}
		}
	}
}

// TestLongDataIsBoundedPerSession: COM_STMT_SEND_LONG_DATA is buffered by
// sluice until the execute; max_long_data bounds what one session holds
// over all its statements, not only per statement.
func TestLongDataIsBoundedPerSession(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "max_long_data: 1MiB\n"})
	c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	chunk := bytes.Repeat([]byte("L"), 100<<10)
	send := func(id uint32, chunks int) {
		for i := 0; i < chunks; i++ {
			q := []byte{wire.ComStmtSendLongData}
			q = binary.LittleEndian.AppendUint32(q, id)
			q = binary.LittleEndian.AppendUint16(q, 0)
			if err := c.send(append(q, chunk...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ids []uint32
	for i := 0; i < 3; i++ {
		id := rawPrepare(t, c, "SELECT LENGTH(?)")
		send(id, 6) // 600 KiB each, 1.8 MiB in all
		ids = append(ids, id)
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, rawExecuteBlob(c, id))
	}
	t.Logf("3 statements × 600 KiB of long data with max_long_data 1MiB: %v", errs)
	if errs[0] != nil {
		t.Fatalf("first statement (within the bound): %v", errs[0])
	}
	for _, err := range errs[1:] {
		if errCode(err) != wire.ErrNetPacketTooLarge || !strings.Contains(err.Error(), "max_long_data") {
			t.Fatalf("a statement past the session's bound: %v, want 1153 naming max_long_data", err)
		}
	}
	// The refused data is freed: the session can buffer again.
	send(ids[1], 6)
	if err := rawExecuteBlob(c, ids[1]); err != nil {
		t.Fatalf("after the bound freed: %v", err)
	}
	c.value(t, "SELECT 1")
}

// TestStalledPartialCommandIsCut: a logged-in client that sends the start
// of a large command and stops is cut after timeouts.client_read, not
// held (with its buffer) until client_idle.
func TestStalledPartialCommandIsCut(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "timeouts: {client_read: 1s}\n"})
	by := bystander(t, p)
	c := rawLogin(t, p.Addr().String(), testbed.AppUser, testbed.AppPassword, "")
	c.value(t, "SELECT 1")
	n := 8 << 20
	hdr := []byte{byte(n), byte(n >> 8), byte(n >> 16), 0}
	if _, err := c.NC.Write(append(hdr, append([]byte{wire.ComQuery}, bytes.Repeat([]byte("x"), 64<<10)...)...)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	closed, _ := c.closedWithin(10 * time.Second)
	t.Logf("a client stalled 64 KiB into an 8 MiB command: closed=%v after %s", closed, time.Since(start).Round(100*time.Millisecond))
	if !closed {
		t.Fatal("the stalled client is still connected 10 s later")
	}
	stillServes(t, p, by)
}

// TestStalledLoadDataLocalIsCut: a client that asks for LOAD DATA LOCAL
// and then sends nothing is cut after timeouts.client_read (the server's
// own net_read_timeout gives up too), not after timeouts.query.
func TestStalledLoadDataLocalIsCut(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "timeouts: {client_read: 1s}\n"})
	db := newSchema(t, shared, "CREATE TABLE t (a INT)")
	c := rawDial(t, p.Addr().String())
	if err := c.login(testbed.AppUser, testbed.AppPassword, db, rawCaps|wire.ClientLocalFiles); err != nil {
		t.Fatal(err)
	}
	if err := c.send(append([]byte{wire.ComQuery}, "LOAD DATA LOCAL INFILE 'stalled.csv' INTO TABLE t"...)); err != nil {
		t.Fatal(err)
	}
	req, err := c.read()
	if err != nil || len(req) == 0 || req[0] != 0xfb {
		t.Fatalf("no LOCAL INFILE request: %q %v", req, err)
	}
	start := time.Now()
	closed, _ := c.closedWithin(10 * time.Second)
	t.Logf("a client that never sent its LOCAL INFILE file: closed=%v after %s", closed, time.Since(start).Round(100*time.Millisecond))
	if !closed {
		t.Fatal("the stalled LOAD DATA client is still connected 10 s later")
	}
	waitFor(t, 10*time.Second, "no server runs the LOAD DATA any more", func() bool {
		return backendRunning(t, shared, "stalled.csv") == 0
	})
}

// TestLogIsJSONAndSaysOnceWhatIsDown: with log.format json every line of
// sluice's log is JSON (go-sql-driver's own "[mysql] packets.go…" lines go
// through slog), and a configured server that is unreachable is logged at
// start, not at every check.
func TestLogIsJSONAndSaysOnceWhatIsDown(t *testing.T) {
	// One address refuses connections; the other accepts and hangs up at
	// once, which makes the driver log on its own.
	refused := loopbackPort(t)
	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hangup.Close()
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, httpAddr, log := runSluiceBinary(t, 4096, "", refused, hangup.Addr().String())
	// Let the monitor run at least 10 rounds (interval 500ms).
	start := time.Now()
	waitFor(t, 20*time.Second, "10 check rounds", func() bool { return time.Since(start) > 5500*time.Millisecond })
	_ = httpAddr
	unreachable := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "server unreachable" || rec["msg"] == "server down" {
			unreachable[fmt.Sprint(rec["server"])]++
		}
	}
	t.Logf("after 5.5 s (11 check rounds): %v lines about unreachable servers", unreachable)
	if unreachable["extra1"] != 1 || unreachable["extra2"] != 1 {
		t.Errorf("unreachable servers logged %v times, want once each:\n%s", unreachable, log.String())
	}
}

// TestCommandLargerThanTheServersMaxAllowedPacket: sluice accepts 64 MiB
// commands by default, the servers here 16 MiB. A 60 MiB read is refused
// up front with the server's 1153, never sent nor retried on the other
// replica, and the session goes on.
func TestCommandLargerThanTheServersMaxAllowedPacket(t *testing.T) {
	t.Parallel() // own servers, with the default max_allowed_packet
	topo := testbed.StartT(t, testbed.Options{Replicas: 2})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: "routing: {read_your_writes: false}\n"})
	waitFor(t, 10*time.Second, "the monitor has read max_allowed_packet", func() bool {
		for _, s := range p.Monitor().Snapshot().Servers {
			if s.MaxAllowedPacket == 0 {
				return false
			}
		}
		return true
	})
	limit := p.Monitor().Snapshot().Servers[0].MaxAllowedPacket
	c := conn(t, openDB(t, p, "", "maxAllowedPacket=67108864", "readTimeout=30s"))
	before := counters(t, topo, "Com_select")
	big := "SELECT LENGTH('" + strings.Repeat("x", 60<<20) + "')"
	start := time.Now()
	_, err := c.ExecContext(context.Background(), big)
	t.Logf("a 60 MiB read with servers at max_allowed_packet %d: %v after %s", limit, err, time.Since(start).Round(time.Millisecond))
	wantCode(t, "a command larger than the servers accept", err, wire.ErrNetPacketTooLarge)
	if got := queryString(t, c, "SELECT 'alive'"); got != "alive" {
		t.Fatal(got)
	}
	d := delta(counters(t, topo, "Com_select"), before)
	for name, m := range d {
		if m["Com_select"] > 1 {
			t.Errorf("%s ran %d selects: the big read reached a server", name, m["Com_select"])
		}
	}
}

// TestClientCutByClientWriteIsLoggedAndCounted: a client that stops
// reading a large result is cut off after timeouts.client_write, with a
// log line and an error in its digest.
func TestClientCutByClientWriteIsLoggedAndCounted(t *testing.T) {
	mysqlAddr, httpAddr, log := runSluiceBinary(t, 4096, "timeouts: {client_write: 1s}\nrouting: {read_your_writes: false}\n")
	c := rawLogin(t, mysqlAddr, testbed.AppUser, testbed.AppPassword, "mysql")
	c.value(t, "SELECT 1")
	if err := c.send(append([]byte{wire.ComQuery}, "SELECT REPEAT('x', 1000) AS stalled_reader FROM seq_1_to_200000"...)); err != nil {
		t.Fatal(err)
	}
	// Read nothing: sluice's writes fill the socket buffers and stall.
	waitFor(t, 30*time.Second, "sluice cuts the client that stopped reading", func() bool {
		return strings.Contains(log.String(), "client stalled during its statement")
	})
	var digests []stats.DigestView
	waitFor(t, 10*time.Second, "the digest counts the cut statement as an error", func() bool {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + httpAddr + "/api/digests?sort=errors")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		digests = nil
		json.NewDecoder(resp.Body).Decode(&digests)
		for _, d := range digests {
			if strings.Contains(d.Digest, "stalled_reader") {
				return d.Errors == 1
			}
		}
		return false
	})
}

// TestPasswordGuessingIsThrottledAndLogged: after login.max_failures
// wrong passwords in a row from one host, logins from it are refused for
// a back-off without a password check; failures are logged at info, a
// line a second at most; a correct login after the back-off resets it.
func TestPasswordGuessingIsThrottledAndLogged(t *testing.T) {
	mysqlAddr, _, log := runSluiceBinary(t, 4096, "login: {max_failures: 5, block: 1s, max_block: 2s}\n")
	by := rawLogin(t, mysqlAddr, testbed.AppUser, testbed.AppPassword, "")
	codes := map[uint16]int{}
	start := time.Now()
	const tries = 200
	for i := 0; i < tries; i++ {
		c := rawDial(t, mysqlAddr)
		err := c.login(testbed.AppUser, fmt.Sprintf("guess-%d", i), "", rawCaps)
		codes[errCode(err)]++
		c.NC.Close()
	}
	took := time.Since(start)
	t.Logf("%d wrong passwords in %s: %v (1045 checked, 1129 refused unchecked)", tries, took.Round(time.Millisecond), codes)
	if codes[wire.ErrAccessDenied] > 5+int(took/time.Second)+2 || codes[wire.ErrHostBlocked] == 0 {
		t.Errorf("codes %v in %s: want at most max_failures plus one per back-off checked, the rest refused with 1129", codes, took)
	}
	// The right password is refused too while the host is blocked...
	c := rawDial(t, mysqlAddr)
	if err := c.login(testbed.AppUser, testbed.AppPassword, "", rawCaps); errCode(err) != wire.ErrHostBlocked {
		t.Errorf("correct login while blocked: %v, want 1129", err)
	}
	// ...and accepted once the back-off (at most max_block) has passed.
	waitFor(t, 10*time.Second, "a correct login after the back-off", func() bool {
		c := rawDial(t, mysqlAddr)
		defer c.NC.Close()
		return c.login(testbed.AppUser, testbed.AppPassword, "", rawCaps) == nil
	})
	by.value(t, "SELECT 'logged-in sessions carry on'")
	lines := strings.Count(log.String(), `"msg":"login failed"`)
	t.Logf("%d \"login failed\" log lines for %d failures", lines, tries+1)
	if lines == 0 || lines > int(time.Since(start)/time.Second)+2 {
		t.Errorf("%d \"login failed\" lines in %s, want at least one and at most one a second", lines, time.Since(start))
	}
	if strings.Contains(log.String(), "guess-") {
		t.Error("the log holds a password")
	}
}

// TestHugeUserNameIsCutInErrors: the server cuts names it echoes; so does
// sluice.
func TestHugeUserNameIsCutInErrors(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	c := rawDial(t, p.Addr().String())
	user := strings.Repeat("u", 60<<10)
	err := c.login(user, "x", "", rawCaps)
	wantCode(t, "login with a 60 KB user name", err, wire.ErrAccessDenied)
	if n := len(err.Error()); n > 512 {
		t.Errorf("the error echoes %d bytes", n)
	}
	t.Logf("error for a 60 KiB user name: %d bytes", len(err.Error()))
}
