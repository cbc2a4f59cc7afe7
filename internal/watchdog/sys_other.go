//go:build !unix

package watchdog

import "syscall"

// sysProcAttr: no process groups to set up here.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// ignoreTerminalSignals: nothing to ignore here.
func ignoreTerminalSignals() {}

// closeInheritedFiles: nothing to close here.
func closeInheritedFiles() {}
