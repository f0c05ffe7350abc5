package validate

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// Every manifest file decodes strictly on its own (kubectl apply -f would
// take it), and the kustomization lists exactly the manifest files there.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	dir := repoPath(t, "deploy", "k8s")
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kusttypes.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var manifests []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		manifests = append(manifests, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := DecodeStrict(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", filepath.Base(f))
		}
	}
	res := slices.Clone(k.Resources)
	slices.Sort(res)
	if !slices.Equal(res, manifests) {
		t.Errorf("kustomization.yaml resources = %v, want every manifest file of deploy/k8s: %v", res, manifests)
	}
}

// The kustomize build holds the production shape, all in one namespace.
func TestLayout(t *testing.T) {
	m := k8s(t)
	want := map[string]struct {
		kind     string
		replicas int
	}{
		"mockstagram-sim":      {"Deployment", 1},
		"mockstagram-exporter": {"StatefulSet", 4},
		"rankd":                {"Deployment", 2},
		"vmstorage":            {"StatefulSet", 2},
		"vminsert":             {"Deployment", 2},
		"vmselect":             {"Deployment", 2},
		"vmagent":              {"StatefulSet", 2},
		"vmalert":              {"Deployment", 1},
		"grafana":              {"Deployment", 1},
	}
	ws := m.Workloads()
	if len(ws) != len(want) {
		var names []string
		for _, w := range ws {
			names = append(names, w.Name)
		}
		t.Errorf("workloads %v, want the %d of the layout", names, len(want))
	}
	for _, w := range ws {
		wt, ok := want[w.Name]
		if !ok {
			t.Errorf("unexpected %s %s", w.Kind, w.Name)
			continue
		}
		if w.Kind != wt.kind || w.Replicas != wt.replicas {
			t.Errorf("%s: %s with %d replicas, want %s with %d", w.Name, w.Kind, w.Replicas, wt.kind, wt.replicas)
		}
	}
	if _, ok := m.Namespaces["mockstagram"]; !ok {
		t.Errorf("no Namespace mockstagram")
	}
	for _, o := range m.Objects {
		a, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, isNS := o.(*corev1.Namespace); !isNS && a.GetNamespace() != "mockstagram" {
			t.Errorf("%T %s is in namespace %q, want mockstagram", o, a.GetName(), a.GetNamespace())
		}
	}
}

