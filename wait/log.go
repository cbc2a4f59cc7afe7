package wait

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"regexp/syntax"
	"strings"
)

const (
	// logBufferSize is the size of the chunks a followed log is read in.
	logBufferSize = 64 << 10
	// maxRegexpLine is how much of one line a regexp sees: a longer line is
	// matched on its first maxRegexpLine bytes.
	maxRegexpLine = 4 << 20
)

// LogStrategy waits for lines in the container's output; ForLog and
// ForLogRegexp build it. It is an immutable value: WithOccurrence returns a
// modified copy, and one value may serve any number of parallel waits.
type LogStrategy struct {
	substr     string         // ForLog: the substring; ForLogRegexp: the literal regexp, if it is one
	expr       string         // ForLogRegexp: the expression as given
	re         *regexp.Regexp // ForLogRegexp, unless the expression is a plain literal
	literal    string         // a literal every match of re contains: a cheap pre-filter
	isRegexp   bool
	occurrence int
	errs       problems
	built      bool // by ForLog or ForLogRegexp: the zero value is invalid
}

// ForLog returns a strategy that is ready once the container has written
// a line containing substr (stdout and stderr alike), or WithOccurrence
// lines. It follows the log once from its start: the cost is linear in the
// size of the log, whatever the length of its lines. A line counts as soon
// as substr has arrived, and once however often substr occurs in it.
//
// If the log ends (the container stopped) before enough lines matched, the
// wait fails at once: "log ended after 1 of 2 matching lines". When the
// context ends first the error wraps the context's error and says how many
// lines matched so far. An empty substr, or one containing a newline, is
// an invalid argument reported by Validate and Wait.
func ForLog(substr string) LogStrategy {
	s := LogStrategy{substr: substr, occurrence: 1, built: true}
	switch {
	case substr == "":
		s.errs = s.errs.add(errors.New("empty substring: every line would match"))
	case strings.ContainsAny(substr, "\n"):
		s.errs = s.errs.add(fmt.Errorf("substring %q contains a newline: lines never do", substr))
	}
	return s
}

// ForLogRegexp returns a strategy that is ready once the container has
// written a line matching the regular expression expr (Go's RE2 syntax; the
// line has no trailing newline or carriage return, so `^ready$` matches
// the whole line "ready"), or WithOccurrence lines. A line is matched once
// it is complete (its newline arrived, or the log ended), on its first
// 4 MiB. Only lines containing a literal that every match needs (as
// "ready on port " in `^ready on port \d+$`) are handed to the regexp, so
// the cost stays close to ForLog's. It behaves as ForLog otherwise. An
// expression that does not compile is an invalid argument reported by
// Validate and Wait.
func ForLogRegexp(expr string) LogStrategy {
	s := LogStrategy{expr: expr, isRegexp: true, occurrence: 1, built: true}
	re, err := regexp.Compile(expr)
	if err != nil {
		s.errs = s.errs.add(fmt.Errorf("bad regexp: %w", err))
		return s
	}
	if prefix, complete := re.LiteralPrefix(); complete && prefix != "" && !strings.Contains(prefix, "\n") {
		s.substr = prefix // a plain literal: match it as a substring
		return s
	}
	s.re = re
	if parsed, err := syntax.Parse(expr, syntax.Perl); err == nil {
		if lit := requiredLiteral(parsed.Simplify()); !strings.Contains(lit, "\n") {
			s.literal = lit
		}
	}
	return s
}

// WithOccurrence returns a copy of s that is ready after n matching lines
// (default 1). n below 1 is an invalid argument.
func (s LogStrategy) WithOccurrence(n int) LogStrategy {
	if n < 1 {
		s.errs = s.errs.add(fmt.Errorf("occurrence must be at least 1, got %d", n))
	}
	s.occurrence = n
	return s
}

