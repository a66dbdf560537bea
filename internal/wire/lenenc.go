package wire

import "encoding/binary"

// AppendLenEncInt appends a length-encoded integer.
func AppendLenEncInt(b []byte, n uint64) []byte {
	switch {
	case n < 251:
		return append(b, byte(n))
	case n < 1<<16:
		return append(b, 0xfc, byte(n), byte(n>>8))
	case n < 1<<24:
		return append(b, 0xfd, byte(n), byte(n>>8), byte(n>>16))
	default:
		b = append(b, 0xfe)
		return binary.LittleEndian.AppendUint64(b, n)
	}
}

// AppendLenEncString appends a length-encoded string.
func AppendLenEncString(b []byte, s []byte) []byte {
	b = AppendLenEncInt(b, uint64(len(s)))
	return append(b, s...)
}

// ReadLenEncInt decodes a length-encoded integer at the start of b and
// returns it with the number of bytes it used. null is true for 0xfb (NULL in
// a text row). ok is false when b is too short or starts with 0xff.
func ReadLenEncInt(b []byte) (n uint64, size int, null, ok bool) {
	if len(b) == 0 {
		return 0, 0, false, false
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1, false, true
	case c == 0xfb:
		return 0, 1, true, true
	case c == 0xfc:
		if len(b) < 3 {
			return 0, 0, false, false
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3, false, true
	case c == 0xfd:
		if len(b) < 4 {
			return 0, 0, false, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, false, true
	case c == 0xfe:
		if len(b) < 9 {
			return 0, 0, false, false
		}
		return binary.LittleEndian.Uint64(b[1:]), 9, false, true
	default:
		return 0, 0, false, false
	}
}

// ReadLenEncString decodes a length-encoded string; the result aliases b.
func ReadLenEncString(b []byte) (s []byte, size int, ok bool) {
	n, k, null, ok := ReadLenEncInt(b)
	if !ok || null {
		return nil, k, ok && null
	}
	if uint64(len(b)-k) < n {
		return nil, 0, false
	}
	return b[k : k+int(n)], k + int(n), true
}

// readNulString returns the bytes up to the first NUL and the count consumed
// including the NUL. Without a NUL the rest of b is returned.
func readNulString(b []byte) ([]byte, int) {
	for i, c := range b {
		if c == 0 {
			return b[:i], i + 1
		}
	}
	return b, len(b)
}
