package validate

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

func dockerfile(t *testing.T) *Dockerfile {
	t.Helper()
	d, err := ParseDockerfile(repoPath(t, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// BuildKit parses the Dockerfile into instructions, and its linter has
// nothing to say (docker build --check).
func TestDockerfileParses(t *testing.T) {
	d := dockerfile(t)
	for _, w := range d.Warnings {
		t.Errorf("Dockerfile: %s", w)
	}
	var names []string
	for _, s := range d.Stages {
		names = append(names, s.Name)
	}
	if want := []string{"build", "mockstagram-sim", "exporter", "rankd", "grafana-files"}; !slices.Equal(names, want) {
		t.Errorf("stages %v, want %v", names, want)
	}
}

// ourImage maps an image reference to the Dockerfile stage that builds
// it: mockstagram/<stage>.
func ourImage(ref string) (stage string, ok bool) {
	return strings.CutPrefix(imageName(ref), "mockstagram/")
}

// Compose builds each of our images from the repository root with the
// Dockerfile's stage of the image's name, and every image of ours that
// Kubernetes runs is such a stage.
func TestImagesComeFromTheDockerfile(t *testing.T) {
	d := dockerfile(t)
	root := repoRoot(t)
	built := map[string]bool{}
	for _, s := range compose(t).Services {
		stage, ours := ourImage(s.Image)
		if s.Build == nil {
			if ours {
				t.Errorf("%s: image %s is ours but has no build section", s.Name, s.Image)
			}
			continue
		}
		if s.Build.Context != root {
			t.Errorf("%s: build context %s, want the repository root %s", s.Name, s.Build.Context, root)
		}
		if df := filepath.Join(s.Build.Context, s.Build.Dockerfile); df != repoPath(t, "deploy", "docker", "Dockerfile") {
			t.Errorf("%s: dockerfile %s, want deploy/docker/Dockerfile", s.Name, df)
		}
		if s.Build.Target != stage {
			t.Errorf("%s: builds target %q into image %s; name the image mockstagram/<target>", s.Name, s.Build.Target, s.Image)
		}
		if _, ok := d.Stage(s.Build.Target); !ok {
			t.Errorf("%s: the Dockerfile has no stage %q", s.Name, s.Build.Target)
		}
		built[stage] = true
	}
	for _, w := range k8s(t).Workloads() {
		for _, c := range append(slices.Clone(w.Pod.Spec.InitContainers), w.Pod.Spec.Containers...) {
			stage, ours := ourImage(c.Image)
			if !ours {
				continue
			}
			if _, ok := d.Stage(stage); !ok {
				t.Errorf("%s/%s runs %s, but the Dockerfile has no stage %q", w.Name, c.Name, c.Image, stage)
			}
			built[stage] = true
		}
	}
	for _, s := range d.Stages {
		if s.Name != "build" && !built[s.Name] {
			t.Errorf("stage %s builds an image nothing runs", s.Name)
		}
	}
}

func commands[T any](s *instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if x, ok := c.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// Every image runs as a non-root user.
func TestImagesRunAsNonRoot(t *testing.T) {
	for _, s := range dockerfile(t).Stages {
		if s.Name == "build" {
			continue
		}
		users := commands[*instructions.UserCommand](&s)
		if len(users) == 0 {
			t.Errorf("stage %s sets no USER; it would run as root", s.Name)
			continue
		}
		u := users[len(users)-1].User
		uid, _, _ := strings.Cut(u, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("stage %s runs as %q; use a numeric non-zero uid (Kubernetes' runAsNonRoot checks it)", s.Name, u)
		}
	}
}

// goBuild is the build stage's `go build` command line.
func goBuild(t *testing.T, d *Dockerfile) []string {
	t.Helper()
	b, _ := d.Stage("build")
	for _, r := range commands[*instructions.RunCommand](b) {
		line := strings.Join(r.CmdLine, " ")
		if !strings.Contains(line, "go build") {
			continue
		}
		line = strings.ReplaceAll(line, "\\\n", " ")
		return strings.Fields(line)
	}
	t.Fatal("the build stage has no RUN go build")
	return nil
}

// The build stage compiles our three main packages, statically, into /out;
// each image's entrypoint is the binary of its package.
func TestGoBinariesAreStatic(t *testing.T) {
	d := dockerfile(t)
	argv := goBuild(t, d)
	if !slices.Contains(argv, "CGO_ENABLED=0") {
		t.Errorf("go build runs without CGO_ENABLED=0: %v", argv)
	}
	var pkgs []string
	for _, a := range argv {
		if strings.HasPrefix(a, "./") {
			pkgs = append(pkgs, a)
		}
	}
	var want []string
	for _, p := range ourBinaries {
		want = append(want, p)
	}
	slices.Sort(want)
	slices.Sort(pkgs)
	if !slices.Equal(pkgs, want) {
		t.Fatalf("go build builds %v, want %v", pkgs, want)
	}
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.Name}}"}, pkgs...)...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %v in the repository root: %v\n%s", pkgs, err, out)
	}
	for i, name := range strings.Fields(string(out)) {
		if name != "main" {
			t.Errorf("%s is package %s, not a command", pkgs[i], name)
		}
	}
	for stage, bin := range map[string]string{"mockstagram-sim": "mockstagram-sim", "exporter": "mockstagram_exporter", "rankd": "rankd"} {
		s, _ := d.Stage(stage)
		ep := commands[*instructions.EntrypointCommand](s)
		if len(ep) != 1 || ep[0].PrependShell || len(ep[0].CmdLine) != 1 {
			t.Errorf("stage %s: want one exec-form ENTRYPOINT of the binary alone", stage)
			continue
		}
		copied := false
		for _, c := range commands[*instructions.CopyCommand](s) {
			copied = copied || c.From == "build" && slices.Equal(c.SourcePaths, []string{"/out/" + bin}) && c.DestPath == ep[0].CmdLine[0]
		}
		if !copied {
			t.Errorf("stage %s: ENTRYPOINT %s is not the /out/%s the build stage compiles", stage, ep[0].CmdLine[0], bin)
		}
	}
}

