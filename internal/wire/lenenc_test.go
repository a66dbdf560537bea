package wire

import (
	"bytes"
	"math"
	"testing"
)

func TestLenEncIntRoundTrip(t *testing.T) {
	tests := []struct {
		n    uint64
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{250, []byte{0xfa}},
		{251, []byte{0xfc, 0xfb, 0x00}},
		{252, []byte{0xfc, 0xfc, 0x00}},
		{65535, []byte{0xfc, 0xff, 0xff}},
		{65536, []byte{0xfd, 0x00, 0x00, 0x01}},
		{1<<24 - 1, []byte{0xfd, 0xff, 0xff, 0xff}},
		{1 << 24, []byte{0xfe, 0, 0, 0, 1, 0, 0, 0, 0}},
		{1<<32 + 5, []byte{0xfe, 5, 0, 0, 0, 1, 0, 0, 0}},
		{math.MaxUint64, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		got := AppendLenEncInt([]byte("prefix"), tt.n)
		if !bytes.Equal(got[6:], tt.want) || string(got[:6]) != "prefix" {
			t.Errorf("AppendLenEncInt(%d) = % x, want % x", tt.n, got[6:], tt.want)
		}
		// Trailing bytes must be left alone: lenenc values sit in the middle
		// of packets.
		in := append(append([]byte(nil), tt.want...), 0xaa, 0xbb)
		n, size, null, ok := ReadLenEncInt(in)
		if !ok || null || n != tt.n || size != len(tt.want) {
			t.Errorf("ReadLenEncInt(% x) = %d, %d, %v, %v; want %d, %d, false, true",
				in, n, size, null, ok, tt.n, len(tt.want))
		}
	}
}

func TestLenEncIntNullAndInvalid(t *testing.T) {
	n, size, null, ok := ReadLenEncInt([]byte{0xfb, 0x01})
	if !ok || !null || size != 1 || n != 0 {
		t.Errorf("ReadLenEncInt(0xfb) = %d, %d, %v, %v; want 0, 1, true, true", n, size, null, ok)
	}
	// 0xff is never a length: it is the ERR marker.
	if _, _, _, ok := ReadLenEncInt([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 0}); ok {
		t.Error("ReadLenEncInt(0xff...) ok = true")
	}
}

func TestLenEncIntTruncated(t *testing.T) {
	for _, full := range [][]byte{
		AppendLenEncInt(nil, 251),
		AppendLenEncInt(nil, 65536),
		AppendLenEncInt(nil, math.MaxUint64),
	} {
		for i := range full {
			if n, size, _, ok := ReadLenEncInt(full[:i]); ok || size != 0 || n != 0 {
				t.Errorf("ReadLenEncInt(% x) = %d, %d, ok=%v; want failure", full[:i], n, size, ok)
			}
		}
	}
}

func TestLenEncString(t *testing.T) {
	for _, n := range []int{0, 1, 250, 251, 65535, 65536} {
		s := bytes.Repeat([]byte{'x'}, n)
		enc := AppendLenEncString(nil, s)
		got, size, ok := ReadLenEncString(append(enc, 0xee))
		if !ok || size != len(enc) || !bytes.Equal(got, s) {
			t.Errorf("len %d: ReadLenEncString size=%d ok=%v len(got)=%d", n, size, ok, len(got))
		}
		for _, cut := range []int{0, 1, len(enc) / 2, len(enc) - 1} {
			if cut >= len(enc) {
				continue
			}
			if _, _, ok := ReadLenEncString(enc[:cut]); ok {
				t.Errorf("len %d: ReadLenEncString of %d-byte prefix ok = true", n, cut)
			}
		}
	}
}

func TestLenEncStringNullAndHuge(t *testing.T) {
	s, size, ok := ReadLenEncString([]byte{0xfb, 'a'})
	if !ok || s != nil || size != 1 {
		t.Errorf("ReadLenEncString(NULL) = %q, %d, %v; want nil, 1, true", s, size, ok)
	}
	// A length that does not fit in an int must not wrap around.
	huge := AppendLenEncInt(nil, math.MaxUint64)
	if _, _, ok := ReadLenEncString(append(huge, "abc"...)); ok {
		t.Error("ReadLenEncString with 2^64-1 length ok = true")
	}
	if _, _, ok := ReadLenEncString([]byte{0xff}); ok {
		t.Error("ReadLenEncString(0xff) ok = true")
	}
}

func TestReadNulString(t *testing.T) {
	tests := []struct {
		in   string
		want string
		n    int
	}{
		{"", "", 0},
		{"\x00", "", 1},
		{"abc\x00def", "abc", 4},
		{"abc", "abc", 3},
	}
	for _, tt := range tests {
		got, n := readNulString([]byte(tt.in))
		if string(got) != tt.want || n != tt.n {
			t.Errorf("readNulString(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.n)
		}
	}
}
