//go:build !unix

package engine

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