// The Go image is at least the Go the module asks for.
func TestGoVersion(t *testing.T) {
	b, err := os.ReadFile(repoPath(t, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := GoDirective(b)
	got, ok := dockerfile(t).MetaArg("GO_VERSION")
	if !ok {
		t.Fatal("the Dockerfile has no ARG GO_VERSION default")
	}
	if CompareVersions(got, want) < 0 {
		t.Errorf("GO_VERSION=%s is older than go.mod's go %s", got, want)
	}
}

// Each image exposes the port its binary listens on by default, which is
// the port Kubernetes declares for it.
func TestExposedPorts(t *testing.T) {
	d := dockerfile(t)
	for stage, bin := range map[string]string{"mockstagram-sim": "mockstagram-sim", "exporter": "mockstagram_exporter", "rankd": "rankd"} {
		s, _ := d.Stage(stage)
		exp := commands[*instructions.ExposeCommand](s)
		if len(exp) != 1 || len(exp[0].Ports) != 1 {
			t.Errorf("stage %s: want one EXPOSE of one port", stage)
			continue
		}
		def, err := ListenPort(help(t, bin).Flags["web.listen-address"])
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		if exp[0].Ports[0] != def {
			t.Errorf("stage %s exposes %s; %s listens on %s by default", stage, exp[0].Ports[0], bin, def)
		}
		for _, w := range k8s(t).Workloads() {
			c := w.Pod.Spec.Containers[0]
			if st, ok := ourImage(c.Image); ok && st == stage {
				if cp, ok := w.NamedPort("http"); !ok || strconv.Itoa(int(cp.ContainerPort)) != def {
					t.Errorf("%s runs image %s on port %v, the image exposes %s", w.Name, c.Image, cp, def)
				}
			}
		}
	}
}

// The .dockerignore leaves every build input in the context: go.mod,
// go.sum, the source of every package the binaries import from the
// module, and what the grafana-files stage copies.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	need := []string{"go.mod", "go.sum"}
	var pkgs []string
	for _, p := range ourBinaries {
		pkgs = append(pkgs, p)
	}
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if rel, err := filepath.Rel(root, s.Text()); err == nil && !strings.HasPrefix(rel, "..") {
			need = append(need, filepath.ToSlash(rel)+"/x.go")
		}
	}
	if len(need) < 8 {
		t.Fatalf("found %d build inputs in the module; go list no longer lists them", len(need))
	}
	g, _ := dockerfile(t).Stage("grafana-files")
	for _, c := range commands[*instructions.CopyCommand](g) {
		for _, src := range c.SourcePaths {
			need = append(need, path.Join(src, "x"))
		}
	}
	for _, p := range need {
		if ex, err := pm.MatchesOrParentMatches(p); err != nil || ex {
			t.Errorf(".dockerignore excludes %s, which the build needs", path.Dir(p))
		}
	}
}
