package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

// recordedEvents are the recorded event stream's messages, as heph maps them.
func recordedEvents(t *testing.T) []engine.Event {
	t.Helper()
	var out []engine.Event
	sc := bufio.NewScanner(bytes.NewReader(enginetest.Fixture("events")))
	for sc.Scan() {
		var m struct {
			Type, Action string
			Actor        struct {
				ID         string
				Attributes map[string]string
			}
			TimeNano int64 `json:"timeNano"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, engine.Event{Type: m.Type, Action: m.Action, ID: m.Actor.ID, Attributes: m.Actor.Attributes, Time: time.Unix(0, m.TimeNano)})
	}
	require.NoError(t, sc.Err())
	return out
}

func TestEventsMapsTheStreamAndEndsWithItsContext(t *testing.T) {
	srv, c := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	msgs, errs := c.Events(ctx, engine.Filter{}.Add("label", "heph.session=s1").Add("type", "container", "network"))

	want := recordedEvents(t)
	require.Len(t, want, 43)
	var got []engine.Event
	for range want {
		got = append(got, <-msgs)
	}
	require.Equal(t, want, got)
	require.Equal(t, engine.Event{
		Type: "container", Action: "create", ID: "d76840d8249c1bd2a9a80e12fe23c4608e3e378bf4ce726a14c6a474a6f869e1",
		Attributes: map[string]string{"heph.test": "record", "image": "sha256:17095372cc0efac4a53cfa5ff4e2d0137f9fbd0985b168002e3930993ad95634", "name": "keen_faraday"},
		Time:       time.Unix(0, 1795999044024412245),
	}, got[0], "the first recorded message, field by field")

	r := only(t, srv, "GET /events")
	require.Equal(t, map[string]map[string]bool{
		"label": {"heph.session=s1": true},
		"type":  {"container": true, "network": true},
	}, filtersOf(t, r))
	require.False(t, r.Query.Has("since") || r.Query.Has("until"), "from now on, until ctx ends")

	// The daemon holds the stream open (enginetest.Server does as it does):
	// only the context ends it.
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	_, open := <-msgs
	require.False(t, open, "msgs closed")
	_, open = <-errs
	require.False(t, open, "errs closed")
}

func TestEventsEndsWhenTheConsumerStopsReading(t *testing.T) {
	_, c := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	msgs, errs := c.Events(ctx, nil)
	<-msgs // one, then nobody reads: the sender waits on msgs or ctx
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	for range msgs { // drains to closed
	}
}

func TestEventsStreamBreaks(t *testing.T) {
	line := enginetest.JSONLine(map[string]any{"Type": "container", "Action": "die", "Actor": map[string]any{"ID": "abc"}, "timeNano": 1})
	tests := []struct {
		name   string
		answer http.Handler
		msgs   int
	}{
		{"cut inside a message", enginetest.Cut("application/json", line, []byte(`{"Type":"contai`)), 1},
		{"ended by the daemon", enginetest.Stream("application/json", line, line), 2},
		{"garbage", enginetest.Stream("application/json", line, []byte("not json\n")), 1},
		{"refused", enginetest.Error(500, "events unavailable"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t)
			srv.Handle("GET /events", tt.answer)
			msgs, errs := c.Events(t.Context(), nil)
			for range tt.msgs {
				require.Equal(t, engine.Event{Type: "container", Action: "die", ID: "abc", Time: time.Unix(0, 1)}, <-msgs)
			}
			err := <-errs
			require.Error(t, err)
			require.NotErrorIs(t, err, context.Canceled, "the break, not the context")
			_, open := <-msgs
			require.False(t, open, "msgs closed")
			_, open = <-errs
			require.False(t, open, "errs closed")
		})
	}
}

func TestEventsWithoutATime(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /events", enginetest.Follow("application/json", enginetest.JSONLine(map[string]any{"Type": "network", "Action": "create"})))
	msgs, _ := c.Events(t.Context(), nil)
	require.Equal(t, engine.Event{Type: "network", Action: "create"}, <-msgs, "no timeNano: the zero time")
}

func TestEventsOfAnUnreachableDaemon(t *testing.T) {
	c, err := engine.Dial(engine.Endpoint{Host: "unix:///nonexistent/heph/docker.sock"})
	require.NoError(t, err)
	defer c.Close()
	_, errs := c.Events(t.Context(), nil)
	require.ErrorIs(t, <-errs, engine.ErrUnavailable)
}
