package heph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// ExecResult is the outcome of a command run in a container.
type ExecResult struct {
	// ExitCode is the command's exit code.
	ExitCode int
	// Stdout and Stderr are what the command wrote, demultiplexed.
	Stdout, Stderr []byte
}

// Exec runs cmd in a running container (no shell: cmd[0] is the program),
// waits for it to finish and returns its exit code and output. A non-zero
// exit code is not an error; failing to run the command is (for example a
// program that does not exist in the image, or a container that is not
// running).
func (o *Orchestrator) Exec(ctx context.Context, id string, cmd ...string) (ExecResult, error) {
	if len(cmd) == 0 || cmd[0] == "" {
		return ExecResult{}, invalid("Exec cmd", strings.Join(cmd, " "), "is empty")
	}
	subject := o.nameOf(id)
	op := "exec " + quote(strings.Join(cmd, " ")) + " in container"
	created, err := o.api.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return ExecResult{}, wrap(op, subject, err, ErrContainerNotFound)
	}
	att, err := o.api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, wrap(op, subject, err, ErrContainerNotFound)
	}
	var stdout, stderr bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader)
		copied <- err
	}()
	select {
	case err = <-copied:
		att.Close()
	case <-ctx.Done():
		att.Close() // unblocks the copy
		<-copied
		return ExecResult{}, wrap(op, subject, ctx.Err(), nil)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return ExecResult{}, wrap(op, subject, fmt.Errorf("read output: %w", err), nil)
	}
	// The output ends when the process does; the daemon records the exit code
	// a moment later.
	var res client.ExecInspectResult
	err = poll(ctx, time.Millisecond, 50*time.Millisecond, func() error {
		var err error
		if res, err = o.api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{}); err != nil {
			return backoff.Permanent(err)
		}
		if res.Running {
			return errors.New("still running")
		}
		return nil
	})
	if err != nil {
		return ExecResult{}, wrap(op, subject, err, nil)
	}
	return ExecResult{ExitCode: res.ExitCode, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, nil
}
