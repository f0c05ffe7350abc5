// Package pack turns the built plugin folder (dist/) into the zip Grafana
// installs: one top-level folder named after the plugin id, with the
// executables kept executable.
package pack

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Platforms are the os_arch suffixes every backend build must have.
var Platforms = []string{"linux_amd64", "linux_arm64"}

// ManifestName is the Go build manifest the SDK's build tooling writes
// beside the binaries (sha256:path of every Go source file); the plugin
// validator checks it against the sources.
const ManifestName = "go_plugin_build_manifest"

// Meta is what pack reads from dist/plugin.json.
type Meta struct {
	ID         string `json:"id"`
	Executable string `json:"executable"`
	Backend    bool   `json:"backend"`
	Info       struct {
		Version string `json:"version"`
	} `json:"info"`
}

// ReadMeta reads and checks dist/plugin.json.
func ReadMeta(dist string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dist, "plugin.json"))
	if err != nil {
		return m, fmt.Errorf("cannot read the built plugin.json (run the frontend build first: npm run build): %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s/plugin.json is not JSON: %w", dist, err)
	}
	if m.ID == "" || m.Info.Version == "" || strings.Contains(m.Info.Version, "%") {
		return m, fmt.Errorf("%s/plugin.json lacks id or a filled-in info.version (id %q, version %q); build it with npm run build", dist, m.ID, m.Info.Version)
	}
	return m, nil
}

// Zip writes dist as out, every entry under the folder id/. It checks that
// a backend plugin has its executable for every platform.
func Zip(dist, out string) (Meta, error) {
	m, err := ReadMeta(dist)
	if err != nil {
		return m, err
	}
	if m.Backend {
		for _, p := range Platforms {
			name := m.Executable + "_" + p
			st, err := os.Stat(filepath.Join(dist, name))
			if err != nil {
				return m, fmt.Errorf("the backend binary %s is missing from %s: build the backend with go tool mage -v build:linux build:linuxARM64", name, dist)
			}
			if st.Mode()&0o111 == 0 {
				return m, fmt.Errorf("%s/%s is not executable", dist, name)
			}
		}
		if _, err := os.Stat(filepath.Join(dist, ManifestName)); err != nil {
			return m, fmt.Errorf("the Go build manifest %s is missing from %s: build the backend with go tool mage -v build:linux build:linuxARM64", ManifestName, dist)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return m, err
	}
	f, err := os.Create(out)
	if err != nil {
		return m, fmt.Errorf("cannot create the zip: %w", err)
	}
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(dist, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dist, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name = m.ID + "/" + filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
			_, err = zw.CreateHeader(h)
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		h.Method = zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(w, src)
		return err
	})
	err = errors.Join(err, zw.Close(), f.Close())
	if err != nil {
		os.Remove(out)
		return m, fmt.Errorf("cannot write %s: %w", out, err)
	}
	return m, nil
}
