package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/internal/config"
)

// listen opens every listener of the configuration, or none: one that
// fails closes those already open.
func listen(addrs config.Listeners) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range addrs {
		var ln net.Listener
		var err error
		if config.IsSocketPath(a) {
			ln, err = listenUnix(a)
		} else {
			ln, err = net.Listen("tcp", a)
		}
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// listenUnix listens on a Unix socket. A socket file left by a sluice that
// died is replaced; a socket something still answers on, or a file that is
// not a socket, is left alone and reported. The file is removed when the
// listener closes. Like MariaDB's own socket it is open to every local
// user (mode 0777): clients still log in with a password.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; not touching it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s exists and cannot be checked: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
