package validate

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	corev1 "k8s.io/api/core/v1"
)

// The compose file loads, with its .env defaults, into the whole layout.
func TestComposeLoads(t *testing.T) {
	p := compose(t)
	if p.Name != "mockstagram" {
		t.Errorf("project name %q, want mockstagram", p.Name)
	}
	want := []string{"grafana", "mockstagram-exporter-0", "mockstagram-exporter-1", "mockstagram-exporter-2",
		"mockstagram-exporter-3", "mockstagram-sim", "rankd", "vm-volumes", "vmagent-0", "vmagent-1", "vmalert", "vminsert",
		"vmselect", "vmstorage-0", "vmstorage-1"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for _, s := range p.Services {
		if got := envValue(s, "MOCKSTAGRAM_EXPORTER_MOCKSTAGRAM_URL"); strings.HasPrefix(s.Name, "mockstagram-exporter-") && got != "http://mockstagram-sim:3000" {
			t.Errorf("%s polls %q by default, want the simulator http://mockstagram-sim:3000", s.Name, got)
		}
	}
}

func envValue(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

// With a real Mockstagram the simulator stays down and every exporter
// polls the given URL; nothing else depends on the simulator.
func TestComposeRealMockstagram(t *testing.T) {
	const upstream = "http://mockstagram.example:3000,http://mockstagram-2.example:3000"
	p, err := LoadCompose(context.Background(), repoPath(t, "deploy", "compose"),
		map[string]string{"COMPOSE_PROFILES": "", "MOCKSTAGRAM_URL": upstream})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetService("mockstagram-sim"); err == nil {
		t.Error("the simulator runs although COMPOSE_PROFILES leaves it out")
	}
	n := 0
	for _, s := range p.Services {
		if strings.HasPrefix(s.Name, "mockstagram-exporter-") {
			n++
			if got := envValue(s, "MOCKSTAGRAM_EXPORTER_MOCKSTAGRAM_URL"); got != upstream {
				t.Errorf("%s polls %q, want %q", s.Name, got, upstream)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d exporter shards, want 4", n)
	}
}

// servicesFor lists the compose services that stand for a workload: one
// per StatefulSet pod (named like the pod), or one service scaled to the
// Deployment's replicas.
func servicesFor(t *testing.T, p *types.Project, w Workload) []types.ServiceConfig {
	t.Helper()
	if w.Kind == "Deployment" {
		s := service(t, p, w.Name)
		if s.GetScale() != w.Replicas {
			t.Errorf("compose %s runs %d replicas, Kubernetes %d", w.Name, s.GetScale(), w.Replicas)
		}
		return []types.ServiceConfig{s}
	}
	var out []types.ServiceConfig
	for i := range w.Replicas {
		out = append(out, service(t, p, w.PodName(i)))
	}
	if _, err := p.GetService(w.PodName(w.Replicas)); err == nil {
		t.Errorf("compose has %s, beyond the StatefulSet's %d replicas", w.PodName(w.Replicas), w.Replicas)
	}
	return out
}

// podArgs is what the container of pod i of w actually runs with: the
// kubelet expands $(POD_NAME), and the exporter turns
// --shard.from-hostname into the index its hostname ends in.
func podArgs(w Workload, i int, c *corev1.Container) []string {
	var out []string
	for _, a := range c.Args {
		a = strings.ReplaceAll(a, "$(POD_NAME)", w.PodName(i))
		if a == "--shard.from-hostname" {
			a = "--shard.index=" + strconv.Itoa(i)
		}
		out = append(out, a)
	}
	return out
}

// Both may differ only in these environment variables: POD_NAME feeds
// $(POD_NAME) in Kubernetes and has no compose counterpart, the Grafana
// password is a Secret there and a variable here.
var envOnlyIn = map[string]string{"POD_NAME": "k8s", "GF_SECURITY_ADMIN_PASSWORD": "both, values differ"}

// Compose runs what Kubernetes runs: the same images, command lines,
// environment, ports and mount points, and every StatefulSet pod's DNS
// name as a network alias.
func TestComposeMatchesK8s(t *testing.T) {
	p, m := compose(t), k8s(t)
	covered := map[string]bool{}
	for _, w := range m.Workloads() {
		c := mainContainer(t, w)
		kenv := effectiveEnv(m, c)
		for i, s := range servicesFor(t, p, w) {
			covered[s.Name] = true
			if s.Image != c.Image {
				t.Errorf("%s: compose image %s, Kubernetes %s", s.Name, s.Image, c.Image)
			}
			if want := podArgs(w, i, c); !slices.Equal(s.Command, want) {
				t.Errorf("%s: compose command\n  %v\nKubernetes pod %d runs\n  %v", s.Name, []string(s.Command), i, want)
			}
			for k := range s.Environment {
				if _, ok := kenv[k]; !ok {
					t.Errorf("%s: $%s is set in compose only", s.Name, k)
				} else if envOnlyIn[k] == "" && kenv[k] != envValue(s, k) {
					t.Errorf("%s: $%s=%q in compose, %q in Kubernetes", s.Name, k, envValue(s, k), kenv[k])
				}
			}
			for k := range kenv {
				if _, ok := s.Environment[k]; !ok && envOnlyIn[k] != "k8s" {
					t.Errorf("%s: $%s is set in Kubernetes only", s.Name, k)
				}
			}
			for _, port := range s.Ports {
				if _, ok := w.ContainerPort(int(port.Target)); !ok {
					t.Errorf("%s publishes port %d, which the Kubernetes container does not declare", s.Name, port.Target)
				}
			}
			checkMountPoints(t, s, c)
			if w.Kind == "StatefulSet" {
				if n := s.Networks["default"]; n == nil || !slices.Contains(n.Aliases, w.PodDNS(i)) {
					t.Errorf("%s: needs the network alias %s, its pod's DNS name, so both share one scrape config", s.Name, w.PodDNS(i))
				}
			} else if svc, ok := m.Services[w.Name]; !ok || len(m.Selected(svc)) != 1 || m.Selected(svc)[0].Name != w.Name {
				t.Errorf("Deployment %s has no Service of its own name; compose reaches it as %q", w.Name, s.Name)
			}
		}
	}
	for _, name := range p.ServiceNames() {
		if !covered[name] && name != volumeInit {
			t.Errorf("compose service %s has no Kubernetes counterpart", name)
		}
	}
}

// checkMountPoints: every compose mount point is, contains or lies inside
// a Kubernetes mount point of the container, and the other way round.
func checkMountPoints(t *testing.T, s types.ServiceConfig, c *corev1.Container) {
	t.Helper()
	var cm, km []string
	for _, v := range s.Volumes {
		cm = append(cm, path.Clean(v.Target))
	}
	for _, tp := range s.Tmpfs {
		cm = append(cm, path.Clean(tp))
	}
	for _, vm := range c.VolumeMounts {
		km = append(km, path.Clean(vm.MountPath))
	}
	related := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
	}
	for _, a := range cm {
		if !slices.ContainsFunc(km, func(b string) bool { return related(a, b) }) {
			t.Errorf("%s: compose mounts %s, which no Kubernetes mount (%v) matches", s.Name, a, km)
		}
	}
	for _, b := range km {
		if !slices.ContainsFunc(cm, func(a string) bool { return related(a, b) }) {
			t.Errorf("%s: Kubernetes mounts %s, which no compose mount (%v) matches", s.Name, b, cm)
		}
	}
}

// volumeInit is compose's one service without a Kubernetes counterpart:
// it gives the VictoriaMetrics containers their fresh named volumes, which
// Kubernetes does with fsGroup.
const volumeInit = "vm-volumes"

// Every service runs read-only, without capabilities, as a non-root user
// (ours set it in the image; see the Dockerfile tests); the volume init service
// runs as root with CHOWN alone.
func TestComposeServicesAreHardened(t *testing.T) {
	for _, s := range compose(t).Services {
		if s.Name == volumeInit {
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Equal(s.CapAdd, []string{"CHOWN"}) {
				t.Errorf("%s: want read_only, cap_drop [ALL] and cap_add [CHOWN] only", s.Name)
			}
			continue
		}
		if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: want read_only: true, cap_drop: [ALL], security_opt: [no-new-privileges:true]", s.Name)
		}
		if s.Build == nil && (s.User == "" || strings.HasPrefix(s.User, "0") || strings.HasPrefix(s.User, "root")) {
			t.Errorf("%s: an image we do not build must run with a non-root user:", s.Name)
		}
		if s.Build != nil && s.User != "" {
			t.Errorf("%s: our images set their user; drop user: %s", s.Name, s.User)
		}
	}
}

// What must survive a restart is on a named volume of its own: each
// shard's state, each storage node's data, each vmagent's buffer.
func TestComposePersistentVolumes(t *testing.T) {
	p := compose(t)
	owner := map[string]string{}
	persistent := map[string]string{ // service prefix -> flag naming the directory
		"mockstagram-exporter-": "state.dir",
		"vmstorage-":            "storageDataPath",
		"vmagent-":              "remoteWrite.tmpDataPath",
	}
	n := 0
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeVolume || s.Name == volumeInit {
				continue
			}
			if other, ok := owner[v.Source]; ok {
				t.Errorf("volume %s is mounted by %s and %s; each needs its own", v.Source, other, s.Name)
			}
			owner[v.Source] = s.Name
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("%s mounts volume %s, which is not declared", s.Name, v.Source)
			}
		}
		for prefix, flag := range persistent {
			if !strings.HasPrefix(s.Name, prefix) {
				continue
			}
			n++
			dir := value(t, args(t, s.Command), flag)
			i := slices.IndexFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return path.Clean(v.Target) == path.Clean(dir) })
			if i < 0 || s.Volumes[i].Type != types.VolumeTypeVolume {
				t.Errorf("%s: -%s=%s is not on a named volume", s.Name, flag, dir)
			}
		}
	}
	if n != 8 {
		t.Errorf("checked %d services with persistent data, want 8 (4 shards, 2 storage nodes, 2 vmagents)", n)
	}
	for name := range p.Volumes {
		if _, ok := owner[name]; !ok {
			t.Errorf("volume %s is declared but unused", name)
		}
	}
}

