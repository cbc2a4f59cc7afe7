package engine_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

// frames multiplexes payloads as the daemon does, alternating streams.
func frames(payloads ...string) []byte {
	var buf bytes.Buffer
	for i, p := range payloads {
		buf.Write(enginetest.Frame(byte(1+i%2), p)) // stdout, stderr, stdout, …
	}
	return buf.Bytes()
}

func demux(r io.Reader) ([]byte, error) {
	return io.ReadAll(engine.NewDemuxReader(io.NopCloser(r)))
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
			got, err := demux(wrap(bytes.NewReader(data)))
			require.NoError(t, err)
			require.Equal(t, want.String(), string(got))
		})
	}
}

func TestDemuxReaderRecordedStreams(t *testing.T) {
	got, err := demux(bytes.NewReader(enginetest.Fixture("container-logs")))
	require.NoError(t, err)
	require.Equal(t, 5, strings.Count(string(got), "\n"))
	got, err = demux(bytes.NewReader(enginetest.Fixture("exec-start")))
	require.NoError(t, err)
	require.Equal(t, "testapp: cat: open /nonexistent: no such file or directory\nhello from heph", string(got))
}

func TestDemuxReaderFillsTheBufferFromManyFrames(t *testing.T) {
	data := frames(strings.Split(strings.Repeat("line\n", 1000), "\n")[:1000]...)
	d := engine.NewDemuxReader(io.NopCloser(bytes.NewReader(data)))
	buf := make([]byte, 32*1024)
	n, err := d.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 4000, n, "one Read returns every buffered frame, not one frame")
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestDemuxReaderCloseClosesTheStream(t *testing.T) {
	rc := &closeRecorder{Reader: strings.NewReader("")}
	require.NoError(t, engine.NewDemuxReader(rc).Close())
	require.True(t, rc.closed)
}

