package failover

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/statestore"
	"github.com/sluice-proxy/sluice/internal/topology"
)

type noTraffic struct{}

func (noTraffic) InFlight(string) int64          { return 0 }
func (noTraffic) AbortPinned(string, string) int { return 0 }
func (noTraffic) CloseIdle(string)               {}

func suspectManager(t *testing.T, auto bool) (*Manager, *topology.Monitor) {
	t.Helper()
	mon := topology.NewMonitor(topology.Config{Servers: []topology.ServerConfig{{Name: "db1", Addr: "db1:3306"}, {Name: "db2", Addr: "db2:3306"}}}, slog.New(slog.DiscardHandler))
	store, err := statestore.OpenFile(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Save(statestore.State{Epoch: 1, Primary: "db1", Address: "db1:3306", Reason: reasonDiscovered}); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(Config{Auto: auto, HoldTimeout: 5 * time.Second, Timeout: time.Second}, mon, store, noTraffic{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return m, mon
}

// A session that cannot reach the primary holds writes at once, in a hold
// published before Suspect returns; later sessions join it; a check after
// the suspicion that finds the primary well ends it.
func TestSuspectHoldsWritesAtOnce(t *testing.T) {
	m, mon := suspectManager(t, true)
	if h, why := m.Suspect("db2"); h != nil || why != "" {
		t.Fatalf("Suspect of a replica: %v %q, want nothing", h, why)
	}
	h, why := m.Suspect("db1")
	if h == nil || why != "" {
		t.Fatalf("Suspect(db1) = %v, %q; want a hold", h, why)
	}
	if got := mon.Snapshot().Hold; got != h {
		t.Fatalf("published hold %v, want the one returned", got)
	}
	if h2, _ := m.Suspect("db1"); h2 != h {
		t.Errorf("a second suspicion took another hold")
	}
	// A check that began before the suspicion does not end it.
	des := &topology.Server{Name: "db1", Up: true, LastCheck: time.Now().Add(-time.Second)}
	if m.cleared(des) {
		t.Errorf("a check from before the suspicion cleared it")
	}
	des.LastCheck = time.Now().Add(time.Millisecond)
	if !m.cleared(des) {
		t.Errorf("a good check after the suspicion did not clear it")
	}
	des.LastError = "connection refused"
	if m.cleared(des) {
		t.Errorf("a failed check cleared the suspicion")
	}
	m.endSuspect(true)
	select {
	case <-h.Done:
	default:
		t.Errorf("the hold did not end with the suspicion")
	}
}

// With failover.auto off nothing is held and the writer is told why.
func TestSuspectWithoutAutoFailover(t *testing.T) {
	m, mon := suspectManager(t, false)
	h, why := m.Suspect("db1")
	if h != nil || !strings.Contains(why, "failover.auto is off") {
		t.Fatalf("Suspect = %v, %q; want no hold and the reason", h, why)
	}
	if mon.Snapshot().Hold != nil {
		t.Errorf("a hold was published")
	}
}
