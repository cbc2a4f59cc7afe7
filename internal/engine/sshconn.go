package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
)

// SSHDialStdio is the command run on the remote host: the docker CLI's
// bridge from its stdin/stdout to the daemon there.
var SSHDialStdio = []string{"docker", "system", "dial-stdio"}

// SSHArgs returns the arguments of ssh that reach the daemon of an ssh://
// host as the docker CLI does: ssh [-l user] [-p port] -- host docker
// system dial-stdio. ssh reads the user's ssh config, keys and known_hosts
// as it always does.
func SSHArgs(host string) ([]string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("not a valid ssh:// address: %w", err)
	}
	if !strings.EqualFold(u.Scheme, "ssh") {
		return nil, fmt.Errorf("not an ssh:// address: %q", host)
	}
	switch {
	case u.Hostname() == "":
		return nil, errors.New("an ssh:// address needs a host: ssh://user@host[:port]")
	case strings.ContainsFunc(u.Hostname()+u.User.Username(), func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		return nil, errors.New("the host or user of an ssh:// address holds a control character or a blank")
	case strings.HasPrefix(u.Hostname(), "-"):
		return nil, errors.New("the host of an ssh:// address cannot start with '-'")
	case u.Path != "" && u.Path != "/":
		return nil, errors.New("an ssh:// address cannot hold a path (the remote daemon's own default socket is used)")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("an ssh:// address cannot hold a query or a fragment")
	}
	if _, hasPass := u.User.Password(); hasPass {
		return nil, errors.New("an ssh:// address cannot hold a password (use ssh keys or an agent)")
	}
	args := []string{"-o", "ConnectTimeout=30", "-T"}
	if user := u.User.Username(); user != "" {
		if strings.HasPrefix(user, "-") {
			return nil, errors.New("the user of an ssh:// address cannot start with '-'")
		}
		args = append(args, "-l", user)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %s is not in 1-65535", p)
		}
		args = append(args, "-p", p)
	}
	args = append(args, "--", u.Hostname())
	return append(args, SSHDialStdio...), nil
}

// sshDialer returns a DialContext that starts a new ssh process per
// connection and speaks HTTP over its stdin and stdout.
func sshDialer(args []string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return startCommandConn(ctx, "ssh", args)
	}
}

// commandConn is a net.Conn over a process's stdin and stdout.
type commandConn struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *lockedBuffer

	closeOnce sync.Once
	closeErr  error
	waited    chan struct{}
	waitErr   error
}

// lockedBuffer keeps the last bytes a process wrote to stderr, for errors.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 8<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}

func startCommandConn(ctx context.Context, name string, args []string) (*commandConn, error) {
	// The process outlives ctx, which only bounds the dial: the
	// connection's Close ends it.
	_ = ctx
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = sysProcAttr()
	c := &commandConn{cmd: cmd, stderr: &lockedBuffer{}, waited: make(chan struct{})}
	cmd.Stderr = c.stderr
	// Pipes of our own: those of StdinPipe and StdoutPipe are closed by
	// Wait, which would race with reading what the process wrote last.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	c.stdin, c.stdout = inW, outR
	go func() {
		c.waitErr = cmd.Wait()
		close(c.waited)
	}()
	return c, nil
}

func (c *commandConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err != nil && n == 0 {
		return 0, c.explain(err)
	}
	return n, err
}

func (c *commandConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	if err != nil {
		return n, c.explain(err)
	}
	return n, nil
}

// explain turns the end of the stream into the process's own words when it
// ended with an error: ssh's "Permission denied (publickey)", "Host key
// verification failed", or the remote "docker: command not found".
func (c *commandConn) explain(err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
		return err
	}
	select {
	case <-c.waited:
	case <-time.After(2 * time.Second):
		return err
	}
	if c.waitErr == nil {
		return err
	}
	msg := c.stderr.String()
	if msg == "" {
		msg = c.waitErr.Error()
	}
	return fmt.Errorf("ssh %s: %s: %w", strings.Join(c.cmd.Args[1:], " "), msg, io.ErrUnexpectedEOF)
}

// CloseWrite closes the process's stdin: the remote end sees the end of
// the request body (used by attach and exec).
func (c *commandConn) CloseWrite() error { return c.stdin.Close() }

// CloseRead is a no-op: the process's stdout is closed with the connection.
func (c *commandConn) CloseRead() error { return nil }

// Close ends the process: stdin closed, then SIGTERM, then SIGKILL if it
// does not end within a second.
func (c *commandConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.stdin.Close()
		defer c.stdout.Close()
		if c.cmd.Process != nil {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.waited:
			case <-time.After(time.Second):
				_ = c.cmd.Process.Kill()
				<-c.waited
			}
		}
	})
	return c.closeErr
}

type dummyAddr struct{}

func (dummyAddr) Network() string { return "ssh" }
func (dummyAddr) String() string  { return "ssh" }

func (c *commandConn) LocalAddr() net.Addr              { return dummyAddr{} }
func (c *commandConn) RemoteAddr() net.Addr             { return dummyAddr{} }
func (c *commandConn) SetDeadline(time.Time) error      { return nil }
func (c *commandConn) SetReadDeadline(time.Time) error  { return nil }
func (c *commandConn) SetWriteDeadline(time.Time) error { return nil }
