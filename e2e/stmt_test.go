package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// Prepared statements: sluice gives the client its own statement ids,
// prepares lazily on whichever backend executes, routes read-only
// statements to replicas, and keeps cursors on their backend.

// stmtRoundRobin makes consecutive unpinned reads of one session alternate
// between the two replicas, so a test can tell "pinned" (same server every
// time) from "free" (alternating).
const stmtRoundRobin = "routing: {read_your_writes: false, max_replication_lag: 0s, balance: round-robin}\n"

// stmtNoRYW keeps reads on the replicas whatever the session wrote before
// and however loaded the machine is (the lag check is off; tests that read
// what they wrote wait for the replicas first).
const stmtNoRYW = "routing: {read_your_writes: false, max_replication_lag: 0s}\n"

// Error codes the servers (and sluice, in their place) answer with.
const (
	stmtErrUnknown        = 1243 // ER_UNKNOWN_STMT_HANDLER
	stmtErrNoCursor       = 1421 // ER_STMT_HAS_NO_OPEN_CURSOR
	stmtErrPacketTooLarge = 1153 // ER_NET_PACKET_TOO_LARGE
)

func TestPreparedReadsGoToReplicasWritesToPrimary(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	d := openDB(t, p, db, "interpolateParams=false", "readTimeout=30s")
	c := conn(t, d)
	ctx := context.Background()
	names := []string{"Com_stmt_prepare", "Com_stmt_execute"}

	beforeUser := userCommands(t, shared)
	before := counters(t, shared, names...)
	// Statements prepared once and executed many times.
	ins := stmtPrepareOn(t, c, "INSERT INTO t (id, v) VALUES (?, ?)")
	upd := stmtPrepareOn(t, c, "UPDATE t SET v = v + ? WHERE id = ?")
	for i := 0; i < 30; i++ {
		mustExec(t, stmtQueryer{ins}, "", i, i)
		mustExec(t, stmtQueryer{upd}, "", 1, i)
	}
	// One-shot statements: the driver prepares, executes and closes each.
	for i := 100; i < 110; i++ {
		mustExec(t, d, "INSERT INTO t (id, v) VALUES (?, ?)", i, i+1)
	}
	syncReplicas(t, shared)
	sel := stmtPrepareOn(t, c, "SELECT v FROM t WHERE id = ?")
	for i := 0; i < 60; i++ {
		if got := queryString(t, stmtQueryer{sel}, "", i%30); got != strconv.Itoa(i%30+1) {
			t.Fatalf("prepared SELECT for id %d = %s, want %d", i%30, got, i%30+1)
		}
	}
	for i := 100; i < 110; i++ {
		if got := queryString(t, d, "SELECT v FROM t WHERE id = ?", i); got != strconv.Itoa(i+1) {
			t.Fatalf("one-shot SELECT for id %d = %s, want %d", i, got, i+1)
		}
	}
	du := delta(userCommands(t, shared), beforeUser)
	d2 := delta(counters(t, shared, names...), before)

	pr := shared.Primary.Name
	if got := d2[pr]["Com_stmt_execute"]; got != 70 {
		t.Errorf("primary executed %d prepared statements, want 70 (30 inserts, 30 updates, 10 one-shot inserts): %v", got, d2)
	}
	var replicaExecs int64
	for _, r := range shared.Replicas {
		replicaExecs += d2[r.Name]["Com_stmt_execute"]
		if d2[r.Name]["Com_stmt_execute"] == 0 {
			t.Errorf("replica %s executed no prepared reads: %v", r.Name, d2)
		}
		if du[r.Name]["update"] != 0 {
			t.Errorf("replica %s received writes from sluice: %v", r.Name, du[r.Name])
		}
	}
	if replicaExecs != 70 {
		t.Errorf("replicas executed %d prepared statements, want 70 (60 prepared, 10 one-shot reads): %v", replicaExecs, d2)
	}
	if du[pr]["update"] < 70 {
		t.Errorf("primary counted %d writes for the app user, want at least 70", du[pr]["update"])
	}
	var n int
	if err := c.QueryRowContext(ctx, "/* sluice:primary */ SELECT COUNT(*) FROM t WHERE v = id + 1").Scan(&n); err != nil || n != 40 {
		t.Fatalf("rows written through prepared statements: %d (%v), want 40", n, err)
	}
}

func TestPreparedStatementPreparedLazilyOnEachBackend(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_100")
	d := openDB(t, p, db, "interpolateParams=false", "readTimeout=30s")
	noise := openDB(t, p, db)
	c := conn(t, d)
	names := []string{"Com_stmt_prepare", "Com_stmt_execute"}
	before := counters(t, shared, names...)

	stmt := stmtPrepareOn(t, c, "SELECT v, @@port FROM t WHERE id = ?")
	// Other sessions keep taking and returning connections meanwhile, so
	// the statement's executes land on connections that never saw it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				churn(t, noise, 3)
			}
		}
	}()
	served := map[string]int{}
	const execs = 80
	for i := 0; i < execs; i++ {
		id := i%100 + 1
		var v string
		var port int
		if err := stmt.QueryRow(id).Scan(&v, &port); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("execute %d: %v", i, err)
		}
		if v != fmt.Sprintf("v%d", id) {
			close(stop)
			wg.Wait()
			t.Fatalf("execute %d: v = %q, want v%d", i, v, id)
		}
		served[stmtServerByPort(t, shared, strconv.Itoa(port))]++
	}
	close(stop)
	wg.Wait()
	d2 := delta(counters(t, shared, names...), before)

	pr := shared.Primary.Name
	if served[pr] != 0 || d2[pr]["Com_stmt_execute"] != 0 {
		t.Errorf("a read-only prepared statement ran on the primary: served %v, counters %v", served, d2)
	}
	var execsSeen int64
	for _, r := range shared.Replicas {
		execsSeen += d2[r.Name]["Com_stmt_execute"]
		if served[r.Name] == 0 {
			t.Errorf("replica %s never executed the statement (served %v)", r.Name, served)
		}
		prepares := d2[r.Name]["Com_stmt_prepare"]
		if prepares == 0 {
			t.Errorf("replica %s: statement never prepared there: %v", r.Name, d2)
		}
		// Prepared once per backend connection, not once per execute.
		if dials := p.Pool(r.Name).Dials.Load(); prepares > dials {
			t.Errorf("replica %s: %d prepares on %d connections: the statement is re-prepared on connections that have it", r.Name, prepares, dials)
		}
	}
	if execsSeen != execs {
		t.Errorf("replicas executed %d times, want %d: %v", execsSeen, execs, d2)
	}
}

