//go:build !unix

package hooks

import "os/exec"

// setProcessGroup is a no-op here: a timeout kills the command's process
// only (exec's default), and WaitDelay bounds the wait for its children.
func setProcessGroup(*exec.Cmd) {}
