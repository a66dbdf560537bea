package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluice-proxy/sluice/internal/config"
	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/stats"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// plClients is the load of the primary-loss tests: readers outside
// transactions, fresh logins with a default database, and writers in
// transactions that remember every acknowledged insert. Every error any
// of them gets is recorded with its MySQL code ("driver" when it is not a
// MySQL error packet).
type plClients struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	readErrs  []string
	loginErrs []string
	writeErrs []string
	codes     map[string]int // every error by code, from every client
	acked     []int64
	okAt      []time.Time
	okBegan   []time.Time

	reads, logins atomic.Int64
	next          atomic.Int64
}

// plErrCode is the MySQL code of err; a connection sluice closed (a
// backend died under the statement) is 2013, as the C client reports it.
func plErrCode(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return strconv.Itoa(int(me.Number))
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) {
		return "2013"
	}
	return "driver"
}

func (c *plClients) record(list *[]string, what string, err error) {
	c.recordAt(list, what, err, time.Now())
}

func (c *plClients) recordAt(list *[]string, what string, err error, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*list = append(*list, fmt.Sprintf("%s at %s: %v", what, at.Format("15:04:05.000"), err))
	c.codes[plErrCode(err)]++
}

func (c *plClients) running() bool {
	select {
	case <-c.stop:
		return false
	default:
		return true
	}
}

func startPrimaryLossClients(t testing.TB, p *proxy.Proxy, schema string, readers, writers int) *plClients {
	c := &plClients{stop: make(chan struct{}), codes: map[string]int{}}
	rd := openDB(t, p, schema)
	rd.SetMaxOpenConns(readers)
	for range readers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for c.running() {
				var n int64
				if err := rd.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil {
					c.record(&c.readErrs, "read", err)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				c.reads.Add(1)
			}
		}()
	}
	// No idle connections: every query logs in anew, with the schema as
	// default database.
	lg := openDB(t, p, schema)
	lg.SetMaxIdleConns(0)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for c.running() {
			var one int
			if err := lg.QueryRow("SELECT 1").Scan(&one); err != nil {
				c.record(&c.loginErrs, "login", err)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			c.logins.Add(1)
		}
	}()
	wd := openDB(t, p, "")
	for range writers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for c.running() {
				id := c.next.Add(1)
				began := time.Now()
				if at, err := c.write(wd, schema, id); err != nil {
					c.recordAt(&c.writeErrs, fmt.Sprintf("insert %d", id), err, at)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				c.mu.Lock()
				c.acked = append(c.acked, id)
				c.okAt = append(c.okAt, time.Now())
				c.okBegan = append(c.okBegan, began)
				c.mu.Unlock()
			}
		}()
	}
	return c
}

// write inserts id in a transaction and returns when it ended and its
// error; a failed ROLLBACK counts as an error too (sluice would have sent
// it).
func (c *plClients) write(d *sql.DB, schema string, id int64) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return time.Now(), err
	}
	fail := func(err error) (time.Time, error) {
		at := time.Now()
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) && !errors.Is(rerr, mysql.ErrInvalidConn) && !errors.Is(rerr, driver.ErrBadConn) {
			c.record(&c.writeErrs, fmt.Sprintf("rollback of %d", id), rerr)
		}
		return at, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO `"+schema+"`.t (id, v) VALUES (?, ?)", id, "x"); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `"+schema+"`.c SET n = n + 1 WHERE id = 1"); err != nil {
		return fail(err)
	}
	err = tx.Commit()
	return time.Now(), err
}

func (c *plClients) halt() {
	close(c.stop)
	c.wg.Wait()
}

func (c *plClients) ackedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

// okAfter is when the first write that began at or after t was
// acknowledged.
func (c *plClients) okAfter(t time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, began := range c.okBegan {
		if !began.Before(t) {
			return c.okAt[i], true
		}
	}
	return time.Time{}, false
}

// byCode sums sluice's client error counters ("code/cause") by code.
func byCode(m map[string]uint64) map[string]int {
	out := map[string]int{}
	for k, n := range m {
		code, _, _ := strings.Cut(k, "/")
		out[code] += int(n)
	}
	return out
}

func diffCounts(after, before map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, n := range after {
		if d := n - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func seriesErrors(st *stats.Stats) int {
	n := 0.0
	for _, p := range st.Series() {
		n += p.Errors
	}
	return int(n)
}

// rolesAt counts the servers sluice_server_role shows as primary, and
// returns each server's role, from one scrape of the metrics.
func rolesAt(t testing.TB, st *stats.Stats) (primaries int, roles map[string]string) {
	mfs, err := st.Gather()
	if err != nil {
		t.Errorf("gather: %v", err)
		return 0, nil
	}
	roles = map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_server_role" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetGauge().GetValue() != 1 {
				continue
			}
			var server, role string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "server":
					server = l.GetValue()
				case "role":
					role = l.GetValue()
				}
			}
			if _, dup := roles[server]; dup {
				t.Errorf("%s has two roles at one scrape", server)
			}
			roles[server] = role
			if role == "primary" {
				primaries++
			}
		}
	}
	return primaries, roles
}

