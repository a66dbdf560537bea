package stats

import (
	"math"
	"sync"
	"sync/atomic"
)

// SeriesSeconds is how far back Series goes, at one point per second.
const SeriesSeconds = 15 * 60

// Point is one second of the series.
type Point struct {
	T      int64   `json:"t"`      // unix seconds
	QPS    float64 `json:"qps"`    // commands that finished in that second
	P50    float64 `json:"p50_ms"` // milliseconds, 0 when no command finished
	P99    float64 `json:"p99_ms"` // milliseconds, 0 when no command finished
	Errors float64 `json:"errors"` // error packets sent to clients (Stats.ClientError)
}

// ringSize is a power of two above SeriesSeconds, so that the second
// being written never shares a slot with one Series reads.
const ringSize = 1024

// secSlot holds one second. Statement rotates a slot lazily when it
// first writes into it in a new second: no ticker goroutine is needed.
type secSlot struct {
	sec    atomic.Int64
	count  atomic.Uint64
	errors atomic.Uint64
	hist   logHist
	mu     sync.Mutex // taken only to rotate
}

type series struct {
	slots [ringSize]secSlot
}

func (r *series) add(sec, ns int64, err bool) {
	s := &r.slots[sec&(ringSize-1)]
	if cur := s.sec.Load(); cur != sec {
		if cur > sec || !s.rotate(sec) {
			return // a clock that went back: the slot holds a later second
		}
	}
	s.count.Add(1)
	if err {
		s.errors.Add(1)
	}
	s.hist[logBucket(ns)].Add(1)
}

// addError counts an error in second sec (see Stats.ClientError).
func (r *series) addError(sec int64) {
	s := &r.slots[sec&(ringSize-1)]
	if cur := s.sec.Load(); cur != sec {
		if cur > sec || !s.rotate(sec) {
			return
		}
	}
	s.errors.Add(1)
}

// rotate clears the slot for sec, unless another goroutine did it first.
// Counters are cleared before sec is published, so that no writer that saw
// the new second loses its sample.
func (s *secSlot) rotate(sec int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cur := s.sec.Load(); {
	case cur == sec:
		return true
	case cur > sec:
		return false
	}
	s.count.Store(0)
	s.errors.Store(0)
	s.hist.clear()
	s.sec.Store(sec)
	return true
}

// window adds up the seconds [from, to) into b and returns the count and
// errors.
func (r *series) window(from, to int64, b *[logBuckets]uint64) (count, errors uint64) {
	for t := max(from, to-SeriesSeconds); t < to; t++ {
		s := &r.slots[t&(ringSize-1)]
		if s.sec.Load() != t {
			continue
		}
		count += s.count.Load()
		errors += s.errors.Load()
		s.hist.load(b)
	}
	return count, errors
}

// Series returns the last SeriesSeconds complete seconds, oldest first,
// one point per second; the second in progress is left out so that the
// last point is not a partial one. A second in which nothing finished is
// a point of zeros.
func (st *Stats) Series() []Point {
	end := st.now().Unix()
	pts := make([]Point, 0, SeriesSeconds)
	for t := end - SeriesSeconds; t < end; t++ {
		var b [logBuckets]uint64
		n, errs := st.series.window(t, t+1, &b)
		p := Point{T: t, QPS: float64(n), Errors: float64(errs)}
		if n > 0 {
			p.P50 = quantile(&b, 0.5, 0, math.Inf(1)) / 1e6
			p.P99 = quantile(&b, 0.99, 0, math.Inf(1)) / 1e6
		}
		pts = append(pts, p)
	}
	return pts
}
