package proc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExited: nil while every process runs; then the one that died, with
// its exit status and the tail of its log.
func TestExited(t *testing.T) {
	dir := t.TempDir()
	long, err := Start("long", "/bin/sh", []string{"-c", "sleep 30"}, filepath.Join(dir, "long.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { long.Stop(5 * time.Second) })
	short, err := Start("short", "/bin/sh", []string{"-c", "echo cannot bind port; exit 3"}, filepath.Join(dir, "short.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Exited([]*Proc{long}); err != nil {
		t.Fatalf("a running process reported: %v", err)
	}
	<-short.Done()
	err = Exited([]*Proc{long, short})
	if err == nil || !strings.Contains(err.Error(), "short exited: exit status 3") || !strings.Contains(err.Error(), "cannot bind port") {
		t.Fatalf("got %v", err)
	}
}

// TestLogsOfEarlierRunsAreKept: a restart keeps the previous runs' logs as
// <name>.log.1, .2, .3; the oldest beyond that goes.
func TestLogsOfEarlierRunsAreKept(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "c.log")
	for run := 1; run <= 5; run++ {
		p, err := Start("c", "/bin/sh", []string{"-c", "echo run " + strconv.Itoa(run)}, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		<-p.Done()
	}
	for suffix, want := range map[string]string{"": "run 5", ".1": "run 4", ".2": "run 3", ".3": "run 2"} {
		b, err := os.ReadFile(log + suffix)
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Fatalf("%s holds %q (%v), want %q", filepath.Base(log+suffix), b, err, want)
		}
	}
	if _, err := os.Stat(log + ".4"); !os.IsNotExist(err) {
		t.Fatalf("a fifth log is kept: %v", err)
	}
}

// TestChildrenDieWithTheLauncher: when the process that started a child is
// killed outright, the child does not run on as an orphan. The test binary
// itself plays the launcher.
func TestChildrenDieWithTheLauncher(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	if os.Getenv("PROC_TEST_LAUNCHER") == "1" {
		child, err := Start("child", "/bin/sh", []string{"-c", "sleep 300"}, filepath.Join(os.Getenv("PROC_TEST_DIR"), "child.log"), nil)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("child", child.Cmd.Process.Pid)
		select {} // until killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildrenDieWithTheLauncher$")
	cmd.Env = append(os.Environ(), "PROC_TEST_LAUNCHER=1", "PROC_TEST_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscanf(bufio.NewReader(out), "child %d\n", &pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("the launcher did not report its child: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("child %d is not running: %v", pid, err)
	}
	cmd.Process.Kill() // SIGKILL: the launcher gets no chance to stop it
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// A zombie (dead, not yet reaped by init) counts as gone.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs 10s after its launcher was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
