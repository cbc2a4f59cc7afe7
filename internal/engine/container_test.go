package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/port"
)

func TestContainerCreateSendsTheWholeSpec(t *testing.T) {
	srv, c := newClient(t)
	stop := 1200 * time.Millisecond
	id, err := c.ContainerCreate(t.Context(), engine.ContainerSpec{
		Name: "heph-db-1a2b3c4d", Image: "heph-build/db:1", Hostname: "db",
		Cmd: []string{"-http", ":8080"}, Entrypoint: []string{"/testapp"},
		Env: []string{"A=1", "B="}, WorkingDir: "/work", User: "1000:1000",
		Labels: map[string]string{"heph.managed": "true", "heph.session": "s1"},
		Ports: []engine.PortSpec{
			{Port: port.Port{Num: 8080, Proto: "tcp"}, HostIP: "127.0.0.1"},
			{Port: port.Port{Num: 53, Proto: "udp"}, HostPort: 5353},
			{Port: port.Port{Num: 8080, Proto: "tcp"}, HostIP: "::1"},
		},
		Mounts: []engine.MountSpec{
			{Type: "volume", Source: "heph-data", Target: "/data", VolumeLabels: map[string]string{"heph.session": "s1"}},
			{Type: "bind", Source: "/host/dir", Target: "/in", ReadOnly: true},
			{Type: "tmpfs", Target: "/scratch"},
		},
		Network: "heph-net-1a2b3c4d", Aliases: []string{"db", "database"},
		Platform:    "linux/arm64/v8",
		StopTimeout: &stop,
	})
	require.NoError(t, err)
	require.Equal(t, appID, id, "the ID the daemon answered")

	r := only(t, srv, "POST /containers/create")
	require.Equal(t, "heph-db-1a2b3c4d", r.Query.Get("name"))
	require.Equal(t, "linux/arm64/v8", r.Query.Get("platform"))
	body := r.Body
	for key, want := range map[string]string{
		"Image": `"heph-build/db:1"`, "Hostname": `"db"`, "Cmd": `["-http",":8080"]`, "Entrypoint": `["/testapp"]`,
		"Env": `["A=1","B="]`, "WorkingDir": `"/work"`, "User": `"1000:1000"`,
		"Labels":       `{"heph.managed":"true","heph.session":"s1"}`,
		"ExposedPorts": `{"8080/tcp":{},"53/udp":{}}`,
		"StopTimeout":  `2`, // 1.2 s, rounded up to whole seconds
	} {
		require.JSONEq(t, want, field(t, body, key), key)
	}
	// Loopback with an empty host port: the daemon picks one, on 127.0.0.1
	// only. Every binding of a port is kept, in order.
	require.JSONEq(t, `{
		"8080/tcp": [{"HostIp":"127.0.0.1","HostPort":""}, {"HostIp":"::1","HostPort":""}],
		"53/udp":   [{"HostIp":"","HostPort":"5353"}]
	}`, field(t, body, "HostConfig", "PortBindings"))
	require.JSONEq(t, `[
		{"Type":"volume","Source":"heph-data","Target":"/data","VolumeOptions":{"Labels":{"heph.session":"s1"}}},
		{"Type":"bind","Source":"/host/dir","Target":"/in","ReadOnly":true},
		{"Type":"tmpfs","Target":"/scratch"}
	]`, field(t, body, "HostConfig", "Mounts"))
	require.JSONEq(t, `["db","database"]`, field(t, body, "NetworkingConfig", "EndpointsConfig", "heph-net-1a2b3c4d", "Aliases"))
	var nets map[string]any
	require.NoError(t, json.Unmarshal([]byte(field(t, body, "NetworkingConfig", "EndpointsConfig")), &nets))
	require.Len(t, nets, 1, "joined at create: that network only")
}

func TestContainerCreateMinimal(t *testing.T) {
	srv, c := newClient(t)
	_, err := c.ContainerCreate(t.Context(), engine.ContainerSpec{Image: "app:1"})
	require.NoError(t, err)
	r := only(t, srv, "POST /containers/create")
	require.False(t, r.Query.Has("name"), "no name: the daemon makes one")
	require.False(t, r.Query.Has("platform"))
	require.Equal(t, "null", field(t, r.Body, "StopTimeout"), "the image's own stop timeout")
	require.Equal(t, "null", field(t, r.Body, "NetworkingConfig"), "no network: the default bridge")
	for _, key := range []string{"PortBindings", "Mounts"} {
		v := field(t, r.Body, "HostConfig", key)
		require.Contains(t, []string{"null", "{}", "[]"}, v, key)
	}
}

