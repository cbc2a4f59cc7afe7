// Package logtext reads a container's output as heph shows it: line by
// line, each line bounded (a container that writes megabytes without a
// newline cannot make heph hold them), and a tail of the last lines for
// failure messages.
package logtext

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Max bounds a line of a container's output that heph prints: the
// rest of a longer line is dropped, and a marker says how much.
const Max = 1 << 20

// Lines calls fn for each line read from r (without its "\n" or
// "\r\n"; a line longer than Max cut, with a marker) and returns
// how many, with the read error that ended it (nil at EOF). It holds one
// line at most.
func Lines(r io.Reader, fn func(string)) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	var line []byte
	cut := 0 // bytes of the line dropped
	for {
		chunk, err := br.ReadSlice('\n')
		end := err == nil // chunk ends the line
		data := chunk
		if end {
			data = chunk[:len(chunk)-1]
		}
		room := Max - len(line)
		if len(data) <= room {
			line = append(line, data...)
		} else {
			line = append(line, data[:room]...)
			cut += len(data) - room
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if end || len(line) > 0 || cut > 0 {
			text := strings.TrimSuffix(string(line), "\r")
			if cut > 0 {
				text += fmt.Sprintf(" … [line cut by heph: %d more bytes]", cut)
			}
			fn(text)
			n++
			line, cut = line[:0], 0
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Tail returns the lines of r (a log tail), without trailing blank lines.
func Tail(r io.Reader) ([]string, error) {
	var lines []string
	_, err := Lines(r, func(l string) { lines = append(lines, l) })
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines, err
}

// Block writes a tail of lines (or what kept them from being read) as the
// indented block under a failure message's first line.
func Block(b *strings.Builder, lines []string, err error) {
	switch {
	case err != nil:
		fmt.Fprintf(b, "\n  (logs unavailable: %s)", err)
	case len(lines) == 0:
		b.WriteString("\n  (no output)")
	default:
		fmt.Fprintf(b, "\n  last %d log lines:", len(lines))
		for _, l := range lines {
			b.WriteString("\n  | " + l)
		}
	}
}

// Follow prints (with print) each line of a container's output from open's
// stream, following it until ctx ends; then, since the end of ctx may stop
// (or even forestall) the stream before it delivered all the container
// wrote, it reads the whole output once more, without following, and prints
// the lines the stream had not. A stream that cannot be opened while ctx
// lasts is reported with failed.
func Follow(ctx context.Context, open func(ctx context.Context, follow bool) (io.ReadCloser, error), print func(string), failed func(error)) {
	printed := 0
	if r, err := open(ctx, true); err == nil {
		printed, _ = Lines(r, print)
		r.Close()
	} else if ctx.Err() == nil {
		failed(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rest, err := open(rctx, false)
	if err != nil {
		return
	}
	defer rest.Close()
	Lines(rest, func(line string) {
		if printed > 0 {
			printed--
			return
		}
		print(line)
	})
}
