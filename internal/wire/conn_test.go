package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// writeConn returns a Conn whose writes land in the returned buffer.
func writeConn() (*Conn, *bytes.Buffer) {
	var buf bytes.Buffer
	return NewConn(&memConn{w: &buf}), &buf
}

func TestWritePacketFraming(t *testing.T) {
	big := bigPayload(MaxPayload+1000, nil)
	exact := bigPayload(MaxPayload, nil)
	tests := []struct {
		name    string
		payload []byte
		seq     byte
		// headers of the physical packets expected on the wire
		headers [][4]byte
	}{
		{"empty", nil, 0, [][4]byte{{0, 0, 0, 0}}},
		{"small", []byte("\x03SELECT 1"), 0, [][4]byte{{9, 0, 0, 0}}},
		{"seq wraps", []byte{1}, 255, [][4]byte{{1, 0, 0, 255}}},
		// A payload of exactly 0xffffff bytes is ambiguous on its own: the
		// reader needs an empty packet to know it has ended.
		{"exactly max", exact, 3, [][4]byte{{0xff, 0xff, 0xff, 3}, {0, 0, 0, 4}}},
		{"max+1000", big, 0, [][4]byte{{0xff, 0xff, 0xff, 0}, {0xe8, 0x03, 0, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, buf := writeConn()
			c.Seq = tt.seq
			if err := c.WriteFlush(tt.payload); err != nil {
				t.Fatal(err)
			}
			out := buf.Bytes()
			off := 0
			rest := tt.payload
			for i, h := range tt.headers {
				if len(out) < off+4 {
					t.Fatalf("output ends before header %d", i)
				}
				var got [4]byte
				copy(got[:], out[off:off+4])
				if got != h {
					t.Fatalf("header %d = % x, want % x", i, got, h)
				}
				n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
				if !bytes.Equal(out[off+4:off+4+n], rest[:n]) {
					t.Fatalf("payload of physical packet %d differs", i)
				}
				rest = rest[n:]
				off += 4 + n
			}
			if off != len(out) {
				t.Fatalf("%d trailing bytes written", len(out)-off)
			}
			if want := tt.seq + byte(len(tt.headers)); c.Seq != want {
				t.Errorf("Seq after write = %d, want %d", c.Seq, want)
			}

			r := readerConn(out)
			r.Seq = tt.seq
			p, err := r.ReadPacket(0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, tt.payload) {
				t.Errorf("read back %d bytes, want %d", len(p), len(tt.payload))
			}
			if r.Seq != c.Seq {
				t.Errorf("reader Seq = %d, writer Seq = %d", r.Seq, c.Seq)
			}
		})
	}
}

func TestReadPacketSequence(t *testing.T) {
	stream := frameAll(0, []byte("a"), []byte("bc"), nil, []byte("def"))
	c := readerConn(stream)
	for _, want := range []string{"a", "bc", "", "def"} {
		p, err := c.ReadPacket(0)
		if err != nil {
			t.Fatal(err)
		}
		if string(p) != want {
			t.Fatalf("ReadPacket = %q, want %q", p, want)
		}
	}
	if _, err := c.ReadPacket(0); err != io.EOF {
		t.Fatalf("ReadPacket at end = %v, want io.EOF", err)
	}
}

func TestReadPacketWrongSequence(t *testing.T) {
	c := readerConn(frameAll(5, []byte("x")))
	c.Seq = 4
	_, err := c.ReadPacket(0)
	if !errors.Is(err, ErrSequence) {
		t.Fatalf("err = %v, want ErrSequence", err)
	}

	// A continuation packet with the wrong id is caught too.
	stream := frameAll(0, bigPayload(MaxPayload+10, nil))
	stream[4+MaxPayload+3] = 7
	c = readerConn(stream)
	if _, err := c.ReadPacket(0); !errors.Is(err, ErrSequence) {
		t.Fatalf("continuation: err = %v, want ErrSequence", err)
	}
}

func TestReadPacketTruncated(t *testing.T) {
	full := frameAll(0, []byte("hello"))
	for i := 1; i < len(full); i++ {
		c := readerConn(full[:i])
		_, err := c.ReadPacket(0)
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Errorf("prefix %d: err = %v, want EOF", i, err)
		}
		if err == nil {
			t.Errorf("prefix %d: no error", i)
		}
	}
}

func TestReadPacketTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		payload []byte
	}{
		{"one physical packet", 1000, bigPayload(1001, nil)},
		{"first piece over max", 1 << 20, bigPayload(MaxPayload+1000, nil)},
		// The first physical packet fits; the continuation tips it over.
		{"continuation over max", MaxPayload + 10, bigPayload(MaxPayload+1000, nil)},
		{"exactly max plus empty continuation", MaxPayload - 1, bigPayload(MaxPayload, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := []byte("\x0e")
			seq := byte(0)
			stream := frame(nil, &seq, tt.payload)
			stream = frame(stream, &seq, next)
			c := readerConn(stream)
			if _, err := c.ReadPacket(tt.max); !errors.Is(err, ErrPacketTooLarge) {
				t.Fatalf("err = %v, want ErrPacketTooLarge", err)
			}
			// The oversized packet has been drained: the next one reads
			// normally, so the caller can answer with error 1153.
			p, err := c.ReadPacket(tt.max)
			if err != nil {
				t.Fatalf("next packet: %v", err)
			}
			if !bytes.Equal(p, next) {
				t.Fatalf("next packet = % x, want % x", p, next)
			}
			if c.Seq != seq {
				t.Errorf("Seq = %d, want %d", c.Seq, seq)
			}
		})
	}
}

func TestReadPacketAtMax(t *testing.T) {
	payload := bigPayload(1000, nil)
	c := readerConn(frameAll(0, payload))
	p, err := c.ReadPacket(len(payload))
	if err != nil || !bytes.Equal(p, payload) {
		t.Fatalf("ReadPacket(max = len) = %d bytes, %v", len(p), err)
	}
}

func TestReadPacketDoesNotPinLargeBuffers(t *testing.T) {
	big := bigPayload(2<<20, nil)
	c := readerConn(frameAll(0, big, []byte("small")))
	p, err := c.ReadPacket(0)
	if err != nil || !bytes.Equal(p, big) {
		t.Fatalf("big packet: %d bytes, %v", len(p), err)
	}
	if cap(c.buf) > 1<<20 {
		t.Errorf("Conn keeps a %d-byte buffer after a large packet", cap(c.buf))
	}
	// The returned packet must stay intact: the buffer was handed over, not
	// reused for the next read.
	q, err := c.ReadPacket(0)
	if err != nil || string(q) != "small" {
		t.Fatalf("small packet: %q, %v", q, err)
	}
	if !bytes.Equal(p, big) {
		t.Error("large packet was overwritten by the next read")
	}
}

func TestWriteCommandResetsSequence(t *testing.T) {
	c, buf := writeConn()
	c.Seq = 9
	if err := c.WriteCommand([]byte{ComPing}); err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 0, 0, 0, ComPing}; !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("wrote % x, want % x", buf.Bytes(), want)
	}
	if c.Seq != 1 {
		t.Errorf("Seq = %d, want 1", c.Seq)
	}
}

func TestWriteHeaderAndError(t *testing.T) {
	c, buf := writeConn()
	c.Seq = 2
	if err := c.WriteHeader(0x010203); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteError(&Error{Code: 1045, State: "28000", Message: "denied"}); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x03, 0x02, 0x01, 2}
	want = frame(want, new(byte(3)), append([]byte{0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0'}, "denied"...))
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("wrote % x\nwant  % x", buf.Bytes(), want)
	}
}

func TestWriteBuffersUntilFlush(t *testing.T) {
	c, buf := writeConn()
	if err := c.WritePacket([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("WritePacket sent %d bytes before Flush", buf.Len())
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 7 {
		t.Fatalf("after Flush: %d bytes, want 7", buf.Len())
	}
}

func TestWritePacketError(t *testing.T) {
	c := NewConn(&memConn{w: &failWriter{}})
	// Larger than the write buffer, so the failure surfaces in WritePacket.
	if err := c.WritePacket(bigPayload(3*bufSize, nil)); !errors.Is(err, errClientGone) {
		t.Fatalf("err = %v, want errClientGone", err)
	}
}

func TestResetKeepsSequence(t *testing.T) {
	c := readerConn(frameAll(0, []byte("a")))
	c.Seq = 3
	c.Reset(&memConn{r: bytes.NewReader(frameAll(3, []byte("tls")))})
	p, err := c.ReadPacket(0)
	if err != nil || string(p) != "tls" {
		t.Fatalf("after Reset: %q, %v", p, err)
	}
}

func TestReadHeaderLength(t *testing.T) {
	c := &Conn{R: NewReader(bytes.NewReader([]byte{0x01, 0x02, 0x03, 0x00}))}
	n, err := c.ReadHeader()
	if err != nil || n != 0x030201 {
		t.Fatalf("ReadHeader = %#x, %v; want 0x030201", n, err)
	}
	if c.Seq != 1 {
		t.Errorf("Seq = %d, want 1", c.Seq)
	}
}
