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
	left   int // payload bytes left in the current frame
}

// NewDemuxReader demultiplexes rc (a non-TTY container's log or exec
// stream). Closing it closes rc.
func NewDemuxReader(rc io.ReadCloser) io.ReadCloser {
	return &demuxReader{r: bufio.NewReaderSize(rc, 64*1024), closer: rc}
}

const (
	frameHeaderLen = 8
	streamSystem   = 3 // the daemon's own error, as a frame
	// maxSystemFrame bounds the daemon's error message we read.
	maxSystemFrame = 64 * 1024
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
			stream := hdr[0]
			size := binary.BigEndian.Uint32(hdr[4:])
			if stream > streamSystem || hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 {
				return n, fmt.Errorf("malformed frame header % x in the output stream: is this a TTY container?", hdr)
			}
			_, _ = d.r.Discard(frameHeaderLen)
			if stream == streamSystem {
				msg := make([]byte, min(size, maxSystemFrame))
				if _, err := io.ReadFull(d.r, msg); err != nil {
					return n, err
				}
				return n, fmt.Errorf("the daemon reported: %s", msg)
			}
			d.left = int(size)
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
