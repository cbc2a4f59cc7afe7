// Command record re-records the golden fixtures of enginetest.Server from the
// real Docker daemon at /var/run/docker.sock, speaking API 1.41 over raw HTTP
// (no SDK: the fixtures are the daemon's own bytes). Run it from the module
// root:
//
//	go run ./internal/enginetest/testdata/record
//
// It builds an image from internal/testapp, creates a network, a volume and
// two containers named heph-record-*, runs a registry on 127.0.0.1 to pull
// from, and removes everything it made before it exits, also on failure.
// Each response is written to internal/enginetest/testdata/<name>.<ext>
// (JSON bodies re-indented, streams byte for byte) and described in
// recorded.json: the request that produced it, the status and the headers.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

const (
	socket  = "/var/run/docker.sock"
	api     = "/v1.41"
	outDir  = "internal/enginetest/testdata"
	image   = "heph-record/app:1"
	netName = "heph-record-net"
	volName = "heph-record-vol"
	appName = "heph-record-app"
	exitNm  = "heph-record-exit"
	label   = "heph.test=record"
)

// Recording describes one fixture.
type Recording struct {
	Name   string      `json:"name"`
	File   string      `json:"file"`
	Method string      `json:"method"`
	Path   string      `json:"path"` // as sent, with the query
	Status int         `json:"status"`
	Header http.Header `json:"header"`
}

var (
	hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	recordings []Recording
	cleanups   []func()
)

func main() {
	log.SetFlags(0)
	err := run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if err != nil {
		log.Fatal(err)
	}
	sort.Slice(recordings, func(i, j int) bool { return recordings[i].Name < recordings[j].Name })
	b, err := json.MarshalIndent(recordings, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "recorded.json"), append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("recorded %d responses into %s", len(recordings), outDir)
}

// call sends a request and returns the response with its body read.
func call(method, path string, header http.Header, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, "http://docker"+path, body)
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// must is call that fails unless the status is want.
func must(want int, method, path string, header http.Header, body io.Reader) []byte {
	resp, b, err := call(method, path, header, body)
	if err != nil {
		panic(fmt.Errorf("%s %s: %w", method, path, err))
	}
	if resp.StatusCode != want {
		panic(fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b))
	}
	return b
}

// record sends a request and stores its response as fixture name; want is
// the status expected.
func record(name string, want int, method, path string, header http.Header, body io.Reader) []byte {
	resp, b, err := call(method, path, header, body)
	if err != nil {
		panic(fmt.Errorf("%s %s: %w", method, path, err))
	}
	if resp.StatusCode != want {
		panic(fmt.Errorf("%s: %s %s: status %d, want %d: %s", name, method, path, resp.StatusCode, want, b))
	}
	save(name, method, path, resp.StatusCode, resp.Header, b)
	return b
}

func save(name, method, path string, status int, header http.Header, b []byte) {
	h := header.Clone()
	h.Del("Date")
	h.Del("Content-Length")
	file := ""
	if len(b) > 0 {
		ext := ".bin"
		ct := h.Get("Content-Type")
		var out bytes.Buffer
		switch {
		case strings.HasPrefix(ct, "application/json") && json.Valid(b):
			ext = ".json"
			if err := json.Indent(&out, b, "", "  "); err != nil {
				panic(err)
			}
			out.WriteByte('\n')
			b = out.Bytes()
		case strings.HasPrefix(ct, "application/json"):
			ext = ".jsonl" // a stream of JSON messages
		case strings.HasPrefix(ct, "text/plain"):
			ext = ".txt"
		case strings.HasPrefix(ct, "application/x-tar"):
			ext = ".tar"
		}
		file = name + ext
		if err := os.WriteFile(filepath.Join(outDir, file), b, 0o644); err != nil {
			panic(err)
		}
	}
	recordings = append(recordings, Recording{Name: name, File: file, Method: method, Path: path, Status: status, Header: h})
}

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return bytes.NewReader(b)
}

func filters(key, value string) string {
	b, _ := json.Marshal(map[string][]string{key: {value}})
	return url.QueryEscape(string(b))
}

func id(b []byte) string {
	var v struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	return v.ID
}

