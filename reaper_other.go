//go:build !unix

package heph

import (
	"syscall"
	"time"
)

// watchdogSysProcAttr: no process groups to set up here.
func watchdogSysProcAttr() *syscall.SysProcAttr { return nil }

// ignoreTerminalSignals: nothing to ignore here.
func ignoreTerminalSignals() {}

// closeInheritedFiles: nothing to close here.
func closeInheritedFiles() {}

// processState cannot judge a process here.
func processState(int, time.Time) ProcessState { return ProcessUnknown }