// Every Service selects a workload and every port reaches a container port
// of the same number (compose publishes the same numbers); a headless
// Service governs a StatefulSet.
func TestServicesReachContainers(t *testing.T) {
	m := k8s(t)
	for name, svc := range m.Services {
		ws := m.Selected(svc)
		if len(ws) != 1 {
			t.Errorf("Service %s selects %d workloads, want 1", name, len(ws))
			continue
		}
		w := ws[0]
		for _, sp := range svc.Spec.Ports {
			cp, err := TargetPort(w, sp)
			if err != nil {
				t.Errorf("Service %s: %v", name, err)
				continue
			}
			if cp.ContainerPort != sp.Port {
				t.Errorf("Service %s port %d reaches container port %d; keep the numbers equal", name, sp.Port, cp.ContainerPort)
			}
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone && (w.Kind != "StatefulSet" || w.ServiceName != name) {
			t.Errorf("headless Service %s does not govern a StatefulSet (%s %s has serviceName %q)", name, w.Kind, w.Name, w.ServiceName)
		}
	}
	for _, w := range m.Workloads() {
		if w.Kind != "StatefulSet" {
			continue
		}
		svc, ok := m.Services[w.ServiceName]
		if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet %s: serviceName %q is not a headless Service of the build", w.Name, w.ServiceName)
		}
	}
	for name, pdb := range m.PDBs {
		sel := pdb.Spec.Selector.MatchLabels
		if w, ok := m.Workload(name); !ok || !mapsEqual(sel, w.Pod.Labels) {
			t.Errorf("PodDisruptionBudget %s selects %v, which are not the pods of workload %s", name, sel, name)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// listenFlags maps a listen-address flag to the container port name it
// must agree with.
var listenFlags = map[string]string{
	"web.listen-address": "http", // ours
	"httpListenAddr":     "http", // VictoriaMetrics
	"vminsertAddr":       "vminsert",
	"vmselectAddr":       "vmselect",
}

// What a process listens on is what the container declares.
func TestListenFlagsMatchContainerPorts(t *testing.T) {
	for _, w := range k8s(t).Workloads() {
		for _, c := range w.Pod.Spec.Containers {
			flags := args(t, c.Args)
			found := false
			for flag, portName := range listenFlags {
				if !Has(flags, flag) {
					continue
				}
				found = true
				port, err := ListenPort(value(t, flags, flag))
				if err != nil {
					t.Errorf("%s: %v", w.Name, err)
					continue
				}
				cp, ok := w.NamedPort(portName)
				if !ok || strconv.Itoa(int(cp.ContainerPort)) != port {
					t.Errorf("%s: -%s listens on %s, but container port %q is %v", w.Name, flag, port, portName, cp)
				}
			}
			if !found && c.Image != grafanaImage {
				t.Errorf("%s: no listen-address flag; pin the port in the args so compose and the probes agree", w.Name)
			}
		}
	}
}

// Every pod runs as non-root with no privileges and a read-only root
// filesystem (the namespace enforces the restricted Pod Security level),
// and every container has requests and limits.
func TestPodsAreHardened(t *testing.T) {
	for _, w := range k8s(t).Workloads() {
		ps := w.Pod.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
			t.Errorf("%s: pod securityContext must set runAsNonRoot: true and a non-zero runAsUser", w.Name)
		}
		if ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext must set seccompProfile RuntimeDefault", w.Name)
		}
		if len(w.Claims) > 0 && (ps == nil || ps.FSGroup == nil) {
			t.Errorf("%s: has volume claims but no fsGroup; a non-root process cannot write a fresh volume", w.Name)
		}
		all := append(slices.Clone(w.Pod.Spec.InitContainers), w.Pod.Spec.Containers...)
		for _, c := range all {
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s/%s: container securityContext must set allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities.drop [ALL]", w.Name, c.Name)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okr := c.Resources.Requests[r]
				lim, okl := c.Resources.Limits[r]
				if !okr || !okl {
					t.Errorf("%s/%s: %s needs both a request and a limit", w.Name, c.Name, r)
					continue
				}
				if req.Cmp(lim) > 0 {
					t.Errorf("%s/%s: %s request %s exceeds its limit %s", w.Name, c.Name, r, req.String(), lim.String())
				}
			}
		}
	}
}

// Our images and where they answer health and readiness.
var (
	ourImages = map[string]string{ // image name -> binary
		"mockstagram/exporter":        "mockstagram_exporter",
		"mockstagram/rankd":           "rankd",
		"mockstagram/mockstagram-sim": "mockstagram-sim",
	}
	grafanaImage = "grafana/grafana:12.2.0"
)

func imageName(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i]
	}
	return ref
}

// Every long-running container has a readiness and a liveness probe on a
// port it declares: /-/ready and /-/healthy for ours, /health for
// VictoriaMetrics, /api/health for Grafana.
func TestProbes(t *testing.T) {
	for _, w := range k8s(t).Workloads() {
		for _, c := range w.Pod.Spec.Containers {
			ready, live := "/health", "/health"
			switch {
			case ourImages[imageName(c.Image)] != "":
				ready, live = "/-/ready", "/-/healthy"
			case c.Image == grafanaImage:
				ready, live = "/api/health", "/api/health"
			case !strings.HasPrefix(c.Image, "victoriametrics/"):
				t.Errorf("%s: image %s is not one the checks know", w.Name, c.Image)
				continue
			}
			for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				want := ready
				if kind == "liveness" {
					want = live
				}
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s: no HTTP %s probe", w.Name, kind)
					continue
				}
				if p.HTTPGet.Path != want {
					t.Errorf("%s: %s probe on %s, want %s", w.Name, kind, p.HTTPGet.Path, want)
				}
				if _, ok := w.NamedPort(p.HTTPGet.Port.StrVal); !ok {
					t.Errorf("%s: %s probe port %q is not a named container port", w.Name, kind, p.HTTPGet.Port.String())
				}
			}
		}
	}
}

