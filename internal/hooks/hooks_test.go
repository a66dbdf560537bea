package hooks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testEvent = Event{
	Kind:       KindFailover,
	Phase:      PhasePost,
	OldPrimary: "db1",
	NewPrimary: "db2",
	OldAddress: "10.0.0.1:3306",
	NewAddress: "10.0.0.2:3306",
	Epoch:      7,
	Reason:     "db1 failed 3 checks; replicas db2, db3 lost it too",
	Time:       time.Date(2026, 3, 1, 1, 0, 0, 5, time.UTC),
}

func needShell(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Fatal("these tests need /bin/sh:", err)
	}
}

func sh(script string, args ...string) []string {
	return append([]string{"/bin/sh", "-c", script, "sh"}, args...)
}

func TestCommandReceivesEvent(t *testing.T) {
	needShell(t)
	file := filepath.Join(t.TempDir(), "out")
	cfg := Config{Command: sh(`echo "$SLUICE_NEW_PRIMARY $SLUICE_EPOCH" > "$1"`, file)}
	if err := Run(context.Background(), cfg, testEvent); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil || string(got) != "db2 7\n" {
		t.Fatalf("command wrote %q, %v; want %q", got, err, "db2 7\n")
	}
}

func TestCommandEnvironment(t *testing.T) {
	needShell(t)
	t.Setenv("SLUICE_TEST_INHERITED", "yes")
	t.Setenv("SLUICE_EPOCH", "1") // a stale value in sluice's own environment is replaced
	file := filepath.Join(t.TempDir(), "env")
	if err := Run(context.Background(), Config{Command: sh(`env > "$1"`, file)}, testEvent); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	for _, tt := range []struct{ name, want string }{
		{"SLUICE_EVENT", "failover"},
		{"SLUICE_PHASE", "post"},
		{"SLUICE_OLD_PRIMARY", "db1"},
		{"SLUICE_NEW_PRIMARY", "db2"},
		{"SLUICE_OLD_ADDRESS", "10.0.0.1:3306"},
		{"SLUICE_NEW_ADDRESS", "10.0.0.2:3306"},
		{"SLUICE_EPOCH", "7"},
		{"SLUICE_REASON", testEvent.Reason},
		{"SLUICE_TIME", "2026-03-01T01:00:00.000000005Z"},
		{"SLUICE_TEST_INHERITED", "yes"},
	} {
		if got, ok := env[tt.name]; !ok || got != tt.want {
			t.Errorf("%s = %q (set: %v); want %q", tt.name, got, ok, tt.want)
		}
	}
}

// The command is an argv: nothing in it is expanded by a shell.
func TestCommandRunsWithoutShell(t *testing.T) {
	touch, err := findProgram("touch")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	arg := filepath.Join(dir, "$SLUICE_EPOCH;x")
	if err := Run(context.Background(), Config{Command: []string{touch, arg}}, testEvent); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(arg); err != nil {
		t.Errorf("argument was not passed literally: %v", err)
	}
}

