package move

import (
	"errors"
	"time"
)

// View is a move as the admin API and the dashboard show it: Status with
// an id, durations in milliseconds and objects as text.
type View struct {
	ID              string         `json:"id"`
	Objects         []string       `json:"objects"`
	Source          string         `json:"source"`
	Target          string         `json:"target"`
	Phase           Phase          `json:"phase"`
	SnapshotFrom    string         `json:"snapshot_from,omitempty"`
	SnapshotGTID    string         `json:"snapshot_gtid,omitempty"`
	Tables          int            `json:"tables"`
	RowsCopied      int64          `json:"rows_copied"`
	RowsTotal       int64          `json:"rows_total"`
	RowsPerSec      float64        `json:"rows_per_sec"`
	CopyMS          float64        `json:"copy_ms"`
	LagGTIDs        uint64         `json:"lag_gtids"`
	LagSeconds      int64          `json:"lag_seconds"`
	CatchUpMS       float64        `json:"catch_up_ms"`
	CutoverAttempts int            `json:"cutover_attempts"`
	HoldMS          float64        `json:"hold_ms"`
	HoldDrainMS     float64        `json:"hold_drain_ms"`
	HoldApplyMS     float64        `json:"hold_apply_ms"`
	HoldVerifyMS    float64        `json:"hold_verify_ms"`
	ChecksumsEqual  int            `json:"checksums_equal"`
	Checksums       []ChecksumView `json:"checksums,omitempty"`
	Started         time.Time      `json:"started"`
	Ended           time.Time      `json:"ended,omitzero"`
	Error           string         `json:"error,omitempty"`
	Warnings        []string       `json:"warnings,omitempty"`
	LeftOnTarget    bool           `json:"left_on_target,omitempty"`
}

// ChecksumView is CHECKSUM TABLE of a moved table on both primaries
// under the cutover's hold.
type ChecksumView struct {
	Table  string `json:"table"`
	Source int64  `json:"source"`
	Target int64  `json:"target"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// View returns the status as the API shows it.
func (s Status) View(id string) View {
	v := View{ID: id, Source: s.Source, Target: s.Target, Phase: s.Phase,
		SnapshotFrom: s.SnapshotFrom, SnapshotGTID: s.SnapshotGTID, Tables: s.Tables,
		RowsCopied: s.RowsCopied, RowsTotal: s.RowsTotal, RowsPerSec: s.RowsPerSec, CopyMS: ms(s.CopyTime),
		LagGTIDs: s.LagGTIDs, LagSeconds: s.LagSeconds, CatchUpMS: ms(s.CatchUpTime),
		CutoverAttempts: s.CutoverAttempts, HoldMS: ms(s.Hold), HoldDrainMS: ms(s.HoldDrain),
		HoldApplyMS: ms(s.HoldApply), HoldVerifyMS: ms(s.HoldVerify),
		Started: s.Started, Ended: s.Ended, Error: s.Error, Warnings: s.Warnings, LeftOnTarget: s.LeftOnTarget}
	for _, o := range s.Objects {
		v.Objects = append(v.Objects, o.String())
	}
	for _, c := range s.Checksums {
		if c.Source == c.Target {
			v.ChecksumsEqual++
		}
		v.Checksums = append(v.Checksums, ChecksumView{Table: c.Table.String(), Source: c.Source, Target: c.Target})
	}
	return v
}

// Errors of the admin side of moves (the registry in front of the
// engine); test with errors.Is.
var (
	// ErrInvalid: the request names objects or clusters wrongly.
	ErrInvalid = errors.New("invalid move request")
	// ErrNotFound: no move has the id given.
	ErrNotFound = errors.New("no such move")
)
