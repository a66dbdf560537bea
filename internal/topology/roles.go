package topology

// RoleNames are the roles RoleName gives, in the order metrics list them.
var RoleNames = []string{"primary", "replica", "down", "fenced", "writable-ignored", "unknown"}

// RoleName is the one role the snapshot gives server i now, the same for
// the API and the metrics: "fenced" (a demoted old primary, whatever it
// does), "down", "primary" (only the snapshot's primary, so never two),
// "writable-ignored" (another writable server, never written to),
// "replica", or "unknown" (read-only and replicating from nobody). A dead
// server keeps its last known Role, which is no role of its own now.
func (s *Snapshot) RoleName(i int) string {
	srv := &s.Servers[i]
	switch {
	case srv.Fenced:
		return "fenced"
	case !srv.Up:
		return "down"
	case i == s.Primary:
		return "primary"
	case srv.Role == RolePrimary:
		return "writable-ignored"
	case srv.Role == RoleReplica:
		return "replica"
	}
	return "unknown"
}
