// Command rig starts a daemon endpoint (internal/rig), runs a command with
// the environment that points at it, and stops the endpoint:
//
//	go run ./internal/rig/cmd podman|ssh|tls|api-floor|docker -- <command> [args]
//
// It exits with the command's status. Signals it receives (SIGINT,
// SIGTERM) are passed to the command, and the endpoint is stopped after.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/heph-go/heph/internal/rig"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintf(os.Stderr, "usage: rig %s|docker -- <command> [args]\n", strings.Join(rig.Kinds, "|"))
		return 2
	}
	kind, command := args[0], args[2:]
	dir, err := os.MkdirTemp("", "heph-rig-"+kind+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rig:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	ep, err := rig.Start(ctx, kind, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rig:", err)
		return 1
	}
	defer func() {
		if err := ep.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "rig: stop:", err)
		}
	}()
	var set []string
	for k, v := range ep.Env {
		set = append(set, k+"="+v)
	}
	fmt.Fprintf(os.Stderr, "rig: %s up in %s: %s\n", kind, time.Since(began).Round(time.Millisecond), strings.Join(set, " "))

	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = ep.Environ(os.Environ())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rig:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	fmt.Fprintf(os.Stderr, "rig: %s: %s took %s\n", kind, strings.Join(command, " "), time.Since(began).Round(time.Second))
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "rig:", err)
		return 1
	}
}
