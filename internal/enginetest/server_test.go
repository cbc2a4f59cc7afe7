package enginetest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// httpClient dials s whatever its transport.
func httpClient(s *Server) *http.Client {
	network, addr := "tcp", strings.TrimPrefix(s.Host, "tcp://")
	if sock, ok := strings.CutPrefix(s.Host, "unix://"); ok {
		network, addr = "unix", sock
	}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's own server
	}}
}

func do(t *testing.T, s *Server, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, scheme+"://docker"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := httpClient(s).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestServerAnswersEveryDefaultRouteWithItsRecording(t *testing.T) {
	s := NewServer(t)
	paths := map[string]string{ // a request path for each default route
		"HEAD /_ping": "/_ping", "GET /_ping": "/_ping",
		"GET /version": "/v1.41/version", "GET /info": "/v1.41/info",
		"POST /containers/create":        "/v1.41/containers/create?name=x",
		"POST /containers/{id}/start":    "/v1.41/containers/abc/start",
		"POST /containers/{id}/stop":     "/v1.41/containers/abc/stop?t=1",
		"DELETE /containers/{id}":        "/v1.41/containers/abc?force=1",
		"GET /containers/json":           "/v1.41/containers/json?all=1",
		"GET /containers/{id}/json":      "/v1.41/containers/abc/json",
		"GET /containers/{id}/logs":      "/v1.41/containers/abc/logs?stdout=1",
		"POST /containers/{id}/wait":     "/v1.41/containers/abc/wait",
		"POST /containers/{id}/exec":     "/v1.41/containers/abc/exec",
		"GET /exec/{id}/json":            "/v1.41/exec/abc/json",
		"PUT /containers/{id}/archive":   "/v1.41/containers/abc/archive?path=/",
		"GET /containers/{id}/archive":   "/v1.41/containers/abc/archive?path=/",
		"GET /images/json":               "/v1.41/images/json",
		"GET /images/{name...}/json":     "/v1.41/images/127.0.0.1:5000/a/b:1/json",
		"POST /images/create":            "/v1.41/images/create?fromImage=x",
		"POST /build":                    "/v1.41/build",
		"POST /images/load":              "/v1.41/images/load",
		"DELETE /images/{name...}":       "/v1.41/images/a/b:1",
		"POST /networks/create":          "/v1.41/networks/create",
		"GET /networks":                  "/v1.41/networks",
		"DELETE /networks/{id}":          "/v1.41/networks/n",
		"POST /networks/{id}/connect":    "/v1.41/networks/n/connect",
		"POST /networks/{id}/disconnect": "/v1.41/networks/n/disconnect",
		"GET /volumes":                   "/v1.41/volumes",
		"DELETE /volumes/{name}":         "/v1.41/volumes/v",
		"POST /exec/{id}/start":          "", // an upgrade: TestServerUpgradesExecStart
		"GET /events":                    "", // followed: TestFollowKeepsTheStreamOpen
	}
	for _, d := range defaultRoutes {
		path, ok := paths[d.pattern]
		require.True(t, ok, "no request for route %q in this test", d.pattern)
		if path == "" {
			continue
		}
		name := d.name
		method, _, _ := strings.Cut(d.pattern, " ")
		resp, body := do(t, s, method, path, "")
		rec := recordingOf(name)
		require.Equal(t, rec.Status, resp.StatusCode, "%s %s (%s)", method, path, name)
		require.Equal(t, rec.Header.Get("Content-Type"), resp.Header.Get("Content-Type"), "%s %s (%s)", method, path, name)
		require.Equal(t, "1.41", resp.Header.Get("Api-Version"), "%s %s", method, path)
		if method != http.MethodHead {
			require.Equal(t, string(Fixture(name)), string(body), "%s %s (%s)", method, path, name)
		}
	}
}

func TestServerRecordsEveryRequest(t *testing.T) {
	s := NewServer(t)
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://docker/v1.41/containers/create?name=db&platform=linux%2Famd64", strings.NewReader(`{"Image":"x"}`))
	require.NoError(t, err)
	req.Header.Set("X-Registry-Auth", "e30=")
	resp, err := httpClient(s).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	do(t, s, "HEAD", "/_ping", "")
	do(t, s, "GET", "/v1.40/nope", "")

	reqs := s.Requests()
	require.Len(t, reqs, 3)
	r := reqs[0]
	require.Equal(t, "POST", r.Method)
	require.Equal(t, "/containers/create", r.Path)
	require.Equal(t, "1.41", r.Version)
	require.Equal(t, "db", r.Query.Get("name"))
	require.Equal(t, "linux/amd64", r.Query.Get("platform"))
	require.Equal(t, "e30=", r.Header.Get("X-Registry-Auth"))
	var body struct{ Image string }
	require.NoError(t, r.Decode(&body))
	require.Equal(t, "x", body.Image)
	require.Equal(t, Request{Method: "HEAD", Path: "/_ping", Version: ""}, Request{Method: reqs[1].Method, Path: reqs[1].Path, Version: reqs[1].Version})
	require.Equal(t, "/nope", reqs[2].Path, "an unknown route is recorded too")
	require.Equal(t, "1.40", reqs[2].Version)

	require.Len(t, s.Find("POST /containers/create"), 1)
	require.Len(t, s.Find("GET /nope"), 1)
	require.Empty(t, s.Find("GET /containers/create"), "the method counts")
	require.Error(t, Request{Method: "GET", Path: "/x", Body: []byte("{")}.Decode(&body))
}

func TestRouteMatching(t *testing.T) {
	tests := []struct {
		pattern, method, path string
		want                  map[string]string // nil: no match
	}{
		{"GET /containers/{id}/json", "GET", "/containers/abc/json", map[string]string{"id": "abc"}},
		{"GET /containers/{id}/json", "POST", "/containers/abc/json", nil},
		{"GET /containers/{id}/json", "GET", "/containers/json", nil},
		{"GET /containers/{id}/json", "GET", "/containers//json", nil},
		{"GET /containers/{id}/json", "GET", "/containers/a/b/json", nil},
		{"GET /containers/json", "GET", "/containers/json", map[string]string{}},
		{"GET /images/{name...}/json", "GET", "/images/127.0.0.1:5000/heph/app:1/json", map[string]string{"name": "127.0.0.1:5000/heph/app:1"}},
		{"GET /images/{name...}/json", "GET", "/images/json", nil},
		{"GET /images/{name...}/json", "GET", "/images/a/json/json", map[string]string{"name": "a/json"}},
		{"DELETE /images/{name...}", "DELETE", "/images/a/b/c:1", map[string]string{"name": "a/b/c:1"}},
		{"DELETE /images/{name...}", "DELETE", "/images", nil},
		{"GET /_ping", "GET", "/_ping", map[string]string{}},
		{"GET /_ping", "GET", "/_ping/x", nil},
	}
	for _, tt := range tests {
		got, ok := newRoute(tt.pattern, nil).match(tt.method, tt.path)
		if tt.want == nil {
			require.False(t, ok, "%q must not match %s %s (got %v)", tt.pattern, tt.method, tt.path, got)
			continue
		}
		require.True(t, ok, "%q must match %s %s", tt.pattern, tt.method, tt.path)
		require.Equal(t, tt.want, got, "%q on %s", tt.pattern, tt.path)
	}
	for _, bad := range []string{"/x", "GET x", " /x", "GET /{a...}/{b...}"} {
		require.Panics(t, func() { newRoute(bad, nil) }, "pattern %q", bad)
	}
}

func TestServerHandleReplacesTheAnswer(t *testing.T) {
	s := NewServer(t)
	s.Handle("GET /containers/{id}/json", Recorded("error-container-not-found"))
	resp, body := do(t, s, "GET", "/v1.41/containers/x/json", "")
	require.Equal(t, 404, resp.StatusCode)
	require.JSONEq(t, string(Fixture("error-container-not-found")), string(body))

	s.HandleFunc("GET /containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		JSON(200, map[string]string{"Id": r.PathValue("id")}).ServeHTTP(w, r)
	})
	resp, body = do(t, s, "GET", "/v1.41/containers/x/json", "")
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, `{"Id":"x"}`, string(body), "the newest Handle wins")
	require.Equal(t, "1.41", resp.Header.Get("Api-Version"), "the daemon's headers stay")

	resp, body = do(t, s, "GET", "/v1.41/nope", "")
	require.Equal(t, 404, resp.StatusCode)
	require.JSONEq(t, `{"message":"page not found"}`, string(body))
}

