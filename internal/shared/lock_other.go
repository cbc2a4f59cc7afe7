//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package shared

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

var errUnsupported = errors.New("shared containers need flock (Linux, macOS or a BSD)")

func flock(*os.File, bool) error  { return errUnsupported }
func locked(string) (bool, error) { return false, errUnsupported }
func private(string) error        { return errUnsupported }
