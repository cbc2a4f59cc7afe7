package heph

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/envflag"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/redact"
	"github.com/heph-go/heph/wait"
)

// Environment variables read by the test-facing API.
const (
	// EnvKeep is HEPH_KEEP: "failed" keeps a failed test's containers and
	// network (and prints how to reach and remove them), "always" keeps every
	// test's; unset or "never" removes them.
	EnvKeep = "HEPH_KEEP"
	// EnvLogs is HEPH_LOGS: "1" (or "true") streams every container's output
	// into its test's log, as WithLogsToTest does for one container.
	EnvLogs = "HEPH_LOGS"
)

// teardownTimeout bounds a test's teardown.
const teardownTimeout = 2 * time.Minute

// Start starts the container for the test t and returns it ready: it
// creates it on the test's own network (see TestNetwork) with the test's name
// in the heph.test label, copies WithFile files in, starts it, and waits with
// the wait strategy, the whole bounded by the startup timeout (the image pull
// by the pull timeout).
//
// Start registers the test's cleanup before its first Docker call: when the
// test ends, its containers are removed concurrently (force, or gracefully
// with WithGracefulStop), then its network; when the test failed, each
// container's state and last 50 log lines are logged first. HEPH_KEEP keeps
// them instead. Cleanup failures are reported with t.Errorf.
//
// On any failure Start calls t.Fatalf with an error that, once the container
// ran, carries its state, exit code and last log lines; what it made is
// removed by the cleanup. Start must be called from the test's goroutine.
// A shared request (Shared) takes its shared container instead, which the
// cleanup lets go, not removes.
func (r ContainerRequest) Start(t testing.TB) *Container {
	t.Helper()
	st := stateOf(t)
	c, err := st.start(r)
	if err != nil {
		t.Fatalf("%v", r.secrets().Error(errs.Op("start "+r.describe(), "", nil, err)))
	}
	return c
}

// StartAll starts several containers for the test t at once and returns
// them in the order of reqs, each ready, on the test's network: like Start
// for each, concurrently. If any fails, StartAll calls t.Fatalf with every
// failure; what was made is removed by the test's cleanup. It must be called
// from the test's goroutine.
func StartAll(t testing.TB, reqs ...ContainerRequest) []*Container {
	t.Helper()
	st := stateOf(t)
	cs := make([]*Container, len(reqs))
	failures := eachConcurrently(reqs, func(i int, r ContainerRequest) error {
		var err error
		if cs[i], err = st.start(r); err != nil {
			return r.secrets().Error(errs.Op("start "+r.describe(), "", nil, err))
		}
		return nil
	})
	if err := errors.Join(failures...); err != nil {
		t.Fatalf("%v", err)
	}
	return cs
}

// Run starts the container without a testing.T — for TestMain and for
// programs — on o, joined to the WithNetwork networks (else Docker's default
// bridge), and returns it ready. The caller removes it with Terminate (and
// its networks with Network.Remove). On failure Run removes what it made
// before returning the error. Invalid options, or a nil o, are refused with
// ErrInvalidConfig before any Docker call.
func (r ContainerRequest) Run(ctx context.Context, o *Orchestrator) (*Container, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, &errs.InvalidError{What: "Run", Reason: "the Orchestrator is nil: make one with NewOrchestrator, or use DefaultOrchestrator"}
	}
	c, err := r.start(ctx, o, nil, "", nil)
	if err != nil && c != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, c.Terminate(rctx))
	}
	if err != nil {
		return nil, r.secrets().Error(errs.Op("run "+r.describe(), "", nil, err))
	}
	return c, nil
}

// secrets are the request's secret env values, masked in its errors.
func (r ContainerRequest) secrets() redact.Secrets { return redact.EnvSecrets(r.cfg.Env) }

// check reports the request's invalid options (and an invalid
// HEPH_REAPER), before any Docker call.
func (r ContainerRequest) check() error {
	if len(r.errs) > 0 {
		return errors.Join(r.errs...)
	}
	if err := r.cfg.validate(); err != nil {
		return err
	}
	if err := r.checkShared(); err != nil {
		return err
	}
	_, err := reaperOn()
	return err
}

