package wire

import (
	"encoding/binary"
	"hash/maphash"
)

// sumSeed is shared by every ResultSum of the process, so that sums of the
// same response computed on two servers compare equal.
var sumSeed = maphash.MakeSeed()

// ResultSum is a checksum of what a client saw of responses: column
// definitions, rows, affected rows, insert ids, info text and errors. It
// leaves out what legitimately differs between two servers holding the
// same data: status flags, warning counts of OK/EOF packets (the info text
// that repeats them is covered), EOF packets and session-state tracking.
// Set on a backend Conn (Conn.Sum), Relay feeds it every packet it reads
// from that connection; it never allocates.
type ResultSum struct {
	h maphash.Hash
	n int64 // payload bytes summed, for tests and logs
	// LocalInfile is set when a response asked for a client file: what the
	// client sent is not summed, so the response cannot be proven equal.
	LocalInfile bool
}

// Reset starts a new sum.
func (s *ResultSum) Reset() {
	s.h.SetSeed(sumSeed)
	s.n = 0
	s.LocalInfile = false
}

// Sum64 returns the sum of what was added since Reset.
func (s *ResultSum) Sum64() uint64 { return s.h.Sum64() }

// Bytes returns how many payload bytes were summed.
func (s *ResultSum) Bytes() int64 { return s.n }

func (s *ResultSum) write(tag byte, p []byte) {
	s.h.WriteByte(tag)
	s.h.Write(p)
	s.n += int64(len(p))
}

// add sums one whole small packet p read in state st (before the packet
// moved it on).
func (s *ResultSum) add(st relayState, mode RelayMode, p []byte) {
	switch st {
	case stFirst:
		switch {
		case len(p) > 0 && p[0] == iOK && mode != ModeSingle:
			ok, good := ParseOK(p)
			if !good {
				s.write('o', p)
				return
			}
			var b [16]byte
			binary.LittleEndian.PutUint64(b[:], ok.AffectedRows)
			binary.LittleEndian.PutUint64(b[8:], ok.LastInsertID)
			s.write('O', b[:])
			s.write('i', ok.Info)
		case len(p) > 0 && p[0] == iLocalInfile && mode == ModeText:
			s.LocalInfile = true
		default:
			s.write('F', p) // an error, a column count, a single answer
		}
	case stColumnsEOF, stRows, stFieldList:
		if IsEOF(p) {
			return
		}
		s.write('R', p)
	default:
		s.write('C', p)
	}
}

// addLarge sums a chunk of a large packet (a row or column, or the rest of
// one).
func (s *ResultSum) addLarge(p []byte) { s.write('L', p) }
