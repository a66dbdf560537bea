package stats

import "github.com/prometheus/client_golang/prometheus"

// MoveSource is implemented by a Source that runs online moves.
type MoveSource interface {
	// MoveCounts: ended moves by result (done, failed, cancelled,
	// refused), rows copied by every move of this process, moves running.
	MoveCounts() (results map[string]uint64, rowsCopied int64, running int)
}

var (
	descMovesTotal  = desc("sluice_moves_total", "Online moves ended, by result (done, failed, cancelled, refused).", "result")
	descMoveRows    = desc("sluice_move_rows_copied_total", "Rows the online moves' snapshot copies wrote to target clusters.")
	descMovesActive = desc("sluice_moves_running", "Online moves not yet ended.")
)

func init() {
	allDescs = append(allDescs, descMovesTotal, descMoveRows, descMovesActive)
}

// moveResults are always exposed, so that rate() starts at 0.
var moveResults = []string{"done", "failed", "cancelled", "refused"}

func (st *Stats) collectMoves(m func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	ms, ok := st.src.(MoveSource)
	if !ok {
		return
	}
	results, rows, running := ms.MoveCounts()
	for _, r := range moveResults {
		m(descMovesTotal, counter, float64(results[r]), r)
	}
	m(descMoveRows, counter, float64(rows))
	m(descMovesActive, gauge, float64(running))
}