// start creates, fills, starts and waits for the container. Once the
// container exists start returns it, even with an error, so the caller can
// remove it. st is nil for Run.
func (r ContainerRequest) start(ctx context.Context, o *Orchestrator, testNet *Network, testName string, st *testState) (*Container, error) {
	if r.shared {
		return r.startShared(ctx, o, st)
	}
	cfg := r.cfg
	cfg.Networks = nil
	if testNet != nil {
		cfg.Networks = append(cfg.Networks, testNet.name)
	}
	for _, n := range r.networks {
		cfg.Networks = append(cfg.Networks, n.name)
	}
	if testName != "" {
		cfg.internalLabels = map[string]string{LabelTest: testName}
	}
	cfg.Service = r.service()
	image, err := r.provideImage(ctx, o, st)
	if err != nil {
		return nil, err
	}
	cfg.Image = image

	ctx, cancel := context.WithTimeout(ctx, r.opts.startupTimeout)
	defer cancel()
	c, err := o.createContainer(ctx, cfg, r.opts)
	if err != nil {
		return nil, err
	}
	if st != nil {
		c.t = st.t
		st.add(c)
	}
	if len(r.files) > 0 {
		if err := c.copyFiles(ctx, r.files); err != nil {
			return c, err
		}
	}
	if err := o.api.ContainerStart(ctx, c.id); err != nil {
		return c, wrap("start container", c.name, err, ErrContainerNotFound)
	}
	if st != nil && (r.logsToTest || envLogsOn()) {
		st.followLogs(c)
	}
	if err := c.ready(ctx); err != nil {
		return c, r.decorate(ctx, c, err)
	}
	return c, c.setUp(ctx, r.perTest)
}

// provideImage pulls or builds r's image as its options say and returns
// the reference to create the container from; r.provided (a shared take
// that did it already) is returned as it is.
func (r ContainerRequest) provideImage(ctx context.Context, o *Orchestrator, st *testState) (string, error) {
	if r.provided != "" {
		return r.provided, nil
	}
	q := r.cfg.imageRequest()
	q.build, q.goPackage = r.build, r.goPackage
	if st != nil {
		q.progress = func(msg string) { st.t.Log(msg) }
		q.echo = r.logsToTest || envLogsOn()
	}
	return o.provide(ctx, q)
}

// decorate adds the container's state and last log lines to a start
// failure, unless the wait strategy's error already carries them.
func (r ContainerRequest) decorate(ctx context.Context, c *Container, err error) error {
	if r.opts.strategy != nil && waitErrorHasState(err) {
		return err
	}
	return fmt.Errorf("%w\n%s", err, c.describe(context.WithoutCancel(ctx), 20))
}

// TestNetwork returns the network private to the test t, creating it on
// first use (Start calls it for every container of the test). Each test and
// each subtest has its own: its containers reach each other by service name
// and cannot reach another test's. It is removed when the test ends, after
// the test's containers. It gets a subnet of its own (see EnvSubnets); when
// it falls back to Docker's address pools and they are exhausted, creating
// it waits its turn while other tests free theirs, for up to
// DefaultStartupTimeout; then the test fails with what happened and what to
// do. TestNetwork must be called from the test's goroutine.
func TestNetwork(t testing.TB) *Network {
	t.Helper()
	st := stateOf(t)
	o, err := DefaultOrchestrator()
	if err != nil {
		t.Fatalf("%v", errs.Op("test network", "", nil, err))
	}
	ctx, cancel := context.WithTimeout(t.Context(), DefaultStartupTimeout)
	defer cancel()
	n, err := st.network(ctx, o)
	if err != nil {
		t.Fatalf("%v", errs.Op("test network", "", nil, err))
	}
	return n
}

// testState is what heph holds for one test: its network, its containers
// and its log followers. Its teardown is the test's one heph cleanup.
type testState struct {
	t testing.TB

	mu         sync.Mutex
	net        *Network
	netErr     error // the one attempt at net failed: every start fails with it
	containers []*Container

	logCtx    context.Context
	logCancel context.CancelFunc
	logs      sync.WaitGroup
}

var tests = struct {
	sync.Mutex
	m map[testing.TB]*testState
}{m: map[testing.TB]*testState{}}

// stateOf returns t's state, registering its teardown with t.Cleanup the
// first time (before any Docker call is made for the test).
func stateOf(t testing.TB) *testState {
	tests.Lock()
	defer tests.Unlock()
	if st, ok := tests.m[t]; ok {
		return st
	}
	st := &testState{t: t}
	st.logCtx, st.logCancel = context.WithCancel(context.Background())
	tests.m[t] = st
	t.Cleanup(st.teardown)
	return st
}

