package rig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// startPodman runs `podman system service` on a socket in dir. Podman
// sets its containers' RLIMIT_NOFILE and RLIMIT_NPROC above what a
// sandbox's hard limits may allow (runc: "error setting rlimit type 7"), so
// the service gets a containers.conf (CONTAINERS_CONF) with default
// ulimits within this process's hard limits.
func startPodman(ctx context.Context, e *Endpoint, dir string) error {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return fmt.Errorf("podman is not installed (Debian: apt-get install -y podman): %w", err)
	}
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte(ContainersConf()), 0o644); err != nil {
		return err
	}
	sock := filepath.Join(dir, "podman.sock")
	env := append(os.Environ(), "CONTAINERS_CONF="+conf)
	p, err := startProcess(env, bin, "system", "service", "--time=0", "unix://"+sock)
	if err != nil {
		return err
	}
	e.onClose(p.stop)
	e.Env["DOCKER_HOST"] = "unix://" + sock
	e.Unset = append(e.Unset, "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")
	return p.exited()
}

// ContainersConf is the containers.conf the rig gives Podman: default
// ulimits no higher than this process's hard limits.
func ContainersConf() string {
	limit := func(res int, want uint64) uint64 {
		var r syscall.Rlimit
		if err := syscall.Getrlimit(res, &r); err == nil && r.Max < want {
			return r.Max
		}
		return want
	}
	nofile := limit(syscall.RLIMIT_NOFILE, 1048576)
	const rlimitNPROC = 6
	nproc := limit(rlimitNPROC, 16384)
	return fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=%d:%d\", \"nproc=%d:%d\"]\n", nofile, nofile, nproc, nproc)
}
