// Package proc starts and stops one process at a time (our binaries and
// the VictoriaMetrics ones): free loopback ports, readiness waits, CPU and
// memory readings, and an orderly stop. internal/stack builds the
// pipeline's command lines and start order on it.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a started child process whose output goes to a log file.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	err     error
}

// Start runs bin with args, its stdout and stderr written to logPath (and
// to tee, when not nil).
func Start(name, bin string, args []string, logPath string, tee io.Writer) (*Proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create log dir for %s: %w", name, err)
	}
	// The previous runs' logs are kept (<name>.log.1 is the last one), so
	// the log of a crash survives the restart that follows it.
	rotate(logPath, keepLogs)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	var out io.Writer = logf
	if tee != nil {
		out = io.MultiWriter(logf, tee)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so a Ctrl-C on the terminal reaches the launcher
	// only, and the launcher stops the children in order. Tied to the
	// launcher: when it dies without stopping them (SIGKILL, or its own
	// parent went), the children get SIGTERM instead of running on as
	// orphans (Linux; see sysprocattr_linux.go).
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// keepLogs is how many previous logs of a component are kept.
const keepLogs = 3

// rotate moves path to path.1, path.1 to path.2, ... keeping n old logs.
// An empty or missing log is not rotated.
func rotate(path string, n int) {
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		return
	}
	for k := n - 1; k >= 1; k-- {
		os.Rename(path+"."+strconv.Itoa(k), path+"."+strconv.Itoa(k+1))
	}
	os.Rename(path, path+".1")
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Proc) Err() error { return p.err }

// Stop sends SIGTERM and waits up to grace before killing.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.Name, grace)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && !ee.Exited() {
		return nil // ended by our signal
	}
	return p.err
}

// Exited reports the first of ps that has exited, with its exit error and
// the tail of its log; nil while all run.
func Exited(ps []*Proc) error {
	for _, p := range ps {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(20))
		default:
		}
	}
	return nil
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CPU returns the user+system CPU time the process has used so far (Linux).
func (p *Proc) CPU() (time.Duration, error) { return CPUOf(p.Cmd.Process.Pid) }

// RSS returns the resident set size in bytes (Linux).
func (p *Proc) RSS() (int64, error) { return RSSOf(p.Cmd.Process.Pid) }

// RSSOf reads /proc/<pid>/statm.
func RSSOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("short statm: %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()), err
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPUOf reads /proc/<pid>/stat.
func CPUOf(pid int) (time.Duration, error) {
	if runtime.GOOS != "linux" {
		return 0, errors.New("CPU readings need Linux /proc")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat %q", b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when returned; a caller binds them soon after.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// PortFree reports whether addr (host:port) can be bound now.
func PortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// WaitHTTP polls url until it answers 200, p exits, or ctx ends.
func WaitHTTP(ctx context.Context, url string, p *Proc) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		var exited <-chan struct{}
		if p != nil {
			exited = p.done
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last error: %v)", url, ctx.Err(), err)
		case <-exited:
			return fmt.Errorf("%s exited before it was ready: %v\n%s", p.Name, p.err, p.Tail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
