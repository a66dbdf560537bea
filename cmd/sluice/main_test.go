package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-proxy/sluice/internal/failover"
)

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binary builds this command once for the tests that run it as a user
// would. -buildvcs=auto stamps the VCS revision when the source tree has
// one, whatever GOFLAGS says (.ci/run sets -buildvcs=false).
func binary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "sluice-cmd-test")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "sluice")
		out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func TestVersionPrintsModuleVersionAndRevision(t *testing.T) {
	out, _, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "sluice ") || strings.Contains(out, "sluice dev") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("sluice version: %q", out)
	}
	// The revision the build was stamped with: none under -buildvcs=false
	// (.ci/run) or outside a git checkout (Go does not stamp from a git
	// worktree either).
	meta, err := exec.Command("go", "version", "-m", binary(t)).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "revision unknown: built without VCS information"
	for _, line := range strings.Split(string(meta), "\n") {
		if _, rev, ok := strings.Cut(line, "vcs.revision="); ok && len(rev) >= 12 {
			want = "revision " + rev[:12]
		}
	}
	if !strings.Contains(out, want) {
		t.Errorf("sluice version: %q, want %q in it", out, want)
	}
}

func TestRejoinHelpHasNoTo(t *testing.T) {
	_, help, _ := run(t, "rejoin", "--help")
	if regexp.MustCompile(`(?m)^\s*-to\b`).MatchString(help) || !strings.Contains(help, "-http") {
		t.Errorf("sluice rejoin --help:\n%s", help)
	}
	_, help, _ = run(t, "switchover", "--help")
	if !regexp.MustCompile(`(?m)^\s*-to\b`).MatchString(help) {
		t.Errorf("sluice switchover --help lacks -to:\n%s", help)
	}
	if _, stderr, err := run(t, "rejoin", "--to", "db2", "db1"); err == nil || !strings.Contains(stderr, "flag provided but not defined: -to") {
		t.Errorf("sluice rejoin --to: %v %q", err, stderr)
	}
}

func TestRefusedFailoverSaysWhy(t *testing.T) {
	var b bytes.Buffer
	printRecord(&b, failover.Record{Kind: "refused", Trigger: "operator", Old: "db1", Epoch: 4,
		Reasons: []string{"candidate db3: received the most (Gtid_IO_Pos 0-1-100)", "refused: db3 lagged 12s when db1 was lost, over failover.max_lag 10s"}})
	want := "refused: db3 lagged 12s when db1 was lost, over failover.max_lag 10s\n" +
		"  primary db1, epoch 4 (unchanged)\n" +
		"  - candidate db3: received the most (Gtid_IO_Pos 0-1-100)\n"
	if got := b.String(); got != want {
		t.Errorf("printRecord(refused):\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(b.String(), "->") || strings.Contains(b.String(), "ok=false") {
		t.Errorf("printRecord(refused) still prints the arrow or ok=false:\n%s", b.String())
	}
}
