package topology

// RoleNames are the roles RoleName gives, in the order metrics list them.
var RoleNames = []string{"primary", "replica", "down", "fenced", "writable-ignored", "unknown"}

// RoleName is the one role the snapshot gives server i now, the same for
// the API and the metrics: "fenced" (a demoted old primary, whatever it
// does), "primary" (the epoch's primary until a failover replaces it, even
// while it is down, so there is exactly one; without an epoch yet, the
// primary discovered), "down",
// "writable-ignored" (another writable server, never written to),
// "replica", or "unknown" (read-only and replicating from nobody). A dead
// server keeps its last known Role, which is no role of its own now.
func (s *Snapshot) RoleName(i int) string {
	srv := &s.Servers[i]
	switch {
	case srv.Fenced:
		return "fenced"
	case s.Designated != "" && srv.Name == s.Designated, s.Designated == "" && i == s.Primary:
		return "primary"
	case !srv.Up:
		return "down"
	case srv.Role == RolePrimary:
		return "writable-ignored"
	case srv.Role == RoleReplica:
		return "replica"
	}
	return "unknown"
}
