package testbed

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Servers get PR_SET_PDEATHSIG=SIGKILL so that a test binary that dies
// (crash, -timeout panic, SIGKILL) takes its servers with it. Linux sends
// that signal when the *thread* that forked the child exits, not the
// process, and the Go runtime may retire threads. So children are forked
// from one goroutine locked to its OS thread, which lives while any child
// does, and exits (taking its thread with it) when the last one is reaped,
// so that no goroutine outlives the topologies (goleak stays quiet).
var spawner struct {
	mu   sync.Mutex
	reqs chan spawnReq
	live int // children started or being started, not yet reaped
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// spawn starts cmd from the spawner thread. release must be called once
// the child has been reaped (or at once if spawn fails: spawn does that).
func spawn(cmd *exec.Cmd) (release func(), err error) {
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawner.mu.Lock()
	if spawner.reqs == nil {
		spawner.reqs = make(chan spawnReq)
		go spawnLoop(spawner.reqs)
	}
	reqs := spawner.reqs
	spawner.live++
	spawner.mu.Unlock()

	errc := make(chan error, 1)
	reqs <- spawnReq{cmd, errc}
	if err := <-errc; err != nil {
		releaseSpawner()
		return nil, err
	}
	return releaseSpawner, nil
}

func releaseSpawner() {
	spawner.mu.Lock()
	defer spawner.mu.Unlock()
	spawner.live--
	if spawner.live == 0 {
		close(spawner.reqs)
		spawner.reqs = nil
	}
}

func spawnLoop(reqs <-chan spawnReq) {
	// Never unlocked: when the loop ends the thread is destroyed, which is
	// harmless because no child of it is alive any more.
	runtime.LockOSThread()
	for r := range reqs {
		r.errc <- r.cmd.Start()
	}
}
