package testbed

import (
	"os"
	"os/exec"
	"syscall"
)

// process is a started mariadbd; a goroutine reaps it.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped
	err  error         // Wait's result, set before done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process has already been reaped (its pid may
// belong to someone else by then).
func (p *process) signal(sig os.Signal) error {
	if p.exited() {
		return nil
	}
	err := p.cmd.Process.Signal(sig)
	if err != nil && p.exited() {
		return nil
	}
	return err
}

// startProcess starts cmd in its own process group (a Ctrl-C aimed at the
// test binary does not hit the servers before Close can) and reaps it in a
// goroutine. On Linux the child is also tied to this process's life: see
// spawn_linux.go.
func startProcess(cmd *exec.Cmd) (*process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	release, err := spawn(cmd)
	if err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		release()
	}()
	return p, nil
}
