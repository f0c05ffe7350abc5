package proc

import (
	"path/filepath"
	"strings"
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
