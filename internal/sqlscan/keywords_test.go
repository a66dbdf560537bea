package sqlscan

import "testing"

func TestKeywordTable(t *testing.T) {
	total, worst := 0, 0
	for _, e := range kwEntries {
		if got := lookup([]byte(e.name)); got.name != e.name {
			t.Errorf("lookup(%q) = %q", e.name, got.name)
		}
		lowered := []byte(lower("", []byte(e.name)))
		if got := lookup(lowered); got.name != e.name {
			t.Errorf("lookup(%q) = %q", lowered, got.name)
		}
		probes := 1
		for i := foldHash([]byte(e.name)) & (len(kwSlots) - 1); kwEntries[kwSlots[i]-1].name != e.name; i = (i + 1) & (len(kwSlots) - 1) {
			probes++
		}
		total += probes
		worst = max(worst, probes)
	}
	t.Logf("%d keywords, %.2f probes on average, %d at worst", len(kwEntries), float64(total)/float64(len(kwEntries)), worst)
	if avg := float64(total) / float64(len(kwEntries)); avg > 1.5 || worst > 8 {
		t.Errorf("keyword table probes: average %.2f, worst %d: improve foldHash", avg, worst)
	}
	for _, w := range []string{"", "x", "sbtest1", "SELECTX", "SELEC", "customer_id", "\xff\xfe", "SELECT\x00"} {
		if got := lookup([]byte(w)); got.name != "" {
			t.Errorf("lookup(%q) = %q, want no keyword", w, got.name)
		}
	}
}
