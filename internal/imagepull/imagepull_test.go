package imagepull

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in     string
		always bool
		age    time.Duration
		ok     bool
	}{
		{"", false, 0, true},
		{"missing", false, 0, true},
		{" Always ", true, 0, true},
		{"older-than=24h", false, 24 * time.Hour, true},
		{"OLDER-THAN=90m", false, 90 * time.Minute, true},
		{"older-than=0s", false, 0, false},
		{"older-than=-1h", false, 0, false},
		{"older-than=1d", false, 0, false},
		{"never", false, 0, false},
	} {
		always, age, err := ParsePolicy(tc.in)
		if !tc.ok {
			require.ErrorContains(t, err, PolicyWords, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.always, always, tc.in)
		require.Equal(t, tc.age, age, tc.in)
	}
}

func TestDue(t *testing.T) {
	now := time.Now()
	require.True(t, Due(time.Hour, time.Time{}, time.Time{}, now), "nothing known: due")
	require.True(t, Due(time.Hour, now.Add(-2*time.Hour), time.Time{}, now), "created long ago, never pulled here")
	require.False(t, Due(time.Hour, now.Add(-2*time.Hour), now.Add(-time.Minute), now), "pulled a minute ago")
	require.False(t, Due(time.Hour, now.Add(-time.Minute), time.Time{}, now), "created a minute ago")
	require.True(t, Due(time.Hour, now.Add(-3*time.Hour), now.Add(-2*time.Hour), now), "pulled two hours ago")
}

func TestMirror(t *testing.T) {
	for _, tc := range []struct{ image, mirror, want string }{
		{"postgres:16", "mirror.corp:5000", "mirror.corp:5000/library/postgres:16"},
		{"postgres", "mirror.corp:5000", "mirror.corp:5000/library/postgres:latest"},
		{"docker.io/bitnami/redis:7", "mirror.corp", "mirror.corp/bitnami/redis:7"},
		{"index.docker.io/library/redis", "art.corp/dockerhub/", "art.corp/dockerhub/library/redis:latest"},
		{"redis@sha256:" + strings.Repeat("a", 64), "m:1", "m:1/library/redis@sha256:" + strings.Repeat("a", 64)},
		{"ghcr.io/org/app:1", "mirror.corp:5000", "ghcr.io/org/app:1"},
		{"127.0.0.1:5000/app:1", "mirror.corp:5000", "127.0.0.1:5000/app:1"},
	} {
		require.Equal(t, tc.want, Mirror(tc.image, tc.mirror), tc.image)
	}
	for _, ok := range []string{"mirror.corp:5000", "127.0.0.1:5000", "localhost:5000", "art.corp/dockerhub", "localhost"} {
		require.NoError(t, CheckMirror(ok), ok)
	}
	for _, bad := range []string{"https://mirror.corp", "mirror", "", " m.corp", "docker.io", "UPPER.corp:5000/X"} {
		require.Error(t, CheckMirror(bad), bad)
	}
}

// TestClassify: the messages the daemon (20.10) gives, as seen against the
// registries of internal/testenv and Docker Hub.
func TestClassify(t *testing.T) {
	for msg, want := range map[string]Failure{
		`Error response from daemon: Head "http://127.0.0.1:44103/v2/heph/exp/manifests/1": no basic auth credentials`: Rejected,
		`Error response from daemon: unauthorized`:                                                                                                    Rejected,
		`Head "http://127.0.0.1:33813/v2/heph/exp/manifests/1": unauthorized: invalid credentials`:                                                    Rejected,
		`Get "https://registry-1.docker.io/v2/": unauthorized: incorrect username or password`:                                                        Rejected,
		`repository 127.0.0.1:44103/heph/nothere not found: name unknown: Unknown name`:                                                               Missing,
		`manifest for 127.0.0.1:5000/a:2 not found: manifest unknown: manifest unknown`:                                                               Missing,
		`pull access denied for nothere, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`: Missing,
		`Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`:                                                             Other,
	} {
		require.Equal(t, want, Classify(msg), msg)
	}
}

func TestRecords(t *testing.T) {
	r := Records{Dir: t.TempDir()}
	now := time.Now()
	require.True(t, r.Last("k", "sha256:a").IsZero())
	r.Note("k", "sha256:a", now)
	require.True(t, r.Last("k", "sha256:a").Equal(now))
	require.True(t, r.Last("k", "sha256:b").IsZero(), "a record of another image ID does not count")
	require.True(t, r.Last("other", "sha256:a").IsZero())
	Records{}.Note("k", "x", now)
	require.True(t, Records{}.Last("k", "x").IsZero(), "no directory: no records")
}

func TestMeter(t *testing.T) {
	var m Meter
	require.Equal(t, "", m.String())
	for _, p := range []engine.Progress{
		{Status: "Pulling from heph/app"},
		{ID: "aaaa", Status: "Pulling fs layer"},
		{ID: "bbbb", Status: "Pulling fs layer"},
		{ID: "aaaa", Status: "Downloading", Current: 1e6, Total: 4e6},
		{ID: "bbbb", Status: "Already exists"},
		{Status: "Digest: sha256:…"},
	} {
		m.Add(p)
	}
	require.Equal(t, "1/2 layers, 1.0/4.0 MB", m.String())
	m.Add(engine.Progress{ID: "aaaa", Status: "Pull complete"})
	require.Equal(t, "2/2 layers, 4.0/4.0 MB", m.String())
}

func TestReporter(t *testing.T) {
	First, Every = 10*time.Millisecond, 10*time.Millisecond
	t.Cleanup(func() { First, Every = 2*time.Second, 5*time.Second })

	var mu sync.Mutex
	var got []string
	seen := make(chan struct{}, 100)
	r := StartReporter("pulling x", func() string { return "1/2 layers" })
	unlisten := r.Listen(func(s string) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		seen <- struct{}{}
	})
	<-seen
	<-seen
	unlisten()
	mu.Lock()
	n := len(got)
	mu.Unlock()
	r.Stop("pulled x")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, n, "an unlistened listener is not called again")
	require.Regexp(t, `^heph: pulling x: 1/2 layers \(\d`, got[0])

	First = time.Hour
	quiet := StartReporter("pulling y", func() string { return "" })
	var calls int
	quiet.Listen(func(string) { calls++ })
	quiet.Stop("pulled y")
	require.Zero(t, calls, "a job that ends before First is never reported")
}