// TestPrimaryLossReadsCarryOnWritesWait kills (SIGKILL) or freezes
// (SIGSTOP) the primary under readers, fresh logins with a default
// database and writers, over semi-synchronous replication. Reads and
// logins must see no error at all; writes may fail only for the
// statements in flight on the dying primary (at most one per writer) and
// then wait for the failover; no acknowledged insert may be missing on the
// new primary; sluice's error counters and dashboard series must equal
// what the clients saw, by code; and every scrape of sluice_server_role
// must show exactly one primary.
func TestPrimaryLossReadsCarryOnWritesWait(t *testing.T) {
	for _, fault := range []string{"SIGKILL", "SIGSTOP"} {
		t.Run(fault, func(t *testing.T) { primaryLoss(t, fault) })
	}
}

func primaryLoss(t *testing.T, fault string) {
	const readers, writers = 4, 4
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, SemiSync: true, ExtraArgs: serverArgs})
	const interval, fall = 300 * time.Millisecond, 3
	var st *stats.Stats
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(""), mutate: func(c *config.Config) {
		c.Health.Interval, c.Health.Timeout, c.Health.Fall = config.Duration(interval), config.Duration(time.Second), fall
	}, beforeStart: func(p *proxy.Proxy) {
		st = stats.New(p, stats.Options{})
		p.SetObserver(st)
	}})
	t.Cleanup(st.Close)
	schema := foSchema(t, topo)
	syncReplicas(t, topo)
	old := topo.Primary
	ctx := context.Background()
	if v, err := old.GlobalStatus(ctx, "Rpl_semi_sync_master_clients"); err != nil || v < 1 {
		t.Fatalf("semi-sync: %d replicas acknowledge on %s (%v), want at least 1", v, old.Name, err)
	}
	if on, err := old.GlobalVariable(ctx, "rpl_semi_sync_master_enabled"); err != nil || on != "ON" {
		t.Fatalf("semi-sync: rpl_semi_sync_master_enabled=%q on %s (%v)", on, old.Name, err)
	}

	errsBefore, seriesBefore := st.ClientErrors(), seriesErrors(st)
	cl := startPrimaryLossClients(t, p, schema, readers, writers)
	t.Cleanup(func() {
		select {
		case <-cl.stop:
		default:
			cl.halt()
		}
	})

	// Scrape the roles while the load runs, through the loss and after.
	var badScrapes []string
	scrapes := 0
	scrapeStop, scrapeDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scrapeDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-scrapeStop:
				return
			case <-tick.C:
			}
			n, roles := rolesAt(t, st)
			scrapes++
			if n != 1 {
				badScrapes = append(badScrapes, fmt.Sprintf("%s: %d primaries %v", time.Now().Format("15:04:05.000"), n, roles))
			}
		}
	}()

	waitFor(t, 20*time.Second, "load flows", func() bool {
		return cl.ackedCount() > 50 && cl.reads.Load() > 100 && cl.logins.Load() > 10
	})
	if v, err := old.GlobalStatus(ctx, "Rpl_semi_sync_master_yes_tx"); err != nil || v < 50 {
		t.Fatalf("semi-sync: %d transactions acknowledged by a replica on %s (%v), want the load's", v, old.Name, err)
	}
	if on, err := old.GlobalVariable(ctx, "rpl_semi_sync_master_enabled"); err != nil || on != "ON" {
		t.Fatalf("semi-sync off on %s before the fault: %q %v", old.Name, on, err)
	}
	readsAt, loginsAt := cl.reads.Load(), cl.logins.Load()
	hit := time.Now()
	switch fault {
	case "SIGKILL":
		if err := old.Kill(); err != nil {
			t.Fatal(err)
		}
	case "SIGSTOP":
		hit = pauseServer(t, old)
	}
	newName := waitNewPrimary(t, p, old.Name, 30*time.Second)
	routed := time.Since(hit)
	var resumed time.Time
	waitFor(t, 30*time.Second, "a write acknowledged by "+newName, func() bool {
		at, ok := cl.okAfter(hit)
		resumed = at
		return ok
	})
	// Reads and logins were going on all along; a little more after the
	// failover shows they carry on there too.
	readsMid, loginsMid := cl.reads.Load(), cl.logins.Load()
	acked := cl.ackedCount()
	waitFor(t, 20*time.Second, "load flows after the failover", func() bool {
		ok := cl.ackedCount() > acked+50 && cl.reads.Load() > readsMid+100 && cl.logins.Load() > loginsMid+10
		if !ok {
			t.Logf("after the failover: %d writes, %d reads, %d logins", cl.ackedCount()-acked, cl.reads.Load()-readsMid, cl.logins.Load()-loginsMid)
		}
		return ok
	})
	cl.halt()
	close(scrapeStop)
	<-scrapeDone

	newSrv := topo.ByName(newName)
	have := tableIDs(t, newSrv, schema)
	var missing []int64
	for _, id := range cl.acked {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	if len(missing) > 0 {
		t.Errorf("%s lacks %d acknowledged inserts: %v", newName, len(missing), missing[:min(len(missing), 10)])
	}

	for _, e := range cl.readErrs {
		t.Errorf("read error: %s", e)
	}
	for _, e := range cl.loginErrs {
		t.Errorf("login error: %s", e)
	}
	// A statement in flight on the dying primary fails (its connection is
	// closed: it may or may not have committed; or 1927: its transaction
	// was cut); every writer has at most one in flight.
	if len(cl.writeErrs) > writers {
		t.Errorf("%d write errors, want at most one per writer (%d)", len(cl.writeErrs), writers)
	}
	for _, e := range cl.writeErrs {
		if !strings.Contains(e, "invalid connection") && !strings.Contains(e, "bad connection") && !strings.Contains(e, "Error 1927") {
			t.Errorf("write error not of a statement in flight: %s", e)
		}
	}

	// sluice counted exactly what the clients saw, by code, in /metrics
	// and in the dashboard's series.
	got := byCode(diffCounts(st.ClientErrors(), errsBefore))
	want := map[string]int{}
	total := 0
	for code, n := range cl.codes {
		total += n
		if code != "driver" {
			want[code] = n
		}
	}
	if cl.codes["driver"] > 0 {
		t.Errorf("%d client errors were neither MySQL errors nor a closed connection", cl.codes["driver"])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sluice_client_errors_total by code %v, clients saw %v", got, want)
	}
	var seriesGot int
	waitFor(t, 5*time.Second, "the series to hold the errors", func() bool {
		seriesGot = seriesErrors(st) - seriesBefore
		return seriesGot >= total
	})
	if seriesGot != total {
		t.Errorf("the dashboard series shows %d errors, clients saw %d", seriesGot, total)
	}
	for _, b := range badScrapes {
		t.Errorf("sluice_server_role: %s", b)
	}
	_, roles := rolesAt(t, st)
	if roles[old.Name] != "fenced" && roles[old.Name] != "down" || roles[newName] != "primary" {
		t.Errorf("roles after the failover %v, want %s primary and %s fenced or down", roles, newName, old.Name)
	}
	causes := diffCounts(st.ClientErrors(), errsBefore)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range causes {
			if !yield(k) {
				return
			}
		}
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, causes[k]))
	}
	t.Logf("%s of %s under %d readers, fresh logins with a default database and %d writers (semi-sync): %s primary after %s, first write acknowledged %s after the fault; reads %d (%d during the outage), logins %d (%d during), 0 read and login errors expected, got %d and %d; write errors %d (%v); acknowledged inserts %d, missing %d; sluice counted %v; %d role scrapes, %d with other than one primary",
		fault, old.Name, readers, writers, newName, routed.Round(time.Millisecond), resumed.Sub(hit).Round(time.Millisecond),
		cl.reads.Load(), readsMid-readsAt, cl.logins.Load(), loginsMid-loginsAt, len(cl.readErrs), len(cl.loginErrs),
		len(cl.writeErrs), cl.writeErrs, len(cl.acked), len(missing), parts, scrapes, len(badScrapes))
}