func TestContainerCreateRefusesABadBindAddress(t *testing.T) {
	srv, c := newClient(t)
	_, err := c.ContainerCreate(t.Context(), engine.ContainerSpec{Image: "app:1", Ports: []engine.PortSpec{
		{Port: port.Port{Num: 80, Proto: "tcp"}, HostIP: "localhost"},
	}})
	require.ErrorContains(t, err, `bind address "localhost"`)
	_, err = c.ContainerCreate(t.Context(), engine.ContainerSpec{Image: "app:1", Ports: []engine.PortSpec{{Port: port.Port{Num: 80}}}})
	require.ErrorContains(t, err, "port 80/ cannot be published")
	require.Empty(t, srv.Find("POST /containers/create"), "never fall open to every interface")
}

func TestContainerCreateErrors(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("POST /containers/create", enginetest.Recorded("error-container-name-conflict"))
	_, err := c.ContainerCreate(t.Context(), engine.ContainerSpec{Name: "heph-record-app", Image: "app:1"})
	require.ErrorIs(t, err, engine.ErrConflict)
	require.ErrorContains(t, err, "is already in use")

	srv.Handle("POST /containers/create", enginetest.Error(404, "No such image: app:1"))
	_, err = c.ContainerCreate(t.Context(), engine.ContainerSpec{Image: "app:1"})
	require.ErrorIs(t, err, engine.ErrNotFound)
}

func TestContainerStart(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.ContainerStart(t.Context(), appID))
	require.Equal(t, appID, only(t, srv, "POST /containers/{id}/start").Path[len("/containers/"):len("/containers/")+64])

	srv.Handle("POST /containers/{id}/start", enginetest.Recorded("container-start-not-modified"))
	require.NoError(t, c.ContainerStart(t.Context(), appID), "304: already started")

	srv.Handle("POST /containers/{id}/start", enginetest.Error(404, "No such container: x"))
	require.ErrorIs(t, c.ContainerStart(t.Context(), "x"), engine.ErrNotFound)
}

func TestContainerStopRoundsTheTimeoutUp(t *testing.T) {
	for _, tt := range []struct {
		timeout time.Duration
		want    string
	}{
		{0, "0"}, {time.Nanosecond, "1"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {10 * time.Second, "10"},
	} {
		srv, c := newClient(t)
		require.NoError(t, c.ContainerStop(t.Context(), "x", tt.timeout))
		r := only(t, srv, "POST /containers/{id}/stop")
		require.Equal(t, "/containers/x/stop", r.Path)
		require.Equal(t, tt.want, r.Query.Get("t"), "timeout %v", tt.timeout)
		require.False(t, r.Query.Has("signal"), "the container's stop signal")
	}
	srv, c := newClient(t)
	srv.Handle("POST /containers/{id}/stop", enginetest.Recorded("container-stop-not-modified"))
	require.NoError(t, c.ContainerStop(t.Context(), exitID, time.Second), "304: already stopped")
}

func TestContainerRemoveForcesAndRemovesVolumes(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.ContainerRemove(t.Context(), appID))
	r := only(t, srv, "DELETE /containers/{id}")
	require.Equal(t, "/containers/"+appID, r.Path)
	require.Equal(t, "1", r.Query.Get("force"))
	require.Equal(t, "1", r.Query.Get("v"), "anonymous volumes go with it")
	require.False(t, r.Query.Has("link"))

	srv.Handle("DELETE /containers/{id}", enginetest.Recorded("error-container-remove-not-found"))
	require.ErrorIs(t, c.ContainerRemove(t.Context(), appID), engine.ErrNotFound)
	srv.Handle("DELETE /containers/{id}", enginetest.Error(409, "removal of container x is already in progress"))
	require.ErrorIs(t, c.ContainerRemove(t.Context(), appID), engine.ErrConflict)
}

