package wire

import (
	"bytes"
	"encoding/binary"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// Session-state change types (the first byte of each entry of an OK
// packet's session-state information).
const (
	sessionTrackSystemVariables byte = 0
)

// GTIDSink receives the GTID of every transaction a backend connection
// committed, as the server reports it (session tracking of last_gtid),
// before the OK packet that carries it reaches the client.
type GTIDSink interface {
	NoteGTID(g gtid.GTID)
}

var lastGTIDName = []byte("last_gtid")

// StripSessionState turns an OK packet sent under CLIENT_SESSION_TRACK
// into the shape a client without it expects, and reports the last_gtid
// value the server reported in it, if any.
//
// sluice asks backends for session tracking (to learn each write's GTID)
// but offers it to no client: a pooled connection's tracker reports belong
// to whichever session last used it. With tracking, an OK whose status has
// SERVER_SESSION_STATE_CHANGED carries the info as a length-encoded string
// followed by the length-encoded session-state data; without it, the info
// alone (MariaDB writes it length-encoded either way, and only when it is
// not empty). So the state is cut off and the flag cleared, in place; the
// result aliases p. An OK without the flag is already in both shapes and is
// returned as it is; so is one that does not parse, rather than cut it at a
// guessed place.
func StripSessionState(p []byte) (out []byte, g gtid.GTID, hasGTID bool) {
	if len(p) < 1 || p[0] != iOK {
		return p, g, false
	}
	i := 1
	for range 2 { // affected rows, last insert id
		_, n, null, ok := ReadLenEncInt(p[i:])
		if !ok || null {
			return p, g, false
		}
		i += n
	}
	if len(p) < i+4 {
		return p, g, false
	}
	statusAt := i
	status := binary.LittleEndian.Uint16(p[statusAt:])
	if status&StatusSessionStateChange == 0 {
		return p, g, false
	}
	i += 4
	info, n, ok := ReadLenEncString(p[i:])
	if !ok {
		return p, g, false
	}
	end := i + n
	if len(info) == 0 {
		end = i // no info: nothing follows the warnings
	}
	state, _, ok := ReadLenEncString(p[i+n:])
	if !ok {
		return p, g, false
	}
	g, hasGTID = lastGTID(state)
	binary.LittleEndian.PutUint16(p[statusAt:], status&^StatusSessionStateChange)
	return p[:end], g, hasGTID
}

// lastGTID finds the last_gtid system variable among session-state
// entries. Entries of other types are skipped by their length.
func lastGTID(state []byte) (g gtid.GTID, found bool) {
	for len(state) > 0 {
		typ := state[0]
		data, n, ok := ReadLenEncString(state[1:])
		if !ok {
			return g, found
		}
		state = state[1+n:]
		if typ != sessionTrackSystemVariables {
			continue
		}
		name, k, ok := ReadLenEncString(data)
		if !ok || !bytes.Equal(name, lastGTIDName) {
			continue
		}
		val, _, ok := ReadLenEncString(data[k:])
		if !ok {
			continue
		}
		if v, ok := gtid.ParseBytes(val); ok {
			g, found = v, true // the last report in the packet wins
		}
	}
	return g, found
}
