package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// demuxReader strips Docker's stream multiplexing — frames of an 8-byte
// header (stream, 3 zero bytes, big-endian length) and a payload — and
// returns the payloads of stdout and stderr as one stream. One Read fills
// the caller's buffer from as many frames as are already buffered, so
// reading a log of many short lines costs few calls; it blocks only when it
// has nothing to return yet. A payload is never held in memory as a whole:
// a frame of any size streams through the caller's buffer, except the
// daemon's own error frame, which is read up to maxSystemFrame bytes.
type demuxReader struct {
	r      *bufio.Reader
	closer io.Closer
	left   int  // payload bytes left in the current frame
	stream byte // the current frame's stream: 0 stdin, 1 stdout, 2 stderr
}

// NewDemuxReader demultiplexes rc (a non-TTY container's log or exec
// stream). Closing it closes rc.
func NewDemuxReader(rc io.ReadCloser) io.ReadCloser {
	return &demuxReader{r: bufio.NewReaderSize(rc, 64*1024), closer: rc}
}

const (
	frameHeaderLen = 8
	streamStderr   = 2
	streamSystem   = 3 // the daemon's own error, as a frame
	// maxSystemFrame bounds the daemon's error message we read.
	maxSystemFrame = 64 * 1024
)

// next reads the header of the next frame. It returns io.EOF at the end of
// the stream between two frames, io.ErrUnexpectedEOF inside a header, and
// the daemon's message for its own error frame.
func (d *demuxReader) next() error {
	hdr, err := d.r.Peek(frameHeaderLen)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	stream := hdr[0]
	size := binary.BigEndian.Uint32(hdr[4:])
	if stream > streamSystem || hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 {
		return fmt.Errorf("malformed frame header % x in the output stream: is this a TTY container?", hdr)
	}
	_, _ = d.r.Discard(frameHeaderLen)
	if stream == streamSystem {
		msg := make([]byte, min(size, maxSystemFrame))
		if _, err := io.ReadFull(d.r, msg); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // a frame was announced
			}
			return err
		}
		return fmt.Errorf("the daemon reported: %s", msg)
	}
	d.stream, d.left = stream, int(size)
	return nil
}

func (d *demuxReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if d.left == 0 {
			if n > 0 && d.r.Buffered() < frameHeaderLen {
				return n, nil // return what we have rather than block
			}
			if err := d.next(); err != nil {
				return n, err
			}
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

// demuxCopy copies the payloads of the multiplexed stream r to stdout
// (stdin's and stdout's frames) and stderr, as they come, until r ends. A
// stream cut inside a frame is io.ErrUnexpectedEOF, not a short output.
func demuxCopy(stdout, stderr io.Writer, r io.Reader) error {
	d := &demuxReader{r: bufio.NewReaderSize(r, 32*1024)}
	for {
		if err := d.next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		w := stdout
		if d.stream == streamStderr {
			w = stderr
		}
		if _, err := io.CopyN(w, d.r, int64(d.left)); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		d.left = 0
	}
}
