// Package statestore keeps the topology decisions that must survive a
// restart: which server is the primary of the current epoch, and which old
// primaries are fenced. A sluice that restarts after a failover reads them
// before routing, so it never writes to a revived old primary that came back
// writable.
//
// The epoch only goes up: Save refuses an epoch not greater than the stored
// one, so of two writers racing (or a stale one waking up) only one wins and
// the state never goes backwards.
//
// File is the embedded local store. A shared store for several sluice
// instances (etcd) implements the same interface.
package statestore

import (
	"errors"
	"slices"
	"time"
)

// State is one topology decision.
type State struct {
	// Epoch numbers decisions; 0 is "no decision yet" (a missing file).
	Epoch uint64 `json:"epoch"`
	// Primary is the name of the server that takes writes in this epoch,
	// Address its address when the decision was made.
	Primary string `json:"primary"`
	Address string `json:"address"`
	// Reason says why: "failover", "switchover", an operator's note…
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	// Changed is when the primary last changed (failover, switchover, an
	// external change followed); zero while it is the one first
	// discovered. Anti-flapping counts from it.
	Changed time.Time `json:"changed,omitzero"`
	// Fenced lists servers demoted and never to be written to until an
	// operator rejoins them.
	Fenced []string `json:"fenced,omitempty"`
}

// IsFenced reports whether name is in s.Fenced.
func (s State) IsFenced(name string) bool {
	return slices.Contains(s.Fenced, name)
}

// Store loads and saves the current State.
type Store interface {
	// Load returns the stored state; State{} (epoch 0) when nothing was
	// ever saved.
	Load() (State, error)
	// Save stores s if s.Epoch is greater than the stored epoch, and fails
	// with an error matching ErrStaleEpoch otherwise.
	Save(s State) error
}

var (
	// ErrStaleEpoch is returned by Save for an epoch not greater than the
	// stored one.
	ErrStaleEpoch = errors.New("statestore: epoch not greater than the stored epoch")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("statestore: store closed")
)