func findProgram(name string) (string, error) {
	for _, dir := range []string{"/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New(name + " not found")
}

func TestCommandFailure(t *testing.T) {
	needShell(t)
	long := strings.Repeat("x", 100<<10)
	tests := []struct {
		name    string
		argv    []string
		want    []string
		notWant []string
	}{
		{
			name: "exit status with stdout and stderr",
			argv: sh(`echo "updating DNS for $SLUICE_NEW_PRIMARY"; echo "nsupdate: REFUSED" >&2; exit 3`),
			want: []string{"hook command /bin/sh", "exit status 3", "updating DNS for db2", "nsupdate: REFUSED"},
		},
		{
			name: "no output",
			argv: sh(`exit 1`),
			want: []string{"exit status 1"},
		},
		{
			name:    "output bounded to its tail",
			argv:    sh(`printf '%s' "$1"; echo; echo THE-END; exit 2`, "HEAD"+long),
			want:    []string{"exit status 2", "THE-END", "last 4096 bytes"},
			notWant: []string{"HEAD"},
		},
		{
			name: "program not found",
			argv: []string{"/nonexistent/sluice-hook"},
			want: []string{"/nonexistent/sluice-hook"},
		},
		{
			name: "empty program name",
			argv: []string{""},
			want: []string{"empty program name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), Config{Command: tt.argv}, testEvent)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error contains %q", w)
				}
			}
			if len(err.Error()) > outputLimit+1024 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// A hanging command is killed at the timeout, with the processes it started.
func TestCommandKilledAtTimeout(t *testing.T) {
	needShell(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 300 * time.Millisecond
	start := time.Now()
	err := Run(context.Background(), Config{
		Command: sh(`sleep 60 & echo $! > "$1"; echo waiting; wait`, pidFile),
		Timeout: timeout,
	}, testEvent)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Run succeeded")
	}
	if !strings.Contains(err.Error(), "killed after the 300ms timeout") || !strings.Contains(err.Error(), "waiting") {
		t.Errorf("error = %v", err)
	}
	if elapsed > timeout+waitDelay {
		t.Errorf("Run returned after %v; timeout %v", elapsed, timeout)
	}
	t.Logf("returned %v after start (timeout %v)", elapsed.Round(time.Millisecond), timeout)

	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// The shell's child was in its process group: it must be dead (gone, or
	// a zombie waiting for init to reap it).
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			syscallKill(pid)
			t.Fatalf("child %d of the timed-out hook still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func syscallKill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

func TestCommandStoppedByContext(t *testing.T) {
	needShell(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := Run(ctx, Config{Command: sh(`sleep 60`), Timeout: time.Minute}, testEvent)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Run = %v; want a canceled error", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

// A command that succeeds but leaves a background process holding its
// output is a success, after waitDelay at most.
func TestCommandBackgroundChildDoesNotFailIt(t *testing.T) {
	needShell(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	err := Run(context.Background(), Config{Command: sh(`sleep 30 & echo $! > "$1"; exit 0`, pidFile), Timeout: 10 * time.Second}, testEvent)
	if data, rerr := os.ReadFile(pidFile); rerr == nil {
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); perr == nil {
			syscallKill(pid)
		}
	}
	if err != nil {
		t.Errorf("Run = %v", err)
	}
	if el := time.Since(start); el > waitDelay+5*time.Second {
		t.Errorf("took %v", el)
	}
}

// webhookRecorder is a test server that records what it received.
type webhookRecorder struct {
	mu      sync.Mutex
	calls   int
	method  string
	header  http.Header
	body    []byte
	status  int
	reply   string
	onCall  func()
	srv     *httptest.Server
	hookURL string
}

func newRecorder(t *testing.T, status int, reply string) *webhookRecorder {
	r := &webhookRecorder{status: status, reply: reply}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.calls++
		r.method, r.header, r.body = req.Method, req.Header.Clone(), body
		on := r.onCall
		r.mu.Unlock()
		if on != nil {
			on()
		}
		if r.status == http.StatusFound {
			http.Redirect(w, req, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(r.status)
		io.WriteString(w, r.reply)
	}))
	t.Cleanup(r.srv.Close)
	r.hookURL = r.srv.URL + "/hook"
	return r
}

func TestWebhookReceivesEvent(t *testing.T) {
	for _, tt := range []struct {
		name, token, wantAuth string
		status                int
	}{
		{"with token", "s3cret", "Bearer s3cret", http.StatusOK},
		{"without token", "", "", http.StatusNoContent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.status, "")
			if err := Run(context.Background(), Config{Webhook: rec.hookURL, Token: tt.token}, testEvent); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.calls != 1 || rec.method != http.MethodPost {
				t.Errorf("%d calls, method %s; want 1 POST", rec.calls, rec.method)
			}
			if ct := rec.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if auth := rec.header.Get("Authorization"); auth != tt.wantAuth {
				t.Errorf("Authorization %q; want %q", auth, tt.wantAuth)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.body, &got); err != nil {
				t.Fatalf("body %s: %v", rec.body, err)
			}
			want := map[string]any{
				"kind": "failover", "phase": "post",
				"old_primary": "db1", "new_primary": "db2",
				"old_address": "10.0.0.1:3306", "new_address": "10.0.0.2:3306",
				"epoch": 7.0, "reason": testEvent.Reason, "time": "2026-03-01T01:00:00.000000005Z",
			}
			if len(got) != len(want) {
				t.Errorf("body has keys %v; want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %#v; want %#v", k, got[k], v)
				}
			}
		})
	}
}

func TestZeroTimeIsNow(t *testing.T) {
	rec := newRecorder(t, http.StatusOK, "")
	ev := testEvent
	ev.Time = time.Time{}
	before := time.Now()
	if err := Run(context.Background(), Config{Webhook: rec.hookURL}, ev); err != nil {
		t.Fatal(err)
	}
	var got Event
	if err := json.Unmarshal(rec.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Time.Before(before.Add(-time.Second)) || got.Time.After(time.Now()) {
		t.Errorf("time %v; want about %v", got.Time, before)
	}
}

func TestWebhookFailure(t *testing.T) {
	tests := []struct {
		name   string
		status int
		reply  string
		want   []string
	}{
		{"server error", http.StatusInternalServerError, "dns provider down\n", []string{"500 Internal Server Error", "dns provider down"}},
		{"not found, no body", http.StatusNotFound, "", []string{"404 Not Found"}},
		{"redirect not followed", http.StatusFound, "", []string{"302 Found"}},
		{"long body bounded", http.StatusBadGateway, strings.Repeat("e", 100<<10), []string{"502 Bad Gateway", "eee…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, tt.status, tt.reply)
			err := Run(context.Background(), Config{Webhook: rec.hookURL}, testEvent)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range append(tt.want, "hook webhook "+rec.hookURL) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%.300s", w, err)
				}
			}
			if len(err.Error()) > outputLimit+1024 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			rec.mu.Lock()
			if rec.calls != 1 {
				t.Errorf("%d calls; want 1 (no redirect followed)", rec.calls)
			}
			rec.mu.Unlock()
		})
	}
}

// Credentials in the URL stay out of error messages.
func TestWebhookErrorHidesSecrets(t *testing.T) {
	rec := newRecorder(t, http.StatusInternalServerError, "")
	u := strings.Replace(rec.hookURL, "http://", "http://user:pw-secret@", 1) + "?token=q-secret"
	err := Run(context.Background(), Config{Webhook: u, Token: "bearer-secret"}, testEvent)
	if err == nil {
		t.Fatal("Run succeeded")
	}
	for _, s := range []string{"pw-secret", "q-secret", "bearer-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error reveals %s: %v", s, err)
		}
	}
	// And with a transport error.
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = Run(context.Background(), Config{Webhook: "http://u:pw-secret@" + addr + "/?token=q-secret"}, testEvent)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Run = %v", err)
	}
}

