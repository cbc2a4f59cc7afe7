package watchdog

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

// This test binary is re-executed as child processes, three ways:
//
//   - as a real watchdog: StartExecutable runs it with argv[0]
//     "heph-watchdog" and HEPH_WATCHDOG set, and the package's init turns it
//     into one before any test code runs;
//   - as a misbehaving "watchdog": the same start, but HEPH_WATCHDOG_TEST_CHILD
//     names a misbehaviour. That must act before the package's init, so it
//     is a package-level variable's initializer (every variable of a package
//     is initialized before any of its init functions runs), not TestMain;
//   - as a plain child that reaches TestMain (no watchdog marks, or only
//     one): TestMain then does what HEPH_WATCHDOG_TEST_MAIN says and exits,
//     proving the init let the program run.

// envChild names a misbehaviour for a child started as a watchdog.
const envChild = "HEPH_WATCHDOG_TEST_CHILD"

// envMain names what a child that reached TestMain does.
const envMain = "HEPH_WATCHDOG_TEST_MAIN"

var _ = misbehave()

// misbehave plays a broken watchdog when HEPH_WATCHDOG_TEST_CHILD says so,
// and exits; otherwise it does nothing.
func misbehave() bool {
	mode, ok := os.LookupEnv(envChild)
	if !ok || !isWatchdog(os.Args, os.LookupEnv) {
		return false
	}
	switch mode {
	case "exit": // a program that does not import heph: ends at once, silent
		os.Exit(3)
	case "log-and-exit": // fails, saying why on stderr (its log)
		fmt.Fprintln(os.Stderr, "cannot start: no daemon for you")
		os.Exit(1)
	case "wrong": // answers something else
		fmt.Println("hello")
	case "wrong-pid": // answers for another process
		fmt.Println(readyLine + " 1")
	case "mute": // never answers; ends when the parent gives up on it
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	os.Exit(0)
	return true
}

func TestMain(m *testing.M) {
	switch os.Getenv(envMain) {
	case "":
		if os.Args[0] == Argv0 {
			// Started as a watchdog but not taken for one: never run the
			// tests (they start children of their own).
			fmt.Println("not taken for a watchdog")
			os.Exit(2)
		}
		// A race-enabled child waits a second at exit for late reports;
		// this package starts dozens of them. (A race they find before
		// they exit is still reported.)
		_ = os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		os.Exit(m.Run())
	case "reached":
		// The init did not take this process for a watchdog.
		fmt.Println("reached TestMain")
		os.Exit(0)
	case "remove-own-log":
		// Play the end of a watchdog that removed nothing: remove its log
		// if it can prove the log is its own.
		var cfg Config
		if err := json.Unmarshal([]byte(os.Getenv("HEPH_WATCHDOG_TEST_CONFIG")), &cfg); err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		removeOwnLog(cfg.Parent)
		fmt.Println("done " + strconv.Itoa(cfg.Parent))
		os.Exit(0)
	}
	fmt.Println("unknown " + envMain)
	os.Exit(2)
}