func (st *testState) start(r ContainerRequest) (*Container, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	if _, err := keepMode(); err != nil {
		return nil, err
	}
	if _, err := envLogs(); err != nil {
		return nil, err
	}
	o, err := DefaultOrchestrator()
	if err != nil {
		return nil, err
	}
	ctx := st.t.Context()
	if r.shared { // it joins the test's network when the test has one
		return r.start(ctx, o, nil, st.t.Name(), st)
	}
	nctx, cancel := context.WithTimeout(ctx, r.opts.startupTimeout)
	net, err := st.network(nctx, o)
	cancel()
	if err != nil {
		return nil, errs.Op("test network", "", nil, err)
	}
	return r.start(ctx, o, net, st.t.Name(), st)
}

// network returns the test's network, creating it the first time. A test
// makes one attempt: the concurrent starts of StartAll wait for it, and when
// it fails they all fail with its error instead of each trying a network of
// its own.
func (st *testState) network(ctx context.Context, o *Orchestrator) (*Network, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.net == nil && st.netErr == nil {
		st.net, st.netErr = o.CreateNetwork(ctx, NetworkConfig{internalLabels: map[string]string{LabelTest: st.t.Name()}})
		for _, c := range st.containers {
			if st.netErr == nil && c.attach != nil { // a shared container the test took before it had a network
				if err := c.attach.Join(ctx, st.net.name); err != nil {
					return nil, err
				}
			}
		}
	}
	return st.net, st.netErr
}

func (st *testState) add(c *Container) {
	st.mu.Lock()
	st.containers = append(st.containers, c)
	st.mu.Unlock()
}

// followLogs copies c's output into the test log, line by line, prefixed
// with its service name, until the teardown stops it.
func (st *testState) followLogs(c *Container) {
	st.logs.Add(1)
	go func() {
		defer st.logs.Done()
		logLine := func(line string) { st.t.Logf("[%s] %s", c.service, c.secrets.String(line)) }
		printed := 0
		if r, err := c.logs(st.logCtx, engine.LogOptions{Follow: true, Since: c.logsSince}); err == nil {
			printed, _ = logLines(r, logLine)
			r.Close()
		} else if st.logCtx.Err() == nil {
			st.t.Logf("heph: [%s] cannot follow logs: %s", c.service, errs.Strip(err.Error()))
		}
		// The teardown may stop (or even forestall) the stream before it
		// delivered all the container wrote: read the rest once, without
		// following.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rest, err := c.logs(ctx, engine.LogOptions{Since: c.logsSince})
		if err != nil {
			return
		}
		defer rest.Close()
		logLines(rest, func(line string) {
			if printed > 0 {
				printed--
				return
			}
			logLine(line)
		})
	}()
}

// maxLogLine bounds a line of a container's output that heph prints: the
// rest of a longer line is dropped, and a marker says how much.
const maxLogLine = 1 << 20

