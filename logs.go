package heph

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// LogOptions selects the output Orchestrator.Logs returns.
type LogOptions struct {
	// Follow keeps the stream open, delivering new output, until the
	// container stops or the context ends.
	Follow bool
	// Tail limits the output to the last Tail lines; 0 means all.
	Tail int
	// Since, when set, skips output written before it.
	Since time.Time
}

// Logs returns a container's output: stdout and stderr demultiplexed into
// one stream, in the order the daemon recorded them (Docker reads the two
// from separate pipes, so only the order within each stream is certain). The caller closes the
// stream; closing it or ending ctx stops a followed stream. A container that
// does not exist gives ErrContainerNotFound.
func (o *Orchestrator) Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	if opts.Tail < 0 {
		return nil, invalid("LogOptions.Tail", opts.Tail, "is negative")
	}
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = strconv.FormatFloat(float64(opts.Since.UnixNano())/1e9, 'f', 9, 64)
	}
	raw, err := o.api.ContainerLogs(ctx, id, lo)
	if err != nil {
		return nil, wrap("read logs of container", o.nameOf(id), err, ErrContainerNotFound)
	}
	pr, pw := io.Pipe()
	go func() {
		// One writer for both streams keeps their interleaving.
		_, err := stdcopy.StdCopy(pw, pw, raw)
		raw.Close()
		pw.CloseWithError(err)
	}()
	return &logStream{PipeReader: pr, raw: raw}, nil
}

// logStream closes the daemon's stream along with the pipe, so a reader that
// stops early does not leave the copy goroutine blocked.
type logStream struct {
	*io.PipeReader
	raw io.Closer
}

func (l *logStream) Close() error {
	l.raw.Close()
	return l.PipeReader.Close()
}
