package session

import (
	"runtime/debug"
)

// Sessions run their commands on worker goroutines, and wait for the next
// command on their own. A goroutine's stack grows to what its deepest call
// needed (a login, a pooled connection's first dial, a relay: 8 KiB and
// more) and the runtime shrinks it only in later garbage collections, by
// half at a time; a session goroutine that only waits needs the minimum
// (2 KiB). With 10,000 idle clients that is the difference between 80 MB
// of stacks and 20 MB. Workers are as many as commands run at once.
//
// The handoff costs two goroutine switches per command on the same P, no
// allocation: a worker is a channel, the step is the session's own.

// step is one piece of session work handed to a worker.
type step struct {
	fn    func() error
	err   error
	pan   any    // a panic of fn, contained in the worker
	stack []byte // where it happened
	done  chan struct{}
}

// maxIdleWorkers bounds the workers kept for the next commands; beyond it a
// worker that finishes exits.
const maxIdleWorkers = 256

var idleWorkers = make(chan chan *step, maxIdleWorkers)

// run executes st.fn on a worker and waits for it.
func (st *step) run() error {
	var w chan *step
	select {
	case w = <-idleWorkers:
	default:
		w = make(chan *step)
		go work(w)
	}
	w <- st
	<-st.done
	return st.err
}

func work(w chan *step) {
	for st := range w {
		runStep(st)
		select {
		case idleWorkers <- w:
			st.done <- struct{}{}
		default:
			st.done <- struct{}{}
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
