package wire

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/gtid"
)

// trackedOK builds an OK packet as a server sends it under
// CLIENT_SESSION_TRACK, with the given info and session-state entries.
func trackedOK(affected, insertID uint64, status, warnings uint16, info string, entries ...[]byte) []byte {
	b := []byte{iOK}
	b = AppendLenEncInt(b, affected)
	b = AppendLenEncInt(b, insertID)
	b = binary.LittleEndian.AppendUint16(b, status)
	b = binary.LittleEndian.AppendUint16(b, warnings)
	if status&StatusSessionStateChange == 0 {
		if info != "" {
			b = AppendLenEncString(b, []byte(info))
		}
		return b
	}
	b = AppendLenEncString(b, []byte(info))
	var state []byte
	for _, e := range entries {
		state = append(state, e...)
	}
	return AppendLenEncString(b, state)
}

func sysvarEntry(name, value string) []byte {
	data := AppendLenEncString(nil, []byte(name))
	data = AppendLenEncString(data, []byte(value))
	return AppendLenEncString([]byte{sessionTrackSystemVariables}, data)
}

// untrackedOK is the same OK as a client without session tracking gets it.
func untrackedOK(affected, insertID uint64, status, warnings uint16, info string) []byte {
	return trackedOK(affected, insertID, status&^StatusSessionStateChange, warnings, info)
}

func TestStripSessionState(t *testing.T) {
	const st = StatusAutocommit | StatusSessionStateChange
	schema := AppendLenEncString([]byte{1}, AppendLenEncString(nil, []byte("app")))
	cases := []struct {
		name    string
		in      []byte
		want    []byte
		gtid    gtid.GTID
		hasGTID bool
	}{
		{"no state change", trackedOK(1, 7, StatusAutocommit, 0, ""), untrackedOK(1, 7, StatusAutocommit, 0, ""), gtid.GTID{}, false},
		{"no state change, info", trackedOK(3, 0, StatusAutocommit, 1, "Rows matched: 3"), untrackedOK(3, 0, StatusAutocommit, 1, "Rows matched: 3"), gtid.GTID{}, false},
		{"last_gtid", trackedOK(1, 42, st, 0, "", sysvarEntry("last_gtid", "0-1-100")),
			untrackedOK(1, 42, StatusAutocommit, 0, ""), gtid.GTID{Domain: 0, Server: 1, Seq: 100}, true},
		{"last_gtid with info", trackedOK(2, 0, st, 0, "Records: 2  Duplicates: 0  Warnings: 0", sysvarEntry("last_gtid", "3-7-9")),
			untrackedOK(2, 0, StatusAutocommit, 0, "Records: 2  Duplicates: 0  Warnings: 0"), gtid.GTID{Domain: 3, Server: 7, Seq: 9}, true},
		{"other entries around it", trackedOK(0, 0, st, 0, "", schema, sysvarEntry("autocommit", "ON"), sysvarEntry("last_gtid", "0-2-5")),
			untrackedOK(0, 0, StatusAutocommit, 0, ""), gtid.GTID{Server: 2, Seq: 5}, true},
		{"state without last_gtid", trackedOK(0, 0, st, 0, "", schema),
			untrackedOK(0, 0, StatusAutocommit, 0, ""), gtid.GTID{}, false},
		{"empty last_gtid (no binlogged transaction yet)", trackedOK(0, 0, st, 0, "", sysvarEntry("last_gtid", "")),
			untrackedOK(0, 0, StatusAutocommit, 0, ""), gtid.GTID{}, false},
		{"large counts", trackedOK(1<<40, 1<<20, st, 0, "", sysvarEntry("last_gtid", "0-1-18446744073709551615")),
			untrackedOK(1<<40, 1<<20, StatusAutocommit, 0, ""), gtid.GTID{Server: 1, Seq: 1<<64 - 1}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, g, ok := StripSessionState(bytes.Clone(tc.in))
			if !bytes.Equal(out, tc.want) {
				t.Errorf("packet\n got %x\nwant %x", out, tc.want)
			}
			if g != tc.gtid || ok != tc.hasGTID {
				t.Errorf("gtid %v %v, want %v %v", g, ok, tc.gtid, tc.hasGTID)
			}
			if parsed, good := ParseOK(out); !good || parsed.Status&StatusSessionStateChange != 0 {
				t.Errorf("result is not a plain OK: %+v %v", parsed, good)
			}
		})
	}
}

func TestStripSessionStateLeavesBadPacketsAlone(t *testing.T) {
	good := trackedOK(1, 2, StatusSessionStateChange, 0, "", sysvarEntry("last_gtid", "0-1-1"))
	for i := range len(good) {
		in := bytes.Clone(good[:i])
		out, _, ok := StripSessionState(in)
		if ok || !bytes.Equal(out, good[:i]) {
			t.Errorf("truncated to %d bytes: got %x ok=%v, want it unchanged", i, out, ok)
		}
	}
	for _, p := range [][]byte{nil, {iERR, 1, 2}, {iEOF, 0, 0, 2, 0}} {
		if out, _, ok := StripSessionState(p); ok || !bytes.Equal(out, p) {
			t.Errorf("%x: changed to %x", p, out)
		}
	}
}

func TestRelayStripsSessionState(t *testing.T) {
	ok := trackedOK(1, 0, StatusAutocommit|StatusSessionStateChange, 0, "", sysvarEntry("last_gtid", "0-1-77"))
	srv := readerConn(frameAll(0, ok))
	var sink recordingSink
	srv.GTIDSink, srv.SessionTrack = &sink, true
	var out bytes.Buffer
	cli := NewConn(&memConn{w: &out})
	res, err := Relay(cli, srv, ModeText, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := untrackedOK(1, 0, StatusAutocommit, 0, "")
	if got := out.Bytes(); !bytes.Equal(got[4:], want) || int(got[0]) != len(want) {
		t.Fatalf("client got %x, want payload %x", got, want)
	}
	g := gtid.GTID{Server: 1, Seq: 77}
	if !res.HasGTID || res.GTID != g || len(sink) != 1 || sink[0] != g {
		t.Fatalf("result %v %v, sink %v", res.GTID, res.HasGTID, sink)
	}
}

type recordingSink []gtid.GTID

func (s *recordingSink) NoteGTID(g gtid.GTID) { *s = append(*s, g) }

// BenchmarkRelayOK is the cost of forwarding a write's OK packet, as an
// untracked backend sends it and as a tracking one does (with last_gtid,
// cut off before the client gets it and handed to a sink).
func BenchmarkRelayOK(b *testing.B) {
	for _, bc := range []struct {
		name string
		ok   []byte
	}{
		{"plain", untrackedOK(1, 1234, StatusAutocommit, 0, "")},
		{"session-state", trackedOK(1, 1234, StatusAutocommit|StatusSessionStateChange, 0, "", sysvarEntry("last_gtid", "0-1-123456789"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := NewConn(&memConn{r: &loopReader{data: frameAll(1, bc.ok)}})
			var sink recordingSink
			src.GTIDSink = &sink
			dst := NewConn(&memConn{w: io.Discard})
			b.ReportAllocs()
			for b.Loop() {
				src.Seq, dst.Seq = 1, 1
				sink = sink[:0]
				if _, err := Relay(dst, src, ModeText, time.Minute, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