// Every mounted volume is defined, every defined volume is mounted, and the
// ConfigMaps that volumes and envFrom name exist in the build.
func TestVolumesAreDefined(t *testing.T) {
	m := k8s(t)
	for _, w := range m.Workloads() {
		defined := map[string]bool{}
		for _, v := range w.Pod.Spec.Volumes {
			defined[v.Name] = true
			if v.ConfigMap != nil {
				if _, ok := m.ConfigMaps[v.ConfigMap.Name]; !ok {
					t.Errorf("%s: volume %s names ConfigMap %q, which the build does not hold", w.Name, v.Name, v.ConfigMap.Name)
				}
			}
		}
		for _, c := range w.Claims {
			defined[c.Name] = true
		}
		used := map[string]bool{}
		for _, c := range append(slices.Clone(w.Pod.Spec.InitContainers), w.Pod.Spec.Containers...) {
			for _, vm := range c.VolumeMounts {
				used[vm.Name] = true
				if !defined[vm.Name] {
					t.Errorf("%s/%s mounts %s, which is neither a volume nor a volume claim template", w.Name, c.Name, vm.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if sec, ok := m.Secrets[ref.Name]; !ok {
					t.Errorf("%s/%s: $%s reads Secret %q, which the build does not hold", w.Name, c.Name, e.Name, ref.Name)
				} else if _, ok := sec.Data[ref.Key]; !ok {
					t.Errorf("%s/%s: $%s reads key %q of Secret %s, which has no such key", w.Name, c.Name, e.Name, ref.Key, ref.Name)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					t.Errorf("%s/%s: envFrom other than a ConfigMap is not checked", w.Name, c.Name)
				} else if _, ok := m.ConfigMaps[ef.ConfigMapRef.Name]; !ok {
					t.Errorf("%s/%s: envFrom names ConfigMap %q, which the build does not hold", w.Name, c.Name, ef.ConfigMapRef.Name)
				}
			}
		}
		for name := range defined {
			if !used[name] {
				t.Errorf("%s: volume %s is defined but never mounted", w.Name, name)
			}
		}
	}
}

// mountOf is the container's mount at exactly path.
func mountOf(c *corev1.Container, p string) (corev1.VolumeMount, bool) {
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) == path.Clean(p) {
			return vm, true
		}
	}
	return corev1.VolumeMount{}, false
}

func isClaim(w Workload, name string) bool {
	for _, c := range w.Claims {
		if c.Name == name {
			return true
		}
	}
	return false
}

// The exporter StatefulSet's ordinal is the shard index: --shard.count is
// the replica count, --shard.from-hostname reads the ordinal from each
// pod's hostname, and the state file lives on a volume of its own.
func TestExporterShards(t *testing.T) {
	w := workload(t, "mockstagram-exporter")
	c := mainContainer(t, w)
	flags := args(t, c.Args)
	if got := value(t, flags, "shard.count"); got != strconv.Itoa(w.Replicas) {
		t.Errorf("--shard.count=%s, want the StatefulSet's %d replicas", got, w.Replicas)
	}
	if !Has(flags, "shard.from-hostname") || Has(flags, "shard.index") {
		t.Errorf("args %v: want --shard.from-hostname and no --shard.index, so the ordinal picks the shard", c.Args)
	}
	for i := range w.Replicas {
		got, err := pkrange.OrdinalFromHostname(w.PodName(i))
		if err != nil || got != i {
			t.Errorf("pod %s: the exporter reads shard index %d (%v), want %d", w.PodName(i), got, err, i)
		}
	}
	dir := value(t, flags, "state.dir")
	vm, ok := mountOf(c, dir)
	if !ok || !isClaim(w, vm.Name) {
		t.Errorf("--state.dir=%s is not a mounted volume claim template; the state would not survive the pod", dir)
	}
}

