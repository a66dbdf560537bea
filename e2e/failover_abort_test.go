package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testbed"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// TestFailedPromotionGivesThePrimaryBack: a switchover whose promotion
// fails returns the writes to the old primary in a new epoch, with no
// client error. A target that failed before it touched replication stays a
// replica; one that had already dropped its replication (RESET SLAVE ALL)
// is fenced, read-only, until an operator rejoins it. The promotions fail
// because the monitor account lacks a privilege on the target only (the
// grants are changed there without binary logging, before sluice connects).
func TestFailedPromotionGivesThePrimaryBack(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mon := "'" + testbed.MonitorUser + "'@'%'"
	revoke := func(s *testbed.Server, privs string) {
		t.Helper()
		if err := s.Exec(ctx, "SET sql_log_bin = 0; REVOKE "+privs+" ON *.* FROM "+mon+"; SET sql_log_bin = 1"); err != nil {
			t.Fatal(err)
		}
	}
	// db2 cannot STOP SLAVE; db3 can reset its replication but cannot
	// leave read-only.
	revoke(topo.ByName("db2"), "SUPER, REPLICATION SLAVE ADMIN")
	revoke(topo.ByName("db3"), "SUPER, READ_ONLY ADMIN")

	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML("")})
	api := adminAPI(t, p)
	schema := foSchema(t, topo)
	primaryIs(t, p, "db1", 10*time.Second)
	d := openDB(t, p, "")
	d.SetMaxOpenConns(8)
	w := startWriters(t, d, schema, 4)
	defer haltOnce(w)
	waitFor(t, 10*time.Second, "writes flow", func() bool { return w.count() > 50 })

	readOnly := func(name string) string {
		v, err := topo.ByName(name).GlobalVariable(ctx, "read_only")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		to     string
		epoch  uint64
		fenced bool
	}{{"db2", 3, false}, {"db3", 5, true}} {
		before := w.count()
		start := time.Now()
		code, body := apiCall(t, api, http.MethodPost, "/api/switchover?to="+c.to, nil)
		took := time.Since(start)
		t.Logf("switchover to %s with a failing promotion: HTTP %d in %v: %s", c.to, code, took.Round(time.Millisecond), strings.Join(strings.Fields(body), " "))
		if code != http.StatusInternalServerError || !strings.Contains(body, "promote "+c.to) || !strings.Contains(body, "db1 is primary again") {
			t.Fatalf("switchover to %s: %d %s; want 500 naming the failed promotion and db1 back", c.to, code, body)
		}
		rep := p.Failover().Report()
		if rep.Primary != "db1" || rep.Epoch != c.epoch || slices.Contains(rep.Fenced, c.to) != c.fenced {
			t.Errorf("after the failed switchover to %s: primary %s, epoch %d, fenced %v; want db1, epoch %d, %s fenced: %v",
				c.to, rep.Primary, rep.Epoch, rep.Fenced, c.epoch, c.to, c.fenced)
		}
		primaryIs(t, p, "db1", 5*time.Second)
		waitFor(t, 10*time.Second, "writes flow on db1 again", func() bool { return w.count() > before+50 })
		if ro1, ro := readOnly("db1"), readOnly(c.to); ro1 != "OFF" || ro != "ON" {
			t.Errorf("read_only: db1 %s, %s %s; want OFF and ON", ro1, c.to, ro)
		}
		// A target whose replication was never touched stays a replica of
		// db1; one that dropped it is fenced and no replica of anything.
		var srv *topology.Server
		waitFor(t, 5*time.Second, c.to+" seen by the monitor as it was left", func() bool {
			srv, _ = p.Snapshot().ByName(c.to)
			return srv.Up && srv.ReadOnly && srv.Fenced == c.fenced && srv.Replicating == !c.fenced
		})
		t.Logf("%s after it: state %s, fenced %v, replicating %v", c.to, srv.State(), srv.Fenced, srv.Replicating)
		st, err := topo.ByName(c.to).SlaveStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !c.fenced && (st == nil || st["Slave_IO_Running"] != "Yes" || st["Slave_SQL_Running"] != "Yes" || st["Master_Port"] != fmt.Sprint(topo.ByName("db1").Port)):
			t.Errorf("%s after a promotion that failed before touching replication: slave status %v, want a running replica of db1", c.to, st)
		case !c.fenced && (srv.Role != topology.RoleReplica || !srv.Readable):
			t.Errorf("%s after a promotion that failed before touching replication: role %v, readable %v; want a readable replica", c.to, srv.Role, srv.Readable)
		case c.fenced && srv.Readable:
			t.Errorf("%s is fenced but takes reads", c.to)
		}
	}
	w.halt()
	if len(w.errs) > 0 {
		t.Errorf("%d client errors across two failed switchovers, first: %v", len(w.errs), w.errs[0])
	}
	if m := w.missing(t, topo.ByName("db1"), schema); len(m) > 0 {
		t.Errorf("db1 lacks %d acknowledged inserts: %v", len(m), m[:min(len(m), 10)])
	}
	t.Logf("two failed switchovers under 4 writers: %d commits, %d errors", w.count(), len(w.errs))
}