func TestWebhookUnreachable(t *testing.T) {
	// Refused: nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/hook"
	ln.Close()

	// Silent: the connection is accepted by the kernel, nothing answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	const timeout = 300 * time.Millisecond
	for _, tt := range []struct{ name, url, want string }{
		{"connection refused", refused, "refused"},
		{"no response", "http://" + silent.Addr().String() + "/hook", "no response within the 300ms timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := Run(context.Background(), Config{Webhook: tt.url, Timeout: timeout}, testEvent)
			elapsed := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v; want an error containing %q", err, tt.want)
			}
			if elapsed > timeout+time.Second {
				t.Errorf("Run took %v with a %v timeout", elapsed, timeout)
			}
		})
	}
}

func TestWebhookStoppedByContext(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = Run(ctx, Config{Webhook: "http://" + silent.Addr().String(), Timeout: time.Minute}, testEvent)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want context.Canceled", err)
	}
}

func TestCommandAndWebhook(t *testing.T) {
	needShell(t)
	tests := []struct {
		name       string
		script     string
		status     int
		wantErr    []string // in this order
		notWantErr string
	}{
		{"both succeed", `touch "$1"`, http.StatusOK, nil, ""},
		{"command fails, webhook still runs", `touch "$1"; echo cmd-broke; exit 4`, http.StatusOK, []string{"exit status 4", "cmd-broke"}, "webhook"},
		{"webhook fails", `touch "$1"`, http.StatusServiceUnavailable, []string{"503"}, "hook command"},
		{"both fail, command first", `touch "$1"; exit 5`, http.StatusInternalServerError, []string{"exit status 5", "500"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			rec := newRecorder(t, tt.status, "")
			var cmdFirst bool
			rec.onCall = func() { _, err := os.Stat(marker); cmdFirst = err == nil }
			err := Run(context.Background(), Config{Command: sh(tt.script, marker), Webhook: rec.hookURL}, testEvent)
			rec.mu.Lock()
			calls := rec.calls
			rec.mu.Unlock()
			if calls != 1 || !cmdFirst {
				t.Errorf("webhook calls %d, command ran first: %v", calls, cmdFirst)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("Run succeeded")
			}
			msg, at := err.Error(), 0
			for _, w := range tt.wantErr {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error lacks %q after offset %d:\n%s", w, at, msg)
				}
				at += i
			}
			if tt.notWantErr != "" && strings.Contains(msg, tt.notWantErr) {
				t.Errorf("error mentions %q:\n%s", tt.notWantErr, msg)
			}
		})
	}
}

