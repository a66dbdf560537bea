package session

import (
	"runtime/debug"
	"time"
)

// Sessions run their commands on worker goroutines, and wait for the next
// command on their own. A goroutine's stack grows to what its deepest call
// needed (a login, a pooled connection's first dial, a relay: 8 KiB and
// more) and the runtime shrinks it only in later garbage collections, by
// half at a time; a session goroutine that only waits needs the minimum
// (2 KiB). With 10,000 idle clients that is the difference between 80 MB
// of stacks and 20 MB. Workers are as many as commands run at once.
//
// The handoff costs two goroutine switches per command on the same P and
// no allocation (the step is the session's own); idle workers exit.

// step is one piece of session work handed to a worker.
type step struct {
	fn    func() error
	err   error
	pan   any    // a panic of fn, contained in the worker
	stack []byte // where it happened
	done  chan struct{}
}

// jobs hands steps to idle workers; a step finds none waiting starts one.
var jobs = make(chan *step)

// workerIdle is how long a worker waits for a step before it exits: the
// workers are as many as steps run at once, recently.
const workerIdle = 250 * time.Millisecond

// run executes st.fn on a worker and waits for it.
func (st *step) run() error {
	select {
	case jobs <- st:
	default:
		go work(st)
	}
	<-st.done
	return st.err
}

func work(st *step) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		runStep(st)
		st.done <- struct{}{}
		// The timer is not re-armed per step: it fires every workerIdle,
		// and the worker exits at a firing with no step since the last.
		busy := true
	wait:
		select {
		case st = <-jobs:
			if st == nil {
				return // StopIdleWorkers
			}
			continue
		case <-t.C:
			if !busy {
				return
			}
			busy = false
			t.Reset(workerIdle)
			goto wait
		}
	}
}

// StopIdleWorkers ends the workers waiting for a step (a proxy that
// closes leaves no goroutine behind); a step started later starts one.
// Workers finishing a step now end within two workerIdle.
func StopIdleWorkers() {
	for {
		select {
		case jobs <- nil:
		default:
			return
		}
	}
}

func runStep(st *step) {
	defer func() {
		if r := recover(); r != nil {
			st.pan, st.stack = r, debug.Stack()
		}
	}()
	st.pan, st.stack = nil, nil
	st.err = st.fn()
}