func TestStmtCloseClosesEverywhere(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtRoundRobin})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 10), (2, 20)")
	base := stmtPreparedCounts(t, shared)
	d := openDB(t, p, db, "interpolateParams=false", "readTimeout=30s")
	a := conn(t, d)
	b := conn(t, d)

	// poke lends every pool's connection to a session again: a close
	// queued for a connection goes out with the next command it runs.
	poke := func() {
		for i := 0; i < 2; i++ {
			queryString(t, a, "SELECT 1")
		}
		mustExec(t, a, "DO 1") // primary
	}
	backToBase := func(what string) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() bool {
			poke()
			now := stmtPreparedCounts(t, shared)
			for name, n := range now {
				if n > base[name] {
					return false
				}
			}
			return true
		})
	}

	t.Run("COM_STMT_CLOSE", func(t *testing.T) {
		sel := stmtPrepareOn(t, a, "SELECT v FROM t WHERE id = ?")
		upd := stmtPrepareOn(t, a, "UPDATE t SET v = ? WHERE id = ?")
		for i := 0; i < 6; i++ {
			if got := queryString(t, stmtQueryer{sel}, "", 1); got != "10" {
				t.Fatalf("SELECT = %s", got)
			}
		}
		for i := 0; i < 3; i++ {
			mustExec(t, stmtQueryer{upd}, "", 20, 2)
		}
		open := stmtPreparedCounts(t, shared)
		for _, s := range shared.Servers {
			if open[s.Name] <= base[s.Name] {
				t.Fatalf("%s holds no statement of the session (Prepared_stmt_count %d, baseline %d)", s.Name, open[s.Name], base[s.Name])
			}
		}
		// Another session holds one of the replica connections that have
		// the statement while it is closed.
		mustExec(t, b, "START TRANSACTION READ ONLY")
		if s := servedBy(t, b, shared, ""); !isReplica(shared, s) {
			t.Fatalf("read-only transaction on %s", s)
		}
		if err := sel.Close(); err != nil {
			t.Fatal(err)
		}
		if err := upd.Close(); err != nil {
			t.Fatal(err)
		}
		mustExec(t, b, "COMMIT")
		backToBase("Prepared_stmt_count back to its baseline on every server after COM_STMT_CLOSE")
	})

	t.Run("inside a transaction", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "BEGIN")
		ins, err := c.PrepareContext(context.Background(), "INSERT INTO t VALUES (?, ?)")
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, stmtQueryer{ins}, "", 3, 30)
		if n := stmtPreparedCounts(t, shared)[shared.Primary.Name]; n <= base[shared.Primary.Name] {
			t.Fatalf("primary holds no statement (Prepared_stmt_count %d)", n)
		}
		if err := ins.Close(); err != nil {
			t.Fatal(err)
		}
		// The close goes out on the transaction's connection with its next
		// statement, while the session still holds it.
		waitFor(t, 10*time.Second, "the primary closes the statement inside the transaction", func() bool {
			queryString(t, c, "SELECT 1")
			return stmtPreparedCounts(t, shared)[shared.Primary.Name] <= base[shared.Primary.Name]
		})
		mustExec(t, c, "ROLLBACK")
	})

	t.Run("COM_RESET_CONNECTION", func(t *testing.T) {
		r := dialStmtClient(t, p, db)
		st := r.prepare("SELECT v FROM t WHERE id = ?")
		for i := 0; i < 4; i++ {
			if res := r.execute(st, 0, true, stmtInt(1)); res.err != nil {
				t.Fatal(res.err)
			}
		}
		r.send([]byte{wire.ComResetConnection})
		if p := r.read(); !wire.IsOK(p) {
			t.Fatalf("COM_RESET_CONNECTION answered % x", p)
		}
		if res := r.execute(st, 0, true, stmtInt(1)); res.err == nil || res.err.Code != stmtErrUnknown {
			t.Fatalf("execute after COM_RESET_CONNECTION: %v, want error %d", res, stmtErrUnknown)
		}
		backToBase("Prepared_stmt_count back to its baseline after COM_RESET_CONNECTION")
	})

	t.Run("executing a closed statement", func(t *testing.T) {
		r := dialStmtClient(t, p, db)
		st := r.prepare("SELECT v FROM t WHERE id = ?")
		for i := 0; i < 4; i++ {
			res := r.execute(st, 0, true, stmtInt(2))
			if res.err != nil || len(res.rows) != 1 || res.rows[0][0] != "20" {
				t.Fatalf("execute %d: %+v", i, res)
			}
		}
		r.close(st)
		if res := r.execute(st, 0, true, stmtInt(2)); res.err == nil || res.err.Code != stmtErrUnknown {
			t.Fatalf("execute of a closed statement: %+v, want error %d", res, stmtErrUnknown)
		}
		if e := r.reset(st); e == nil || e.Code != stmtErrUnknown {
			t.Fatalf("reset of a closed statement: %v, want error %d", e, stmtErrUnknown)
		}
		if res := r.fetch(st, nil, 1); res.err == nil || res.err.Code != stmtErrUnknown {
			t.Fatalf("fetch of a closed statement: %+v, want error %d", res, stmtErrUnknown)
		}
		if got := r.queryRow("SELECT 1"); got[0] != "1" {
			t.Fatalf("session after the errors: %v", got)
		}
		// A new statement gets a new id; the old one stays unknown.
		st2 := r.prepare("SELECT v FROM t WHERE id = ?")
		if st2.id == st.id {
			t.Errorf("statement id %d reused after close", st.id)
		}
		if res := r.execute(st2, 0, true, stmtInt(1)); res.err != nil || res.rows[0][0] != "10" {
			t.Fatalf("execute of the new statement: %+v", res)
		}
		r.close(st2)
		backToBase("Prepared_stmt_count back to its baseline after the raw client's closes")
	})

	t.Run("session ends without closing", func(t *testing.T) {
		r := dialStmtClient(t, p, db)
		for _, q := range []string{"SELECT v FROM t WHERE id = ?", "SELECT v + 1 FROM t WHERE id = ?"} {
			st := r.prepare(q)
			for i := 0; i < 4; i++ {
				if res := r.execute(st, 0, true, stmtInt(1)); res.err != nil {
					t.Fatal(res.err)
				}
			}
		}
		upd := r.prepare("UPDATE t SET v = v WHERE id = ?")
		if res := r.execute(upd, 0, true, stmtInt(1)); res.err != nil {
			t.Fatal(res.err)
		}
		r.c.Close() // no COM_STMT_CLOSE, no COM_QUIT
		backToBase("Prepared_stmt_count back to its baseline after the client left")
	})
}

// A backend connection keeps a bounded number of a session's statements
// (512); beyond it the oldest are closed there and prepared again when they
// are next executed.
func TestManyPreparedStatementsOnOneBackendConnection(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared)
	base := stmtPreparedCounts(t, shared)
	d := openDB(t, p, db, "interpolateParams=false", "readTimeout=30s")
	c := conn(t, d)
	// A transaction keeps every statement on one primary connection.
	mustExec(t, c, "BEGIN")
	thread := queryString(t, c, "SELECT @@pseudo_thread_id")
	const n = 600
	stmts := make([]*sql.Stmt, n)
	for i := range stmts {
		stmts[i] = stmtPrepareOn(t, c, fmt.Sprintf("SELECT ? + %d, @@pseudo_thread_id", i))
	}
	check := func(i int) {
		t.Helper()
		var sum int
		var th string
		if err := stmts[i].QueryRow(1000).Scan(&sum, &th); err != nil {
			t.Fatalf("statement %d: %v", i, err)
		}
		if sum != 1000+i || th != thread {
			t.Fatalf("statement %d = %d on thread %s, want %d on thread %s", i, sum, th, 1000+i, thread)
		}
	}
	for i := range stmts {
		check(i)
	}
	for i := 0; i < 20; i++ { // long since closed on the backend
		check(i)
	}
	if got := stmtPreparedCounts(t, shared)[shared.Primary.Name] - base[shared.Primary.Name]; got > 512 {
		t.Errorf("the primary holds %d of the session's statements, want at most 512", got)
	}
	mustExec(t, c, "COMMIT")
	for _, s := range stmts {
		s.Close()
	}
	waitFor(t, 10*time.Second, "Prepared_stmt_count back to its baseline", func() bool {
		mustExec(t, c, "DO 1")
		return stmtPreparedCounts(t, shared)[shared.Primary.Name] <= base[shared.Primary.Name]
	})
}

