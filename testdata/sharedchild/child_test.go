//go:build integration

// Package sharedchild is the child program of heph's shared-container
// tests: the parent builds it with go test -c and runs several copies at
// once, as the packages of a `go test ./...` would run. Under testdata,
// go test ./... never runs it.
//
// TestShared runs SHAREDCHILD_TESTS (default 4) parallel subtests. Each
// waits until the file SHAREDCHILD_GO exists (so that every test of every
// copy asks at the same moment; the process prints "waiting" once its tests
// wait), starts the shared request — the test image SHAREDCHILD_IMAGE
// serving HTTP on 8080 (after SHAREDCHILD_DELAY, when set), service
// SHAREDCHILD_SERVICE, environment RUN=SHAREDCHILD_RUN — prints
//
//	took <test> <container id> <key> <microseconds from asking to ready>
//	reached <test> <hostname the container answered>
//
// (and "net <test> <its network>" when SHAREDCHILD_NET is set: the test
// makes its network, which the shared container joins) and then, with
// SHAREDCHILD_MODE=hold, prints "ready" once every test
// took it and answers each line "ping N" on stdin with "pong <test> N ok"
// (or "pong <test> N <error>") per test, until stdin closes; with
// SHAREDCHILD_MODE=pass it ends at once.
//
// Its TestMain is not testenv.Main: the parent checks what it leaves, after
// the idle time, from outside.
package sharedchild

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

var (
	out     sync.Mutex
	pings   = map[string]chan string{}
	pingsMu sync.Mutex
	allIn   sync.WaitGroup
)

func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

func TestMain(m *testing.M) {
	if os.Getenv("SHAREDCHILD_IMAGE") == "" {
		fmt.Println("sharedchild runs only under heph's shared-container tests")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// readPings hands every stdin line to each test's channel and closes them
// at EOF.
func readPings() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		pingsMu.Lock()
		for _, ch := range pings {
			ch <- sc.Text()
		}
		pingsMu.Unlock()
	}
	pingsMu.Lock()
	for _, ch := range pings {
		close(ch)
	}
	pingsMu.Unlock()
}

func request() heph.ContainerRequest {
	args := []string{"-http", ":8080"}
	if d := os.Getenv("SHAREDCHILD_DELAY"); d != "" {
		args = append(args, "-http-delay", d)
	}
	return heph.NewContainer(os.Getenv("SHAREDCHILD_IMAGE")).WithName(os.Getenv("SHAREDCHILD_SERVICE")).
		WithEnv("RUN", os.Getenv("SHAREDCHILD_RUN")).WithCmd(args...).WithExposedPorts("8080").
		WithWaitStrategy(wait.ForHTTP("/healthz")).Shared()
}

func TestShared(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SHAREDCHILD_TESTS"))
	if n <= 0 {
		n = 4
	}
	hold := os.Getenv("SHAREDCHILD_MODE") == "hold"
	goFile := os.Getenv("SHAREDCHILD_GO")
	allIn.Add(n)
	var waiting sync.WaitGroup
	waiting.Add(n)
	go func() {
		waiting.Wait()
		say("waiting")
	}()
	if hold {
		for i := range n {
			pings[strconv.Itoa(i)] = make(chan string, 16)
		}
		go func() {
			allIn.Wait()
			say("ready")
			readPings()
		}()
	}
	for i := range n {
		name := strconv.Itoa(i)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			waiting.Done()
			for goFile != "" {
				if _, err := os.Stat(goFile); err == nil {
					break
				}
				time.Sleep(time.Millisecond) // a barrier across processes: nothing to await but the file
			}
			began := time.Now()
			c := request().Start(t)
			took := time.Since(began)
			if os.Getenv("SHAREDCHILD_NET") != "" { // the test has a network: the shared container joins it
				say("net %s %s", t.Name(), heph.TestNetwork(t).Name())
			}
			info, err := c.Inspect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			say("took %s %s %s %d", t.Name(), c.ID(), info.Labels["heph.shared"], took.Microseconds())
			host, err := testenv.Fetch("http://" + c.Endpoint("8080") + "/hostname")
			if err != nil {
				t.Fatalf("reach the shared container: %v", err)
			}
			say("reached %s %s", t.Name(), host)
			allIn.Done()
			if !hold {
				return
			}
			for p := range pings[name] {
				_, err := testenv.Fetch("http://" + c.Endpoint("8080") + "/hostname")
				res := "ok"
				if err != nil {
					res = strings.ReplaceAll(err.Error(), " ", "_")
				}
				say("pong %s %s %s", t.Name(), strings.TrimPrefix(p, "ping "), res)
			}
		})
	}
}
