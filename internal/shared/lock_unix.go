//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package shared

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// errWouldBlock: someone else holds the lock.
var errWouldBlock = syscall.EWOULDBLOCK

// flock takes an flock on f without waiting, held until f is closed or the
// process ends.
func flock(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// locked reports whether the file at path is flocked by someone: a lease
// that is locked is a live holder's.
func locked(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := flock(f, false); {
	case errors.Is(err, errWouldBlock):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, nil // we got it: no one holds it; our close drops it again
}

// private refuses a directory that another user owns or may write to.
func private(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return errors.New("not a directory")
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("owned by uid %d, not by this user (%d)", st.Uid, os.Getuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("others may write to it (mode %v)", fi.Mode().Perm())
	}
	return nil
}
