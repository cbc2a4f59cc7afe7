// Package probe is the program `heph doctor` runs in a container to check
// that the daemon can run a locally built image and publish its port: it
// listens on TCP and greets every connection with Greeting.
//
// Its source is embedded in cmd/heph and compiled with `go build`
// (CGO_ENABLED=0, for the daemon's platform) into a FROM scratch image; a
// static heph binary serves the same way as `heph doctor-probe`. It imports
// nothing but the standard library.
package probe

import (
	"fmt"
	"net"
	"os"
)

// Greeting is the line the probe writes on every connection.
const Greeting = "heph-doctor-probe ok\n"

// Addr is where the probe listens in its container.
const Addr = ":8080"

// Serve listens on addr and greets every connection; it returns only when
// listening or accepting fails.
func Serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("heph-doctor-probe: listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = c.Write([]byte(Greeting))
		}()
	}
}

// Main serves on Addr and exits 1 when that fails.
func Main() {
	err := Serve(Addr)
	fmt.Fprintf(os.Stderr, "heph-doctor-probe: %v\n", err)
	os.Exit(1)
}
