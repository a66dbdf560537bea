package session

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

func newReplaySession(t *testing.T, max int) (*engine, *backend.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	env := &testEnv{pool: backend.NewPool("db1", "127.0.0.1:1", backend.Settings{MaxIdle: 10}), lim: Limits{Query: 5 * time.Second, ReplayMaxSize: max}}
	c, _ := newBackendConn(t)
	return New(1, a, env).eng.(*engine), c
}

const inTxn = wire.StatusInTrans

// txnStep runs one COM_QUERY through the recorder as executeResult does: stage
// before the send, the answer, then note.
func txnStep(s *engine, c *backend.Conn, sql string, res wire.Result) {
	st := sqlscan.Scan([]byte(sql))
	pkt := append([]byte{wire.ComQuery}, sql...)
	if s.mayOpenTxn(st) {
		s.txnStage("db1", router.Primary, st, pkt)
	} else if s.txn != nil {
		s.txn.staged = false
	}
	if s.txn != nil {
		if sum := s.txn.arm(); sum != nil {
			sum.Reset()
		}
	}
	s.afterResult(c, "db1", router.Primary, st, []byte(sql), res)
	if s.txn != nil && s.txn.staged {
		s.txnNote()
	}
}

func TestAutocommitStatementsRecordNothing(t *testing.T) {
	s, c := newReplaySession(t, 1<<20)
	for _, q := range []string{"SELECT 1", "INSERT INTO t VALUES (1)", "UPDATE t SET v = 2", "SELECT * FROM t WHERE id = 1"} {
		txnStep(s, c, q, ok(autocommit))
	}
	if s.txn != nil {
		t.Errorf("autocommit statements allocated a transaction record: %+v", s.txn)
	}
}

func TestTransactionIsRecordedUntilItEnds(t *testing.T) {
	s, c := newReplaySession(t, 1<<20)
	s.pendingTxSet = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
	txnStep(s, c, "BEGIN", ok(autocommit|inTxn))
	txnStep(s, c, "SELECT v FROM t WHERE id = 1", ok(autocommit|inTxn))
	txnStep(s, c, "INSERT INTO t VALUES (2, 'b')", ok(autocommit|inTxn))
	l := s.txn
	if l == nil || !l.on || l.server != "db1" || l.result != "" || len(l.ents) != 3 {
		t.Fatalf("after BEGIN, SELECT, INSERT: %+v; want 3 replayable entries on db1", l)
	}
	if l.txSet != "SET TRANSACTION ISOLATION LEVEL READ COMMITTED" {
		t.Errorf("SET TRANSACTION before the transaction not kept: %q", l.txSet)
	}
	if got := string(l.buf[l.ents[2].off+1 : l.ents[2].off+l.ents[2].n]); got != "INSERT INTO t VALUES (2, 'b')" {
		t.Errorf("third entry %q", got)
	}
	// A statement staged but never answered (its connection died) is not
	// entered, and the next one replaces it.
	st := sqlscan.Scan([]byte("UPDATE t SET v = 'x'"))
	s.txnStage("db1", router.Primary, st, append([]byte{wire.ComQuery}, "UPDATE t SET v = 'x'"...))
	if !l.staged || l.ends {
		t.Errorf("UPDATE staged %v, ends the transaction %v; want staged, not ending", l.staged, l.ends)
	}
	txnStep(s, c, "DELETE FROM t WHERE id = 3", ok(autocommit|inTxn))
	if len(l.ents) != 4 || l.used != len(l.buf) || !strings.HasSuffix(string(l.buf), "DELETE FROM t WHERE id = 3") {
		t.Errorf("after an unanswered UPDATE and a DELETE: %d entries, buf %q", len(l.ents), l.buf)
	}
	txnStep(s, c, "COMMIT", ok(autocommit))
	if l.on || len(l.ents) != 0 || len(l.buf) != 0 {
		t.Errorf("after COMMIT the record is kept: on %v, %d entries", l.on, len(l.ents))
	}
}

func TestAutocommitOffRecordsFromTheFirstStatement(t *testing.T) {
	s, c := newReplaySession(t, 1<<20)
	s.autocommit = false
	txnStep(s, c, "SELECT v FROM t WHERE id = 1 FOR UPDATE", ok(inTxn))
	txnStep(s, c, "UPDATE t SET v = 'z' WHERE id = 1", ok(inTxn))
	if l := s.txn; l == nil || !l.on || len(l.ents) != 2 {
		t.Fatalf("autocommit=0: %+v, want the two statements recorded", l)
	}
}

func TestTransactionsThatCannotBeReplayed(t *testing.T) {
	for _, tc := range []struct {
		sql, result string
	}{
		{"SET @x = 1", ReplayNotReplayable},
		{"SELECT GET_LOCK('a', 1)", ReplayNotReplayable},
		{"SELECT NEXTVAL(s)", ReplayNotReplayable},
		{"SELECT v INTO @v FROM t", ReplayNotReplayable},
		{"LOAD DATA INFILE '/tmp/f' INTO TABLE t", ReplayNotReplayable},
		{"CALL p()", ReplayNotReplayable},
		{"USE other", ReplayNotReplayable},
		{"INSERT INTO t VALUES ('" + strings.Repeat("x", 2000) + "')", ReplayTooBig},
	} {
		s, c := newReplaySession(t, 1024)
		txnStep(s, c, "BEGIN", ok(autocommit|inTxn))
		txnStep(s, c, tc.sql, ok(autocommit|inTxn))
		txnStep(s, c, "SELECT 1", ok(autocommit|inTxn))
		l := s.txn
		if !l.on || l.result != tc.result {
			t.Errorf("%.40s: on %v, result %q (%s); want %q", tc.sql, l.on, l.result, l.why, tc.result)
		}
		if len(l.ents) != 0 || len(l.buf) != 0 {
			t.Errorf("%.40s: a transaction that cannot be replayed keeps %d entries, %d bytes", tc.sql, len(l.ents), len(l.buf))
		}
	}
}

