//go:build unix

package backend

import (
	"errors"
	"net"
	"syscall"
)

// peerOpen peeks at the socket without blocking: EAGAIN means the peer is
// there and silent, as an idle connection's server should be; EOF, an
// error or unexpected data (a server's goodbye packet) mean it is not.
// A read deadline cannot do this: Go fails a read whose deadline has
// passed before it reaches the kernel.
func peerOpen(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && open
}
