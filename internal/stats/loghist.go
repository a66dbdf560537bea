package stats

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// The digests and the per-second series keep latencies in a small
// log-scale histogram and estimate p50 and p99 from it.
//
// Bucket 0 holds everything under 2^13 ns (8.2 µs). Above that every
// power of two is split in two halves, [2^k, 1.5·2^k) and [1.5·2^k,
// 2^(k+1)), up to bucket 47, which starts at 2^36 ns (68.7 s) and holds
// everything longer. So a bucket is at most 1.5 times as wide as its lower
// bound. A quantile is found in the right bucket and interpolated
// linearly within it; the estimate is therefore never off by more than the
// bucket's width — at most 50% of the true value, and far less for the
// usual spread of latencies. Digests also clamp it to their exact min and
// max, so a statement that always takes the same time gets its exact
// quantiles.
const (
	logBuckets  = 48
	logMinShift = 13
)

func logBucket(ns int64) int {
	if ns < 1<<logMinShift {
		return 0
	}
	k := bits.Len64(uint64(ns)) - 1
	half := int(uint64(ns)>>(k-1)) & 1
	return min(1+2*(k-logMinShift)+half, logBuckets-1)
}

// logLower is bucket i's lower bound in nanoseconds.
func logLower(i int) float64 {
	if i <= 0 {
		return 0
	}
	j := i - 1
	return math.Ldexp(1+float64(j&1)/2, logMinShift+j/2)
}

// logUpper is bucket i's upper bound in nanoseconds; +Inf for the last.
func logUpper(i int) float64 {
	if i >= logBuckets-1 {
		return math.Inf(1)
	}
	return logLower(i + 1)
}

type logHist [logBuckets]atomic.Uint64

func (h *logHist) load(dst *[logBuckets]uint64) {
	for i := range h {
		dst[i] += h[i].Load()
	}
}

func (h *logHist) clear() {
	for i := range h {
		h[i].Store(0)
	}
}

// quantile estimates the q-quantile (0 < q ≤ 1) in nanoseconds from bucket
// counts, clamped to [lo, hi]. It returns 0 for an empty histogram.
func quantile(b *[logBuckets]uint64, q, lo, hi float64) float64 {
	var n uint64
	for _, c := range b {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := q * float64(n) // the rank-th smallest value, 1-based
	var seen float64
	v := hi
	for i, c := range b {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			l, u := logLower(i), logUpper(i)
			if math.IsInf(u, 1) {
				u = 1.5 * l
				if !math.IsInf(hi, 1) {
					u = max(hi, l)
				}
			}
			v = l + (u-l)*(rank-seen)/float64(c)
			break
		}
		seen += float64(c)
	}
	return min(max(v, lo), hi)
}