func TestDemuxReaderErrors(t *testing.T) {
	data := frames("hello\n")
	_, err := demux(bytes.NewReader(data[:len(data)-2]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a frame cut short")
	_, err = demux(bytes.NewReader(data[:5]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a header cut short")

	got, err := demux(io.MultiReader(bytes.NewReader(data), bytes.NewReader(enginetest.Frame(3, "log driver failed"))))
	require.Equal(t, "hello\n", string(got))
	require.EqualError(t, err, "the daemon reported: log driver failed")

	sys := enginetest.Frame(3, "log driver failed")
	_, err = demux(bytes.NewReader(sys[:12]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the daemon's error frame cut short")
	_, err = demux(bytes.NewReader(sys[:8]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "an error frame announced, then nothing: no clean end")
}

func TestDemuxReaderMalformedHeader(t *testing.T) {
	for name, hdr := range map[string][]byte{
		"unknown stream":     {4, 0, 0, 0, 0, 0, 0, 1},
		"padding not zero":   {1, 0, 1, 0, 0, 0, 0, 1},
		"a TTY's raw output": []byte("hello, w"),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := demux(io.MultiReader(bytes.NewReader(frames("ok\n")), bytes.NewReader(hdr), strings.NewReader("x")))
			require.Equal(t, "ok\n", string(got), "what came before")
			require.ErrorContains(t, err, "malformed frame header")
			require.ErrorContains(t, err, "is this a TTY container?")
			require.NotErrorIs(t, err, io.EOF)

			var stdout, stderr bytes.Buffer
			err = engine.DemuxCopy(&stdout, &stderr, io.MultiReader(bytes.NewReader(frames("ok\n")), bytes.NewReader(hdr)))
			require.ErrorContains(t, err, "malformed frame header")
			require.Equal(t, "ok\n", stdout.String())
		})
	}
}

// allocated returns the bytes fn allocated (the test must not be parallel).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A frame header may claim up to 4 GiB. The payload streams through: what a
// garbled or hostile header claims is never allocated.
func TestDemuxHugeFrameClaimAllocatesNothingLikeIt(t *testing.T) {
	const bound = 1 << 20 // 1 MiB, against the 4 GiB claimed
	for _, stream := range []byte{1, 2, 3} {
		hdr := []byte{stream, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
		data := append(hdr, strings.Repeat("x", 100)...)
		var got []byte
		var err error
		n := allocated(func() { got, err = demux(bytes.NewReader(data)) })
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "stream %d", stream)
		if stream != 3 {
			require.Equal(t, strings.Repeat("x", 100), string(got), "the payload that came")
		}
		require.Less(t, n, uint64(bound), "stream %d: NewDemuxReader allocated %d bytes", stream, n)

		var stdout, stderr bytes.Buffer
		n = allocated(func() { err = engine.DemuxCopy(&stdout, &stderr, bytes.NewReader(data)) })
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		want := map[byte][2]int{1: {100, 0}, 2: {0, 100}, 3: {0, 0}}[stream]
		require.Equal(t, want, [2]int{stdout.Len(), stderr.Len()}, "stream %d", stream)
		require.Less(t, n, uint64(bound), "stream %d: DemuxCopy allocated %d bytes", stream, n)
	}
}

func TestDemuxCopySplitsTheStreams(t *testing.T) {
	var stdout, stderr bytes.Buffer
	data := bytes.Join([][]byte{
		enginetest.Frame(1, "out 1\n"), enginetest.Frame(2, "err 1\n"), enginetest.Frame(0, "stdin echoed\n"),
		enginetest.Frame(1, ""), enginetest.Frame(2, "err 2\n"),
	}, nil)
	require.NoError(t, engine.DemuxCopy(&stdout, &stderr, iotest.OneByteReader(bytes.NewReader(data))))
	require.Equal(t, "out 1\nstdin echoed\n", stdout.String())
	require.Equal(t, "err 1\nerr 2\n", stderr.String())

	stdout.Reset()
	err := engine.DemuxCopy(&stdout, &stderr, bytes.NewReader(data[:10]))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut inside a frame: no clean end")
	require.Equal(t, "ou", stdout.String())

	err = engine.DemuxCopy(&stdout, &stderr, bytes.NewReader(enginetest.Frame(3, "exec failed")))
	require.EqualError(t, err, "the daemon reported: exec failed")

	boom := errors.New("connection reset")
	require.ErrorIs(t, engine.DemuxCopy(&stdout, &stderr, iotest.ErrReader(boom)), boom)
	require.NoError(t, engine.DemuxCopy(&stdout, &stderr, strings.NewReader("")), "an empty stream")
}

func BenchmarkDemuxReader(b *testing.B) {
	data := frames(strings.Split(strings.Repeat(strings.Repeat("x", 99)+"\n", 100000), "\n")[:100000]...)
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := io.Copy(io.Discard, engine.NewDemuxReader(io.NopCloser(bytes.NewReader(data)))); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceDemux is the frame format written out plainly: the payloads in
// order (all), those of stdout and stdin's frames, those of stderr's — whole
// and cut — and whether the stream ends in an error rather than cleanly
// between two frames.
func referenceDemux(data []byte) (all, stdout, stderr []byte, failed bool) {
	for len(data) > 0 {
		if len(data) < 8 {
			return all, stdout, stderr, true
		}
		hdr := data[:8]
		if hdr[0] > 2 || hdr[1] != 0 || hdr[2] != 0 || hdr[3] != 0 {
			return all, stdout, stderr, true // malformed, or the daemon's error
		}
		size := uint64(binary.BigEndian.Uint32(hdr[4:]))
		data = data[8:]
		payload := data[:min(size, uint64(len(data)))]
		data = data[len(payload):]
		all = append(all, payload...)
		if hdr[0] == 2 {
			stderr = append(stderr, payload...)
		} else {
			stdout = append(stdout, payload...)
		}
		if uint64(len(payload)) < size {
			return all, stdout, stderr, true
		}
	}
	return all, stdout, stderr, false
}

// FuzzDemux: whatever the bytes, the demultiplexers never panic, return
// exactly the payloads the plain reference finds (so never more bytes than
// the input holds), fail exactly when it fails, and allocate a bounded
// amount, never what a header claims. The seed corpus is in
// testdata/fuzz/FuzzDemux.
func FuzzDemux(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantOut, wantErr, failed := referenceDemux(data)
		if len(want) > len(data) {
			t.Fatalf("the reference returned more than the input")
		}
		bound := uint64(4<<20 + 4*len(data))

		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"whole":    func(r io.Reader) io.Reader { return r },
			"one byte": iotest.OneByteReader,
		} {
			var got []byte
			var err error
			n := allocated(func() { got, err = demux(wrap(bytes.NewReader(data))) })
			if (err != nil) != failed {
				t.Fatalf("%s: NewDemuxReader error %v, reference failed=%v", name, err, failed)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: NewDemuxReader returned %q, want the payloads %q", name, got, want)
			}
			if n > bound {
				t.Fatalf("%s: NewDemuxReader allocated %d bytes for %d of input", name, n, len(data))
			}
		}

		var stdout, stderr bytes.Buffer
		var err error
		n := allocated(func() { err = engine.DemuxCopy(&stdout, &stderr, bytes.NewReader(data)) })
		if (err != nil) != failed {
			t.Fatalf("DemuxCopy error %v, reference failed=%v", err, failed)
		}
		if !bytes.Equal(stdout.Bytes(), wantOut) || !bytes.Equal(stderr.Bytes(), wantErr) {
			t.Fatalf("DemuxCopy gave stdout %q stderr %q, want %q and %q", stdout.Bytes(), stderr.Bytes(), wantOut, wantErr)
		}
		if n > bound {
			t.Fatalf("DemuxCopy allocated %d bytes for %d of input", n, len(data))
		}
	})
}
