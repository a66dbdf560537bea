package stats

import "testing"

// The fake source has ended two moves and runs one.
func (f *fakeSource) MoveCounts() (map[string]uint64, int64, int) {
	return map[string]uint64{"done": 1, "failed": 1}, 1234, 1
}

func TestMoveMetrics(t *testing.T) {
	st := newStats(t, testSource(), Options{})
	mfs := scrape(t, st)
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"sluice_moves_total", "result=done", 1},
		{"sluice_moves_total", "result=failed", 1},
		{"sluice_moves_total", "result=cancelled", 0},
		{"sluice_moves_running", "", 1},
		{"sluice_move_rows_copied_total", "", 1234},
	} {
		var labels []string
		if c.label != "" {
			labels = append(labels, c.label)
		}
		if got := value(t, mfs, c.name, labels...); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.label, got, c.want)
		}
	}
}
