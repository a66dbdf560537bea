package move

import "fmt"

// Phase is where a move is. A move goes pending → checking → copying →
// catching-up → cutover → done → cleaned; cutover may go back to
// catching-up (the target did not catch up within HoldTimeout: the held
// statements are released and the move tries again). Before Place, every
// phase may end in cancelled (Cancel) or failed (an error, a refused
// limit, a failover); both leave the clusters and the placement as they
// were.
type Phase string

// The phases of a move.
const (
	PhasePending   Phase = "pending"
	PhaseChecking  Phase = "checking"
	PhaseCopying   Phase = "copying"
	PhaseCatchUp   Phase = "catching-up"
	PhaseCutover   Phase = "cutover"
	PhaseDone      Phase = "done"
	PhaseCleaned   Phase = "cleaned"
	PhaseCancelled Phase = "cancelled"
	PhaseFailed    Phase = "failed"
)

// Terminal reports whether no further transition is possible, except done
// → cleaned.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseDone, PhaseCleaned, PhaseCancelled, PhaseFailed:
		return true
	}
	return false
}

var transitions = map[Phase][]Phase{
	PhasePending:  {PhaseChecking, PhaseCancelled, PhaseFailed},
	PhaseChecking: {PhaseCopying, PhaseCancelled, PhaseFailed},
	PhaseCopying:  {PhaseCatchUp, PhaseCancelled, PhaseFailed},
	PhaseCatchUp:  {PhaseCutover, PhaseCancelled, PhaseFailed},
	PhaseCutover:  {PhaseCatchUp, PhaseDone, PhaseCancelled, PhaseFailed},
	PhaseDone:     {PhaseCleaned},
}

// CanTransition reports whether a move may go from one phase to another.
func CanTransition(from, to Phase) bool {
	for _, p := range transitions[from] {
		if p == to {
			return true
		}
	}
	return false
}

func checkTransition(from, to Phase) error {
	if !CanTransition(from, to) {
		return fmt.Errorf("move: invalid phase transition %s → %s", from, to)
	}
	return nil
}
