package heph

import (
	"bytes"
	"io"
	"math/rand"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// frames multiplexes payloads as the daemon does, alternating streams.
func frames(payloads ...string) []byte {
	var buf bytes.Buffer
	for i, p := range payloads {
		buf.WriteString(stdFrame(byte(1+i%2), p)) // stdout, stderr, stdout, …
	}
	return buf.Bytes()
}

func TestDemuxReader(t *testing.T) {
	var payloads []string
	var want strings.Builder
	rng := rand.New(rand.NewSource(1))
	for i := range 2000 {
		p := strings.Repeat(string(rune('a'+i%26)), rng.Intn(300)) + "\n"
		payloads = append(payloads, p)
		want.WriteString(p)
	}
	data := frames(payloads...)
	cases := map[string]func(io.Reader) io.Reader{
		"whole":        func(r io.Reader) io.Reader { return r },
		"one byte":     iotest.OneByteReader,
		"half":         iotest.HalfReader,
		"data and EOF": iotest.DataErrReader,
	}
	for name, wrap := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := io.ReadAll(newDemuxReader(io.NopCloser(wrap(bytes.NewReader(data)))))
			require.NoError(t, err)
			require.Equal(t, want.String(), string(got))
		})
	}
}

func TestDemuxReaderFillsTheBufferFromManyFrames(t *testing.T) {
	data := frames(strings.Split(strings.Repeat("line\n", 1000), "\n")[:1000]...)
	d := newDemuxReader(io.NopCloser(bytes.NewReader(data)))
	buf := make([]byte, 32*1024)
	n, err := d.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 4000, n, "one Read returns every buffered frame, not one frame")
}

func TestDemuxReaderErrors(t *testing.T) {
	data := frames("hello\n")
	_, err := io.ReadAll(newDemuxReader(io.NopCloser(bytes.NewReader(data[:len(data)-2]))))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a frame cut short")
	_, err = io.ReadAll(newDemuxReader(io.NopCloser(bytes.NewReader(data[:5]))))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a header cut short")

	sys := strings.NewReader(stdFrame(3, "log driver failed"))
	got, err := io.ReadAll(newDemuxReader(io.NopCloser(io.MultiReader(bytes.NewReader(data), sys))))
	require.Equal(t, "hello\n", string(got))
	require.ErrorContains(t, err, "the daemon reported: log driver failed")
}

func BenchmarkDemuxReader(b *testing.B) {
	data := frames(strings.Split(strings.Repeat(strings.Repeat("x", 99)+"\n", 100000), "\n")[:100000]...)
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := io.Copy(io.Discard, newDemuxReader(io.NopCloser(bytes.NewReader(data)))); err != nil {
			b.Fatal(err)
		}
	}
}