// rankd reads every shard, in shard order, by its stable pod name.
func TestRankdReadsEveryShard(t *testing.T) {
	exp := workload(t, "mockstagram-exporter")
	port := exporterPort(t, exp)
	var want []string
	for i := range exp.Replicas {
		want = append(want, "http://"+exp.PodDNS(i)+":"+port)
	}
	got := Values(args(t, mainContainer(t, workload(t, "rankd")).Args), "exporter.url")
	if !slices.Equal(got, want) {
		t.Errorf("rankd --exporter.url = %v, want one per exporter shard: %v", got, want)
	}
}

func exporterPort(t *testing.T, exp Workload) string {
	t.Helper()
	p, err := ListenPort(value(t, args(t, mainContainer(t, exp).Args), "web.listen-address"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// vmMemberNum is how vmagent reads -promscrape.cluster.memberNum: the
// number after the last '-' (lib/promscrape/config.go).
func vmMemberNum(s string) (int, error) {
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		s = s[i+1:]
	}
	return strconv.Atoi(s)
}

// The vmagents split the targets between exactly their replicas, each
// knowing its own number, and buffer on a volume of their own.
func TestVMAgentMembers(t *testing.T) {
	w := workload(t, "vmagent")
	c := mainContainer(t, w)
	flags := args(t, c.Args)
	if got := value(t, flags, "promscrape.cluster.membersCount"); got != strconv.Itoa(w.Replicas) {
		t.Errorf("-promscrape.cluster.membersCount=%s, want the StatefulSet's %d replicas", got, w.Replicas)
	}
	rf, err := strconv.Atoi(value(t, flags, "promscrape.cluster.replicationFactor"))
	if err != nil || rf < 1 || rf > w.Replicas {
		t.Errorf("-promscrape.cluster.replicationFactor must be 1..%d", w.Replicas)
	}
	if got := value(t, flags, "promscrape.cluster.memberNum"); got != "$(POD_NAME)" {
		t.Errorf("-promscrape.cluster.memberNum=%s, want $(POD_NAME)", got)
	}
	var podName bool
	for _, e := range c.Env {
		podName = podName || e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}
	if !podName {
		t.Errorf("vmagent needs env POD_NAME from fieldRef metadata.name for $(POD_NAME)")
	}
	for i := range w.Replicas {
		if n, err := vmMemberNum(w.PodName(i)); err != nil || n != i {
			t.Errorf("pod %s: vmagent reads member %d (%v), want %d", w.PodName(i), n, err, i)
		}
	}
	dir := value(t, flags, "remoteWrite.tmpDataPath")
	if vm, ok := mountOf(c, dir); !ok || !isClaim(w, vm.Name) {
		t.Errorf("-remoteWrite.tmpDataPath=%s is not a mounted volume claim template; the buffer would not survive the pod", dir)
	}
}

// vminsert and vmselect address every storage node on the port it
// listens on for them, and deduplicate alike.
func TestStorageNodes(t *testing.T) {
	st := workload(t, "vmstorage")
	stFlags := args(t, mainContainer(t, st).Args)
	for comp, flag := range map[string]string{"vminsert": "vminsertAddr", "vmselect": "vmselectAddr"} {
		port, err := ListenPort(value(t, stFlags, flag))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range st.Replicas {
			want = append(want, st.PodDNS(i)+":"+port)
		}
		flags := args(t, mainContainer(t, workload(t, comp)).Args)
		if got := value(t, flags, "storageNode"); got != strings.Join(want, ",") {
			t.Errorf("%s -storageNode=%s, want every vmstorage pod: %s", comp, got, strings.Join(want, ","))
		}
	}
	sel := args(t, mainContainer(t, workload(t, "vmselect")).Args)
	if a, b := value(t, stFlags, "dedup.minScrapeInterval"), value(t, sel, "dedup.minScrapeInterval"); a != b || a != "1ms" {
		t.Errorf("-dedup.minScrapeInterval is %s on vmstorage and %s on vmselect; both must be 1ms (docs/victoria.md)", a, b)
	}
}

// effectiveEnv is a container's environment as the kubelet builds it
// (envFrom ConfigMaps, then env); a fieldRef reads as $(fieldRef:path).
func effectiveEnv(m *Manifests, c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm, ok := m.ConfigMaps[ef.ConfigMapRef.Name]; ok {
				for k, v := range cm.Data {
					env[ef.Prefix+k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = "$(fieldRef:" + e.ValueFrom.FieldRef.FieldPath + ")"
		case e.ValueFrom != nil:
			env[e.Name] = "$(valueFrom)"
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

// urlPathPrefix is the API root of the VictoriaMetrics cluster ports
// (tenant 0).
var urlPathPrefix = map[string]string{"8480": "/insert/0/prometheus", "8481": "/select/0/prometheus"}

// Every URL a container is given (flags, environment) reaches a Service
// or a StatefulSet pod on a port that exists, with the right API root.
func TestURLsResolve(t *testing.T) {
	m := k8s(t)
	n := 0
	check := func(where, v string) {
		for _, s := range strings.Split(v, ",") {
			if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
				continue
			}
			n++
			u, err := url.Parse(s)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if err := m.Resolve(u.Host); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			if p := urlPathPrefix[u.Port()]; p != "" && !strings.HasPrefix(u.Path, p) {
				t.Errorf("%s: %s must start with %s", where, s, p)
			}
		}
	}
	for _, w := range m.Workloads() {
		for _, c := range w.Pod.Spec.Containers {
			for _, f := range args(t, c.Args) {
				check(w.Name+" -"+f.Name, f.Value)
			}
			for k, v := range effectiveEnv(m, &c) {
				check(w.Name+" $"+k, v)
			}
		}
	}
	if n < 9 {
		t.Errorf("found %d URLs in the manifests; the check no longer sees them", n)
	}
}

// configMapAt returns the ConfigMap mounted at dir in container c.
func configMapAt(t *testing.T, w Workload, c *corev1.Container, dir string) *corev1.ConfigMap {
	t.Helper()
	vm, ok := mountOf(c, dir)
	if !ok {
		t.Fatalf("%s: nothing is mounted at %s", w.Name, dir)
	}
	for _, v := range w.Pod.Spec.Volumes {
		if v.Name == vm.Name && v.ConfigMap != nil {
			cm, ok := k8s(t).ConfigMaps[v.ConfigMap.Name]
			if !ok {
				t.Fatalf("%s: ConfigMap %s is not in the build", w.Name, v.ConfigMap.Name)
			}
			return cm
		}
	}
	t.Fatalf("%s: %s is not a ConfigMap volume", w.Name, dir)
	return nil
}

// vmalert evaluates exactly the rule files of victoria/rules, as they are.
func TestRulesConfigMap(t *testing.T) {
	w := workload(t, "vmalert")
	c := mainContainer(t, w)
	rule := value(t, args(t, c.Args), "rule")
	cm := configMapAt(t, w, c, path.Dir(rule))
	files, _ := filepath.Glob(repoPath(t, "victoria", "rules", "*.yml"))
	if len(files) == 0 {
		t.Fatal("victoria/rules has no *.yml")
	}
	var keys []string
	for k := range cm.Data {
		if ok, _ := path.Match(path.Base(rule), k); ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var want []string
	for _, f := range files {
		want = append(want, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[filepath.Base(f)] != string(b) {
			t.Errorf("the rules ConfigMap's %s is not victoria/rules/%[1]s", filepath.Base(f))
		}
	}
	if !slices.Equal(keys, want) {
		t.Errorf("-rule=%s matches %v in the rules ConfigMap, want %v (victoria/rules/*.yml); list every one in deploy/k8s/kustomization.yaml", rule, keys, want)
	}
}

// vmagent reads deploy/k8s/vmagent/scrape.yml as it is.
func TestScrapeConfigMap(t *testing.T) {
	w := workload(t, "vmagent")
	c := mainContainer(t, w)
	cfg := value(t, args(t, c.Args), "promscrape.config")
	cm := configMapAt(t, w, c, path.Dir(cfg))
	b, err := os.ReadFile(repoPath(t, "deploy", "k8s", "vmagent", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data[path.Base(cfg)] != string(b) {
		t.Errorf("-promscrape.config=%s: the ConfigMap's %s is not deploy/k8s/vmagent/scrape.yml", cfg, path.Base(cfg))
	}
}
