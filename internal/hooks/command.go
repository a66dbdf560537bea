package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// waitDelay bounds how long a command that has exited, or been killed, may
// keep its output open through processes that left its process group.
const waitDelay = 2 * time.Second

func runCommand(parent context.Context, cfg Config, ev Event) error {
	ctx, cancel := context.WithTimeout(parent, cfg.Timeout)
	defer cancel()
	name := cfg.Command[0]
	cmd := exec.CommandContext(ctx, name, cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), eventEnv(ev)...)
	out := &tail{max: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out // stdin is /dev/null
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)

	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// It succeeded, but left a background process holding its output.
		return nil
	case parent.Err() != nil:
		return fmt.Errorf("hook command %s: stopped: %w%s", name, parent.Err(), out.suffix())
	case ctx.Err() != nil:
		return fmt.Errorf("hook command %s: killed after the %s timeout%s", name, cfg.Timeout, out.suffix())
	}
	return fmt.Errorf("hook command %s: %w%s", name, err, out.suffix())
}

// eventEnv is the event as SLUICE_* environment variables.
func eventEnv(ev Event) []string {
	vars := [][2]string{
		{"SLUICE_EVENT", ev.Kind},
		{"SLUICE_PHASE", ev.Phase},
		{"SLUICE_OLD_PRIMARY", ev.OldPrimary},
		{"SLUICE_NEW_PRIMARY", ev.NewPrimary},
		{"SLUICE_OLD_ADDRESS", ev.OldAddress},
		{"SLUICE_NEW_ADDRESS", ev.NewAddress},
		{"SLUICE_EPOCH", strconv.FormatUint(ev.Epoch, 10)},
		{"SLUICE_REASON", ev.Reason},
		{"SLUICE_TIME", ev.Time.UTC().Format(time.RFC3339Nano)},
	}
	if ev.Cluster != "" {
		vars = append(vars, [2]string{"SLUICE_CLUSTER", ev.Cluster})
	}
	env := make([]string, len(vars))
	for i, kv := range vars {
		// exec refuses a NUL in the environment.
		env[i] = kv[0] + "=" + strings.ReplaceAll(kv[1], "\x00", "")
	}
	return env
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.dropped += int64(len(t.buf) + len(p) - t.max)
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.dropped += int64(over)
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// suffix formats the output for an error message: "" when there was none.
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(strings.ToValidUTF8(string(t.buf), "\uFFFD"))
	if s == "" {
		return ""
	}
	if t.dropped > 0 {
		return fmt.Sprintf("; output (last %d bytes): %q", len(t.buf), s)
	}
	return fmt.Sprintf("; output: %q", s)
}
