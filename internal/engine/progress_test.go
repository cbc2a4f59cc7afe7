package engine_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

func TestReadProgressCallsBackPerMessage(t *testing.T) {
	for _, name := range []string{"pull-progress", "load-progress", "build-progress"} {
		t.Run(name, func(t *testing.T) {
			stream := enginetest.Fixture(name)
			var got []engine.ProgressMessage
			// One byte at a time: messages split across reads.
			err := engine.ReadProgress(iotest.OneByteReader(bytes.NewReader(stream)), func(m engine.ProgressMessage) { got = append(got, m) })
			require.NoError(t, err)
			require.Len(t, got, bytes.Count(stream, []byte("\n")))
		})
	}
	require.NoError(t, engine.ReadProgress(strings.NewReader(""), nil), "an empty stream")
	require.NoError(t, engine.ReadProgress(bytes.NewReader(enginetest.Fixture("pull-progress")), nil), "no callback")
}

func TestReadProgressReturnsTheFirstErrorInTheStream(t *testing.T) {
	stream := `{"status":"Pulling"}
{"errorDetail":{"message":"first"},"error":"first (old form)"}
{"status":"after the error"}
{"error":"second"}
`
	var got []string
	err := engine.ReadProgress(strings.NewReader(stream), func(m engine.ProgressMessage) { got = append(got, m.Status+m.Error) })
	var se *engine.StreamError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "first", se.Message, "errorDetail wins over error; the first one wins")
	require.Equal(t, "first", err.Error())
	require.Equal(t, []string{"Pulling", "first (old form)", "after the error", "second"}, got, "read to the end")

	err = engine.ReadProgress(bytes.NewReader(enginetest.Fixture("build-error")), nil)
	require.ErrorAs(t, err, &se)
	require.Contains(t, se.Message, "COPY failed")
}

func TestReadProgressStreamCutShort(t *testing.T) {
	err := engine.ReadProgress(strings.NewReader(`{"status":"Pulling"}`+"\n"+`{"status":"Downl`), nil)
	require.ErrorContains(t, err, "read progress stream")
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	var se *engine.StreamError
	require.False(t, errors.As(err, &se))

	// An error in the stream, then the cut: both are said.
	err = engine.ReadProgress(strings.NewReader(`{"error":"no space left on device"}`+"\n"+`{"sta`), nil)
	require.ErrorAs(t, err, &se)
	require.Equal(t, "no space left on device", se.Message)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)

	err = engine.ReadProgress(strings.NewReader("<html>502 Bad Gateway</html>"), nil)
	require.ErrorContains(t, err, "read progress stream")

	boom := errors.New("connection reset")
	err = engine.ReadProgress(iotest.ErrReader(boom), nil)
	require.ErrorIs(t, err, boom)
}