// tarOf is a tar archive of name → content.
func tarOf(files map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0)}); err != nil {
			panic(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// inspectUntil polls a container's inspect until ok says so.
func inspectUntil(name string, ok func(map[string]any) bool) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var v map[string]any
		if err := json.Unmarshal(must(200, "GET", api+"/containers/"+name+"/json", nil, nil), &v); err != nil {
			panic(err)
		}
		if ok(v) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	panic(fmt.Errorf("container %s: condition not reached in 60s", name))
}

func run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	start := time.Now().Add(-time.Second)

	// The daemon itself.
	for _, method := range []string{"GET", "HEAD"} {
		resp, b, err := call(method, "/_ping", nil, nil)
		if err != nil {
			return err
		}
		save("ping-"+strings.ToLower(method), method, "/_ping", resp.StatusCode, resp.Header, b)
	}
	record("version", 200, "GET", api+"/version", nil, nil)
	record("info", 200, "GET", api+"/info", nil, nil)

	// An image built by the classic builder from a static testapp.
	bin := filepath.Join(os.TempDir(), "heph-record-testapp")
	build := exec.Command("go", "build", "-o", bin, "./internal/testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build testapp: %v: %s", err, out)
	}
	defer os.Remove(bin)
	app, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() {
		_, _, _ = call("DELETE", api+"/images/"+image+"?force=1", nil, nil)
	})
	buildCtx := tarOf(map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nARG GREETING\nCOPY testapp /testapp\nCOPY stamp /stamp\nENTRYPOINT [\"/testapp\"]\n"),
		"testapp":    app,
		// A layer of its own, so that the load and the pull below transfer it.
		"stamp": []byte(fmt.Sprintf("recorded at %d\n", time.Now().UnixNano())),
	})
	tarHdr := http.Header{"Content-Type": {"application/x-tar"}}
	record("build-progress", 200, "POST", api+"/build?t="+url.QueryEscape(image)+"&rm=1&forcerm=1&buildargs="+
		url.QueryEscape(`{"GREETING":"hi"}`)+"&labels="+url.QueryEscape(`{"heph.test":"record"}`), tarHdr, bytes.NewReader(buildCtx))
	record("build-error", 200, "POST", api+"/build?rm=1&forcerm=1", tarHdr, bytes.NewReader(tarOf(map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY missing /missing\n"),
	})))
	record("image-inspect", 200, "GET", api+"/images/"+image+"/json", nil, nil)
	record("image-list", 200, "GET", api+"/images/json?filters="+filters("reference", "heph-record/app"), nil, nil)
	record("error-image-not-found", 404, "GET", api+"/images/heph-record/nope:1/json", nil, nil)

	// A network with its own subnet, and a labelled volume made by a mount.
	cleanups = append(cleanups, func() { _, _, _ = call("DELETE", api+"/networks/"+netName, nil, nil) })
	record("network-create", 201, "POST", api+"/networks/create", nil, jsonBody(map[string]any{
		"Name": netName, "Driver": "bridge", "CheckDuplicate": true,
		"Labels": map[string]string{"heph.test": "record"},
		"IPAM": map[string]any{"Driver": "default", "Config": []map[string]string{
			{"Subnet": "10.231.7.0/24", "Gateway": "10.231.7.1"},
		}},
	}))
	cleanups = append(cleanups, func() { _, _, _ = call("DELETE", api+"/volumes/"+volName+"?force=1", nil, nil) })

	// A healthy container: ports on two loopback addresses (the second
	// listed first), a UDP port, a port exposed but not published, a
	// volume mount with labels, a tmpfs, a network alias.
	for _, n := range []string{appName, exitNm} {
		n := n
		cleanups = append(cleanups, func() { _, _, _ = call("DELETE", api+"/containers/"+n+"?force=1&v=1", nil, nil) })
	}
	created := record("container-create", 201, "POST", api+"/containers/create?name="+appName+"&platform=linux%2Famd64", nil, jsonBody(map[string]any{
		"Image":    image,
		"Hostname": "app",
		"Cmd":      []string{"-http", ":8080", "-healthy-after", "1s", "-write", "/data/hello.txt=hello from heph"},
		"Env":      []string{"GREETING=hi"},
		"Labels":   map[string]string{"heph.test": "record", "heph.service": "app"},
		"ExposedPorts": map[string]any{
			"8080/tcp": struct{}{}, "5353/udp": struct{}{}, "9090/tcp": struct{}{},
		},
		"Healthcheck": map[string]any{
			"Test": []string{"CMD", "/testapp", "health"}, "Interval": int64(200 * time.Millisecond), "Retries": 3,
		},
		"StopTimeout": 3,
		"HostConfig": map[string]any{
			"PortBindings": map[string]any{
				"8080/tcp": []map[string]string{{"HostIp": "127.0.0.2", "HostPort": ""}, {"HostIp": "127.0.0.1", "HostPort": ""}},
				"5353/udp": []map[string]string{{"HostIp": "127.0.0.1", "HostPort": ""}},
			},
			"Mounts": []map[string]any{
				{"Type": "volume", "Source": volName, "Target": "/data", "VolumeOptions": map[string]any{"Labels": map[string]string{"heph.test": "record"}}},
				{"Type": "tmpfs", "Target": "/scratch"},
			},
		},
		"NetworkingConfig": map[string]any{"EndpointsConfig": map[string]any{netName: map[string]any{"Aliases": []string{"app"}}}},
	}))
	appID := id(created)
	record("error-container-name-conflict", 409, "POST", api+"/containers/create?name="+appName, nil, jsonBody(map[string]any{"Image": image}))
	record("container-start", 204, "POST", api+"/containers/"+appID+"/start", nil, nil)
	record("container-start-not-modified", 304, "POST", api+"/containers/"+appID+"/start", nil, nil)
	inspectUntil(appID, func(v map[string]any) bool {
		h, _ := v["State"].(map[string]any)["Health"].(map[string]any)
		return h != nil && h["Status"] == "healthy"
	})
	record("container-inspect-running", 200, "GET", api+"/containers/"+appID+"/json", nil, nil)
	record("error-container-not-found", 404, "GET", api+"/containers/heph-record-nope/json", nil, nil)

	// A container that exits 3 after writing to stdout and stderr.
	exited := id(must(201, "POST", api+"/containers/create?name="+exitNm, nil, jsonBody(map[string]any{
		"Image": image, "Labels": map[string]string{"heph.test": "record"},
		"Cmd": []string{"-log", "hello", "-stderr", "oops", "-exit", "3"},
	})))
	must(204, "POST", api+"/containers/"+exited+"/start", nil, nil)
	record("container-wait", 200, "POST", api+"/containers/"+exited+"/wait?condition=not-running", nil, nil)
	record("container-inspect-exited", 200, "GET", api+"/containers/"+exited+"/json", nil, nil)
	record("container-logs", 200, "GET", api+"/containers/"+exited+"/logs?stdout=1&stderr=1", nil, nil)
	record("container-stop-not-modified", 304, "POST", api+"/containers/"+exited+"/stop?t=1", nil, nil)
	record("container-list", 200, "GET", api+"/containers/json?all=1&filters="+filters("label", label), nil, nil)

	// Exec: output on both streams and exit code 1; one still running.
	ex := record("exec-create", 201, "POST", api+"/containers/"+appID+"/exec", nil, jsonBody(map[string]any{
		"Cmd": []string{"/testapp", "cat", "/nonexistent", "/data/hello.txt"}, "AttachStdout": true, "AttachStderr": true,
	}))
	execID := id(ex)
	if err := recordHijack("exec-start", api+"/exec/"+execID+"/start", `{"Detach":false,"Tty":false}`); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v struct{ Running bool }
		b := must(200, "GET", api+"/exec/"+execID+"/json", nil, nil)
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if !v.Running {
			record("exec-inspect-exited", 200, "GET", api+"/exec/"+execID+"/json", nil, nil)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("exec still running after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sleeper := id(must(201, "POST", api+"/containers/"+appID+"/exec", nil, jsonBody(map[string]any{
		"Cmd": []string{"/testapp", "sleep", "60"},
	})))
	must(200, "POST", api+"/exec/"+sleeper+"/start", nil, jsonBody(map[string]any{"Detach": true}))
	record("exec-inspect-running", 200, "GET", api+"/exec/"+sleeper+"/json", nil, nil)
	record("error-exec-not-found", 404, "GET", api+"/exec/0000000000000000000000000000000000000000000000000000000000000000/json", nil, nil)

	// Archives.
	record("archive-get", 200, "GET", api+"/containers/"+appID+"/archive?path=%2Fdata%2Fhello.txt", nil, nil)
	record("archive-put", 200, "PUT", api+"/containers/"+appID+"/archive?path=%2Fdata&noOverwriteDirNonDir=true", tarHdr,
		bytes.NewReader(tarOf(map[string][]byte{"put.txt": []byte("put by heph\n")})))
	record("error-archive-not-found", 404, "GET", api+"/containers/"+appID+"/archive?path=%2Fnonexistent", nil, nil)

	// Networks and volumes.
	record("network-connect", 200, "POST", api+"/networks/"+netName+"/connect", nil, jsonBody(map[string]any{
		"Container": exited, "EndpointConfig": map[string]any{"Aliases": []string{"exit"}},
	}))
	record("network-disconnect", 200, "POST", api+"/networks/"+netName+"/disconnect", nil, jsonBody(map[string]any{
		"Container": exited, "Force": true,
	}))
	record("network-list", 200, "GET", api+"/networks?filters="+filters("label", label), nil, nil)
	record("error-network-in-use", 403, "DELETE", api+"/networks/"+netName, nil, nil)
	record("error-network-not-found", 404, "DELETE", api+"/networks/heph-record-nope", nil, nil)
	record("volume-list", 200, "GET", api+"/volumes?filters="+filters("label", label), nil, nil)
	record("error-volume-in-use", 409, "DELETE", api+"/volumes/"+volName+"?force=1", nil, nil)

	// Stop, remove.
	record("container-stop", 204, "POST", api+"/containers/"+appID+"/stop?t=1", nil, nil)
	record("container-remove", 204, "DELETE", api+"/containers/"+appID+"?force=1&v=1", nil, nil)
	must(204, "DELETE", api+"/containers/"+exited+"?force=1&v=1", nil, nil)
	record("error-container-remove-not-found", 404, "DELETE", api+"/containers/"+appID+"?force=1&v=1", nil, nil)
	record("network-remove", 204, "DELETE", api+"/networks/"+netName, nil, nil)
	record("volume-remove", 204, "DELETE", api+"/volumes/"+volName+"?force=1", nil, nil)

	// Events of all that, a stream that ends at "until".
	record("events", 200, "GET", fmt.Sprintf("%s/events?since=%d&until=%d&filters=%s", api, start.Unix(), time.Now().Unix()+1, filters("label", label)), nil, nil)

	// Load: save the image, remove it, load it back.
	saved := must(200, "GET", api+"/images/get?names="+url.QueryEscape(image), nil, nil)
	// Not noprune: the classic builder's intermediate images hold the layers.
	must(200, "DELETE", api+"/images/"+image+"?force=1", nil, nil)
	record("load-progress", 200, "POST", api+"/images/load?quiet=0", tarHdr, bytes.NewReader(saved))

	// Pull from a registry on 127.0.0.1: push the image there, remove it,
	// pull it back.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	remote := host + "/heph-record/app"
	must(201, "POST", api+"/images/"+image+"/tag?repo="+url.QueryEscape(remote)+"&tag=1", nil, nil)
	cleanups = append(cleanups, func() { _, _, _ = call("DELETE", api+"/images/"+remote+":1?force=1", nil, nil) })
	auth := http.Header{"X-Registry-Auth": {base64.URLEncoding.EncodeToString([]byte("{}"))}}
	must(200, "POST", api+"/images/"+remote+"/push?tag=1", auth, nil)
	must(200, "DELETE", api+"/images/"+remote+":1?force=1", nil, nil)
	must(200, "DELETE", api+"/images/"+image+"?force=1", nil, nil)
	record("pull-progress", 200, "POST", api+"/images/create?fromImage="+url.QueryEscape(remote)+"&tag=1", nil, nil)
	record("error-pull-not-found", 404, "POST", api+"/images/create?fromImage="+url.QueryEscape(remote)+"&tag=missing", nil, nil)
	// As heph removes: force, keeping untagged parents (a pulled image has none).
	record("image-remove", 200, "DELETE", api+"/images/"+remote+":1?force=1&noprune=1", nil, nil)
	return nil
}

// recordHijack records the upgraded stream of POST path (exec start): the
// 101 response's headers, then every byte until the daemon closes.
func recordHijack(name, path, body string) error {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := "POST " + path + " HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n" +
		"Connection: Upgrade\r\nUpgrade: tcp\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("%s: status %d", name, resp.StatusCode)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(br)
	if err != nil {
		return err
	}
	save(name, "POST", path, resp.StatusCode, resp.Header, b)
	return nil
}
