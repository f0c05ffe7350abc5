//go:build !linux

package proc

import "syscall"

// sysProcAttr puts the child in its own process group. Outside Linux there
// is no parent-death signal: children of a killed launcher keep running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