// String describes s for errors: ForLog("ready"), ForLogRegexp("^ok$"),
// followed by .WithOccurrence(n) when n is not 1.
func (s LogStrategy) String() string {
	if !s.built {
		return "LogStrategy{}"
	}
	var b strings.Builder
	if s.isRegexp {
		fmt.Fprintf(&b, "ForLogRegexp(%q)", s.expr)
	} else {
		fmt.Fprintf(&b, "ForLog(%q)", s.substr)
	}
	if s.occurrence != 1 {
		fmt.Fprintf(&b, ".WithOccurrence(%d)", s.occurrence)
	}
	return b.String()
}

// Validate returns an error wrapping ErrInvalid that lists every bad
// argument s was built with, or nil.
func (s LogStrategy) Validate() error { return Validate(s) }

func (s LogStrategy) check() error {
	if !s.built {
		return zeroValue("LogStrategy", "ForLog or ForLogRegexp")
	}
	return s.errs.err()
}

// Wait follows the log of t until enough lines match (nil), the log ends
// (an error saying how many matched) or ctx ends (an error wrapping
// ctx.Err() and how many matched). Opening the log is retried with backoff;
// the stream, once open, is read once.
func (s LogStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var rc io.ReadCloser
	err := poll(ctx, pollMaxInterval, func(ctx context.Context) error {
		r, err := t.Logs(ctx, LogOptions{Follow: true})
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		rc = r
		return nil
	})
	if err != nil {
		return err
	}
	defer closeWhenDone(ctx, rc)()

	n, err := s.count(rc)
	switch {
	case n >= s.occurrence:
		return nil
	case ctx.Err() != nil:
		return stopped(ctx, fmt.Errorf("%d of %d matching lines so far", n, s.occurrence))
	case err != nil:
		return fmt.Errorf("read log after %d of %d matching lines: %w", n, s.occurrence, err)
	}
	return fmt.Errorf("%w after %d of %d matching lines", errLogEnded, n, s.occurrence)
}

// errLogEnded is the failure of a log strategy whose log ended: the
// container's output closed, which almost always means it exited (see
// logEndGrace).
var errLogEnded = errors.New("log ended")

// count reads r until s.occurrence lines matched or r ends, and returns
// the number of matching lines and the read error (nil at io.EOF). It
// reads r in chunks and looks at each byte a bounded number of times, with
// no per-line work for lines that cannot match: the cost is linear in the
// size of the log, whatever the length of its lines.
func (s LogStrategy) count(r io.Reader) (int, error) {
	var c lineCounter
	if s.re != nil {
		c = &regexpCounter{re: s.re, lit: []byte(s.literal)}
	} else {
		c = &substrCounter{sub: []byte(s.substr)}
	}
	buf := make([]byte, logBufferSize)
	n := 0
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if n += c.chunk(buf[:m]); n >= s.occurrence {
				return n, nil
			}
		}
		if err == io.EOF {
			return n + c.end(), nil
		}
		if err != nil {
			return n, err
		}
	}
}

// lineCounter counts the matching lines of a log fed in chunks of any
// size, which split lines anywhere. chunk returns how many matching lines
// ended in data (the bytes are only valid during the call); end returns 1
// when the last line, left without a newline at the end of the log,
// matches.
type lineCounter interface {
	chunk(data []byte) int
	end() int
}

// substrCounter finds a substring without assembling lines: it searches
// each chunk as a whole (bytes.Index, which skips non-matching text fast)
// and, for an occurrence straddling two chunks, carries the last
// len(sub)-1 bytes of the unfinished line over to the next chunk. A line
// counts as soon as it contains sub, before its end arrives.
type substrCounter struct {
	sub     []byte // never contains a newline
	counted bool   // the unfinished line has been counted
	carry   []byte // while !counted: the unfinished line's last len(sub)-1 bytes
	join    []byte // scratch: carry + the start of the next chunk
}