// The recorded heph-record-app, as heph sees it.
func wantApp() engine.Container {
	return engine.Container{
		ID: appID, Name: "heph-record-app", Image: imageName, ImageID: imageID,
		Status: "running", Health: "healthy",
		HealthLog: []engine.HealthResult{
			{Start: ts("2026-11-30T00:37:25.845200542Z"), End: ts("2026-11-30T00:37:25.94788005Z"), ExitCode: 1, Output: "testapp: unhealthy: stat /tmp/healthy: no such file or directory\n"},
			{Start: ts("2026-11-30T00:37:26.15508164Z"), End: ts("2026-11-30T00:37:26.247226051Z"), ExitCode: 1, Output: "testapp: unhealthy: stat /tmp/healthy: no such file or directory\n"},
			{Start: ts("2026-11-30T00:37:26.450048472Z"), End: ts("2026-11-30T00:37:26.526560362Z"), ExitCode: 1, Output: "testapp: unhealthy: stat /tmp/healthy: no such file or directory\n"},
			{Start: ts("2026-11-30T00:37:26.739010993Z"), End: ts("2026-11-30T00:37:26.811737079Z"), ExitCode: 0, Output: ""},
		},
		Ports: map[string][]netip.AddrPort{
			"8080/tcp": {netip.MustParseAddrPort("127.0.0.1:33168"), netip.MustParseAddrPort("127.0.0.2:32770")},
			"5353/udp": {netip.MustParseAddrPort("127.0.0.1:32770")},
		},
		Networks: map[string]engine.Attachment{
			"heph-record-net": {NetworkID: netID, IP: "10.231.7.2", Gateway: "10.231.7.1", Aliases: []string{"app", "2e257bdcc1bc"}},
		},
		Volumes: []string{"heph-record-vol"}, // its named volume; the anonymous one too, were there one
		Labels:  map[string]string{"heph.service": "app", "heph.test": "record"},
		Created: ts("2026-11-30T00:37:25.159489047Z"),
		Started: ts("2026-11-30T00:37:25.643847199Z"),
	}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestContainerInspectRunning(t *testing.T) {
	srv, c := newClient(t)
	got, err := c.ContainerInspect(t.Context(), appID)
	require.NoError(t, err)
	require.Equal(t, wantApp(), got)
	require.NotContains(t, got.Ports, "9090/tcp", "exposed, not published")
	require.True(t, got.Finished.IsZero(), "Docker's 0001-01-01 is no time")
	require.Equal(t, "/containers/"+appID+"/json", only(t, srv, "GET /containers/{id}/json").Path)
}

func TestContainerInspectExited(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /containers/{id}/json", enginetest.Recorded("container-inspect-exited"))
	got, err := c.ContainerInspect(t.Context(), exitID)
	require.NoError(t, err)
	require.Equal(t, engine.Container{
		ID: exitID, Name: "heph-record-exit", Image: imageName, ImageID: imageID,
		Status: "exited", ExitCode: 3,
		Networks: map[string]engine.Attachment{"bridge": {NetworkID: bridgeID}},
		Labels:   map[string]string{"heph.test": "record"},
		Created:  ts("2026-11-30T00:37:26.830166358Z"),
		Started:  ts("2026-11-30T00:37:27.251505747Z"),
		Finished: ts("2026-11-30T00:37:27.249058568Z"),
	}, got)
}

func TestContainerInspectVariants(t *testing.T) {
	type inspect = map[string]any
	obj := func(v any) inspect { return v.(inspect) }
	tests := []struct {
		name  string
		edit  func(*inspect)
		check func(*testing.T, engine.Container)
	}{
		{"bindings sorted by address", func(v *inspect) {
			ports := obj(obj((*v)["NetworkSettings"])["Ports"])
			ports["8080/tcp"] = []any{
				inspect{"HostIp": "127.0.0.2", "HostPort": "32770"},
				inspect{"HostIp": "::ffff:127.0.0.1", "HostPort": "33168"}, // IPv4-mapped: unmapped
				inspect{"HostIp": "0.0.0.0", "HostPort": "40000"},
				inspect{"HostIp": "127.0.0.1", "HostPort": "not a port"}, // skipped
			}
		}, func(t *testing.T, c engine.Container) {
			require.Equal(t, []netip.AddrPort{
				netip.MustParseAddrPort("0.0.0.0:40000"), netip.MustParseAddrPort("127.0.0.1:33168"), netip.MustParseAddrPort("127.0.0.2:32770"),
			}, c.Ports["8080/tcp"])
		}},
		{"no healthcheck", func(v *inspect) { delete(obj((*v)["State"]), "Health") }, func(t *testing.T, c engine.Container) {
			require.Equal(t, "", c.Health)
			require.Nil(t, c.HealthLog)
		}},
		{"healthcheck none", func(v *inspect) { obj((*v)["State"])["Health"] = inspect{"Status": "none"} }, func(t *testing.T, c engine.Container) {
			require.Equal(t, "", c.Health)
		}},
		{"unhealthy", func(v *inspect) {
			h := obj(obj((*v)["State"])["Health"])
			h["Status"], h["FailingStreak"] = "unhealthy", 3
		}, func(t *testing.T, c engine.Container) {
			require.Equal(t, "unhealthy", c.Health)
			require.Equal(t, 3, c.HealthFailingStreak)
		}},
		{"OOM-killed with an error", func(v *inspect) {
			s := obj((*v)["State"])
			s["Status"], s["ExitCode"], s["OOMKilled"], s["Error"] = "exited", 137, true, "oom"
		}, func(t *testing.T, c engine.Container) {
			require.Equal(t, "exited", c.Status)
			require.Equal(t, 137, c.ExitCode)
			require.True(t, c.OOMKilled)
			require.Equal(t, "oom", c.Error)
		}},
		{"no state, config or network settings", func(v *inspect) {
			delete(*v, "State")
			delete(*v, "Config")
			delete(*v, "NetworkSettings")
		}, func(t *testing.T, c engine.Container) {
			require.Equal(t, engine.Container{ID: appID, Name: "heph-record-app", ImageID: imageID, Created: ts("2026-11-30T00:37:25.159489047Z"), Volumes: []string{"heph-record-vol"}}, c)
		}},
		{"no networks, or a null one", func(v *inspect) {
			obj((*v)["NetworkSettings"])["Networks"] = inspect{"gone": nil}
		}, func(t *testing.T, c engine.Container) {
			require.Empty(t, c.Networks)
		}},
		{"a garbage time is no time", func(v *inspect) { (*v)["Created"] = "yesterday" }, func(t *testing.T, c engine.Container) {
			require.True(t, c.Created.IsZero())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t)
			srv.Handle("GET /containers/{id}/json", enginetest.JSON(200, edit(t, "container-inspect-running", tt.edit)))
			got, err := c.ContainerInspect(t.Context(), appID)
			require.NoError(t, err)
			tt.check(t, got)
		})
	}
}