func TestAnswers(t *testing.T) {
	s := NewServer(t)
	s.Handle("GET /a", JSON(201, []byte(`{"raw":true}`)))
	s.Handle("GET /b", JSON(200, json.RawMessage(`[1]`)))
	s.Handle("GET /c", Error(409, "in use"))
	s.Handle("GET /d", Status(304))
	s.Handle("GET /e", Stream("application/json", JSONLine(map[string]int{"n": 1}), JSONLine(map[string]int{"n": 2})))
	for path, want := range map[string]struct {
		status int
		body   string
	}{
		"/a": {201, `{"raw":true}`}, "/b": {200, `[1]`}, "/c": {409, `{"message":"in use"}`},
		"/d": {304, ``}, "/e": {200, "{\"n\":1}\n{\"n\":2}\n"},
	} {
		resp, body := do(t, s, "GET", path, "")
		require.Equal(t, want.status, resp.StatusCode, path)
		require.Equal(t, want.body, string(body), path)
	}
	require.Panics(t, func() { JSON(200, func() {}) })
	require.Panics(t, func() { JSONLine(make(chan int)) })
	require.Panics(t, func() { Recorded("no-such-recording") })
	require.Equal(t, []byte{2, 0, 0, 0, 0, 0, 0, 3, 'e', 'r', 'r'}, Frame(2, "err"))
}

