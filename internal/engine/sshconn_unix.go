//go:build unix

package engine

import "syscall"

// sysProcAttr puts ssh in its own process group, so that a terminal's
// Ctrl-C reaches the test process, which then closes the connection, and
// not ssh first.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