// TestPrimaryLossWithoutAutoFailoverFailsWritesAtOnce: with failover.auto
// off nothing will replace a killed primary, so a write fails at once
// (not after hold_timeout) with an error that says why, while reads and
// logins with a default database go on without error.
func TestPrimaryLossWithoutAutoFailoverFailsWritesAtOnce(t *testing.T) {
	topo := testbed.StartT(t, testbed.Options{Replicas: 2, ExtraArgs: serverArgs})
	p := startSluice(t, sluiceOpts{topo: topo, yaml: foYAML(""), mutate: func(c *config.Config) { c.Failover.Auto = false }})
	schema := foSchema(t, topo)
	syncReplicas(t, topo)
	d := openDB(t, p, schema)
	login := openDB(t, p, schema)
	login.SetMaxIdleConns(0)
	if err := topo.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	// Before and after the monitor declares it down: both must fail at
	// once and say that failover.auto is off.
	deadline := time.Now().Add(10 * time.Second)
	afterDown := 0
	for afterDown < 5 {
		if time.Now().After(deadline) {
			t.Fatal("db1 not seen down within 10s")
		}
		if s, ok := p.Snapshot().ByName("db1"); ok && !s.Up {
			afterDown++
		}
		start := time.Now()
		_, err := d.Exec("INSERT INTO t VALUES (?, 'x')", time.Now().UnixNano())
		took := time.Since(start)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 9001 || !strings.Contains(me.Message, "failover.auto is off") {
			t.Fatalf("write after the kill: %v, want 9001 saying failover.auto is off", err)
		}
		if took > time.Second {
			t.Errorf("the write failed after %s, want at once (hold_timeout is 10s)", took.Round(time.Millisecond))
		}
		var n int
		if err := d.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil {
			t.Errorf("read after the kill: %v", err)
		}
		if err := login.QueryRow("SELECT 1").Scan(&n); err != nil {
			t.Errorf("login with a default database after the kill: %v", err)
		}
	}
}