func TestSendLongData(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW + "max_allowed_packet: 4MiB\n"})
	db := newSchema(t, shared, "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB, s LONGTEXT)")
	// A small maxAllowedPacket makes go-sql-driver send every argument
	// larger than a third of it with COM_STMT_SEND_LONG_DATA, in chunks.
	d := openDB(t, p, db, "interpolateParams=false", "readTimeout=30s", "maxAllowedPacket=262144")
	c := conn(t, d)
	ctx := context.Background()

	blob := make([]byte, 1<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	text := strings.Repeat("Grüße, sluice! ", 90000) // ~1.4 MB of UTF-8
	before := counters(t, shared, "Com_stmt_send_long_data")
	ins := stmtPrepareOn(t, c, "INSERT INTO blobs (id, b, s) VALUES (?, ?, ?)")
	if _, err := ins.Exec(1, blob, text); err != nil {
		t.Fatal(err)
	}
	sent := delta(counters(t, shared, "Com_stmt_send_long_data"), before)
	if sent[shared.Primary.Name]["Com_stmt_send_long_data"] < 2 {
		t.Fatalf("the primary received no long data for the two parameters: %v (the test expects the driver to use COM_STMT_SEND_LONG_DATA)", sent)
	}
	syncReplicas(t, shared)

	wantB, wantS := sha256.Sum256(blob), sha256.Sum256([]byte(text))
	check := func(q queryer, what string) {
		t.Helper()
		var gotB, gotS []byte
		var serverSHA string
		if err := q.QueryRowContext(ctx, "", 1).Scan(&gotB, &gotS, &serverSHA); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if sha256.Sum256(gotB) != wantB || serverSHA != hex.EncodeToString(wantB[:]) {
			t.Fatalf("%s: blob of %d bytes came back as %d bytes, server SHA2 %s", what, len(blob), len(gotB), serverSHA)
		}
		if sha256.Sum256(gotS) != wantS {
			t.Fatalf("%s: text of %d bytes came back as %d bytes", what, len(text), len(gotS))
		}
	}
	check(stmtQueryer{stmtPrepareOn(t, c, "SELECT b, s, SHA2(b, 256) FROM blobs WHERE id = ?")}, "read back from a replica")
	check(stmtQueryer{stmtPrepareOn(t, c, "/* sluice:primary */ SELECT b, s, SHA2(b, 256) FROM blobs WHERE id = ?")}, "read back from the primary")

	// A read with a long parameter goes to the replicas: the long data
	// follows the statement to whichever backend executes it.
	before = counters(t, shared, "Com_stmt_send_long_data")
	hash := stmtPrepareOn(t, c, "SELECT SHA2(?, 256), @@port")
	served := map[string]bool{}
	for i := 0; i < 8; i++ {
		var got string
		var port int
		if err := hash.QueryRow(blob).Scan(&got, &port); err != nil {
			t.Fatal(err)
		}
		if got != hex.EncodeToString(wantB[:]) {
			t.Fatalf("SHA2 of the long parameter on execute %d: %s", i, got)
		}
		served[stmtServerByPort(t, shared, strconv.Itoa(port))] = true
	}
	sent = delta(counters(t, shared, "Com_stmt_send_long_data"), before)
	for _, r := range shared.Replicas {
		if !served[r.Name] || sent[r.Name]["Com_stmt_send_long_data"] == 0 {
			t.Errorf("replica %s: served=%v, long data packets %d", r.Name, served[r.Name], sent[r.Name]["Com_stmt_send_long_data"])
		}
	}
	if served[shared.Primary.Name] {
		t.Errorf("a read with long data ran on the primary")
	}

	// More long data than sluice's max_allowed_packet fails the execute
	// with 1153; the session and the statement go on.
	huge := bytes.Repeat([]byte{'x'}, 5<<20)
	_, err := hash.Exec(huge)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != stmtErrPacketTooLarge {
		t.Fatalf("execute with 5 MiB of long data through a 4 MiB sluice: %v, want error %d", err, stmtErrPacketTooLarge)
	}
	var got string
	var port int
	if err := hash.QueryRow(blob).Scan(&got, &port); err != nil || got != hex.EncodeToString(wantB[:]) {
		t.Fatalf("the statement after the oversized execute: %q, %v", got, err)
	}
}

func TestStmtReset(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared)
	r := dialStmtClient(t, p, db)
	st := r.prepare("SELECT CONCAT('<', ?, '>')")

	// Long data in two pieces, then an execute that leaves the value out.
	r.longData(st, 0, []byte("long "))
	r.longData(st, 0, []byte("data"))
	res := r.execute(st, 0, true, stmtLong())
	if res.err != nil || len(res.rows) != 1 || res.rows[0][0] != "<long data>" {
		t.Fatalf("execute with long data: %+v", res)
	}
	// Long data is consumed by the execute: the next one sends a value.
	res = r.execute(st, 0, true, stmtStr("plain"))
	if res.err != nil || res.rows[0][0] != "<plain>" {
		t.Fatalf("execute after long data was used: %+v", res)
	}

	// Reset discards long data sent since the last execute.
	r.longData(st, 0, []byte("stale"))
	if e := r.reset(st); e != nil {
		t.Fatalf("COM_STMT_RESET: %v", e)
	}
	res = r.execute(st, 0, true, stmtStr("fresh"))
	if res.err != nil || res.rows[0][0] != "<fresh>" {
		t.Fatalf("execute after COM_STMT_RESET: %+v (long data must be gone)", res)
	}
	// Reset of a statement without long data answers OK too, and the
	// statement still works.
	if e := r.reset(st); e != nil {
		t.Fatalf("second COM_STMT_RESET: %v", e)
	}
	if res = r.execute(st, 0, true, stmtStr("again")); res.err != nil || res.rows[0][0] != "<again>" {
		t.Fatalf("execute after the second reset: %+v", res)
	}
	if e := r.reset(stmtHandle{id: st.id + 1000}); e == nil || e.Code != stmtErrUnknown {
		t.Fatalf("reset of an unknown statement: %v, want error %d", e, stmtErrUnknown)
	}
	r.close(st)
}

