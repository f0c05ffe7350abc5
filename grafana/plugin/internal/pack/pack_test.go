package pack_test

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/internal/pack"
)

const pluginJSON = `{"id":"mockstagram-rankd-datasource","type":"datasource","backend":true,"executable":"gpx_mockstagram_rankd","info":{"version":"1.2.3"}}`

// dist writes a built plugin folder; files maps a path to its content, and
// a path ending in "*" is written executable (without the star).
func dist(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func complete() map[string]string {
	return map[string]string{
		"plugin.json": pluginJSON, "module.js": "define([],function(){})", "img/logo.svg": "<svg/>",
		"gpx_mockstagram_rankd_linux_amd64*": "ELF amd64", "gpx_mockstagram_rankd_linux_arm64*": "ELF arm64",
		"go_plugin_build_manifest": "abc:pkg/main.go\n",
	}
}

// TestZip: every file under one folder named after the plugin id, with
// its content and the executables still executable.
func TestZip(t *testing.T) {
	files := complete()
	out := filepath.Join(t.TempDir(), "p.zip")
	m, err := pack.Zip(dist(t, files), out)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "mockstagram-rankd-datasource" || m.Info.Version != "1.2.3" || m.Executable != "gpx_mockstagram_rankd" {
		t.Fatalf("meta %+v", m)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.FileInfo().IsDir() {
			continue
		}
		rel, ok := strings.CutPrefix(f.Name, "mockstagram-rankd-datasource/")
		if !ok {
			t.Fatalf("entry %s is outside the plugin folder", f.Name)
		}
		want, exe := files[rel], false
		if c, ok := files[rel+"*"]; ok {
			want, exe = c, true
		}
		rc, _ := f.Open()
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != want || (f.Mode()&0o111 != 0) != exe {
			t.Errorf("%s: %q mode %s, want %q executable %v", f.Name, got, f.Mode(), want, exe)
		}
	}
	sort.Strings(names)
	want := "mockstagram-rankd-datasource/go_plugin_build_manifest mockstagram-rankd-datasource/gpx_mockstagram_rankd_linux_amd64 " +
		"mockstagram-rankd-datasource/gpx_mockstagram_rankd_linux_arm64 mockstagram-rankd-datasource/img/ mockstagram-rankd-datasource/img/logo.svg " +
		"mockstagram-rankd-datasource/module.js mockstagram-rankd-datasource/plugin.json"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("entries\n%s\nwant\n%s", got, want)
	}
}

// TestZipRefuses: an incomplete build is not packed, and the error says
// what to build.
func TestZipRefuses(t *testing.T) {
	f := func(change func(map[string]string), msg string) {
		t.Helper()
		files := complete()
		change(files)
		out := filepath.Join(t.TempDir(), "p.zip")
		_, err := pack.Zip(dist(t, files), out)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Fatalf("error %v, want it to contain %q", err, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatal("a zip was written")
		}
	}
	f(func(m map[string]string) { delete(m, "gpx_mockstagram_rankd_linux_arm64*") },
		"the backend binary gpx_mockstagram_rankd_linux_arm64 is missing from")
	f(func(m map[string]string) {
		delete(m, "gpx_mockstagram_rankd_linux_amd64*")
		m["gpx_mockstagram_rankd_linux_amd64"] = "x"
	}, "gpx_mockstagram_rankd_linux_amd64 is not executable")
	f(func(m map[string]string) { delete(m, "go_plugin_build_manifest") }, "the Go build manifest go_plugin_build_manifest is missing")
	f(func(m map[string]string) { delete(m, "plugin.json") }, "cannot read the built plugin.json (run the frontend build first: npm run build)")
	f(func(m map[string]string) { m["plugin.json"] = strings.Replace(pluginJSON, "1.2.3", "%VERSION%", 1) }, "lacks id or a filled-in info.version")
	f(func(m map[string]string) { m["plugin.json"] = "{" }, "plugin.json is not JSON")
}
