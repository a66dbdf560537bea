package wire

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// Reader is a buffered reader like bufio.Reader, with one difference that
// matters for a proxy holding thousands of idle clients: a Reader made by
// NewLendingReader holds no buffer while it waits for data. It borrows one
// from a process-wide pool just before each read system call and gives it
// back when the call finds nothing and the goroutine parks (and, through
// Release, once everything read was consumed). The system calls are those a
// net.Conn read makes: one read, and when it would block, a park in the
// poller and a second read.
type Reader struct {
	buf  []byte
	bp   *[]byte // buf's pool entry while lent, so Put allocates nothing
	r, w int
	src  io.Reader
	err  error

	raw   syscall.RawConn // non-nil: lend buffers, reading the fd directly
	lend  bool
	rawFn func(fd uintptr) bool // rawRead, made once
	rn    int                   // what the last rawRead got
	rerr  error
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// NewReader returns a Reader with its own buffer of bufSize bytes.
func NewReader(src io.Reader) *Reader {
	return &Reader{buf: make([]byte, bufSize), src: src}
}

// NewLendingReader returns a Reader that borrows its buffer only while data
// is waiting to be consumed (see Reader). Connections without a file
// descriptor (TLS, pipes in tests) fall back to holding a borrowed buffer
// while they block.
func NewLendingReader(src io.Reader) *Reader {
	r := &Reader{lend: true}
	r.Reset(src)
	return r
}

// Reset discards buffered data and reads from src from now on.
func (b *Reader) Reset(src io.Reader) {
	b.src, b.r, b.w, b.err, b.raw = src, 0, 0, nil, nil
	if !b.lend {
		if b.buf == nil {
			b.buf = make([]byte, bufSize)
		}
		return
	}
	b.Release()
	if tc, ok := src.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			b.raw = rc
			if b.rawFn == nil {
				b.rawFn = b.rawRead
			}
		}
	}
}

// Release gives a lent buffer back to the pool when nothing is buffered.
func (b *Reader) Release() {
	if b.lend && b.buf != nil && b.r == b.w {
		b.r, b.w = 0, 0
		b.put()
	}
}

func (b *Reader) get() {
	b.bp = readBufs.Get().(*[]byte)
	b.buf = *b.bp
}

func (b *Reader) put() {
	readBufs.Put(b.bp)
	b.buf, b.bp = nil, nil
}

// rawRead is the body of a raw read: borrow a buffer, read once; when
// there is nothing to read, give the buffer back and let the poller park
// the goroutine (this is where idle clients wait).
func (b *Reader) rawRead(fd uintptr) bool {
	if b.buf == nil {
		b.get()
	}
	for {
		b.rn, b.rerr = syscall.Read(int(fd), b.buf)
		if b.rerr != syscall.EINTR {
			break
		}
	}
	if b.rerr == syscall.EAGAIN {
		b.put()
		return false
	}
	return true
}

// Buffered returns the number of bytes that can be read without a read on
// the connection.
func (b *Reader) Buffered() int { return b.w - b.r }

func (b *Reader) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// fill reads once into the free part of the buffer, which is empty.
func (b *Reader) fill() {
	b.r, b.w = 0, 0
	if b.raw == nil {
		if b.buf == nil {
			b.get()
		}
		n, err := b.src.Read(b.buf)
		if n < 0 {
			n = 0
		}
		b.w, b.err = n, err
		if n == 0 && err == nil {
			b.err = io.ErrNoProgress
		}
		return
	}
	err := b.raw.Read(b.rawFn)
	n, rerr := b.rn, b.rerr
	b.rerr = nil
	switch {
	case err != nil:
		b.err = err
	case rerr != nil:
		b.err = &net.OpError{Op: "read", Net: "tcp", Err: rerr}
	case n == 0:
		b.err = io.EOF
	default:
		b.w = n
	}
	if b.w == 0 {
		b.Release()
	}
}

// Wait blocks until data (or an error, kept for the next read) is there,
// without consuming anything.
func (b *Reader) Wait() {
	if b.r == b.w && b.err == nil {
		b.fill()
	}
}

// Read reads up to len(p) bytes. Like bufio.Reader, a read as large as the
// buffer goes straight into p when nothing is buffered.
func (b *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.Buffered() > 0 {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= bufSize {
			n, err := b.src.Read(p)
			if n < 0 {
				n = 0
			}
			return n, err
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// Discard skips the next n bytes.
func (b *Reader) Discard(n int) (int, error) {
	done := 0
	for done < n {
		if b.r == b.w {
			if b.err != nil {
				return done, b.readErr()
			}
			b.fill()
			continue
		}
		k := min(n-done, b.w-b.r)
		b.r += k
		done += k
	}
	return done, nil
}

// ErrBufferFull is returned by Peek for more bytes than the buffer holds.
var ErrBufferFull = errors.New("wire: peek larger than the buffer")

// Peek returns the next n bytes without consuming them; the slice is valid
// until the next read. It blocks until n bytes are buffered.
func (b *Reader) Peek(n int) ([]byte, error) {
	if n > bufSize {
		return nil, ErrBufferFull
	}
	for b.w-b.r < n {
		if b.err != nil {
			return b.buf[b.r:b.w], b.readErr()
		}
		if b.r == b.w {
			b.fill()
			continue
		}
		// Move what is buffered to the front and read more after it.
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
		m, err := b.src.Read(b.buf[b.w:])
		if m > 0 {
			b.w += m
		}
		b.err = err
	}
	return b.buf[b.r : b.r+n], nil
}