func TestCursorFetch(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtRoundRobin})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO t SELECT seq, CONCAT('row-', seq) FROM seq_1_to_1000")
	r := dialStmtClient(t, p, db)
	st := r.prepare("SELECT id, v, @@pseudo_thread_id, @@port FROM t ORDER BY id")

	// free checks that the session is not pinned: with round-robin, two
	// reads in a row are served by different replicas.
	free := func(what string) {
		t.Helper()
		a, b := r.queryRow("SELECT @@port")[0], r.queryRow("SELECT @@port")[0]
		if a == b {
			t.Fatalf("%s: two reads in a row both served by port %s; the session is still pinned", what, a)
		}
	}
	whoAmI := func() (port, conn string) {
		row := r.queryRow("SELECT @@port, @@pseudo_thread_id")
		return row[0], row[1]
	}
	free("before any cursor")

	t.Run("fetch to the end", func(t *testing.T) {
		res := r.execute(st, wire.CursorTypeReadOnly, true)
		if res.err != nil || res.status&wire.StatusCursorExists == 0 || len(res.rows) != 0 {
			t.Fatalf("execute with a cursor: err=%v status=%#x rows=%d", res.err, res.status, len(res.rows))
		}
		// The cursor pins the session, so it opens on the primary, where
		// the session's writes can follow it.
		port, connID := whoAmI()
		if s := stmtServerByPort(t, shared, port); s != shared.Primary.Name {
			t.Fatalf("cursor opened on %s, want the primary", s)
		}
		var rows [][]string
		for fetches := 0; ; fetches++ {
			if fetches > 20 {
				t.Fatal("the cursor never reported its last row")
			}
			f := r.fetch(st, res.cols, 100)
			if f.err != nil {
				t.Fatalf("fetch %d: %v", fetches, f.err)
			}
			if len(f.rows) > 100 {
				t.Fatalf("fetch %d returned %d rows, asked for 100", fetches, len(f.rows))
			}
			rows = append(rows, f.rows...)
			if f.status&wire.StatusLastRowSent != 0 {
				break
			}
			if len(f.rows) != 100 {
				t.Fatalf("fetch %d returned %d rows without the last-row flag", fetches, len(f.rows))
			}
			// The session's other statements share the cursor's backend.
			if p2, c2 := whoAmI(); p2 != port || c2 != connID {
				t.Fatalf("during the cursor a statement ran on port %s thread %s, the cursor is on port %s thread %s", p2, c2, port, connID)
			}
		}
		if len(rows) != 1000 {
			t.Fatalf("fetched %d rows, want 1000", len(rows))
		}
		for i, row := range rows {
			if row[0] != strconv.Itoa(i+1) || row[1] != fmt.Sprintf("row-%d", i+1) || row[2] != connID || row[3] != port {
				t.Fatalf("row %d = %v, want [%d row-%d %s %s]", i, row, i+1, i+1, connID, port)
			}
		}
		free("after the last row")
		// The cursor is gone: another fetch is an error, and the session
		// goes on.
		if f := r.fetch(st, res.cols, 100); f.err == nil || f.err.Code != stmtErrNoCursor {
			t.Fatalf("fetch after the last row: %+v, want error %d", f, stmtErrNoCursor)
		}
		if got := r.queryRow("SELECT 41 + 1"); got[0] != "42" {
			t.Fatalf("session after the failed fetch: %v", got)
		}
	})

	t.Run("COM_STMT_CLOSE releases the pin", func(t *testing.T) {
		st := r.prepare("SELECT id FROM t WHERE id > ? ORDER BY id")
		res := r.execute(st, wire.CursorTypeReadOnly, true, stmtInt(500))
		if res.err != nil || res.status&wire.StatusCursorExists == 0 {
			t.Fatalf("execute with a cursor: %+v", res)
		}
		f := r.fetch(st, res.cols, 10)
		if f.err != nil || len(f.rows) != 10 || f.rows[0][0] != "501" || f.rows[9][0] != "510" {
			t.Fatalf("fetch: %+v", f)
		}
		r.close(st)
		free("after COM_STMT_CLOSE of the cursor's statement")
		if f := r.fetch(st, res.cols, 10); f.err == nil || f.err.Code != stmtErrUnknown {
			t.Fatalf("fetch on the closed statement: %+v, want error %d", f, stmtErrUnknown)
		}
	})

	t.Run("COM_STMT_RESET closes the cursor", func(t *testing.T) {
		res := r.execute(st, wire.CursorTypeReadOnly, true)
		if res.err != nil || res.status&wire.StatusCursorExists == 0 {
			t.Fatalf("execute with a cursor: %+v", res)
		}
		if f := r.fetch(st, res.cols, 5); f.err != nil || len(f.rows) != 5 {
			t.Fatalf("fetch: %+v", f)
		}
		if e := r.reset(st); e != nil {
			t.Fatalf("COM_STMT_RESET: %v", e)
		}
		free("after COM_STMT_RESET")
		if f := r.fetch(st, res.cols, 5); f.err == nil || f.err.Code != stmtErrNoCursor {
			t.Fatalf("fetch after reset: %+v, want error %d", f, stmtErrNoCursor)
		}
		// And the statement can open a new cursor.
		res = r.execute(st, wire.CursorTypeReadOnly, true)
		if res.err != nil || res.status&wire.StatusCursorExists == 0 {
			t.Fatalf("execute with a cursor after reset: %+v", res)
		}
		if f := r.fetch(st, res.cols, 1000); f.err != nil || len(f.rows) != 1000 || f.rows[999][0] != "1000" {
			t.Fatalf("fetch of all rows: err=%v rows=%d", f.err, len(f.rows))
		}
		// All 1000 rows fit the fetch, so the server has not said yet that
		// the last row was sent: the next fetch says so.
		if f := r.fetch(st, res.cols, 1000); f.err != nil || len(f.rows) != 0 || f.status&wire.StatusLastRowSent == 0 {
			t.Fatalf("fetch at the end: err=%v rows=%d status=%#x", f.err, len(f.rows), f.status)
		}
		free("after the second cursor ended")
	})

	t.Run("writes and transactions while a cursor is open", func(t *testing.T) {
		res := r.execute(st, wire.CursorTypeReadOnly, true)
		if res.err != nil || res.status&wire.StatusCursorExists == 0 {
			t.Fatalf("execute with a cursor: %+v", res)
		}
		port, connID := whoAmI()
		if w := r.query("INSERT INTO t VALUES (1001, 'written')"); w.err != nil || w.affected != 1 {
			t.Fatalf("INSERT while a cursor is open: %+v", w)
		}
		for _, q := range []string{"BEGIN", "UPDATE t SET v = 'updated' WHERE id = 1001", "COMMIT"} {
			if w := r.query(q); w.err != nil {
				t.Fatalf("%s while a cursor is open: %v", q, w.err)
			}
		}
		if p2, c2 := whoAmI(); p2 != port || c2 != connID {
			t.Fatalf("after the transaction the session moved from thread %s to %s", connID, c2)
		}
		// The cursor was materialised before the insert: 1000 rows.
		f := r.fetch(st, res.cols, 2000)
		if f.err != nil || len(f.rows) != 1000 || f.status&wire.StatusLastRowSent == 0 {
			t.Fatalf("fetch after the writes: err=%v rows=%d status=%#x", f.err, len(f.rows), f.status)
		}
		free("after the cursor that outlived a transaction")
		if got := r.queryRow("/* sluice:primary */ SELECT v FROM t WHERE id = 1001"); got[0] != "updated" {
			t.Fatalf("row written during the cursor: %v", got)
		}
		if w := r.query("DELETE FROM t WHERE id = 1001"); w.err != nil {
			t.Fatal(w.err)
		}
	})

	t.Run("a cursor flag that opens no cursor", func(t *testing.T) {
		res := r.execute(st, wire.CursorTypeReadOnly, true)
		if res.err != nil || res.status&wire.StatusCursorExists == 0 {
			t.Fatalf("execute with a cursor: %+v", res)
		}
		// Executed with a cursor flag while the other cursor pins the
		// session: the UPDATE opens nothing, so it must not hold the pin
		// once the real cursor ends.
		upd := r.prepare("UPDATE t SET v = v WHERE id = ?")
		if u := r.execute(upd, wire.CursorTypeReadOnly, true, stmtInt(1)); u.err != nil || u.status&wire.StatusCursorExists != 0 {
			t.Fatalf("UPDATE with a cursor flag: %+v", u)
		}
		if f := r.fetch(st, res.cols, 2000); f.err != nil || f.status&wire.StatusLastRowSent == 0 {
			t.Fatalf("fetch: err=%v status=%#x", f.err, f.status)
		}
		free("after the only real cursor ended")
		r.close(upd)
	})

	t.Run("a cursor hinted to a replica", func(t *testing.T) {
		hinted := r.prepare("/* sluice:replica */ SELECT id, @@port FROM t WHERE id <= ? ORDER BY id")
		res := r.execute(hinted, wire.CursorTypeReadOnly, true, stmtInt(300))
		if res.err != nil || res.status&wire.StatusCursorExists == 0 {
			t.Fatalf("execute with a cursor: %+v", res)
		}
		port, _ := whoAmI()
		var n int
		for {
			f := r.fetch(hinted, res.cols, 128)
			if f.err != nil {
				t.Fatal(f.err)
			}
			for _, row := range f.rows {
				n++
				if row[0] != strconv.Itoa(n) || row[1] != port {
					t.Fatalf("row %d = %v, want [%d %s]", n, row, n, port)
				}
			}
			if f.status&wire.StatusLastRowSent != 0 {
				break
			}
			if p2, _ := whoAmI(); p2 != port {
				t.Fatalf("during the cursor a read ran on port %s, the cursor is on port %s", p2, port)
			}
		}
		if n != 300 || !isReplica(shared, stmtServerByPort(t, shared, port)) {
			t.Fatalf("hinted cursor: %d rows on port %s, want 300 on a replica", n, port)
		}
		free("after the hinted cursor")
		r.close(hinted)
	})

	t.Run("fetch without a cursor", func(t *testing.T) {
		plain := r.prepare("SELECT id FROM t WHERE id = ?")
		res := r.execute(plain, 0, true, stmtInt(7))
		if res.err != nil || len(res.rows) != 1 || res.rows[0][0] != "7" {
			t.Fatalf("execute without a cursor: %+v", res)
		}
		if f := r.fetch(plain, res.cols, 10); f.err == nil || f.err.Code != stmtErrNoCursor {
			t.Fatalf("fetch without a cursor: %+v, want error %d", f, stmtErrNoCursor)
		}
		if res := r.execute(plain, 0, true, stmtInt(8)); res.err != nil || res.rows[0][0] != "8" {
			t.Fatalf("execute after the failed fetch: %+v", res)
		}
		// A cursor flag on a statement without a result set opens nothing
		// and pins nothing.
		upd := r.prepare("UPDATE t SET v = v WHERE id = ?")
		if res := r.execute(upd, wire.CursorTypeReadOnly, true, stmtInt(1)); res.err != nil || res.status&wire.StatusCursorExists != 0 {
			t.Fatalf("UPDATE with a cursor flag: %+v", res)
		}
		free("after a cursor flag on an UPDATE")
		r.close(plain)
		r.close(upd)
	})
	r.close(st)
}

