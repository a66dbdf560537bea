package stats

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer safe to read while the slow log writes.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestSlowLog(t *testing.T) {
	var out lockedBuffer
	st := New(nil, Options{SlowThreshold: 100 * time.Millisecond, SlowLog: &out, MaxQueryLength: 40})
	start := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

	st.Statement(nil, query("SELECT 1", 99*time.Millisecond)) // under the threshold
	slow := query("SELECT * FROM users WHERE name = 'Zoë Ångström' AND city = 'Zürich'", 1500*time.Millisecond)
	slow.Session, slow.Start, slow.Rows = 42, start, 3
	st.Statement(nil, slow)
	own := &event{Session: 7, User: "app", SQL: []byte("SET NAMES utf8mb4"), Kind: "set", Duration: 100 * time.Millisecond, Err: true}
	st.Statement(nil, own) // answered by sluice, exactly at the threshold
	st.Close()             // writes what is queued

	lines := out.lines()
	if len(lines) != 2 || out.writes != 2 {
		t.Fatalf("%d lines in %d writes, want 2 in 2:\n%s", len(lines), out.writes, out.buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
	}
	want := map[string]any{
		"time": "2025-03-01T12:00:00.123456789Z", "session": 42.0, "user": "app", "schema": "shop",
		"server": "db2", "route": "replica", "kind": "select", "duration": 1.5, "rows": 3.0, "affected": 0.0,
		"error": false, "digest": "SELECT * FROM users WHERE name = ? AND city = ?",
		"query": "SELECT * FROM users WHERE name = 'Zoë ", "truncated": true,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if h, _ := got["digest_hash"].(string); len(h) != 16 {
		t.Errorf("digest_hash = %v, want 16 hex digits", got["digest_hash"])
	}
	if q := got["query"].(string); len(q) > 40 {
		t.Errorf("query of %d bytes, limit 40", len(q))
	}
	if !strings.HasPrefix(lines[0], `{"time":`) {
		t.Errorf("fields out of order: %s", lines[0])
	}

	var second map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if second["route"] != "sluice" || second["server"] != "" || second["error"] != true || second["query"] != "SET NAMES utf8mb4" ||
		second["truncated"] != nil || second["session"] != 7.0 {
		t.Errorf("second line = %v", second)
	}
	if ts, _ := time.Parse(time.RFC3339Nano, second["time"].(string)); ts.IsZero() {
		t.Errorf("time %v of an event without Start", second["time"])
	}
	if n := st.slowCount.Load(); n != 2 {
		t.Errorf("sluice_slow_queries_total = %d, want 2", n)
	}
}

func TestSlowLogWithoutQueryText(t *testing.T) {
	var out lockedBuffer
	st := New(nil, Options{SlowThreshold: time.Millisecond, SlowLog: &out, MaxQueryLength: -1})
	st.Statement(nil, query("SELECT * FROM t WHERE secret = 'hunter2'", time.Second))
	st.Close()
	lines := out.lines()
	if len(lines) != 1 || strings.Contains(lines[0], "hunter2") || strings.Contains(lines[0], `"query"`) ||
		!strings.Contains(lines[0], `"digest":"SELECT * FROM t WHERE secret = ?"`) {
		t.Errorf("line = %v, want the digest and no query text", lines)
	}
}

func TestSlowLogOff(t *testing.T) {
	var out lockedBuffer
	st := New(nil, Options{SlowLog: &out}) // threshold 0
	st.Statement(nil, query("SELECT 1", time.Hour))
	st.Close()
	if out.lines() != nil || st.slowCount.Load() != 0 {
		t.Errorf("slow log written with threshold 0: %v", out.lines())
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	lockedBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.lockedBuffer.Write(p)
}

// TestSlowLogNeverBlocks: a writer that does not return (a stuck stderr
// pipe) must not slow Statement: lines are dropped and counted.
func TestSlowLogNeverBlocks(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	st := New(nil, Options{SlowThreshold: time.Millisecond, SlowLog: w})
	const n = 3 * slowQueue
	start := time.Now()
	for range n {
		st.Statement(nil, query("SELECT 1", time.Second))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d slow statements took %v with a stuck writer", n, d)
	}
	if d := st.slowDropped.Load(); d < n-slowQueue-1 {
		t.Errorf("dropped = %d, want at least %d", d, n-slowQueue-1)
	}
	close(w.release)
	st.Close()
	if got := len(w.lines()) + int(st.slowDropped.Load()); got != n {
		t.Errorf("written + dropped = %d, want %d", got, n)
	}
}

func TestSlowLogUpdateSwapsWriter(t *testing.T) {
	var a, b lockedBuffer
	st := New(nil, Options{SlowThreshold: time.Millisecond, SlowLog: &a})
	defer st.Close()
	st.Statement(nil, query("SELECT 1", time.Second))
	st.Update(Options{SlowThreshold: time.Millisecond, SlowLog: &b})
	if len(a.lines()) != 1 {
		t.Fatalf("Update returned before the old writer got its line: %v", a.lines())
	}
	st.Statement(nil, query("SELECT 2", time.Second))
	st.Update(Options{SlowThreshold: time.Hour, SlowLog: &b})
	st.Statement(nil, query("SELECT 3", time.Second)) // under the new threshold
	st.Close()
	if got := b.lines(); len(got) != 1 || !strings.Contains(got[0], "SELECT 2") {
		t.Errorf("new writer got %v", got)
	}
}

func TestOpenSlowLog(t *testing.T) {
	w, err := OpenSlowLog("stderr")
	if err != nil || w.(nopCloser).Writer != os.Stderr || w.Close() != nil {
		t.Errorf("stderr: %v, %v", w, err)
	}
	path := filepath.Join(t.TempDir(), "slow.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSlowLog(path)
	if err != nil {
		t.Fatal(err)
	}
	st := New(nil, Options{SlowThreshold: time.Millisecond, SlowLog: f})
	st.Statement(nil, query("SELECT 1", time.Second))
	st.Close()
	f.Close()
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "old\n{") || strings.Count(string(b), "\n") != 2 {
		t.Errorf("file = %q, want the line appended", b)
	}
	if _, err := OpenSlowLog(filepath.Join(t.TempDir(), "missing", "slow.log")); err == nil || !strings.Contains(err.Error(), "open slow query log") {
		t.Errorf("missing directory: %v", err)
	}
}
