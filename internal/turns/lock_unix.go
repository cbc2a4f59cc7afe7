//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package turns

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive flock on f, held until f is closed (or the
// process dies).
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// held reports whether the entry at path is locked by a live waiter.
func held(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	// We got the lock: no one holds it. Our close drops it again.
	return false, nil
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
