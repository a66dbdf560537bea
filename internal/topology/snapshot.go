// Package topology watches the servers and publishes immutable snapshots of
// who is primary, who replicates, and who is healthy. Routers read the
// latest snapshot without locking.
package topology

import "time"

// Role is what a server does in the replication topology.
type Role uint8

const (
	RoleUnknown Role = iota
	RolePrimary
	RoleReplica
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleReplica:
		return "replica"
	}
	return "unknown"
}

// Server is one server's last known state.
type Server struct {
	Name    string
	Addr    string
	Backup  bool
	Weight  int
	MaxConn int

	Up          bool // passed Rise checks in a row since it last went down
	Role        Role
	ReadOnly    bool
	Replicating bool // has a replication source configured
	IORunning   bool
	// IOReconnecting: the IO thread is not stopped but retrying its
	// connection to the source (Slave_IO_Running = Connecting): it lost it.
	IOReconnecting bool
	SQLRunning     bool
	Lag            time.Duration
	LagKnown       bool
	SourceAddr     string // host:port it replicates from
	GTIDPos        string
	Version        string
	LastError      string
	LastCheck      time.Time
	CheckTime      time.Duration
	ServerID       uint32
	// MaxAllowedPacket is the server's max_allowed_packet (0 until read):
	// a larger command is refused by sluice up front, never sent.
	MaxAllowedPacket int

	// LagExcluded is set while the replica's lag is unknown or over the
	// limit, and cleared only after Rise checks in a row within it, so a
	// replica hovering at the limit does not flap.
	LagExcluded bool
	// Admin is the operator's state: "" (in rotation), "drain" or
	// "maintenance".
	Admin AdminState
	// SourceLost is set on a replica whose IO thread lost a source that
	// sluice's own checks cannot reach either: the source is failing, not
	// the replica, so it keeps serving reads at the lag it had (nothing
	// newer can be written meanwhile, short of a new primary).
	SourceLost bool
	// Readable: may take new reads as a replica now.
	Readable bool
	// Fenced: demoted by a failover and never written to until an operator
	// rejoins it.
	Fenced bool
}

// AdminState is an operator's override of a server's rotation.
type AdminState string

const (
	AdminNone        AdminState = ""
	AdminDrain       AdminState = "drain"       // no new work; sessions already on it finish
	AdminMaintenance AdminState = "maintenance" // out of rotation at once; pinned sessions are cut
)

// State is a one-word summary for operators: up, down, drain,
// maintenance, lagging, or stopped (replication threads not running).
func (s *Server) State() string {
	switch {
	case s.Admin != AdminNone:
		return string(s.Admin)
	case !s.Up:
		return "down"
	case s.Role == RoleReplica && (!s.IORunning && !s.SourceLost || !s.SQLRunning):
		return "stopped"
	case s.Role == RoleReplica && s.LagExcluded:
		return "lagging"
	}
	return "up"
}

// Snapshot is an immutable view of the topology. Never modify one that has
// been published.
type Snapshot struct {
	Servers []Server
	Primary int // index into Servers, -1 when there is none
	Seq     uint64
	Time    time.Time

	// Epoch and Designated come from the failover manager's durable
	// state: when Designated is set only that server may be the primary,
	// whatever else is writable. Epoch 0 means no decision yet, and the
	// primary is discovered.
	Epoch      uint64
	Designated string
	// Hold, when set, holds new writes and transactions while the primary
	// changes (switchover, failover): sessions wait for Done or until
	// Deadline.
	Hold *Hold
	// Alert says why there is no primary when the failover manager knows
	// (a refused failover); it is part of the error writers get.
	Alert string
}

// Hold is a pause of new primary work. Done is closed after a snapshot
// without the hold has been published.
type Hold struct {
	Done     <-chan struct{}
	Deadline time.Time
	Reason   string
}

// PrimaryServer returns the primary, if any.
func (s *Snapshot) PrimaryServer() (*Server, bool) {
	if s == nil || s.Primary < 0 {
		return nil, false
	}
	return &s.Servers[s.Primary], true
}

// ByName finds a server.
func (s *Snapshot) ByName(name string) (*Server, bool) {
	for i := range s.Servers {
		if s.Servers[i].Name == name {
			return &s.Servers[i], true
		}
	}
	return nil, false
}
