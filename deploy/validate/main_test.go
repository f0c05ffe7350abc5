package validate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	corev1 "k8s.io/api/core/v1"
)

// Fixtures shared by the tests, each loaded once and only when asked for.

var root = sync.OnceValues(func() (string, error) { return RepoRoot(".") })

func repoRoot(t *testing.T) string {
	t.Helper()
	r, err := root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func repoPath(t *testing.T, rel ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t)}, rel...)...)
}

var built = sync.OnceValues(func() (*Manifests, error) {
	r, err := root()
	if err != nil {
		return nil, err
	}
	y, err := Kustomize(filepath.Join(r, "deploy", "k8s"))
	if err != nil {
		return nil, err
	}
	objs, err := DecodeStrict(y)
	if err != nil {
		return nil, fmt.Errorf("kustomize output: %w", err)
	}
	return NewManifests(objs)
})

// k8s is the output of `kubectl kustomize deploy/k8s`, decoded strictly.
func k8s(t *testing.T) *Manifests {
	t.Helper()
	m, err := built()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func workload(t *testing.T, name string) Workload {
	t.Helper()
	w, ok := k8s(t).Workload(name)
	if !ok {
		t.Fatalf("deploy/k8s has no Deployment or StatefulSet %q", name)
	}
	return w
}

// mainContainer is a workload's only container.
func mainContainer(t *testing.T, w Workload) *corev1.Container {
	t.Helper()
	if n := len(w.Pod.Spec.Containers); n != 1 {
		t.Fatalf("%s %s has %d containers, want 1", w.Kind, w.Name, n)
	}
	return &w.Pod.Spec.Containers[0]
}

func args(t *testing.T, a []string) []Flag {
	t.Helper()
	f, err := ParseArgs(a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func value(t *testing.T, flags []Flag, name string) string {
	t.Helper()
	v, err := Value(flags, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// composeDefault is deploy/compose as `docker compose up` sees it with an
// empty shell environment (the .env defaults).
var composeDefault = sync.OnceValues(func() (*types.Project, error) {
	r, err := root()
	if err != nil {
		return nil, err
	}
	return LoadCompose(context.Background(), filepath.Join(r, "deploy", "compose"), nil)
})

func compose(t *testing.T) *types.Project {
	t.Helper()
	p, err := composeDefault()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose: %v", err)
	}
	return s
}

// Our binaries, built from the repository's working tree into one
// directory for all tests.
var ourBinaries = map[string]string{
	"mockstagram-sim":      "./simulator/cmd/mockstagram-sim",
	"mockstagram_exporter": "./exporter/cmd/mockstagram_exporter",
	"rankd":                "./rankd/cmd/rankd",
}

var binTmp string // removed by TestMain

var binDir = sync.OnceValues(func() (string, error) {
	r, err := root()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "deploy-validate-bin-")
	if err != nil {
		return "", err
	}
	binTmp = dir
	for name, pkg := range ourBinaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = r
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

func ourBinary(t *testing.T, name string) string {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

var helps sync.Map // binary name -> Help

// help is what our binary name says in --help.
func help(t *testing.T, name string) Help {
	t.Helper()
	if h, ok := helps.Load(name); ok {
		return h.(Help)
	}
	out, err := exec.Command(ourBinary(t, name), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", name, err, out)
	}
	h := ParseHelp(string(out))
	if len(h.Flags) < 3 {
		t.Fatalf("%s --help lists %d flags; the help parser no longer understands it:\n%s", name, len(h.Flags), out)
	}
	helps.Store(name, h)
	return h
}

// vmBinary is a VictoriaMetrics binary from bin/ (make tools).
func vmBinary(t *testing.T, name string) string {
	t.Helper()
	p := repoPath(t, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing; run `make tools` in the repository root", p)
	}
	return p
}

// runVM runs a VictoriaMetrics binary to completion and returns its
// output; a non-zero exit is an error that carries the output's tail.
func runVM(t *testing.T, bin string, a ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, a...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return out.String(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(a, " "), err, strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
	return out.String(), nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binTmp != "" {
		os.RemoveAll(binTmp)
	}
	os.Exit(code)
}
