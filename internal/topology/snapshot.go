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
	SQLRunning  bool
	Lag         time.Duration
	LagKnown    bool
	SourceAddr  string // host:port it replicates from
	GTIDPos     string
	Version     string
	LastError   string
	LastCheck   time.Time
	CheckTime   time.Duration
}

// Snapshot is an immutable view of the topology. Never modify one that has
// been published.
type Snapshot struct {
	Servers []Server
	Primary int // index into Servers, -1 when there is none
	Seq     uint64
	Time    time.Time
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
