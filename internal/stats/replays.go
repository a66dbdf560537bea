package stats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-proxy/sluice/internal/session"
)

var descReplays = desc("sluice_transaction_replays_total", "Open transactions cut by a primary change (failover, switchover, lost primary), by what became of them: ok (replayed on the new primary with every result the same), mismatch (a result differed: refused), too_big (over failover.replay_max_size), not_replayable (something in it cannot be proven equal), failed (the replay itself failed: no new primary, an error), commit_unknown (cut while its COMMIT was in flight: never replayed).", "result")

var _ session.ReplayObserver = (*Stats)(nil)

// TransactionReplay counts a transaction cut by a primary change by its
// outcome.
func (st *Stats) TransactionReplay(result string) {
	st.replays.add(result)
}

// TransactionReplays returns the cut transactions by outcome.
func (st *Stats) TransactionReplays() map[string]uint64 {
	out := map[string]uint64{}
	st.replays.each(func(k string, n uint64) { out[k] = n })
	return out
}

func (st *Stats) collectReplays(m func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	r := st.TransactionReplays()
	for _, k := range sortedKeys(r) {
		m(descReplays, counter, float64(r[k]), k)
	}
}
