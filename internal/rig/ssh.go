package rig

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// startSSH runs an sshd on 127.0.0.1 with a host key and a client key made
// for the run, and points DOCKER_HOST at ssh://<user>@127.0.0.1:<port>:
// heph runs `ssh … docker system dial-stdio`, which the docker CLI on this
// machine (the "remote" side) bridges to its default daemon. The client
// side's ssh config (the key, a known_hosts holding the host key, batch
// mode) reaches ssh through a wrapper first on PATH, so the user's own
// ~/.ssh is neither read nor changed.
func startSSH(ctx context.Context, e *Endpoint, dir string) error {
	sshd, err := lookSSHD()
	if err != nil {
		return err
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return fmt.Errorf("ssh is not installed (Debian: apt-get install -y openssh-client): %w", err)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("the remote side runs `docker system dial-stdio`, and there is no docker CLI on PATH: %w", err)
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	key, hostKey := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "host_ed25519")
	for _, k := range []string{key, hostKey} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "heph-rig", "-f", k).CombinedOutput(); err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "sshd_config")
	sshdConf := strings.Join([]string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + auth,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"StrictModes no", // the files are in a temporary directory
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + u.Username,
		"UsePAM no",
		"MaxStartups 100:30:200", // heph opens connections in parallel
		"MaxSessions 100",
		"LogLevel ERROR",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(sshdConf), 0o600); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		_ = os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	}
	p, err := startProcess(os.Environ(), sshd, "-D", "-e", "-f", cfg)
	if err != nil {
		return err
	}
	e.onClose(p.stop)

	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", port, hostPub)), 0o600); err != nil {
		return err
	}
	clientConf := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(clientConf, []byte(strings.Join([]string{
		"Host *",
		"  IdentityFile " + key,
		"  IdentitiesOnly yes",
		"  UserKnownHostsFile " + known,
		"  StrictHostKeyChecking yes",
		"  BatchMode yes",
		"  LogLevel ERROR",
		"",
	}, "\n")), 0o600); err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec %s -F %s \"$@\"\n", sshBin, clientConf)
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(wrapper), 0o755); err != nil {
		return err
	}
	e.Env["PATH"] = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	e.Env["DOCKER_HOST"] = fmt.Sprintf("ssh://%s@127.0.0.1:%d", u.Username, port)
	e.Unset = append(e.Unset, "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")
	// Start's own ping finds ssh on this process's PATH, not the wrapper:
	// check here that the wrapper reaches the daemon.
	e.check = func(ctx context.Context) error {
		if err := p.exited(); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "ssh"), "-p", strconv.Itoa(port), "-l", u.Username, "--", "127.0.0.1",
			"docker", "version", "--format", "{{.Server.APIVersion}}")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ssh: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return p.exited()
}

func lookSSHD() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
		return "/usr/sbin/sshd", nil
	}
	return "", fmt.Errorf("sshd is not installed (Debian: apt-get install -y openssh-server)")
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
