package testbed

import (
	"fmt"
	"strconv"
	"strings"
)

// parseGTIDList parses a MariaDB GTID list such as "0-1-42,1-3-7" into
// domain → sequence number.
func parseGTIDList(s string) (map[uint32]uint64, error) {
	out := make(map[uint32]uint64)
	for g := range strings.SplitSeq(s, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		parts := strings.Split(g, "-")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bad GTID %q in %q", g, s)
		}
		domain, err1 := strconv.ParseUint(parts[0], 10, 32)
		_, err2 := strconv.ParseUint(parts[1], 10, 32)
		seq, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("bad GTID %q in %q", g, s)
		}
		out[uint32(domain)] = seq
	}
	return out, nil
}

// covers reports whether position have includes everything in want: for
// each domain of want, have's sequence number is at least as high.
func covers(have, want map[uint32]uint64) bool {
	for d, seq := range want {
		if have[d] < seq {
			return false
		}
	}
	return true
}