func TestTransactionBegunUnrecordedIsNotReplayable(t *testing.T) {
	s, c := newReplaySession(t, 1<<20)
	// XA START is not recorded; the session is in a transaction after it.
	txnStep(s, c, "XA START 'x'", ok(autocommit|inTxn))
	txnStep(s, c, "INSERT INTO t VALUES (1)", ok(autocommit|inTxn))
	if l := s.txn; l == nil || !l.on || l.result != ReplayNotReplayable {
		t.Fatalf("a transaction whose start was not recorded: %+v, want not replayable", l)
	}
	if s.txn.fresh {
		t.Error("a statement inside a transaction is taken for one that opens it")
	}
}

func TestReplayOffRecordsNothing(t *testing.T) {
	s, c := newReplaySession(t, 0)
	txnStep(s, c, "BEGIN", ok(autocommit|inTxn))
	txnStep(s, c, "INSERT INTO t VALUES (1)", ok(autocommit|inTxn))
	if s.txn != nil && (s.txn.on || len(s.txn.ents) > 0) {
		t.Errorf("failover.transaction_replay off: %+v recorded", s.txn)
	}
}

func TestStatementsWhoseOutcomeIsUnknownWhenCut(t *testing.T) {
	for sql, ends := range map[string]bool{
		"COMMIT":                       true,
		"COMMIT AND CHAIN":             true,
		"CREATE TABLE x (i INT)":       true,
		"BEGIN":                        true,
		"SET autocommit = 1":           true,
		"LOCK TABLES t WRITE":          true,
		"CALL p()":                     true,
		"SELECT 1; COMMIT":             true,
		"ROLLBACK":                     false,
		"SELECT * FROM t":              false,
		"UPDATE t SET v = 1":           false,
		"SAVEPOINT a":                  false,
		"INSERT INTO t VALUES (1)":     false,
		"ROLLBACK TO SAVEPOINT a":      false,
		"SELECT * FROM t FOR UPDATE":   false,
		"DELETE FROM t WHERE id = 100": false,
	} {
		if got := endsTxn(sqlscan.Scan([]byte(sql))); got != ends {
			t.Errorf("endsTxn(%q) = %v, want %v", sql, got, ends)
		}
	}
}

func TestExecuteIsRecordedWithItsParameterTypes(t *testing.T) {
	st := &stmt{params: 2, types: []byte{8, 0, 253, 0}}
	// id 7, no cursor, one iteration, null bitmap 0, new-params-bound 0,
	// then the values: an int64 and a string.
	pkt := []byte{wire.ComStmtExecute, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0}
	pkt = append(pkt, 5, 0, 0, 0, 0, 0, 0, 0, 1, 'x')
	got := appendExecute(nil, pkt, st)
	want := append(append(append([]byte{}, pkt[:11]...), 1, 8, 0, 253, 0), pkt[12:]...)
	if string(got) != string(want) {
		t.Errorf("appendExecute = %v, want %v", got, want)
	}
	pkt[11] = 1 // types sent: kept as they are
	pkt = append(pkt[:12], append([]byte{8, 0, 253, 0}, pkt[12:]...)...)
	if got := appendExecute(nil, pkt, st); string(got) != string(pkt) {
		t.Errorf("appendExecute with types = %v, want the packet unchanged", got)
	}
}

// Recording a transaction reuses its buffers: once the first transaction
// has sized them, a recorded transaction costs no allocation more than the
// same statements with replay off (the test's own packets allocate).
func TestRecordingDoesNotAllocatePerStatement(t *testing.T) {
	allocs := func(max int) float64 {
		s, c := newReplaySession(t, max)
		txn := func() {
			txnStep(s, c, "BEGIN", ok(autocommit|inTxn))
			for range 10 {
				txnStep(s, c, "UPDATE t SET v = v + 1 WHERE id = 1", ok(autocommit|inTxn))
			}
			txnStep(s, c, "COMMIT", ok(autocommit))
		}
		txn()
		return testing.AllocsPerRun(20, txn)
	}
	off, on := allocs(0), allocs(1<<20)
	if on > off {
		t.Errorf("%.1f allocations per transaction of 12 statements recorded, %.1f with replay off; want no more", on, off)
	}
}

// BenchmarkTxnRecord: the recorder's cost per statement in a transaction
// (stage, arm, note), without I/O.
func BenchmarkTxnRecord(b *testing.B) {
	a, p := net.Pipe()
	b.Cleanup(func() { a.Close(); p.Close() })
	env := &testEnv{lim: Limits{Query: 5 * time.Second, ReplayMaxSize: 1 << 20}}
	s := New(1, a, env).eng.(*engine)
	s.inTxn = true
	sql := []byte("UPDATE t SET v = v + 1 WHERE id = 1")
	pkt := append([]byte{wire.ComQuery}, sql...)
	st := sqlscan.Scan(sql)
	s.txnStage("db1", router.Primary, st, pkt)
	s.pinnedServer = "db1"
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%100 == 0 {
			s.txn.reset("db1") // a transaction of 100 statements
			s.txn.on = true
		}
		s.txnStage("db1", router.Primary, st, pkt)
		s.txn.arm()
		s.txnNote()
	}
}