func TestTextPrepareExecute(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')")
	d := openDB(t, p, db)
	noise := openDB(t, p, db)
	ctx := context.Background()

	t.Run("go driver", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "PREPARE sel FROM 'SELECT v FROM t WHERE id = ?'")
		mustExec(t, c, "PREPARE ins FROM 'INSERT INTO t VALUES (?, ?)'")
		mustExec(t, c, "PREPARE who FROM 'SELECT @@pseudo_thread_id'")
		first := queryString(t, c, "EXECUTE who")
		for i, want := range []string{"one", "two", "three"} {
			mustExec(t, c, fmt.Sprintf("SET @id = %d", i+1))
			churn(t, noise, 3)
			if got := queryString(t, c, "EXECUTE sel USING @id"); got != want {
				t.Fatalf("EXECUTE sel USING @id=%d = %q, want %q", i+1, got, want)
			}
			if got := queryString(t, c, "EXECUTE who"); got != first {
				t.Fatalf("text prepared statements moved from thread %s to %s", first, got)
			}
		}
		mustExec(t, c, "SET @id = 4, @v = 'four'")
		if n, _ := mustExec(t, c, "EXECUTE ins USING @id, @v").RowsAffected(); n != 1 {
			t.Fatalf("EXECUTE ins affected %d rows", n)
		}
		if got := queryString(t, c, "/* sluice:primary */ SELECT v FROM t WHERE id = 4"); got != "four" {
			t.Fatalf("row inserted by EXECUTE: %q", got)
		}
		mustExec(t, c, "DEALLOCATE PREPARE sel")
		_, err := c.ExecContext(ctx, "EXECUTE sel USING @id")
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != stmtErrUnknown {
			t.Fatalf("EXECUTE after DEALLOCATE: %v, want error %d", err, stmtErrUnknown)
		}
		mustExec(t, c, "DEALLOCATE PREPARE ins")
		mustExec(t, c, "DROP PREPARE who")
		if got := queryString(t, c, "SELECT COUNT(*) FROM t WHERE id <= 3"); got != "3" {
			t.Fatalf("session after DEALLOCATE: %q", got)
		}
	})

	t.Run("mariadb CLI", func(t *testing.T) {
		cli := func(sql string) (string, error) {
			cmd := exec.Command("mariadb", "--protocol=tcp", "-h127.0.0.1", "-P"+strconv.Itoa(p.Addr().(*net.TCPAddr).Port),
				"-u"+testbed.AppUser, "-p"+testbed.AppPassword, "--batch", "--skip-column-names", db, "-e", sql)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		out, err := cli("PREPARE s FROM 'SELECT v FROM t WHERE id = ?'; SET @id = 2; EXECUTE s USING @id; " +
			"SET @id = 3; EXECUTE s USING @id; DEALLOCATE PREPARE s")
		if err != nil || out != "two\nthree\n" {
			t.Fatalf("mariadb CLI: %q, %v", out, err)
		}
		out, err = cli("PREPARE s FROM 'SELECT 1'; DEALLOCATE PREPARE s; EXECUTE s")
		if err == nil || !strings.Contains(out, "1243") {
			t.Fatalf("mariadb CLI, EXECUTE after DEALLOCATE: %q, %v; want error 1243", out, err)
		}
	})
}

