//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package turns

import (
	"errors"
	"os"
)

// Without flock there is no cross-process line: OpenDir refuses, and the
// caller goes without one.

func lock(*os.File) error { return errors.ErrUnsupported }

func held(string) (bool, error) { return false, errors.ErrUnsupported }

func private(string) error { return errors.ErrUnsupported }