func TestContainerInspectNotFound(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /containers/{id}/json", enginetest.Recorded("error-container-not-found"))
	_, err := c.ContainerInspect(t.Context(), "heph-record-nope")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

func TestContainerListSendsFiltersAndMapsEntries(t *testing.T) {
	srv, c := newClient(t)
	got, err := c.ContainerList(t.Context(), engine.Filter{}.Add("label", "heph.managed=true", "heph.session=s1").Add("name", "^/heph-"))
	require.NoError(t, err)
	r := only(t, srv, "GET /containers/json")
	require.Equal(t, "1", r.Query.Get("all"), "stopped ones too")
	require.Equal(t, map[string]map[string]bool{
		"label": {"heph.managed=true": true, "heph.session=s1": true},
		"name":  {"^/?heph-": true}, // Podman's names have no slash
	}, filtersOf(t, r))

	app := wantApp()
	app.HealthLog, app.Health, app.Started = nil, "", time.Time{} // not in a list (API 1.41)
	app.Created = time.Unix(1795999045, 0)
	app.Networks = map[string]engine.Attachment{"heph-record-net": {NetworkID: netID, IP: "10.231.7.2", Gateway: "10.231.7.1"}}
	require.Equal(t, []engine.Container{
		{
			ID: exitID, Name: "heph-record-exit", Image: imageName, ImageID: imageID, Status: "exited", ExitCode: 3,
			Networks: map[string]engine.Attachment{"bridge": {NetworkID: bridgeID}},
			Labels:   map[string]string{"heph.test": "record"}, Created: time.Unix(1795999046, 0),
		},
		app,
	}, got)

	_, err = c.ContainerList(t.Context(), nil)
	require.NoError(t, err)
	require.False(t, srv.Find("GET /containers/json")[1].Query.Has("filters"), "no filter: none sent")
}

func TestContainerListVariants(t *testing.T) {
	type entry = map[string]any
	entries := func(v *[]entry, fn func(e entry)) {
		for _, e := range *v {
			fn(e)
		}
	}
	tests := []struct {
		name  string
		edit  func(*[]entry)
		check func(*testing.T, []engine.Container)
	}{
		{"exit codes from the status text", func(v *[]entry) {
			(*v)[0]["Status"] = "Exited (137) 5 minutes ago"
			(*v)[1]["State"], (*v)[1]["Status"] = "running", "Up 2 seconds (healthy)"
		}, func(t *testing.T, cs []engine.Container) {
			require.Equal(t, 137, cs[0].ExitCode)
			require.Equal(t, 0, cs[1].ExitCode, "only an exited one has a code")
		}},
		{"a status text without a code", func(v *[]entry) {
			(*v)[0]["Status"] = "Exited (3"
			(*v)[1]["State"], (*v)[1]["Status"] = "exited", "Exited (x) now"
		}, func(t *testing.T, cs []engine.Container) {
			require.Equal(t, 0, cs[0].ExitCode)
			require.Equal(t, 0, cs[1].ExitCode)
		}},
		{"health from a newer daemon", func(v *[]entry) {
			(*v)[1]["Health"] = entry{"Status": "unhealthy", "FailingStreak": 4}
			(*v)[0]["Health"] = entry{"Status": "none"}
		}, func(t *testing.T, cs []engine.Container) {
			require.Equal(t, "unhealthy", cs[1].Health)
			require.Equal(t, 4, cs[1].HealthFailingStreak)
			require.Equal(t, "", cs[0].Health)
		}},
		{"bindings sorted by address", func(v *[]entry) {
			(*v)[1]["Ports"] = []entry{
				{"IP": "127.0.0.2", "PrivatePort": 8080, "PublicPort": 32770, "Type": "tcp"},
				{"IP": "::ffff:127.0.0.1", "PrivatePort": 8080, "PublicPort": 33168, "Type": "tcp"},
				{"PrivatePort": 9090, "Type": "tcp"},
			}
		}, func(t *testing.T, cs []engine.Container) {
			require.Equal(t, map[string][]netip.AddrPort{"8080/tcp": {
				netip.MustParseAddrPort("127.0.0.1:33168"), netip.MustParseAddrPort("127.0.0.2:32770"),
			}}, cs[1].Ports)
		}},
		{"no names, no network settings", func(v *[]entry) {
			entries(v, func(e entry) { delete(e, "Names"); delete(e, "NetworkSettings") })
		}, func(t *testing.T, cs []engine.Container) {
			require.Equal(t, "", cs[0].Name)
			require.Nil(t, cs[1].Networks)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t)
			srv.Handle("GET /containers/json", enginetest.JSON(200, edit(t, "container-list", tt.edit)))
			got, err := c.ContainerList(t.Context(), nil)
			require.NoError(t, err)
			require.Len(t, got, 2)
			tt.check(t, got)
		})
	}
}

