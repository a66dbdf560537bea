package stats

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/topology"
)

// collector is a fake carbon plaintext listener that records lines.
type carbon struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	conns []net.Conn
	wg    sync.WaitGroup
}

func listenCarbon(t *testing.T, addr string) *carbon {
	t.Helper()
	var ln net.Listener
	var err error
	// The port of a collector that just stopped may take a moment to free.
	poll(t, 5*time.Second, "listen on "+addr, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	c := &carbon{ln: ln}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					c.mu.Lock()
					c.lines = append(c.lines, sc.Text())
					c.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop closes the listener and every connection, as a collector that
// shuts down does.
func (c *carbon) stop() {
	c.ln.Close()
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *carbon) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *carbon) count(prefix string) int {
	n := 0
	for _, l := range c.received() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

var graphiteLine = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+ -?[0-9][0-9.e+-]* [0-9]+$`)

func TestGraphite(t *testing.T) {
	c := newClock()
	st := newStats(t, testSource(), Options{Now: c.Now})
	st.Statement(nil, query("SELECT 1", 4*time.Millisecond))
	st.Statement(nil, &event{Session: 2, Kind: "select", Target: "replica", Server: "db3.example", Duration: time.Millisecond})
	c.Add(time.Second)

	col := listenCarbon(t, "127.0.0.1:0")
	addr := col.ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.RunGraphite(ctx, addr, "test.sluice", 20*time.Millisecond)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("RunGraphite did not return after cancel")
		}
	}()

	// Rounds arrive on schedule.
	poll(t, 5*time.Second, "three rounds", func() bool { return col.count("test.sluice.client_connections ") >= 3 })
	ts := fmt.Sprint(c.Now().Unix())
	lines := col.received()
	want := map[string]bool{
		"test.sluice.client_connections 7 " + ts:                            false,
		"test.sluice.client_connections_total 42 " + ts:                     false,
		"test.sluice.server_queries_total.db2.replica 1 " + ts:              false,
		"test.sluice.server_queries_total.db3_example.replica 1 " + ts:      false,
		"test.sluice.server_connections.db2.in_use 4 " + ts:                 false,
		"test.sluice.server_role.db1.primary 1 " + ts:                       false,
		"test.sluice.server_replication_lag_seconds.db2 1.5 " + ts:          false,
		"test.sluice.query_duration_seconds.replica.select.count 2 " + ts:   false,
		"test.sluice.query_duration_seconds.replica.select.sum 0.005 " + ts: false,
		"test.sluice.reloads_total.ok 0 " + ts:                              false,
		"test.sluice.queries_per_second 2 " + ts:                            false, // 2 commands in the last complete second
		"test.sluice.query_duration_p99_seconds 0.004":                      false, // a prefix: the value is estimated
	}
	for _, l := range lines {
		if !graphiteLine.MatchString(l) {
			t.Errorf("malformed line %q", l)
		}
		if strings.HasPrefix(l, "go_") || strings.Contains(l, ".go_") || strings.Contains(l, "process_") {
			t.Errorf("runtime metric pushed: %q", l)
		}
		for w := range want {
			if l == w || strings.HasPrefix(l, w) {
				want[w] = true
			}
		}
	}
	for w, seen := range want {
		if !seen {
			t.Errorf("no line %q in:\n%s", w, strings.Join(lines[:min(len(lines), 80)], "\n"))
		}
	}

	// The collector restarts: lines arrive again.
	col.stop()
	dropped := st.graphiteDropped.Load()
	poll(t, 10*time.Second, "a round dropped against the closed port", func() bool { return st.graphiteDropped.Load() > dropped })
	col2 := listenCarbon(t, addr)
	poll(t, 10*time.Second, "lines after the collector restarted", func() bool {
		return col2.count("test.sluice.client_connections ") >= 2
	})
	// The collector reads a round's lines before RunGraphite, back from the
	// write, counts it: wait for the count rather than read it at once.
	poll(t, 10*time.Second, "five rounds counted as sent", func() bool { return st.graphiteSent.Load() >= 5 })
	mfs := scrape(t, st)
	if v := value(t, mfs, "sluice_graphite_rounds_total", "result=sent"); v < 5 {
		t.Errorf("sluice_graphite_rounds_total{result=sent} = %v", v)
	}
}

// TestGraphiteStuckCollector: a collector that accepts but never reads.
// Sends must time out (dropping rounds) instead of blocking RunGraphite,
// Statement must not notice, and cancel must stop RunGraphite at once.
func TestGraphiteStuckCollector(t *testing.T) {
	src := testSource()
	// Enough servers that a round (about 200 KB) soon fills the socket
	// buffers, which the collector below keeps small.
	src.snap = &topology.Snapshot{Primary: -1}
	src.pools = map[string]backend.Stats{}
	for i := range 300 {
		name := fmt.Sprintf("replica-with-a-long-name-%04d", i)
		src.snap.Servers = append(src.snap.Servers, topology.Server{Name: name, Up: true, Role: topology.RoleReplica, LagKnown: true})
		src.pools[name] = backend.Stats{Idle: 1}
	}
	st := newStats(t, src, Options{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.(*net.TCPConn).SetReadBuffer(4096)
			mu.Lock()
			held = append(held, conn) // never read
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-acceptDone
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.RunGraphite(ctx, ln.Addr().String(), "sluice", 50*time.Millisecond)
	}()

	// Meanwhile the data path runs as usual.
	statements := 0
	var slowest time.Duration
	poll(t, 60*time.Second, "a dropped round", func() bool {
		for range 100 {
			start := time.Now()
			st.Statement(nil, query("SELECT 1", time.Millisecond))
			slowest = max(slowest, time.Since(start))
			statements++
		}
		return st.graphiteDropped.Load() > 0
	})
	// Statement shares no lock with the pusher; the bound only allows for
	// a busy test machine's scheduling.
	if slowest > time.Second {
		t.Errorf("a Statement took %v while the collector was stuck", slowest)
	}
	// Sending goes on after a timeout (reconnect and try again) rather than
	// stopping or hanging.
	sent := st.graphiteSent.Load() + st.graphiteDropped.Load()
	poll(t, 30*time.Second, "more rounds after a timeout", func() bool {
		return st.graphiteSent.Load()+st.graphiteDropped.Load() > sent+1
	})

	start := time.Now()
	cancel()
	select {
	case <-done:
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("RunGraphite took %v to return after cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunGraphite hung after cancel")
	}
	t.Logf("%d statements meanwhile, slowest %v; %d rounds sent, %d dropped",
		statements, slowest, st.graphiteSent.Load(), st.graphiteDropped.Load())
}

func TestGraphiteUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	st := newStats(t, nil, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.RunGraphite(ctx, addr, "sluice", 10*time.Millisecond)
	}()
	poll(t, 5*time.Second, "dropped rounds", func() bool { return st.graphiteDropped.Load() >= 3 })
	cancel()
	<-done
}

// TestGraphiteBackoff: a round against an unreachable collector dials
// once and fails; the rounds after it do not dial until the backoff has
// passed, and every failed dial doubles it, from the interval up to 30 s.
func TestGraphiteBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	st := newStats(t, nil, Options{})
	const interval = 2 * time.Second
	g := &pusher{st: st, addr: addr, prefix: "sluice", interval: interval, timeout: time.Second}
	ctx := context.Background()
	want := interval
	for i := range 8 {
		err := g.round(ctx)
		if err == nil || errors.Is(err, errBackoff) {
			t.Fatalf("dial %d: %v, want the dial's error", i, err)
		}
		if g.backoff != want {
			t.Fatalf("after %d failed dials: backoff %s, want %s", i+1, g.backoff, want)
		}
		// Within the backoff, rounds are dropped without dialling.
		for range 3 {
			if err := g.round(ctx); !errors.Is(err, errBackoff) {
				t.Fatalf("round within the backoff after dial %d: %v, want errBackoff", i+1, err)
			}
		}
		g.retryAt = time.Now().Add(-time.Millisecond) // the backoff has passed
		want = min(2*want, graphiteMaxBackoff)
	}
	// A collector that comes back resets the backoff at the first round
	// that reaches it.
	col := listenCarbon(t, addr)
	defer col.stop()
	if err := g.round(ctx); err != nil {
		t.Fatalf("round with the collector back: %v", err)
	}
	if g.backoff != 0 {
		t.Fatalf("backoff %s after a successful round, want 0", g.backoff)
	}
	g.close()
}

func TestGraphitePaths(t *testing.T) {
	for in, want := range map[string]string{"db1": "db1", "db1.example.com": "db1_example_com", "": "_", "a b/c": "a_b_c", "in_use": "in_use"} {
		if got := graphiteSafe(in); got != want {
			t.Errorf("graphiteSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