// A VictoriaMetrics container runs as a non-root user on named volumes
// Docker creates owned by root: the volume init service must hand each of them
// to that user before the container starts.
func TestComposeVolumesHandedOver(t *testing.T) {
	p := compose(t)
	h := service(t, p, volumeInit)
	if len(h.Command) < 3 || h.Command[0] != "chown" {
		t.Fatalf("%s runs %v, want chown <uid:gid> <paths>", volumeInit, []string(h.Command))
	}
	owner := h.Command[1]
	handed := map[string]bool{}
	for _, dir := range h.Command[2:] {
		i := slices.IndexFunc(h.Volumes, func(v types.ServiceVolumeConfig) bool { return path.Clean(v.Target) == path.Clean(dir) })
		if i < 0 || h.Volumes[i].Type != types.VolumeTypeVolume {
			t.Errorf("%s chowns %s, which is not a named volume it mounts", volumeInit, dir)
			continue
		}
		handed[h.Volumes[i].Source] = true
	}
	n := 0
	for _, s := range p.Services {
		if !strings.HasPrefix(s.Image, "victoriametrics/") {
			continue
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeVolume {
				continue
			}
			n++
			if !handed[v.Source] || s.User != owner {
				t.Errorf("%s runs as %q on volume %s; %s hands it (%v) to %s", s.Name, s.User, v.Source, volumeInit, handed[v.Source], owner)
			}
			if d, ok := s.DependsOn[volumeInit]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s must depend on %s with condition service_completed_successfully", s.Name, volumeInit)
			}
		}
	}
	if n != len(handed) {
		t.Errorf("%s hands over %d volumes, the VictoriaMetrics containers mount %d", volumeInit, len(handed), n)
	}
}

