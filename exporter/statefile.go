package exporter

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// StateFile is the state file's name for a shard of a pk range: one
// directory can hold the files of several shards and deployments.
func StateFile(dir string, r pkrange.Range, sh pkrange.Shard) string {
	return filepath.Join(dir, fmt.Sprintf("exporter-%d-%d-shard-%d-of-%d.state", r.Min, r.Max, sh.Index, sh.Count))
}

// stateFile writes and reads one state file on disk. It knows files, not
// what is in them.
type stateFile struct {
	dir, path string
	mu        sync.Mutex // the periodic save and the final one never interleave
}

// write replaces the file atomically with what encode writes: a temporary
// file in the same directory, fsync, rename over the old file, fsync of the
// directory. A crash at any point leaves the previous file or the new one,
// never a torn one. It returns the bytes written.
func (f *stateFile) write(encode func(io.Writer) (int64, error)) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tmp, err := os.CreateTemp(f.dir, filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("cannot write state: %w (is state.dir=%q writable?)", err, f.dir)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	n, err := encode(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err == nil {
		err = syncDir(f.dir)
	}
	if err != nil {
		return 0, fmt.Errorf("cannot write state file %s: %w", f.path, err)
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// read returns the file's bytes, after removing the temporary files of
// interrupted writes; found is false when there is no file.
func (f *stateFile) read() (data []byte, found bool, err error) {
	if entries, err := os.ReadDir(f.dir); err == nil {
		prefix := filepath.Base(f.path) + ".tmp-"
		for _, d := range entries {
			if strings.HasPrefix(d.Name(), prefix) {
				os.Remove(filepath.Join(f.dir, d.Name()))
			}
		}
	}
	data, err = os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("cannot read state file: %w", err)
	}
	return data, true, nil
}

// setAside renames a rejected file out of the way, keeping it for a human,
// and returns its new path ("" when the rename failed).
func (f *stateFile) setAside(now time.Time) string {
	aside := fmt.Sprintf("%s.rejected-%s", f.path, now.UTC().Format("20060102T150405.000Z"))
	if err := os.Rename(f.path, aside); err != nil {
		return ""
	}
	return aside
}