func TestContainerLogs(t *testing.T) {
	srv, c := newClient(t)
	rc, err := c.ContainerLogs(t.Context(), exitID, engine.LogOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "testapp: started pid=1 at 1795999047242520718\n"+
		"testapp: healthy /tmp/healthy at 1795999047244560744\n"+
		"hello\n"+
		"testapp: exiting code=3 at 1795999047244762807\n"+
		"oops\n", string(got), "stdout and stderr, demultiplexed in the daemon's order")
	r := only(t, srv, "GET /containers/{id}/logs")
	require.Equal(t, "/containers/"+exitID+"/logs", r.Path)
	require.Equal(t, "1", r.Query.Get("stdout"))
	require.Equal(t, "1", r.Query.Get("stderr"))
	for _, key := range []string{"follow", "tail", "since", "timestamps"} {
		require.False(t, r.Query.Has(key), key)
	}
}

func TestContainerLogsOptions(t *testing.T) {
	srv, c := newClient(t)
	since := time.Unix(1795999047, 123456789)
	rc, err := c.ContainerLogs(t.Context(), exitID, engine.LogOptions{Follow: true, Tail: 20, Since: since})
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	r := only(t, srv, "GET /containers/{id}/logs")
	require.Equal(t, "1", r.Query.Get("follow"))
	require.Equal(t, "20", r.Query.Get("tail"))
	require.Equal(t, "1795999047.123456789", r.Query.Get("since"), "to the nanosecond")
}

