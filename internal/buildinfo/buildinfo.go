// Package buildinfo tells which sluice this is: the module version and
// the VCS revision Go stamped into the binary, and the Go version.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version, when set at link time (-ldflags "-X
// github.com/sluice-proxy/sluice/internal/buildinfo.version=v1.2.3"), takes
// the place of the module version.
var version string

// Info describes the running binary. Revision and Time are empty when the
// build carried no VCS information (go run, -buildvcs=false, a source
// tree without .git).
type Info struct {
	Version   string `json:"version"`  // module version: v1.2.3, a pseudo-version, or "(devel)"
	Revision  string `json:"revision"` // commit hash
	Time      string `json:"time"`     // commit time, RFC 3339
	Modified  bool   `json:"modified"` // the tree had uncommitted changes
	GoVersion string `json:"go_version"`
}

// Read returns the running binary's build information.
func Read() Info {
	in := Info{Version: "(devel)", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			in.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		in.Version = version
	}
	return in
}

// ShortRevision is the revision cut to 12 characters, or "unknown".
func (in Info) ShortRevision() string {
	switch {
	case in.Revision == "":
		return "unknown"
	case len(in.Revision) > 12:
		return in.Revision[:12]
	}
	return in.Revision
}

// String is what `sluice version` prints.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sluice %s (revision %s", in.Version, in.ShortRevision())
	if in.Modified {
		b.WriteString(", modified")
	}
	if in.Time != "" {
		fmt.Fprintf(&b, ", committed %s", in.Time)
	}
	if in.Revision == "" {
		b.WriteString(": built without VCS information")
	}
	fmt.Fprintf(&b, ", %s)", in.GoVersion)
	return b.String()
}