func (c *substrCounter) chunk(data []byte) (n int) {
	k := len(c.sub) - 1
	if !c.counted && len(c.carry) > 0 {
		// An occurrence starting in carry is in the unfinished line: sub
		// has no newline to cross into the next.
		c.join = append(append(c.join[:0], c.carry...), data[:min(len(data), k)]...)
		if i := bytes.Index(c.join, c.sub); i >= 0 && i < len(c.carry) {
			c.counted = true
			n++
		}
	}
	for pos := 0; pos < len(data); {
		if c.counted {
			i := bytes.IndexByte(data[pos:], '\n')
			if i < 0 {
				return n // the counted line goes on in the next chunk
			}
			c.counted, pos = false, pos+i+1
			continue
		}
		i := bytes.Index(data[pos:], c.sub)
		if i < 0 {
			break
		}
		c.counted, pos = true, pos+i+len(c.sub)
		n++
	}
	if k > 0 {
		if nl := bytes.LastIndexByte(data, '\n'); nl >= 0 {
			c.carry = append(c.carry[:0], data[max(nl+1, len(data)-k):]...)
		} else { // the whole chunk continues the unfinished line
			c.carry = append(c.carry, data[max(0, len(data)-k):]...)
			c.carry = c.carry[:copy(c.carry, c.carry[max(0, len(c.carry)-k):])]
		}
	}
	return n
}

func (c *substrCounter) end() int { return 0 } // lines are counted as they match

// regexpCounter matches a regexp line by line. When every match contains a
// literal, only the lines containing it (found by searching whole chunks)
// are given to the regexp. The unfinished line at the end of a chunk is
// kept, up to maxRegexpLine bytes.
type regexpCounter struct {
	re      *regexp.Regexp
	lit     []byte // a literal every match contains; may be empty
	partial []byte // the unfinished line so far
}

func (c *regexpCounter) chunk(data []byte) (n int) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		c.keep(data)
		return 0
	}
	first := data[:nl]
	if len(c.partial) > 0 {
		c.keep(first)
		first = c.partial
	}
	if c.match(first) {
		n++
	}
	c.partial = c.partial[:0]
	rest := data[nl+1:]
	last := bytes.LastIndexByte(rest, '\n')
	n += c.lines(rest[:last+1])
	c.keep(rest[last+1:])
	return n
}

// lines counts the matching lines in b, whole lines each ending with a
// newline.
func (c *regexpCounter) lines(b []byte) (n int) {
	for len(b) > 0 {
		if len(c.lit) > 0 {
			i := bytes.Index(b, c.lit)
			if i < 0 {
				return n
			}
			b = b[bytes.LastIndexByte(b[:i], '\n')+1:] // the start of that line
		}
		end := bytes.IndexByte(b, '\n')
		if c.match(b[:end]) {
			n++
		}
		b = b[end+1:]
	}
	return n
}

func (c *regexpCounter) end() int {
	if len(c.partial) == 0 {
		return 0
	}
	matched := c.match(c.partial)
	c.partial = c.partial[:0]
	if matched {
		return 1
	}
	return 0
}

// keep appends b to the unfinished line, up to maxRegexpLine bytes.
func (c *regexpCounter) keep(b []byte) {
	room := maxRegexpLine - len(c.partial)
	c.partial = append(c.partial, b[:min(len(b), room)]...)
}

// match matches one line (without its newline).
func (c *regexpCounter) match(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > maxRegexpLine {
		line = line[:maxRegexpLine]
	}
	return bytes.Contains(line, c.lit) && c.re.Match(line)
}

// requiredLiteral returns the longest case-sensitive literal that every
// match of re contains ("READY on port " for `^READY on port \d+$`), or
// "" when there is none (alternations, case folding, …).
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return string(re.Rune)
		}
	case syntax.OpCapture:
		return requiredLiteral(re.Sub[0])
	case syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if lit := requiredLiteral(sub); len(lit) > len(best) {
				best = lit
			}
		}
		return best
	}
	return ""
}
