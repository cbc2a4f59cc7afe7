//go:build unix

package watchdog

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// sysProcAttr puts the watchdog in its own process group, so the
// terminal's Ctrl-C (sent to the foreground group) does not reach it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// ignoreTerminalSignals makes the watchdog outlive the signals that end its
// parent — an interrupt or hangup from the terminal, a SIGTERM to every
// process of a CI job — so that it still cleans up after it. It ends by
// itself once its parent is gone; SIGKILL stops it.
func ignoreTerminalSignals() {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM)
}

// closeInheritedFiles closes every descriptor above stderr that the
// watchdog inherited by accident: descriptors its parent (or the parent's
// own parent: a shell, make, a CI runner) left open across exec. Those lack
// close-on-exec, while every descriptor the Go runtime and this process open
// has it, so that is how they are told apart. Holding such a descriptor
// (the write end of a pipe, say) could make whoever waits on it wait for the
// watchdog too.
func closeInheritedFiles() {
	dir := "/proc/self/fd"
	if _, err := os.Stat(dir); err != nil {
		dir = "/dev/fd"
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
			_ = syscall.Close(fd)
		}
	}
}