func TestPreparedStatementInTransaction(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
	d := openDB(t, p, db, "interpolateParams=false", "readTimeout=30s")
	noise := openDB(t, p, db)
	ctx := context.Background()
	names := []string{"Com_stmt_prepare", "Com_stmt_execute"}
	primaryPort := strconv.Itoa(shared.Primary.Port)

	t.Run("statements prepared before BEGIN", func(t *testing.T) {
		c := conn(t, d)
		// Prepared outside a transaction: the SELECT on a replica.
		who := stmtPrepareOn(t, c, "SELECT @@pseudo_thread_id, @@port, COUNT(*) FROM t WHERE id >= ?")
		ins := stmtPrepareOn(t, c, "INSERT INTO t (id, v) VALUES (?, ?)")
		var thread, port string
		var n int
		if err := who.QueryRow(100).Scan(&thread, &port, &n); err != nil {
			t.Fatal(err)
		}
		if port == primaryPort {
			t.Fatalf("prepared read outside a transaction ran on the primary")
		}
		mustExec(t, c, "BEGIN")
		txThread := queryString(t, c, "SELECT @@pseudo_thread_id")
		before := counters(t, shared, names...)
		for i := 0; i < 10; i++ {
			mustExec(t, stmtQueryer{ins}, "", 100+i, i)
			churn(t, noise, 2)
			if err := who.QueryRow(100).Scan(&thread, &port, &n); err != nil {
				t.Fatal(err)
			}
			if thread != txThread || port != primaryPort || n != i+1 {
				t.Fatalf("statement %d of the transaction: thread %s port %s sees %d rows; the transaction is on thread %s of the primary (port %s) and has %d rows",
					i, thread, port, n, txThread, primaryPort, i+1)
			}
		}
		d2 := delta(counters(t, shared, names...), before)
		for _, r := range shared.Replicas {
			if d2[r.Name]["Com_stmt_execute"] != 0 || d2[r.Name]["Com_stmt_prepare"] != 0 {
				t.Errorf("replica %s took prepared statements during the transaction: %v", r.Name, d2[r.Name])
			}
		}
		if got := d2[shared.Primary.Name]["Com_stmt_execute"]; got != 20 {
			t.Errorf("primary executed %d statements of the transaction, want 20", got)
		}
		mustExec(t, c, "ROLLBACK")
		if err := who.QueryRow(100).Scan(&thread, &port, &n); err != nil || n != 0 {
			t.Fatalf("after ROLLBACK the statement sees %d rows (%v)", n, err)
		}
	})

	t.Run("database/sql Tx", func(t *testing.T) {
		tx, err := d.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		upd, err := tx.PrepareContext(ctx, "UPDATE t SET v = v + 1 WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		sel, err := tx.PrepareContext(ctx, "SELECT v, @@pseudo_thread_id, @@port FROM t WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		txThread := queryString(t, tx, "SELECT @@pseudo_thread_id")
		for i := 0; i < 5; i++ {
			mustExec(t, stmtQueryer{upd}, "", 1)
			churn(t, noise, 2)
			var v int
			var thread, port string
			if err := sel.QueryRow(1).Scan(&v, &thread, &port); err != nil {
				t.Fatal(err)
			}
			if v != i+2 || thread != txThread || port != primaryPort {
				t.Fatalf("in the transaction: v=%d on thread %s port %s, want v=%d on thread %s port %s", v, thread, port, i+2, txThread, primaryPort)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		syncReplicas(t, shared)
		if got := queryString(t, d, "SELECT v FROM t WHERE id = ?", 1); got != "6" {
			t.Fatalf("after COMMIT v = %s, want 6", got)
		}
	})

	t.Run("read-only transaction on a replica", func(t *testing.T) {
		c := conn(t, d)
		mustExec(t, c, "START TRANSACTION READ ONLY")
		txThread := queryString(t, c, "SELECT @@pseudo_thread_id")
		txPort := queryString(t, c, "SELECT @@port")
		if txPort == primaryPort {
			t.Fatal("read-only transaction on the primary")
		}
		sel := stmtPrepareOn(t, c, "SELECT @@pseudo_thread_id, @@port FROM t WHERE id = ?")
		for i := 0; i < 5; i++ {
			churn(t, noise, 2)
			var thread, port string
			if err := sel.QueryRow(1).Scan(&thread, &port); err != nil {
				t.Fatal(err)
			}
			if thread != txThread || port != txPort {
				t.Fatalf("prepared read in a read-only transaction ran on thread %s port %s, the transaction is on thread %s port %s", thread, port, txThread, txPort)
			}
		}
		mustExec(t, c, "COMMIT")
	})
}

func TestPreparedParamTypesRemembered(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtRoundRobin})
	db := newSchema(t, shared)
	r := dialStmtClient(t, p, db)
	names := []string{"Com_stmt_prepare"}
	before := counters(t, shared, names...)

	// Types only come once; sluice must add them on every backend
	// connection that has not seen them.
	noTypes := r.prepare("SELECT ? * 2")
	if res := r.execute(noTypes, 0, false, stmtInt(1)); res.err == nil {
		t.Fatalf("first execute without parameter types succeeded: %+v", res)
	}
	if got := r.queryRow("SELECT 1"); got[0] != "1" {
		t.Fatal("session unusable after the refused execute")
	}
	r.close(noTypes)

	st := r.prepare("SELECT CAST(? AS SIGNED) + 1, CONCAT(?, '!'), @@port")
	ports := map[string]bool{}
	var last string
	for i := 0; i < 8; i++ {
		res := r.execute(st, 0, i == 0, stmtInt(int64(i*10)), stmtStr(fmt.Sprintf("s%d", i)))
		if res.err != nil || len(res.rows) != 1 {
			t.Fatalf("execute %d (types sent: %v): %+v", i, i == 0, res)
		}
		row := res.rows[0]
		if row[0] != strconv.Itoa(i*10+1) || row[1] != fmt.Sprintf("s%d!", i) {
			t.Fatalf("execute %d (types sent: %v) = %v, want [%d s%d! …]", i, i == 0, row, i*10+1, i)
		}
		if !isReplica(shared, stmtServerByPort(t, shared, row[2])) {
			t.Fatalf("execute %d ran on the primary", i)
		}
		if i == 1 && row[2] == last {
			t.Fatalf("execute 1 ran on the same server as execute 0 (port %s); round-robin should have moved it", last)
		}
		last = row[2]
		ports[row[2]] = true
	}
	if len(ports) != 2 {
		t.Fatalf("executes ran on %d replicas, want 2", len(ports))
	}
	// NULL parameters without types.
	res := r.execute(st, 0, false, stmtParam{typ: stmtTypeLongLong, null: true}, stmtStr("n"))
	if res.err != nil || res.rows[0][0] != "NULL" || res.rows[0][1] != "n!" {
		t.Fatalf("execute with a NULL parameter: %+v", res)
	}
	d2 := delta(counters(t, shared, names...), before)
	for _, rep := range shared.Replicas {
		if d2[rep.Name]["Com_stmt_prepare"] == 0 {
			t.Errorf("replica %s never prepared the statement: %v", rep.Name, d2)
		}
	}
	r.close(st)
}

// TestPreparedProtocolMatchesMariaDB sends the same prepared-statement
// packets to the primary directly and through sluice, and compares the
// answers: parameter types sent once (and never), COM_STMT_RESET with and
// without long data, an unknown statement id, and a cursor fetched in
// pieces past its end. Error messages sluice writes itself differ in
// wording, so errors compare by code and SQLSTATE.
func TestPreparedProtocolMatchesMariaDB(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: stmtNoRYW})
	db := newSchema(t, shared, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO t SELECT seq, CONCAT('row-', seq) FROM seq_1_to_25")
	script := func(r *stmtClient) []string {
		var out []string
		// Only the flags of the statement protocol: autocommit and the
		// like may differ with the connection sluice lends.
		const flags = wire.StatusCursorExists | wire.StatusLastRowSent | wire.StatusInTrans
		add := func(step string, res stmtResult) {
			if res.err != nil {
				out = append(out, fmt.Sprintf("%s: ERR %d %s", step, res.err.Code, res.err.State))
				return
			}
			out = append(out, fmt.Sprintf("%s: status=%#x affected=%d cols=%d rows=%v", step, res.status&flags, res.affected, len(res.cols), res.rows))
		}
		addErr := func(step string, e *wire.Error) {
			if e == nil {
				out = append(out, step+": OK")
				return
			}
			out = append(out, fmt.Sprintf("%s: ERR %d %s", step, e.Code, e.State))
		}

		never := r.prepare("SELECT ? * 2")
		add("execute without ever sending types", r.execute(never, 0, false, stmtInt(1)))
		add("then with types", r.execute(never, 0, true, stmtInt(21)))
		r.close(never)

		once := r.prepare("SELECT CAST(? AS SIGNED) + 1, CONCAT(?, '!')")
		add("types sent", r.execute(once, 0, true, stmtInt(1), stmtStr("a")))
		add("types not sent again", r.execute(once, 0, false, stmtInt(2), stmtStr("b")))
		add("and again", r.execute(once, 0, false, stmtInt(3), stmtStr("c")))
		add("NULL without types", r.execute(once, 0, false, stmtParam{typ: stmtTypeLongLong, null: true}, stmtStr("n")))
		r.close(once)

		long := r.prepare("SELECT CONCAT('<', ?, '>')")
		r.longData(long, 0, []byte("long "))
		r.longData(long, 0, []byte("data"))
		add("execute with long data", r.execute(long, 0, true, stmtLong()))
		r.longData(long, 0, []byte("stale"))
		addErr("COM_STMT_RESET after long data", r.reset(long))
		add("execute after the reset", r.execute(long, 0, true, stmtStr("fresh")))
		addErr("COM_STMT_RESET without long data", r.reset(long))
		addErr("COM_STMT_RESET of an unknown id", r.reset(stmtHandle{id: long.id + 1000}))
		r.close(long)

		cur := r.prepare("SELECT id, v FROM t WHERE id > ? ORDER BY id")
		res := r.execute(cur, wire.CursorTypeReadOnly, true, stmtInt(5))
		add("execute with a cursor", res)
		for i := 1; i <= 3; i++ {
			add(fmt.Sprintf("fetch %d of 8 rows", i), r.fetch(cur, res.cols, 8))
		}
		add("fetch past the end", r.fetch(cur, res.cols, 8))
		add("statement after the cursor", r.query("SELECT 42"))
		res = r.execute(cur, wire.CursorTypeReadOnly, true, stmtInt(20))
		add("second cursor", res)
		addErr("COM_STMT_RESET closes the cursor", r.reset(cur))
		add("fetch after the reset", r.fetch(cur, res.cols, 8))
		add("execute after the reset", r.execute(cur, 0, true, stmtInt(23)))
		r.close(cur)
		add("fetch of a closed statement", r.fetch(cur, res.cols, 8))
		return out
	}
	direct := script(dialStmtAddr(t, shared.Primary.Addr(), db))
	through := script(dialStmtClient(t, p, db))
	compareTranscripts(t, direct, through)
}

