package validate

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the root module, whose repository holds the deploy files.
const ModulePath = "github.com/mockstagram-exporter/mockstagram-exporter"

// RepoRoot finds the repository root from dir (a directory inside it) by
// walking up to the go.mod of ModulePath.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && modulePath(b) == ModulePath {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s above %s; run from inside the repository", ModulePath, dir)
		}
	}
}

// GoDirective returns the go version a go.mod asks for ("1.26.8").
func GoDirective(gomod []byte) string {
	return directive(gomod, "go")
}

func modulePath(gomod []byte) string {
	return directive(gomod, "module")
}

func directive(gomod []byte, name string) string {
	s := bufio.NewScanner(bytes.NewReader(gomod))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// CompareVersions compares dotted numeric versions ("1.26.8" < "1.26.10"):
// -1, 0 or 1. A missing component counts as 0.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			fmt.Sscan(as[i], &x)
		}
		if i < len(bs) {
			fmt.Sscan(bs[i], &y)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