// logLines calls fn for each line read from r (without its "\n" or
// "\r\n"; a line longer than maxLogLine cut, with a marker) and returns
// how many, with the read error that ended it (nil at EOF). It holds one
// line at most.
func logLines(r io.Reader, fn func(string)) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	var line []byte
	cut := 0 // bytes of the line dropped
	for {
		chunk, err := br.ReadSlice('\n')
		end := err == nil // chunk ends the line
		data := chunk
		if end {
			data = chunk[:len(chunk)-1]
		}
		room := maxLogLine - len(line)
		if len(data) <= room {
			line = append(line, data...)
		} else {
			line = append(line, data[:room]...)
			cut += len(data) - room
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if end || len(line) > 0 || cut > 0 {
			text := strings.TrimSuffix(string(line), "\r")
			if cut > 0 {
				text += fmt.Sprintf(" … [line cut by heph: %d more bytes]", cut)
			}
			fn(text)
			n++
			line, cut = line[:0], 0
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// teardown is the test's cleanup: logs of a failed test, then removal (or
// HEPH_KEEP).
func (st *testState) teardown() {
	tests.Lock()
	delete(tests.m, st.t)
	tests.Unlock()

	st.logCancel()
	st.logs.Wait()

	st.mu.Lock()
	containers, net := st.containers, st.net
	st.mu.Unlock()
	if len(containers) == 0 && net == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(st.t.Context()), teardownTimeout) // t.Context() is already cancelled here
	defer cancel()

	failed := st.t.Failed()
	if failed {
		for _, c := range containers {
			st.t.Logf("heph: %s", c.describe(ctx, 50))
		}
	}
	mode, _ := keepMode()
	if mode == "always" || (mode == "failed" && failed) {
		// A shared container is let go even so: it is not the test's.
		owned := slices.DeleteFunc(slices.Clone(containers), func(c *Container) bool { return c.attach != nil })
		st.keep(ctx, mode, owned, net)
		st.terminate(ctx, slices.DeleteFunc(containers, func(c *Container) bool { return c.attach == nil }))
		return
	}

	st.terminate(ctx, containers)
	if net != nil {
		// A container whose create outlived its start still sits on the
		// network until its removal, which this waits for.
		if err := net.o.reclaims.wait(ctx); err != nil {
			st.t.Errorf("%v", errs.Op("teardown", "", nil, err))
		}
		st.remove(ctx, "network "+net.name, func() error { return net.Remove(ctx) })
	}
}

// terminate terminates containers concurrently, reporting failures.
func (st *testState) terminate(ctx context.Context, containers []*Container) {
	eachConcurrently(containers, func(_ int, c *Container) error {
		st.remove(ctx, "container "+c.name, func() error { return c.Terminate(ctx) })
		return nil
	})
}

// remove runs a removal for the teardown: it outlasts a daemon that does not
// answer for a while (a restart), within the teardown's time, and says so;
// a failure is reported with t.Errorf.
func (st *testState) remove(ctx context.Context, what string, op func() error) {
	waited, err := untilAnswered(ctx, op)
	switch {
	case err != nil:
		st.t.Errorf("%v", errs.Op("teardown", "", nil, err))
	case waited > 0:
		st.t.Logf("heph: teardown: removed %s after the daemon did not answer for %s", what, waited)
	}
}

// keep leaves the test's containers and network in place and says how to
// reach and remove them.
func (st *testState) keep(ctx context.Context, mode string, containers []*Container, net *Network) {
	var b strings.Builder
	fmt.Fprintf(&b, "heph: %s=%s: keeping what %s made:", EnvKeep, mode, st.t.Name())
	names := make([]string, 0, len(containers))
	var o *Orchestrator
	for _, c := range containers {
		o = c.o
		names = append(names, c.name)
		fmt.Fprintf(&b, "\n  container %s (service %s): docker logs %s; docker exec %s <command>", c.name, c.service, c.name, c.name)
		c.mu.Lock()
		ports := maps.Clone(c.ports)
		c.mu.Unlock()
		for _, p := range sortedKeys(ports) {
			fmt.Fprintf(&b, "; %s at %s:%d", p, c.Host(), ports[p])
		}
	}
	remove := ""
	if len(names) > 0 {
		remove = "docker rm -f " + strings.Join(names, " ")
	}
	if net != nil {
		o = net.o
		fmt.Fprintf(&b, "\n  network %s", net.name)
		if remove != "" {
			remove += " && "
		}
		remove += "docker network rm " + net.name
	}
	fmt.Fprintf(&b, "\n  remove them with: %s", remove)
	st.t.Log(b.String())
	if o != nil {
		ids := make([]string, 0, len(containers)+1)
		for _, c := range containers {
			ids = append(ids, c.id)
		}
		if net != nil {
			ids = append(ids, net.id)
		}
		if err := o.keep(ids...); err != nil {
			st.t.Errorf("%v", errs.Op(EnvKeep, "", nil, err))
		}
	}
}

// keepMode reads HEPH_KEEP: "", "failed" or "always".
func keepMode() (string, error) {
	v := os.Getenv(EnvKeep)
	switch mode := strings.ToLower(strings.TrimSpace(v)); {
	case mode == "failed" || mode == "always":
		return mode, nil
	case mode == "never" || envflag.IsOff(mode) || mode == "":
		return "", nil
	}
	return "", invalid(EnvKeep, v, "want failed, always or never")
}

// envLogs reads HEPH_LOGS.
func envLogs() (bool, error) {
	v := os.Getenv(EnvLogs)
	on, err := envflag.Bool(EnvLogs, v, false)
	if err != nil {
		return false, invalid(EnvLogs, v, "want "+envflag.Words)
	}
	return on, nil
}

func envLogsOn() bool {
	on, _ := envLogs()
	return on
}

// waitErrorHasState reports whether err comes from package wait, which adds
// the container's state and log tail itself.
func waitErrorHasState(err error) bool {
	var we *wait.Error
	return errors.As(err, &we)
}
