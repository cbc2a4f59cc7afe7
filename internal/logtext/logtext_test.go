package logtext

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

func TestLines(t *testing.T) {
	long := strings.Repeat("x", Max+5000)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"a last line without newline", "a\nb", []string{"a", "b"}},
		{"blank lines and CRLF", "a\r\n\nb\r\n", []string{"a", "", "b"}},
		{"nothing", "", nil},
		{"a line over the bound is cut, and the stream goes on", "before\n" + long + "\nafter\n",
			[]string{"before", long[:Max] + " … [line cut by heph: 5000 more bytes]", "after"}},
		{"a last line over the bound", long, []string{long[:Max] + " … [line cut by heph: 5000 more bytes]"}},
		{"exactly the bound", long[:Max] + "\nz", []string{long[:Max], "z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			// One byte at a time, then all at once: chunking changes nothing.
			for _, r := range []io.Reader{iotest.OneByteReader(strings.NewReader(tc.in)), strings.NewReader(tc.in)} {
				got = nil
				n, err := Lines(r, func(l string) { got = append(got, l) })
				require.NoError(t, err)
				require.Equal(t, len(got), n)
				require.Equal(t, tc.want, got)
			}
		})
	}
	broken := errors.New("connection reset")
	n, err := Lines(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(broken)), func(string) {})
	require.ErrorIs(t, err, broken, "a read error is returned")
	require.Equal(t, 2, n, "after the lines read before it")
}

func TestTailAndBlock(t *testing.T) {
	lines, err := Tail(strings.NewReader("a\nb\n\n\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, lines, "trailing blank lines dropped")
	for _, tc := range []struct {
		lines []string
		err   error
		want  string
	}{
		{[]string{"a", "b"}, nil, "\n  last 2 log lines:\n  | a\n  | b"},
		{nil, nil, "\n  (no output)"},
		{nil, errors.New("gone"), "\n  (logs unavailable: gone)"},
	} {
		var b strings.Builder
		Block(&b, tc.lines, tc.err)
		require.Equal(t, tc.want, b.String())
	}
}

func TestFollowPrintsTheRestTheStreamMissed(t *testing.T) {
	var printed []string
	Follow(context.Background(),
		func(_ context.Context, follow bool) (io.ReadCloser, error) {
			if follow {
				return io.NopCloser(strings.NewReader("a\nb\n")), nil // cut short after two lines
			}
			return io.NopCloser(strings.NewReader("a\nb\nc\n")), nil
		},
		func(l string) { printed = append(printed, l) },
		func(err error) { t.Fatalf("unexpected failure: %v", err) })
	require.Equal(t, []string{"a", "b", "c"}, printed, "each line once, in order")

	printed = nil
	var failures []error
	boom := errors.New("boom")
	Follow(context.Background(),
		func(_ context.Context, follow bool) (io.ReadCloser, error) {
			if follow {
				return nil, boom
			}
			return io.NopCloser(strings.NewReader("x\n")), nil
		},
		func(l string) { printed = append(printed, l) },
		func(err error) { failures = append(failures, err) })
	require.Equal(t, []error{boom}, failures, "a stream that cannot be opened is reported")
	require.Equal(t, []string{"x"}, printed, "and the output is still read once")
}