// ---- helpers ----

// stmtQueryer runs a *sql.Stmt through the queryer helpers (the query text
// is ignored).
type stmtQueryer struct{ s *sql.Stmt }

func (q stmtQueryer) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return q.s.QueryRowContext(ctx, args...)
}

func (q stmtQueryer) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return q.s.ExecContext(ctx, args...)
}

// stmtPrepareOn prepares a statement on one client session; it is closed when
// the test ends.
func stmtPrepareOn(t testing.TB, c *sql.Conn, query string) *sql.Stmt {
	t.Helper()
	s, err := c.PrepareContext(context.Background(), query)
	if err != nil {
		t.Fatalf("prepare %q: %v", query, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func stmtServerByPort(t testing.TB, topo *testbed.Topology, port string) string {
	t.Helper()
	for _, s := range topo.Servers {
		if strconv.Itoa(s.Port) == port {
			return s.Name
		}
	}
	t.Fatalf("port %s is no server of the topology", port)
	return ""
}

// stmtPreparedCounts reads Prepared_stmt_count, the statements each server
// holds open for all its connections.
func stmtPreparedCounts(t testing.TB, topo *testbed.Topology) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, s := range topo.Servers {
		n, err := s.GlobalStatus(context.Background(), "Prepared_stmt_count")
		if err != nil {
			t.Fatal(err)
		}
		out[s.Name] = n
	}
	return out
}

// ---- a raw binary-protocol client ----

// stmtClient speaks the prepared-statement protocol to sluice directly, for
// what go-sql-driver never sends: cursors, COM_STMT_RESET, parameter types
// sent only once.
type stmtClient struct {
	t testing.TB
	c *backend.Conn
}

const stmtClientTimeout = 10 * time.Second

func dialStmtClient(t testing.TB, p *proxy.Proxy, db string) *stmtClient {
	t.Helper()
	return dialStmtAddr(t, p.Addr().String(), db)
}

// dialStmtAddr logs in as the app user at addr: sluice, or a server
// directly, to compare their answers to the same packets.
func dialStmtAddr(t testing.TB, addr, db string) *stmtClient {
	t.Helper()
	c, err := backend.Dial(context.Background(), backend.DialOptions{
		Addr: addr, User: testbed.AppUser, Password: testbed.AppPassword, Schema: db, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &stmtClient{t: t, c: c}
}

func (r *stmtClient) send(pkt []byte) {
	r.t.Helper()
	r.c.SetWriteTimeout(stmtClientTimeout)
	if err := r.c.WriteCommand(pkt); err != nil {
		r.t.Fatalf("send command 0x%02x: %v", pkt[0], err)
	}
}

// read returns the next packet (valid until the next read).
func (r *stmtClient) read() []byte {
	r.t.Helper()
	r.c.SetReadTimeout(stmtClientTimeout)
	p, err := r.c.ReadPacket(0)
	if err != nil {
		r.t.Fatalf("read from sluice: %v", err)
	}
	if len(p) == 0 {
		r.t.Fatal("empty packet from sluice")
	}
	return p
}

type stmtHandle struct {
	id              uint32
	params, columns int
}

func (r *stmtClient) prepare(query string) stmtHandle {
	r.t.Helper()
	r.send(append([]byte{wire.ComStmtPrepare}, query...))
	p := r.read()
	if wire.IsERR(p) {
		r.t.Fatalf("prepare %q: %v", query, wire.ParseError(p))
	}
	ok, good := wire.ParsePrepareOK(p)
	if !good {
		r.t.Fatalf("prepare %q: malformed answer % x", query, p)
	}
	st := stmtHandle{id: ok.StmtID, params: int(ok.Params), columns: int(ok.Columns)}
	for _, n := range []int{st.params, st.columns} {
		if n == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			r.read()
		}
		if !wire.IsEOF(r.read()) {
			r.t.Fatalf("prepare %q: no EOF after the definitions", query)
		}
	}
	return st
}

// MYSQL_TYPE_* of parameters.
const (
	stmtTypeLongLong  byte = 0x08
	stmtTypeBlob      byte = 0xfc
	stmtTypeVarString byte = 0xfd
)

type stmtParam struct {
	typ  byte
	val  []byte // binary encoding
	null bool
	long bool // sent with COM_STMT_SEND_LONG_DATA, left out of the execute
}

func stmtInt(v int64) stmtParam {
	return stmtParam{typ: stmtTypeLongLong, val: binary.LittleEndian.AppendUint64(nil, uint64(v))}
}

func stmtStr(s string) stmtParam {
	return stmtParam{typ: stmtTypeVarString, val: wire.AppendLenEncString(nil, []byte(s))}
}

func stmtLong() stmtParam { return stmtParam{typ: stmtTypeBlob, long: true} }

// stmtExecutePacket builds COM_STMT_EXECUTE. With bound false the parameter
// types are left out (new-params-bound = 0), as libmariadb does after the
// first execute.
func stmtExecutePacket(id uint32, flags byte, bound bool, ps ...stmtParam) []byte {
	b := []byte{wire.ComStmtExecute}
	b = binary.LittleEndian.AppendUint32(b, id)
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint32(b, 1) // iteration count
	if len(ps) == 0 {
		return b
	}
	nulls := make([]byte, (len(ps)+7)/8)
	for i, p := range ps {
		if p.null {
			nulls[i/8] |= 1 << (i % 8)
		}
	}
	b = append(b, nulls...)
	if bound {
		b = append(b, 1)
		for _, p := range ps {
			b = append(b, p.typ, 0)
		}
	} else {
		b = append(b, 0)
	}
	for _, p := range ps {
		if !p.null && !p.long {
			b = append(b, p.val...)
		}
	}
	return b
}

type stmtColumn struct {
	typ      byte
	unsigned bool
}

// stmtResult is a decoded response: rows as strings ("NULL" for NULL).
type stmtResult struct {
	cols     []stmtColumn
	rows     [][]string
	status   uint16
	affected uint64
	err      *wire.Error
}

func (r stmtResult) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("status=%#x affected=%d rows=%v", r.status, r.affected, r.rows)
}

func (r *stmtClient) execute(st stmtHandle, flags byte, bound bool, ps ...stmtParam) stmtResult {
	r.t.Helper()
	r.send(stmtExecutePacket(st.id, flags, bound, ps...))
	return r.result(true)
}

func (r *stmtClient) fetch(st stmtHandle, cols []stmtColumn, n uint32) stmtResult {
	r.t.Helper()
	b := []byte{wire.ComStmtFetch}
	b = binary.LittleEndian.AppendUint32(b, st.id)
	b = binary.LittleEndian.AppendUint32(b, n)
	r.send(b)
	res := stmtResult{cols: cols}
	r.rows(&res, true)
	return res
}

func (r *stmtClient) reset(st stmtHandle) *wire.Error {
	r.t.Helper()
	r.send(binary.LittleEndian.AppendUint32([]byte{wire.ComStmtReset}, st.id))
	p := r.read()
	if wire.IsERR(p) {
		return wire.ParseError(p)
	}
	if !wire.IsOK(p) {
		r.t.Fatalf("COM_STMT_RESET answered % x", p)
	}
	return nil
}

// close sends COM_STMT_CLOSE, which has no answer.
func (r *stmtClient) close(st stmtHandle) {
	r.t.Helper()
	r.send(binary.LittleEndian.AppendUint32([]byte{wire.ComStmtClose}, st.id))
}

// longData sends COM_STMT_SEND_LONG_DATA, which has no answer.
func (r *stmtClient) longData(st stmtHandle, param uint16, data []byte) {
	r.t.Helper()
	b := binary.LittleEndian.AppendUint32([]byte{wire.ComStmtSendLongData}, st.id)
	b = binary.LittleEndian.AppendUint16(b, param)
	r.send(append(b, data...))
}

// query runs a text query and decodes its (single) result.
func (r *stmtClient) query(sql string) stmtResult {
	r.t.Helper()
	r.send(append([]byte{wire.ComQuery}, sql...))
	return r.result(false)
}

func (r *stmtClient) queryRow(sql string) []string {
	r.t.Helper()
	res := r.query(sql)
	if res.err != nil || len(res.rows) != 1 {
		r.t.Fatalf("%s: err=%v rows=%v", sql, res.err, res.rows)
	}
	return res.rows[0]
}

// result reads OK, ERR, or a result set (stopping after the column
// definitions when the server opened a cursor).
func (r *stmtClient) result(binaryRows bool) stmtResult {
	r.t.Helper()
	var res stmtResult
	p := r.read()
	switch {
	case wire.IsERR(p):
		res.err = wire.ParseError(p)
		return res
	case p[0] == 0x00:
		ok, good := wire.ParseOK(p)
		if !good {
			r.t.Fatalf("malformed OK % x", p)
		}
		res.status, res.affected = ok.Status, ok.AffectedRows
		return res
	}
	n, _, _, good := wire.ReadLenEncInt(p)
	if !good || n == 0 {
		r.t.Fatalf("malformed result set header % x", p)
	}
	for i := uint64(0); i < n; i++ {
		res.cols = append(res.cols, stmtParseColumn(r.t, r.read()))
	}
	eof := r.read()
	_, status, good := wire.ParseEOF(eof)
	if !wire.IsEOF(eof) || !good {
		r.t.Fatalf("no EOF after the column definitions: % x", eof)
	}
	res.status = status
	if status&wire.StatusCursorExists != 0 {
		return res
	}
	r.rows(&res, binaryRows)
	if res.status&wire.StatusMoreResultsExists != 0 {
		r.t.Fatal("unexpected further result sets")
	}
	return res
}

// rows reads rows until EOF or ERR.
func (r *stmtClient) rows(res *stmtResult, binaryRows bool) {
	r.t.Helper()
	for {
		p := r.read()
		switch {
		case wire.IsERR(p):
			res.err = wire.ParseError(p)
			return
		case wire.IsEOF(p):
			_, res.status, _ = wire.ParseEOF(p)
			return
		case binaryRows:
			res.rows = append(res.rows, stmtBinaryRow(r.t, p, res.cols))
		default:
			res.rows = append(res.rows, stmtTextRow(r.t, p, len(res.cols)))
		}
	}
}

func stmtParseColumn(t testing.TB, p []byte) stmtColumn {
	t.Helper()
	b := p
	for i := 0; i < 6; i++ { // catalog, schema, table, org_table, name, org_name
		_, n, ok := wire.ReadLenEncString(b)
		if !ok {
			t.Fatalf("malformed column definition % x", p)
		}
		b = b[n:]
	}
	// length of the fixed fields (0x0c), charset u16, length u32, type, flags u16
	if len(b) < 10 {
		t.Fatalf("malformed column definition % x", p)
	}
	flags := binary.LittleEndian.Uint16(b[8:])
	return stmtColumn{typ: b[7], unsigned: flags&0x20 != 0}
}

func stmtTextRow(t testing.TB, p []byte, cols int) []string {
	t.Helper()
	out := make([]string, cols)
	for i := range out {
		if len(p) > 0 && p[0] == 0xfb {
			out[i], p = "NULL", p[1:]
			continue
		}
		s, n, ok := wire.ReadLenEncString(p)
		if !ok {
			t.Fatalf("malformed text row")
		}
		out[i], p = string(s), p[n:]
	}
	return out
}

// stmtBinaryRow decodes a binary protocol row: 0x00, a NULL bitmap offset
// by two bits, then the non-NULL values.
func stmtBinaryRow(t testing.TB, p []byte, cols []stmtColumn) []string {
	t.Helper()
	nullLen := (len(cols) + 7 + 2) / 8
	if len(p) < 1+nullLen || p[0] != 0x00 {
		t.Fatalf("malformed binary row % x", p)
	}
	nulls, b := p[1:1+nullLen], p[1+nullLen:]
	take := func(n int) []byte {
		if len(b) < n {
			t.Fatalf("binary row too short: % x", p)
		}
		v := b[:n]
		b = b[n:]
		return v
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		if bit := i + 2; nulls[bit/8]&(1<<(bit%8)) != 0 {
			out[i] = "NULL"
			continue
		}
		var size int
		switch c.typ {
		case 0x01: // TINY
			size = 1
		case 0x02, 0x0d: // SHORT, YEAR
			size = 2
		case 0x03, 0x09: // LONG, INT24
			size = 4
		case 0x08: // LONGLONG
			size = 8
		case 0x04: // FLOAT
			out[i] = strconv.FormatFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(take(4)))), 'g', -1, 32)
			continue
		case 0x05: // DOUBLE
			out[i] = strconv.FormatFloat(math.Float64frombits(binary.LittleEndian.Uint64(take(8))), 'g', -1, 64)
			continue
		case 0x07, 0x0a, 0x0b, 0x0c: // TIMESTAMP, DATE, TIME, DATETIME
			n := int(take(1)[0])
			out[i] = hex.EncodeToString(take(n))
			continue
		default: // strings, decimals, blobs
			s, n, ok := wire.ReadLenEncString(b)
			if !ok {
				t.Fatalf("binary row: bad length-encoded value: % x", p)
			}
			out[i] = string(s)
			b = b[n:]
			continue
		}
		raw := take(size)
		var u uint64
		for j := size - 1; j >= 0; j-- {
			u = u<<8 | uint64(raw[j])
		}
		if c.unsigned {
			out[i] = strconv.FormatUint(u, 10)
		} else {
			shift := 64 - 8*size
			out[i] = strconv.FormatInt(int64(u<<shift)>>shift, 10)
		}
	}
	return out
}
