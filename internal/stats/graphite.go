package stats

import (
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Graphite push, in the plaintext protocol ("path value unix_ts\n" over
// TCP).
//
// Paths are the prefix, the metric name without "sluice_", then the label
// values in a fixed order — server, route, kind, state, role, result, then
// any other label by name — with every character other than letters,
// digits, '_' and '-' replaced by '_':
//
//	sluice.client_connections 12 1700000000
//	sluice.server_queries_total.db2.replica 81234 1700000000
//	sluice.server_connections.db2.in_use 3 1700000000
//	sluice.query_duration_seconds.replica.select.count 81234 1700000000
//	sluice.query_duration_seconds.replica.select.sum 20.5 1700000000
//
// Histograms send their count and sum (Graphite has no use for cumulative
// buckets). Counters are sent as they are: use nonNegativeDerivative. Four
// more figures cover the seconds since the previous push, from the same
// per-second series as the dashboard:
//
//	sluice.queries_per_second, sluice.query_errors_per_second,
//	sluice.query_duration_p50_seconds, sluice.query_duration_p99_seconds
//
// The pusher runs on the caller's goroutine and shares nothing with the
// data path but atomics. Each send has a write deadline of
// min(interval, 5s); a send that fails or times out drops that round
// (sluice_graphite_rounds_total{result="dropped"}) and closes the
// connection. Reconnection waits out a backoff that starts at the interval
// and doubles up to 30s. Before each send, a connection the collector
// closed (a restart) is detected and replaced, so no round is written into
// a dead socket.

const graphiteMaxBackoff = 30 * time.Second

var errBackoff = errors.New("graphite: waiting to reconnect")

type pusher struct {
	st       *Stats
	addr     string
	prefix   string
	interval time.Duration
	timeout  time.Duration

	mu   sync.Mutex // guards conn against abort
	conn net.Conn

	backoff time.Duration
	retryAt time.Time
	lastSec int64
	buf     []byte
	probe   [1]byte
}

// RunGraphite pushes the metrics to the Graphite (carbon) plaintext
// listener at addr every interval, under prefix, until ctx is done. It
// never blocks the data path and returns promptly when ctx is done, even
// in the middle of a send.
func (st *Stats) RunGraphite(ctx context.Context, addr, prefix string, interval time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	st.graphiteOn.Store(true)
	g := &pusher{st: st, addr: addr, prefix: strings.Trim(prefix, "."), interval: interval,
		timeout: min(interval, 5*time.Second)}
	stop := context.AfterFunc(ctx, g.abort)
	defer stop()
	defer g.close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if g.round(ctx) == nil {
				st.graphiteSent.Add(1)
			} else {
				st.graphiteDropped.Add(1)
			}
		}
	}
}

func (g *pusher) round(ctx context.Context) error {
	payload := g.build(g.st.now())
	if err := ctx.Err(); err != nil {
		return err
	}
	conn := g.current()
	if conn != nil && !g.alive(conn) {
		g.close()
		conn = nil
	}
	if conn == nil {
		if time.Now().Before(g.retryAt) {
			return errBackoff
		}
		d := net.Dialer{Timeout: g.timeout}
		c, err := d.DialContext(ctx, "tcp", g.addr)
		if err != nil {
			g.failed()
			return err
		}
		if !g.set(ctx, c) {
			return ctx.Err()
		}
		conn = c
	}
	if err := conn.SetWriteDeadline(time.Now().Add(g.timeout)); err != nil {
		g.close()
		g.failed()
		return err
	}
	if _, err := conn.Write(payload); err != nil {
		g.close()
		g.failed()
		return err
	}
	g.backoff = 0
	return nil
}

func (g *pusher) failed() {
	g.backoff = min(max(2*g.backoff, g.interval), max(graphiteMaxBackoff, g.interval))
	g.retryAt = time.Now().Add(g.backoff)
}

// alive reports whether the collector still holds the connection open.
// Carbon never writes to us, so a read that does not time out at once
// means the other side closed or reset it.
func (g *pusher) alive(c net.Conn) bool {
	if c.SetReadDeadline(time.Now().Add(time.Millisecond)) != nil {
		return false
	}
	n, err := c.Read(g.probe[:])
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return n > 0 || errors.As(err, &ne) && ne.Timeout()
}

func (g *pusher) current() net.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conn
}

func (g *pusher) set(ctx context.Context, c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ctx.Err() != nil {
		c.Close()
		return false
	}
	g.conn = c
	return true
}

func (g *pusher) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		g.conn.Close()
		g.conn = nil
	}
}

// abort makes a send in progress return at once.
func (g *pusher) abort() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		g.conn.SetDeadline(time.Now())
	}
}

// build renders one round into g.buf.
func (g *pusher) build(now time.Time) []byte {
	ts := now.Unix()
	b := g.buf[:0]
	line := func(path string, suffix string, v float64) {
		if !finite(v) {
			return
		}
		b = append(b, path...)
		b = append(b, suffix...)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		b = append(b, ' ')
		b = strconv.AppendInt(b, ts, 10)
		b = append(b, '\n')
	}
	mfs, _ := g.st.own.Gather() // a failing collector leaves out its metrics only
	for _, mf := range mfs {
		name, ok := strings.CutPrefix(mf.GetName(), "sluice_")
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			path := g.path(name, m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				line(path, "", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				line(path, "", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				line(path, "", m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				line(path, ".count", float64(m.GetHistogram().GetSampleCount()))
				line(path, ".sum", m.GetHistogram().GetSampleSum())
			}
		}
	}

	// The seconds since the previous round, complete ones only.
	from := g.lastSec
	if from == 0 || from >= ts {
		from = ts - max(int64(g.interval/time.Second), 1)
	}
	g.lastSec = ts
	var hist [logBuckets]uint64
	n, errs := g.st.series.window(from, ts, &hist)
	secs := float64(ts - from)
	line(g.path("queries_per_second", nil), "", float64(n)/secs)
	line(g.path("query_errors_per_second", nil), "", float64(errs)/secs)
	if n > 0 {
		line(g.path("query_duration_p50_seconds", nil), "", seconds(quantile(&hist, 0.5, 0, math.Inf(1))))
		line(g.path("query_duration_p99_seconds", nil), "", seconds(quantile(&hist, 0.99, 0, math.Inf(1))))
	}
	g.buf = b
	return b
}

// labelRank orders label values in paths.
var labelRank = map[string]int{"server": 0, "route": 1, "kind": 2, "state": 3, "role": 4, "result": 5}

func (g *pusher) path(name string, labels []*dto.LabelPair) string {
	var b strings.Builder
	if g.prefix != "" {
		b.WriteString(g.prefix)
		b.WriteByte('.')
	}
	b.WriteString(name)
	labels = slices.Clone(labels)
	slices.SortStableFunc(labels, func(x, y *dto.LabelPair) int {
		rx, okx := labelRank[x.GetName()]
		ry, oky := labelRank[y.GetName()]
		if !okx {
			rx = len(labelRank)
		}
		if !oky {
			ry = len(labelRank)
		}
		if rx != ry {
			return rx - ry
		}
		return strings.Compare(x.GetName(), y.GetName())
	})
	for _, l := range labels {
		b.WriteByte('.')
		b.WriteString(graphiteSafe(l.GetValue()))
	}
	return b.String()
}

// graphiteSafe keeps letters, digits, '_' and '-' and replaces anything
// else ('.' included, which would start a new path node) with '_'.
func graphiteSafe(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
