//go:build !unix

package backend

import "net"

// peerOpen cannot peek without blocking here; a dead connection is found
// by the statement that uses it.
func peerOpen(net.Conn) bool { return true }
