package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestReadKnowsTheGoVersion(t *testing.T) {
	in := Read()
	if in.GoVersion != runtime.Version() || in.Version == "" {
		t.Errorf("Read() = %+v", in)
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1.2.3", Revision: "0123456789abcdef0123", Time: "2026-12-01T20:00:00Z", GoVersion: "go1.26.1"},
			"sluice v1.2.3 (revision 0123456789ab, committed 2026-12-01T20:00:00Z, go1.26.1)"},
		{Info{Version: "(devel)", Revision: "abc", Modified: true, GoVersion: "go1.26.1"},
			"sluice (devel) (revision abc, modified, go1.26.1)"},
		{Info{Version: "(devel)", GoVersion: "go1.26.1"},
			"sluice (devel) (revision unknown: built without VCS information, go1.26.1)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLinkerVersionWins(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = "v9.9.9"
	if in := Read(); in.Version != "v9.9.9" || !strings.HasPrefix(in.String(), "sluice v9.9.9 ") {
		t.Errorf("with -X version: %+v", in)
	}
}
