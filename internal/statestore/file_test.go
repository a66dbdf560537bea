package statestore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, path string) *File {
	t.Helper()
	f, err := OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func sample(epoch uint64) State {
	return State{
		Epoch:   epoch,
		Primary: "db" + strconv.FormatUint(epoch, 10),
		Address: "10.0.0.2:3306",
		Reason:  "failover: db1 failed 3 checks, confirmed by 2 replicas",
		Time:    time.Date(2026, 3, 1, 1, 2, 3, 456789000, time.FixedZone("CET", 3600)),
		Fenced:  []string{"db1"},
	}
}

func equalState(a, b State) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := open(t, path)
	got, err := f.Load()
	if err != nil || !reflect.DeepEqual(got, State{}) {
		t.Fatalf("Load of a missing file = %+v, %v; want State{}, nil", got, err)
	}
	want := sample(3)
	if err := f.Save(want); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(); err != nil || !equalState(got, want) {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// A restarted sluice sees the decision.
	f2 := open(t, path)
	if got, err := f2.Load(); err != nil || !equalState(got, want) {
		t.Fatalf("after reopen Load = %+v, %v; want %+v", got, err, want)
	}
	if !want.IsFenced("db1") || want.IsFenced("db2") {
		t.Error("IsFenced")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v; want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	for _, key := range []string{`"epoch": 3`, `"primary": "db3"`, `"address"`, `"reason"`, `"time": "2026-03-01T01:02:03.456789+01:00"`, `"fenced"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("state file lacks %s:\n%s", key, data)
		}
	}
}

func TestFencedOmittedWhenEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := open(t, path)
	s := sample(1)
	s.Fenced = nil
	if err := f.Save(s); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "fenced") {
		t.Errorf("empty fenced list written:\n%s", data)
	}
}

func TestSaveRefusesEpochNotGreater(t *testing.T) {
	tests := []struct {
		name   string
		stored uint64 // 0: nothing saved
		save   uint64
		ok     bool
	}{
		{"first save", 0, 1, true},
		{"epoch 0 on an empty store", 0, 0, false},
		{"next epoch", 5, 6, true},
		{"jump ahead", 5, 100, true},
		{"same epoch", 5, 5, false},
		{"older epoch", 5, 4, false},
		{"zero over a decision", 5, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := open(t, filepath.Join(t.TempDir(), "state.json"))
			if tt.stored > 0 {
				if err := f.Save(sample(tt.stored)); err != nil {
					t.Fatal(err)
				}
			}
			err := f.Save(sample(tt.save))
			if tt.ok != (err == nil) {
				t.Fatalf("Save(epoch %d) over %d = %v; want ok=%v", tt.save, tt.stored, err, tt.ok)
			}
			got, lerr := f.Load()
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tt.ok {
				if got.Epoch != tt.save {
					t.Errorf("stored epoch %d; want %d", got.Epoch, tt.save)
				}
				return
			}
			if !errors.Is(err, ErrStaleEpoch) {
				t.Errorf("error %v does not match ErrStaleEpoch", err)
			}
			if got.Epoch != tt.stored {
				t.Errorf("refused save changed the epoch to %d", got.Epoch)
			}
		})
	}
}

// Two writers racing: epochs never go backwards and only strictly greater
// ones are accepted.
func TestConcurrentSaves(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "state.json"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[uint64]bool{}
	for w := range 4 {
		wg.Go(func() {
			var seen uint64
			for e := uint64(1); e <= 20; e++ {
				ep := e*4 + uint64(w)
				err := f.Save(sample(ep))
				switch {
				case err == nil:
					mu.Lock()
					accepted[ep] = true
					mu.Unlock()
				case !errors.Is(err, ErrStaleEpoch):
					t.Error(err)
				}
				s, lerr := f.Load()
				if lerr != nil {
					t.Error(lerr)
					return
				}
				if s.Epoch < seen || (err == nil && s.Epoch < ep) {
					t.Errorf("epoch went back to %d (saw %d, saved %d: %v)", s.Epoch, seen, ep, err)
				}
				seen = s.Epoch
			}
		})
	}
	wg.Wait()
	s, err := f.Load()
	if err != nil || s.Epoch != 83 {
		t.Errorf("final epoch %d, %v; want 83", s.Epoch, err)
	}
	if !accepted[83] {
		t.Error("the greatest epoch was refused")
	}
}

func TestLeftoverTempFileIgnored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f := open(t, path)
	if err := f.Save(sample(2)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// A Save that crashed before its rename leaves a temporary file, with
	// a newer state or a torn one.
	for i, content := range []string{`{"epoch": 9, "primary": "db9"}`, `{"epoch": 9, "prim`} {
		name := filepath.Join(dir, fmt.Sprintf("state.json.tmp-%d", i))
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f2 := open(t, path)
	got, err := f2.Load()
	if err != nil || got.Epoch != 2 || got.Primary != "db2" {
		t.Fatalf("Load = %+v, %v; want the epoch 2 state", got, err)
	}
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Errorf("leftover temporary files not removed: %v", left)
	}
}

// failingWriter writes up to n bytes, then fails.
type failingWriter struct {
	w     io.Writer
	n     int
	short bool // report a short write without an error
}

func (fw *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= fw.n {
		fw.n -= len(p)
		return fw.w.Write(p)
	}
	k, err := fw.w.Write(p[:fw.n])
	fw.n = 0
	if err != nil || fw.short {
		return k, err
	}
	return k, errors.New("injected: disk full")
}

func TestFailedSaveKeepsPreviousState(t *testing.T) {
	tests := []struct {
		name  string
		after int
		short bool
	}{
		{"fails at once", 0, false},
		{"fails midway", 20, false},
		{"short write without error", 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			f := open(t, path)
			prev := sample(4)
			if err := f.Save(prev); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			f.wrap = func(w io.Writer) io.Writer { return &failingWriter{w: w, n: tt.after, short: tt.short} }
			if err := f.Save(sample(5)); err == nil {
				t.Fatal("Save succeeded despite the failing writer")
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(before) {
				t.Errorf("state file changed by a failed Save:\n%s\nwas:\n%s", after, before)
			}
			if got, err := f.Load(); err != nil || !equalState(got, prev) {
				t.Errorf("Load = %+v, %v; want the previous state", got, err)
			}
			if left := tempFiles(t, dir); len(left) != 0 {
				t.Errorf("failed Save left %v", left)
			}
			// The store still works once the fault is gone.
			f.wrap = nil
			if err := f.Save(sample(5)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCorruptFileIsAnError(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"blank", " \n"},
		{"torn", `{"epoch": 3, "prim`},
		{"garbage", "\x00\x01\x02"},
		{"null", "null"},
		{"array", `[{"epoch": 3}]`},
		{"wrong type", `{"epoch": "3"}`},
		{"negative epoch", `{"epoch": -1}`},
		{"two objects", `{"epoch": 3}{"epoch": 4}`},
		{"trailing garbage", `{"epoch": 3} x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := OpenFile(path)
			if err == nil {
				f.Close()
				t.Fatal("OpenFile accepted a corrupt state file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not name %s as corrupt", err, path)
			}
			if data, _ := os.ReadFile(path); string(data) != tt.content {
				t.Error("corrupt file was modified")
			}
			// The failed open released the lock.
			f, err = OpenFile(filepath.Join(filepath.Dir(path), "other.json"))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			f = open(t, path)
			f.Close()
		})
	}
}

// A file damaged while sluice runs: Load and Save report it; Save does not
// paper over it.
func TestCorruptedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := open(t, path)
	if err := f.Save(sample(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load = %v; want an error naming %s", err, path)
	}
	if err := f.Save(sample(2)); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Save = %v; want an error naming %s", err, path)
	}
	if data, _ := os.ReadFile(path); string(data) != "{oops" {
		t.Error("Save overwrote a corrupt file")
	}
}

func TestUnknownFieldsAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"epoch": 7, "primary": "db2", "future_field": {"x": 1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := open(t, path)
	if got, err := f.Load(); err != nil || got.Epoch != 7 || got.Primary != "db2" {
		t.Errorf("Load = %+v, %v", got, err)
	}
}

// flock belongs to the open file description, so two OpenFile in one
// process conflict too.
func TestLockConflictInOneProcess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f := open(t, path)
	_, err := OpenFile(path)
	if err == nil {
		t.Fatal("second OpenFile of the same file succeeded")
	}
	for _, want := range []string{path, "in use", "process " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The same file through another path spelling conflicts as well.
	if g, err := OpenFile(filepath.Join(dir, ".", "state.json")); err == nil {
		g.Close()
		t.Error("OpenFile through another spelling of the path succeeded")
	}
	// Another state file in the same directory is independent.
	open(t, filepath.Join(dir, "other.json"))

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := open(t, path) // the lock is released by Close
	g.Close()
}

const holdEnv = "STATESTORE_TEST_HOLD"

// TestHelperHoldLock is not a test: TestLockConflictBetweenProcesses runs
// the test binary with it to hold a lock in another process.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv(holdEnv)
	if path == "" {
		return // run normally it has nothing to do
	}
	f, err := OpenFile(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	f.Close()
	os.Exit(0)
}

func TestLockConflictBetweenProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	_, err = OpenFile(path)
	if err == nil {
		t.Fatal("OpenFile succeeded while another process holds the lock")
	}
	if want := "process " + strconv.Itoa(cmd.Process.Pid); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%s)", err, want)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	open(t, path) // free again once the holder exits
}

func TestClosed(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Load(); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close = %v", err)
	}
	if err := f.Save(sample(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := OpenFile(""); err == nil {
		t.Error("OpenFile(\"\") succeeded")
	}
	missing := filepath.Join(t.TempDir(), "no-such-dir", "state.json")
	if _, err := OpenFile(missing); err == nil || !strings.Contains(err.Error(), "no-such-dir") {
		t.Errorf("OpenFile in a missing directory = %v", err)
	}
	dir := t.TempDir()
	if _, err := OpenFile(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("OpenFile of a directory = %v", err)
	}
}
