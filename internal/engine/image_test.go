package engine_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

func TestImageInspect(t *testing.T) {
	srv, c := newClient(t)
	img, err := c.ImageInspect(t.Context(), imageName)
	require.NoError(t, err)
	require.Equal(t, engine.Image{
		ID: imageID, RepoTags: []string{imageName}, RepoDigests: []string{},
		OS: "linux", Arch: "amd64", Created: ts("2026-11-30T00:37:24.158554485Z"),
		Labels: map[string]string{"heph.test": "record"}, Size: 9875994,
	}, img)
	r := only(t, srv, "GET /images/{name...}/json")
	require.Equal(t, "/images/heph-record/app:1/json", r.Path, "the reference as is, slashes and all")

	srv.Handle("GET /images/{name...}/json", enginetest.Recorded("error-image-not-found"))
	_, err = c.ImageInspect(t.Context(), "heph-record/nope:1")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.ErrorContains(t, err, "No such image: heph-record/nope:1")
}

func TestImageInspectWithoutConfig(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /images/{name...}/json", enginetest.JSON(200, edit(t, "image-inspect", func(v *map[string]any) {
		delete(*v, "Config")
		(*v)["Variant"] = "v8"
	})))
	img, err := c.ImageInspect(t.Context(), imageName)
	require.NoError(t, err)
	require.Nil(t, img.Labels)
	require.Equal(t, "v8", img.Variant)
}

// recordedPull is the recorded pull's progress, as heph maps it.
func recordedPull(t *testing.T) []engine.Progress {
	t.Helper()
	var out []engine.Progress
	sc := bufio.NewScanner(bytes.NewReader(enginetest.Fixture("pull-progress")))
	for sc.Scan() {
		var m engine.ProgressMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, engine.Progress{ID: m.ID, Status: m.Status, Current: m.Detail.Current, Total: m.Detail.Total})
	}
	return out
}

func TestImagePullAnonymous(t *testing.T) {
	srv, c := newClient(t)
	var got []engine.Progress
	err := c.ImagePull(t.Context(), "127.0.0.1:41663/heph-record/app:1", engine.PullOptions{}, func(p engine.Progress) { got = append(got, p) })
	require.NoError(t, err)
	require.Equal(t, recordedPull(t), got, "every message, in order")
	require.Len(t, got, 20)
	require.Equal(t, engine.Progress{ID: "6028fb294b9f", Status: "Downloading", Current: 69402, Total: 5479428}, got[6])

	r := only(t, srv, "POST /images/create")
	require.Equal(t, "127.0.0.1:41663/heph-record/app", r.Query.Get("fromImage"))
	require.Equal(t, "1", r.Query.Get("tag"))
	require.False(t, r.Query.Has("platform"))
	require.NotContains(t, r.Header, "X-Registry-Auth", "no credentials: no header at all")
}

func TestImagePullSendsCredentialsAndPlatform(t *testing.T) {
	srv, c := newClient(t)
	auth := &engine.AuthConfig{Username: "heph", Password: "s3cret!", ServerAddress: "127.0.0.1:5000"}
	require.NoError(t, c.ImagePull(t.Context(), "127.0.0.1:5000/team/app", engine.PullOptions{Auth: auth, Platform: "linux/arm64"}, nil))
	r := only(t, srv, "POST /images/create")
	require.Equal(t, "127.0.0.1:5000/team/app", r.Query.Get("fromImage"))
	require.Equal(t, "latest", r.Query.Get("tag"), "no tag: latest")
	require.Equal(t, "linux/arm64", r.Query.Get("platform"))

	raw, err := base64.URLEncoding.DecodeString(r.Header.Get("X-Registry-Auth"))
	require.NoError(t, err, "the header is URL-safe base64, as the daemon decodes it")
	require.JSONEq(t, `{"username":"heph","password":"s3cret!","serveraddress":"127.0.0.1:5000"}`, string(raw))

	// An identity token instead of a password.
	require.NoError(t, c.ImagePull(t.Context(), "app@sha256:"+strings.Repeat("a", 64), engine.PullOptions{Auth: &engine.AuthConfig{IdentityToken: "tok"}}, nil))
	r = srv.Find("POST /images/create")[1]
	require.Equal(t, "docker.io/library/app", r.Query.Get("fromImage"))
	require.Equal(t, "sha256:"+strings.Repeat("a", 64), r.Query.Get("tag"), "a digest goes as the tag")
	raw, err = base64.URLEncoding.DecodeString(r.Header.Get("X-Registry-Auth"))
	require.NoError(t, err)
	require.JSONEq(t, `{"identitytoken":"tok"}`, string(raw))
}

