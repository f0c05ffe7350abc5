package validate

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
)

func readScrapeConfig(t *testing.T, rel ...string) ScrapeConfig {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, rel...))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseScrapeConfig(b)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Join(rel...), err)
	}
	return c
}

func clusterScrapeConfig(t *testing.T) ScrapeConfig {
	t.Helper()
	return readScrapeConfig(t, "deploy", "k8s", "vmagent", "scrape.yml")
}

// The cluster's scrape config is victoria/scrape.yml with static targets:
// the same intervals, timestamps, size limits and relabelling.
func TestScrapeConfigMatchesVictoria(t *testing.T) {
	ref := readScrapeConfig(t, "victoria", "scrape.yml")
	if err := StaticEquivalent(ref, clusterScrapeConfig(t), "vmagent"); err != nil {
		t.Errorf("deploy/k8s/vmagent/scrape.yml against victoria/scrape.yml:\n%v", err)
	}
}

// The influencer targets are every exporter shard, sliced exactly as
// victoria.InfluencerTargets slices it for a shard of that size, and the
// telemetry job scrapes every shard once.
func TestScrapeTargetsCoverEveryShard(t *testing.T) {
	exp := workload(t, "mockstagram-exporter")
	port := exporterPort(t, exp)
	var hosts []string
	for i := range exp.Replicas {
		hosts = append(hosts, exp.PodDNS(i)+":"+port)
	}
	h := help(t, "mockstagram_exporter")
	min, _ := strconv.ParseInt(h.Flags["pk.min"], 10, 64)
	max, _ := strconv.ParseInt(h.Flags["pk.max"], 10, 64)
	flags := args(t, mainContainer(t, exp).Args)
	if Has(flags, "pk.min") || Has(flags, "pk.max") {
		t.Fatal("the exporter sets --pk.min/--pk.max; read them here instead of the defaults")
	}
	r := pkrange.Range{Min: min, Max: max}
	if r.Len() != 1_000_000 {
		t.Fatalf("exporter default pk range %d..%d holds %d pks, want Mockstagram's 1,000,000", min, max, r.Len())
	}
	owned := pkrange.Owned(r, pkrange.Shard{Index: 0, Count: exp.Replicas}).Len
	want := victoria.InfluencerTargets(hosts, victoria.SlicesFor(owned))

	c := clusterScrapeConfig(t)
	job, _ := c.Job("mockstagram_influencers")
	got, err := StaticTargets(job)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mockstagram_influencers targets:\n got %v\nwant %v\n(%d shards of %d influencers, %d slices each)", got, want, exp.Replicas, owned, victoria.SlicesFor(owned))
	}
	tel, _ := c.Job("mockstagram_exporter")
	telHosts, err := TargetHosts(tel)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(telHosts, hosts) {
		t.Errorf("mockstagram_exporter targets %v, want every shard once: %v", telHosts, hosts)
	}
}

// Every target of every job is a Service or StatefulSet pod of the build,
// on a port it exposes.
func TestScrapeTargetsResolve(t *testing.T) {
	m := k8s(t)
	for _, name := range clusterScrapeConfig(t).JobNames() {
		job, _ := clusterScrapeConfig(t).Job(name)
		hosts, err := TargetHosts(job)
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) == 0 {
			t.Errorf("job %s has no target", name)
		}
		for _, h := range hosts {
			if err := m.Resolve(h); err != nil {
				t.Errorf("job %s: %v", name, err)
			}
		}
	}
}

// VictoriaMetrics itself accepts the scrape config (strict parsing).
func TestScrapeConfigDryRun(t *testing.T) {
	f := repoPath(t, "deploy", "k8s", "vmagent", "scrape.yml")
	if _, err := runVM(t, vmBinary(t, "victoria-metrics"), "-promscrape.config="+f, "-dryRun"); err != nil {
		t.Error(err)
	}
}

// The dry runs can fail: a config VictoriaMetrics rejects is reported.
func TestDryRunRejectsBrokenConfig(t *testing.T) {
	b, err := os.ReadFile(repoPath(t, "deploy", "k8s", "vmagent", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "scrape.yml")
	os.WriteFile(broken, []byte(strings.Replace(string(b), "honor_timestamps:", "honour_timestamps:", 1)), 0o644)
	if _, err := runVM(t, vmBinary(t, "victoria-metrics"), "-promscrape.config="+broken, "-dryRun"); err == nil {
		t.Error("victoria-metrics -dryRun accepted an unknown scrape setting")
	}
	rules := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(rules, []byte("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: sum(\n"), 0o644)
	if _, err := runVM(t, vmBinary(t, "vmalert"), "-rule="+rules, "-dryRun"); err == nil {
		t.Error("vmalert -dryRun accepted a rule that does not parse")
	}
}

// podFiles materialises what a container of w sees at its mount paths:
// ConfigMap volumes as their files, every other volume as an empty
// directory. It returns a function mapping a container path to the local
// one.
func podFiles(t *testing.T, w Workload, c *corev1.Container) func(string) string {
	t.Helper()
	base := t.TempDir()
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		local := filepath.Join(base, vm.Name, vm.SubPath)
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range w.Pod.Spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			for k, d := range k8s(t).ConfigMaps[v.ConfigMap.Name].Data {
				if err := os.WriteFile(filepath.Join(local, k), []byte(d), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		mounts[path.Clean(vm.MountPath)] = local
	}
	return func(p string) string {
		for d := path.Clean(p); d != "/" && d != "."; d = path.Dir(d) {
			if local, ok := mounts[d]; ok {
				rel, _ := filepath.Rel(d, p)
				return filepath.Join(local, rel)
			}
		}
		t.Fatalf("%s: %s is on no volume", w.Name, p)
		return ""
	}
}

// localArgs rewrites the path-valued flags of a VictoriaMetrics container
// to what the container would see, so that the real binary can check them.
func localArgs(t *testing.T, argv []string, local func(string) string, pathFlags ...string) []string {
	t.Helper()
	out := make([]string, 0, len(argv)+1)
	for _, a := range argv {
		for _, f := range pathFlags {
			if v, ok := strings.CutPrefix(a, "-"+f+"="); ok {
				a = "-" + f + "=" + local(v)
			}
		}
		out = append(out, a)
	}
	return out
}

// Each vmagent pod's command line, with its pod name, config and buffer
// where the pod has them, passes vmagent's own dry run: every flag
// exists, every value parses and the scrape config is valid.
func TestVMAgentDryRun(t *testing.T) {
	w := workload(t, "vmagent")
	c := mainContainer(t, w)
	local := podFiles(t, w, c)
	for i := range w.Replicas {
		argv := make([]string, len(c.Args))
		for j, a := range c.Args {
			argv[j] = strings.ReplaceAll(a, "$(POD_NAME)", w.PodName(i))
		}
		argv = append(localArgs(t, argv, local, "promscrape.config", "remoteWrite.tmpDataPath"), "-dryRun")
		if _, err := runVM(t, vmBinary(t, "vmagent"), argv...); err != nil {
			t.Errorf("pod %s: %v", w.PodName(i), err)
		}
	}
}

// vmalert's command line, with the rules ConfigMap where the pod mounts
// it, passes vmalert's own dry run over every rule file it loads.
func TestVMAlertDryRun(t *testing.T) {
	w := workload(t, "vmalert")
	c := mainContainer(t, w)
	argv := append(localArgs(t, c.Args, podFiles(t, w, c), "rule"), "-dryRun")
	if _, err := runVM(t, vmBinary(t, "vmalert"), argv...); err != nil {
		t.Error(err)
	}
}