func TestContainerLogsErrors(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /containers/{id}/logs", enginetest.Error(404, "No such container: x"))
	_, err := c.ContainerLogs(t.Context(), "x", engine.LogOptions{})
	require.ErrorIs(t, err, engine.ErrNotFound)

	srv.Handle("GET /containers/{id}/logs", enginetest.Stream("",
		enginetest.Frame(1, "line\n"), enginetest.Frame(3, "error from daemon: log driver failed")))
	rc, err := c.ContainerLogs(t.Context(), "x", engine.LogOptions{})
	require.NoError(t, err)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	require.Equal(t, "line\n", string(got))
	require.ErrorContains(t, err, "the daemon reported: error from daemon: log driver failed")

	srv.Handle("GET /containers/{id}/logs", enginetest.Cut("", enginetest.Frame(1, "line\n")[:10]))
	rc, err = c.ContainerLogs(t.Context(), "x", engine.LogOptions{})
	require.NoError(t, err)
	defer rc.Close()
	got, err = io.ReadAll(rc)
	require.Equal(t, "li", string(got))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestContainerWaitReturnsWhenTheDaemonAnswers(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.ContainerWait(t.Context(), exitID))
	r := only(t, srv, "POST /containers/{id}/wait")
	require.Equal(t, "/containers/"+exitID+"/wait", r.Path)
	require.Equal(t, "not-running", r.Query.Get("condition"))

	// The daemon sends its headers at once and the body when the container
	// stops: the wait lasts until the body.
	headersSent, release := make(chan struct{}), make(chan struct{})
	srv.HandleFunc("POST /containers/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		_ = http.NewResponseController(w).Flush()
		close(headersSent)
		select {
		case <-release:
			_, _ = w.Write(enginetest.Fixture("container-wait"))
		case <-r.Context().Done():
		}
	})
	done := make(chan error, 1)
	go func() { done <- c.ContainerWait(t.Context(), appID) }()
	<-headersSent
	select {
	case err := <-done:
		t.Fatalf("ContainerWait returned %v before the daemon's answer", err)
	default:
	}
	close(release)
	require.NoError(t, <-done)
}

func TestContainerWaitEndsWithItsContext(t *testing.T) {
	for _, stage := range []string{"before the headers", "after the headers"} {
		t.Run(stage, func(t *testing.T) {
			srv, c := newClient(t)
			arrived := make(chan struct{})
			srv.HandleFunc("POST /containers/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
				if stage == "after the headers" {
					w.WriteHeader(200)
					_ = http.NewResponseController(w).Flush()
				}
				close(arrived)
				<-r.Context().Done()
			})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- c.ContainerWait(ctx, appID) }()
			<-arrived
			cancel()
			err := <-done
			require.Equal(t, context.Canceled, err, "ctx.Err() itself: %v", err)
		})
	}
}

func TestContainerWaitErrors(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("POST /containers/{id}/wait", enginetest.Error(404, "No such container: x"))
	require.ErrorIs(t, c.ContainerWait(t.Context(), "x"), engine.ErrNotFound)

	srv.Handle("POST /containers/{id}/wait", enginetest.Cut("application/json"))
	require.Error(t, c.ContainerWait(t.Context(), "x"), "an answer cut short is no exit")
}

func TestCopyTo(t *testing.T) {
	srv, c := newClient(t)
	archive := []byte("a tar stream, as far as the daemon can tell")
	require.NoError(t, c.CopyTo(t.Context(), appID, "/data", bytes.NewReader(archive)))
	r := only(t, srv, "PUT /containers/{id}/archive")
	require.Equal(t, "/containers/"+appID+"/archive", r.Path)
	require.Equal(t, "/data", r.Query.Get("path"))
	require.Equal(t, "true", r.Query.Get("noOverwriteDirNonDir"))
	require.Equal(t, archive, r.Body)

	srv.Handle("PUT /containers/{id}/archive", enginetest.Error(404, "Could not find the file /nope in container x"))
	require.ErrorIs(t, c.CopyTo(t.Context(), appID, "/nope", strings.NewReader("")), engine.ErrNotFound)
}

func TestCopyFrom(t *testing.T) {
	srv, c := newClient(t)
	rc, err := c.CopyFrom(t.Context(), appID, "/data/hello.txt")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, enginetest.Fixture("archive-get"), got)
	r := only(t, srv, "GET /containers/{id}/archive")
	require.Equal(t, "/data/hello.txt", r.Query.Get("path"))

	srv.Handle("GET /containers/{id}/archive", enginetest.Recorded("error-archive-not-found"))
	_, err = c.CopyFrom(t.Context(), appID, "/nonexistent")
	require.ErrorIs(t, err, engine.ErrNotFound)
}