func TestImagePullErrors(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("POST /images/create", enginetest.Recorded("error-pull-not-found"))
	err := c.ImagePull(t.Context(), "127.0.0.1:41663/heph-record/app:missing", engine.PullOptions{}, nil)
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.ErrorContains(t, err, "manifest unknown")

	// Accepted, then failed: the daemon says so inside the stream.
	srv.Handle("POST /images/create", enginetest.Stream("application/json",
		enginetest.JSONLine(map[string]string{"status": "Pulling from team/app", "id": "1"}),
		enginetest.JSONLine(map[string]any{"errorDetail": map[string]string{"message": "unauthorized: authentication required"}, "error": "unauthorized: authentication required"}),
	))
	var seen int
	err = c.ImagePull(t.Context(), "127.0.0.1:5000/team/app:1", engine.PullOptions{}, func(engine.Progress) { seen++ })
	var se *engine.StreamError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "unauthorized: authentication required", se.Message)
	require.Equal(t, 2, seen, "the error message is a message too")

	srv.Handle("POST /images/create", enginetest.Cut("application/json", enginetest.JSONLine(map[string]string{"status": "Pulling"}), []byte(`{"status":"Downl`)))
	err = c.ImagePull(t.Context(), "127.0.0.1:5000/team/app:1", engine.PullOptions{}, nil)
	require.ErrorContains(t, err, "read progress stream")

	require.ErrorContains(t, c.ImagePull(t.Context(), "bad name:1", engine.PullOptions{}, nil), "invalid reference format", "refused before any request")
	require.Len(t, srv.Find("POST /images/create"), 3)
}

func TestImageBuildSendsItsOptions(t *testing.T) {
	srv, c := newClient(t)
	var lines []string
	buildCtx := []byte("a tar stream, as far as the daemon can tell")
	err := c.ImageBuild(t.Context(), bytes.NewReader(buildCtx), engine.BuildOptions{
		Tags: []string{"heph-build/app:abc", "heph-build/app:latest"}, Dockerfile: "build/Dockerfile",
		BuildArgs: map[string]string{"GREETING": "hi", "EMPTY": ""}, Target: "final",
		Labels: map[string]string{"heph.managed": "true"}, NoCache: true, PullParent: true, Platform: "linux/amd64",
		Auth: map[string]engine.AuthConfig{"127.0.0.1:5000": {Username: "heph", Password: "pw"}},
	}, func(line string) { lines = append(lines, line) })
	require.NoError(t, err)

	r := only(t, srv, "POST /build")
	q := r.Query
	require.Equal(t, []string{"heph-build/app:abc", "heph-build/app:latest"}, q["t"])
	require.Equal(t, "build/Dockerfile", q.Get("dockerfile"))
	require.JSONEq(t, `{"GREETING":"hi","EMPTY":""}`, q.Get("buildargs"))
	require.Equal(t, "final", q.Get("target"))
	require.JSONEq(t, `{"heph.managed":"true"}`, q.Get("labels"))
	require.Equal(t, "1", q.Get("nocache"))
	require.Equal(t, "1", q.Get("pull"))
	require.Equal(t, "1", q.Get("forcerm"), "intermediate containers go even when a step fails")
	require.False(t, q.Has("rm"), "rm is the daemon's default")
	require.Equal(t, "1", q.Get("version"), "the classic builder")
	require.Equal(t, "linux/amd64", q.Get("platform"))
	require.Equal(t, buildCtx, r.Body)
	raw, err := base64.URLEncoding.DecodeString(r.Header.Get("X-Registry-Config"))
	require.NoError(t, err)
	require.JSONEq(t, `{"127.0.0.1:5000":{"username":"heph","password":"pw"}}`, string(raw))

	require.Equal(t, []string{
		"Step 1/6 : FROM scratch", " ---> ",
		"Step 2/6 : ARG GREETING", " ---> Running in e3d34ddee393", "Removing intermediate container e3d34ddee393", " ---> b05fe39f0ff5",
	}, lines[:6], "each printed line; the bare newlines between are no lines")
	require.Equal(t, "Successfully tagged heph-record/app:1", lines[len(lines)-1])
}