// Built, not checked in: make plugin writes grafana/plugin/dist.
const pluginDist = "grafana/plugin/dist"

// Every bind mount reads a path of the repository that exists (the plugin
// is built by make plugin).
func TestComposeBindMountsExist(t *testing.T) {
	root := repoRoot(t)
	for _, s := range compose(t).Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s mounts %s, outside the repository", s.Name, v.Source)
				continue
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s read-write; mount repository files :ro", s.Name, rel)
			}
			if filepath.ToSlash(rel) == pluginDist {
				makefile, _ := os.ReadFile(filepath.Join(root, "Makefile"))
				if !regexp.MustCompile(`(?m)^plugin:`).Match(makefile) {
					t.Errorf("%s mounts %s, but the Makefile has no plugin target to build it", s.Name, rel)
				}
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", s.Name, rel, err)
			}
		}
	}
}

// composeFiles maps a compose service's container paths to the host:
// bind mounts to their source, anything else to an empty directory.
func composeFiles(t *testing.T, s types.ServiceConfig) func(string) string {
	t.Helper()
	base := t.TempDir()
	mounts := map[string]string{}
	for i, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			mounts[path.Clean(v.Target)] = v.Source
		} else {
			mounts[path.Clean(v.Target)] = filepath.Join(base, strconv.Itoa(i))
		}
	}
	return func(p string) string {
		for d := path.Clean(p); d != "/" && d != "."; d = path.Dir(d) {
			if local, ok := mounts[d]; ok {
				rel, _ := filepath.Rel(d, p)
				return filepath.Join(local, rel)
			}
		}
		t.Fatalf("%s: %s is on no volume", s.Name, p)
		return ""
	}
}

// The compose vmagents and vmalert pass their binaries' dry runs with the
// files their bind mounts give them.
func TestComposeVMDryRun(t *testing.T) {
	for _, s := range compose(t).Services {
		var bin string
		var pathFlags []string
		switch {
		case strings.HasPrefix(s.Name, "vmagent-"):
			bin, pathFlags = "vmagent", []string{"promscrape.config", "remoteWrite.tmpDataPath"}
		case s.Name == "vmalert":
			bin, pathFlags = "vmalert", []string{"rule"}
		default:
			continue
		}
		argv := append(localArgs(t, s.Command, composeFiles(t, s), pathFlags...), "-dryRun")
		if _, err := runVM(t, vmBinary(t, bin), argv...); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}
