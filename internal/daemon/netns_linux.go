package daemon

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// sameNetNS says whether the process serving the unix socket at path runs
// in this process's network namespace. It asks the kernel who the peer of a
// connection to the socket is (SO_PEERCRED) and compares the network
// namespaces of that process and of this one. known is false when that
// cannot be told: the peer is in another PID namespace (the kernel reports
// PID 0), or its namespace cannot be read (another user's process).
func sameNetNS(path string) (same, known bool) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return false, false
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return false, false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil || cred == nil || cred.Pid <= 0 {
		return false, false
	}
	peer, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cred.Pid))
	if err != nil {
		return false, false
	}
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false, false
	}
	return peer == self, true
}