func TestImageBuildDefaults(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.ImageBuild(t.Context(), strings.NewReader(""), engine.BuildOptions{}, nil))
	q := only(t, srv, "POST /build").Query
	for _, key := range []string{"t", "dockerfile", "buildargs", "target", "labels", "nocache", "pull", "platform"} {
		require.False(t, q.Has(key), key)
	}
}

func TestImageBuildFailsWithTheDaemonsMessage(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("POST /build", enginetest.Recorded("build-error"))
	var lines []string
	err := c.ImageBuild(t.Context(), strings.NewReader(""), engine.BuildOptions{}, func(l string) { lines = append(lines, l) })
	var se *engine.StreamError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist", se.Message)
	require.Equal(t, []string{"Step 1/2 : FROM scratch", " ---> ", "Step 2/2 : COPY missing /missing"}, lines)

	srv.Handle("POST /build", enginetest.Error(500, "Cannot locate specified Dockerfile: nope"))
	err = c.ImageBuild(t.Context(), strings.NewReader(""), engine.BuildOptions{Dockerfile: "nope"}, nil)
	require.ErrorContains(t, err, "Cannot locate specified Dockerfile")
	require.False(t, errors.As(err, &se))
}

func TestImageLoad(t *testing.T) {
	srv, c := newClient(t)
	tarball := []byte("docker save output, as far as the daemon can tell")
	require.NoError(t, c.ImageLoad(t.Context(), bytes.NewReader(tarball)))
	r := only(t, srv, "POST /images/load")
	require.Equal(t, tarball, r.Body)
	require.Equal(t, "0", r.Query.Get("quiet"), "the progress stream, read to its end")

	srv.Handle("POST /images/load", enginetest.Stream("application/json",
		enginetest.JSONLine(map[string]string{"error": "unexpected EOF"})))
	var se *engine.StreamError
	require.ErrorAs(t, c.ImageLoad(t.Context(), bytes.NewReader(tarball)), &se)
	require.Equal(t, "unexpected EOF", se.Message, `an old daemon's "error" alone`)

	srv.Handle("POST /images/load", enginetest.Error(500, "invalid tar header"))
	require.ErrorContains(t, c.ImageLoad(t.Context(), bytes.NewReader(tarball)), "invalid tar header")
}

func TestImageList(t *testing.T) {
	srv, c := newClient(t)
	got, err := c.ImageList(t.Context(), engine.Filter{}.Add("reference", "heph-record/app").Add("label", "heph.managed=true"))
	require.NoError(t, err)
	require.Equal(t, []engine.Image{{
		ID: imageID, RepoTags: []string{imageName}, Labels: map[string]string{"heph.test": "record"},
		Created: time.Unix(1795999044, 0), Size: 9875994,
	}}, got)
	require.Equal(t, map[string]map[string]bool{
		"reference": {"heph-record/app": true}, "label": {"heph.managed=true": true},
	}, filtersOf(t, only(t, srv, "GET /images/json")))
}

func TestImageRemove(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.ImageRemove(t.Context(), "127.0.0.1:41663/heph-record/app:1"))
	r := only(t, srv, "DELETE /images/{name...}")
	require.Equal(t, "/images/127.0.0.1:41663/heph-record/app:1", r.Path)
	require.Equal(t, "1", r.Query.Get("force"))
	require.Equal(t, "1", r.Query.Get("noprune"), "untagged parents stay")

	srv.Handle("DELETE /images/{name...}", enginetest.Error(404, "No such image: x:1"))
	require.ErrorIs(t, c.ImageRemove(t.Context(), "x:1"), engine.ErrNotFound)
	srv.Handle("DELETE /images/{name...}", enginetest.Error(409, "conflict: unable to delete 0123 (cannot be forced) - image is being used by running container 4567"))
	require.ErrorIs(t, c.ImageRemove(t.Context(), "x:1"), engine.ErrConflict)
}
