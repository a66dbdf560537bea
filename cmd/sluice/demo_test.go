package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoRun is a running `sluice demo` with what it printed until ready.
type demoRun struct {
	cmd    *exec.Cmd
	out    string // stdout up to the ready message
	dir    string // the servers' data directory
	stdout io.ReadCloser
	stderr io.ReadCloser
	errBuf *bytes.Buffer
	done   chan error
}

// startDemo runs the built binary's demo on free ports with one replica
// and waits until it is ready.
func startDemo(t *testing.T) *demoRun {
	t.Helper()
	cmd := exec.Command(binary(t), "demo", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--replicas", "1")
	d := &demoRun{cmd: cmd, done: make(chan error, 1)}
	var err error
	if d.stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if d.stderr, err = cmd.StderrPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
	})
	d.errBuf = &bytes.Buffer{}
	errDone := make(chan struct{})
	go func() {
		io.Copy(d.errBuf, d.stderr) // until the pipe closes
		close(errDone)
	}()
	ready := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(d.stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C stops everything") {
				ready <- b.String()
				return
			}
		}
		ready <- b.String()
	}()
	go func() {
		<-errDone
		d.done <- cmd.Wait()
	}()
	select {
	case d.out = <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the demo was not ready within 3 minutes\nstderr:\n%s", d.errBuf)
	}
	if !strings.Contains(d.out, "Ctrl-C stops everything") {
		t.Fatalf("the demo ended before it was ready:\n%s\nstderr:\n%s", d.out, d.errBuf)
	}
	m := regexp.MustCompile(`state_file: "([^"]+)"`).FindStringSubmatch(d.out)
	if m == nil {
		t.Fatalf("no state_file in the demo's output:\n%s", d.out)
	}
	d.dir = filepath.Dir(m[1])
	if _, err := os.Stat(d.dir); err != nil {
		t.Fatalf("the demo's directory: %v", err)
	}
	return d
}

// stop sends sig and checks that the demo exits and its directory is gone.
func (d *demoRun) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatalf("the demo did not exit within a minute of %v", sig)
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Errorf("after %v the demo's directory %s is still there (%v)\nstderr:\n%s", sig, d.dir, err, d.errBuf)
	}
	if st := d.cmd.ProcessState; st != nil && !st.Exited() {
		t.Errorf("after %v the demo died of a signal (%v) instead of exiting", sig, st)
	}
}

func TestDemoCleansUpOnEverySignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			startDemo(t).stop(t, sig)
		})
	}
	// sluice demo | head: the output pipes close, then Ctrl-C. The writes
	// that follow ("stopping...") must not kill it before it cleans up.
	t.Run("closed output", func(t *testing.T) {
		d := startDemo(t)
		d.stdout.Close()
		d.stderr.Close()
		d.stop(t, syscall.SIGINT)
	})
}

// TestDemoCommandsWorkAsPrinted runs what the demo tells its user to run:
// the switchover command, and the command that finds the primary's pid,
// which must name the new primary afterwards.
func TestDemoCommandsWorkAsPrinted(t *testing.T) {
	d := startDemo(t)
	defer d.stop(t, syscall.SIGINT)
	pids := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(db\d)\s+\S+ \((?:primary|replica) at start, pid (\d+)\)`).FindAllStringSubmatch(d.out, -1) {
		pids[m[1]] = m[2]
	}
	kill := regexp.MustCompile(`(?m)^\s+kill -9 \$\((.+)\)$`).FindStringSubmatch(d.out)
	sw := regexp.MustCompile(`(?m)^planned primary change:\s+(.+)$`).FindStringSubmatch(d.out)
	if len(pids) != 2 || kill == nil || sw == nil {
		t.Fatalf("the demo's output lacks the servers' pids or the commands:\n%s", d.out)
	}
	primaryPID := func() string {
		t.Helper()
		out, err := exec.Command("sh", "-c", kill[1]).Output()
		if err != nil {
			t.Fatalf("%s: %v", kill[1], err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := primaryPID(); got != pids["db1"] {
		t.Errorf("the primary's pid is %q, want db1's %s", got, pids["db1"])
	}
	if !strings.HasPrefix(sw[1], binary(t)+" switchover --http 127.0.0.1:") {
		t.Errorf("the switchover command %q does not start with this binary's absolute path", sw[1])
	}
	if out, err := exec.Command("sh", "-c", sw[1]).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sw[1], err, out)
	}
	if got := primaryPID(); got != pids["db2"] {
		t.Errorf("after the switchover the primary's pid is %q, want db2's %s", got, pids["db2"])
	}
}