func TestCutBreaksTheStream(t *testing.T) {
	s := NewServer(t)
	s.Handle("POST /images/create", Cut("application/json", []byte(`{"status":"Pulling`)))
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://docker/v1.41/images/create", nil)
	require.NoError(t, err)
	resp, err := httpClient(s).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Equal(t, `{"status":"Pulling`, string(b))
}

func TestFollowKeepsTheStreamOpen(t *testing.T) {
	s := NewServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://docker/v1.41/events", nil)
	require.NoError(t, err)
	resp, err := httpClient(s).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	want := Fixture("events")
	got := make([]byte, len(want))
	_, err = io.ReadFull(resp.Body, got)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	cancel()
	_, err = resp.Body.Read(make([]byte, 1))
	require.ErrorIs(t, err, context.Canceled, "the stream was still open: only the client's end closed it")
}

func TestCloseReleasesHungHandlers(t *testing.T) {
	s := NewServer(t)
	arrived := make(chan struct{}, 3)
	signal := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			h.ServeHTTP(w, r)
		})
	}
	s.Handle("POST /containers/{id}/wait", signal(Hang()))
	s.Handle("GET /events", signal(Follow("application/json", JSONLine(map[string]string{"Type": "container"}))))
	s.Handle("POST /exec/{id}/start", signal(Upgrade(func(ctx context.Context, _ net.Conn) { <-ctx.Done() })))
	errs := make(chan error, 3)
	for _, path := range []string{"/v1.41/containers/x/wait", "/v1.41/events"} {
		method := map[bool]string{true: "POST", false: "GET"}[strings.HasSuffix(path, "wait")]
		go func() {
			req, err := http.NewRequestWithContext(context.Background(), method, "http://docker"+path, nil)
			if err != nil {
				errs <- err
				return
			}
			resp, err := httpClient(s).Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	conn := upgrade(t, s, "/v1.41/exec/x/start")
	go func() {
		_, err := io.ReadAll(conn)
		errs <- err
	}()
	for range 3 {
		<-arrived
	}
	s.Close()
	s.Close() // idempotent
	for range 3 {
		<-errs // each returned: none is left hanging
	}
}

// upgrade sends an exec start on a raw connection and returns it after the
// 101 response.
func upgrade(t *testing.T, s *Server, path string) io.Reader {
	t.Helper()
	conn, err := net.Dial("unix", strings.TrimPrefix(s.Host, "unix://"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	body := `{"Detach":false,"Tty":false}`
	_, err = io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"+
		"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 28\r\n\r\n"+body)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Equal(t, "application/vnd.docker.raw-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "tcp", resp.Header.Get("Upgrade"))
	return br
}

func TestServerUpgradesExecStart(t *testing.T) {
	s := NewServer(t)
	got, err := io.ReadAll(upgrade(t, s, "/v1.41/exec/abc/start"))
	require.NoError(t, err)
	require.Equal(t, string(Fixture("exec-start")), string(got))
	r := s.Find("POST /exec/{id}/start")
	require.Len(t, r, 1)
	require.JSONEq(t, `{"Detach":false,"Tty":false}`, string(r[0].Body))
}

func TestTCPAndTLSServers(t *testing.T) {
	s := NewTCPServer(t)
	require.True(t, strings.HasPrefix(s.Host, "tcp://127.0.0.1:"), s.Host)
	require.False(t, s.Endpoint().TLS)
	resp, body := do(t, s, "GET", "/_ping", "")
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "OK", string(body))

	ts := httptest.NewUnstartedServer(nil) // for its test certificate
	ts.StartTLS()
	cert := ts.TLS.Certificates
	ts.Close()
	s = NewTLSServer(t, &tls.Config{Certificates: cert, MinVersion: tls.VersionTLS12})
	require.True(t, s.Endpoint().TLS)
	resp, body = do(t, s, "GET", "/v1.41/version", "")
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, string(Fixture("version")), string(body))
}

func TestFixtureIsACopy(t *testing.T) {
	b := Fixture("container-create")
	b[0] = 'x'
	require.NotEqual(t, b[0], Fixture("container-create")[0])
	require.Nil(t, Fixture("container-start"), "no body")
}