func TestNothingConfigured(t *testing.T) {
	if err := Run(context.Background(), Config{}, testEvent); err != nil {
		t.Errorf("Run with no hooks = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"zero", Config{}, ""},
		{"command", Config{Command: []string{"/usr/local/bin/update-dns", "--zone", "db"}}, ""},
		{"https webhook with token", Config{Webhook: "https://hooks.example.com/sluice", Token: "t", Timeout: time.Second}, ""},
		{"empty program", Config{Command: []string{"", "x"}}, "empty program name"},
		{"bad scheme", Config{Webhook: "ftp://example.com/x"}, "scheme must be http or https"},
		{"no scheme", Config{Webhook: "example.com/x"}, "scheme must be http or https"},
		{"no host", Config{Webhook: "http:///x"}, "no host"},
		{"unparsable", Config{Webhook: "http://u:pw@[::1"}, "webhook URL"},
		{"negative timeout", Config{Timeout: -time.Second}, "negative"},
		{"secret hidden", Config{Webhook: "ftp://u:pw@example.com/?token=tk"}, "ftp://u:xxxxx@example.com/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v; want an error containing %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), ":pw@") || strings.Contains(err.Error(), "tk")) {
				t.Errorf("Validate reveals a secret: %v", err)
			}
			// Run refuses an invalid config without running anything.
			if rerr := Run(context.Background(), tt.cfg, testEvent); rerr == nil {
				t.Error("Run accepted an invalid config")
			}
		})
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
		drop   int64
	}{
		{"fits", 8, []string{"ab", "cd"}, "abcd", 0},
		{"exactly full", 4, []string{"ab", "cd"}, "abcd", 0},
		{"overflow by small writes", 4, []string{"abc", "def"}, "cdef", 2},
		{"one big write", 4, []string{"ab", "0123456789"}, "6789", 8},
		{"big write exactly max", 4, []string{"ab", "wxyz"}, "wxyz", 2},
		{"many writes", 3, []string{"a", "b", "c", "d", "e"}, "cde", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := &tail{max: tt.max}
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if string(tl.buf) != tt.want || tl.dropped != tt.drop {
				t.Errorf("tail = %q, dropped %d; want %q, %d", tl.buf, tl.dropped, tt.want, tt.drop)
			}
		})
	}
}
