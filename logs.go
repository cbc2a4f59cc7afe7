package heph

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

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
// from separate pipes, so only the order within each stream is certain).
// The caller closes the stream; closing it or ending ctx stops a followed
// stream. A container that does not exist gives ErrContainerNotFound.
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
	return newDemuxReader(raw), nil
}

// demuxReader strips Docker's stream multiplexing — frames of an 8-byte
// header (stream, 3 zero bytes, big-endian length) and a payload — and
// returns the payloads of stdout and stderr as one stream. One Read fills
// the caller's buffer from as many frames as are already buffered, so
// reading a log of many short lines costs few calls; it blocks only when it
// has nothing to return yet.
type demuxReader struct {
	r      *bufio.Reader
	closer io.Closer
	left   int // payload bytes left in the current frame
}

func newDemuxReader(rc io.ReadCloser) *demuxReader {
	return &demuxReader{r: bufio.NewReaderSize(rc, 64*1024), closer: rc}
}

const (
	frameHeaderLen = 8
	streamSystem   = 3 // the daemon's own error, as a frame
)

func (d *demuxReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if d.left == 0 {
			if n > 0 && d.r.Buffered() < frameHeaderLen {
				return n, nil // return what we have rather than block
			}
			hdr, err := d.r.Peek(frameHeaderLen)
			if err != nil {
				if errors.Is(err, io.EOF) && len(hdr) == 0 {
					return n, io.EOF
				}
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			size := int(binary.BigEndian.Uint32(hdr[4:]))
			stream := hdr[0]
			_, _ = d.r.Discard(frameHeaderLen)
			if stream == streamSystem {
				msg := make([]byte, size)
				if _, err := io.ReadFull(d.r, msg); err != nil {
					return n, err
				}
				return n, fmt.Errorf("the daemon reported: %s", msg)
			}
			if stream > streamSystem {
				return n, fmt.Errorf("unexpected stream %d in the log stream: is this a TTY container?", stream)
			}
			d.left = size
			continue
		}
		want := min(d.left, len(p)-n)
		if n > 0 {
			if b := d.r.Buffered(); b == 0 {
				return n, nil
			} else if want > b {
				want = b
			}
		}
		m, err := d.r.Read(p[n : n+want])
		n += m
		d.left -= m
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// Close closes the daemon's stream.
func (d *demuxReader) Close() error { return d.closer.Close() }
