package proc

import "syscall"

// sysProcAttr puts the child in its own process group and asks the kernel
// to send it SIGTERM when the thread that started it exits: the Go runtime
// never ends its threads on its own, so in practice that is when the
// launcher process dies, however it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
