package validate

import (
	"encoding/json"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"sigs.k8s.io/yaml"
)

const pluginID = "mockstagram-rankd-datasource"

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

type datasources struct {
	APIVersion  int              `json:"apiVersion"`
	Datasources []map[string]any `json:"datasources"`
}

// The layout's data sources are the repository's, with VictoriaMetrics
// read through vmselect; every URL reaches a Service of the build, and
// Grafana's step floor is the cluster's scrape interval.
func TestGrafanaDatasources(t *testing.T) {
	var repo, ours datasources
	readYAML(t, repoPath(t, "grafana", "provisioning", "datasources", "mockstagram.yml"), &repo)
	readYAML(t, repoPath(t, "deploy", "k8s", "grafana", "datasources", "mockstagram.yml"), &ours)
	if len(repo.Datasources) != len(ours.Datasources) {
		t.Fatalf("%d data sources, the repository's file has %d", len(ours.Datasources), len(repo.Datasources))
	}
	m := k8s(t)
	for i, d := range ours.Datasources {
		r := repo.Datasources[i]
		if d["type"] == "prometheus" {
			r, d = without(r, "url"), without(d, "url")
			u, _ := ours.Datasources[i]["url"].(string)
			checkURL(t, m, "data source "+str(d["name"]), u)
		}
		if !reflect.DeepEqual(r, d) {
			t.Errorf("data source %v differs from grafana/provisioning/datasources/mockstagram.yml beyond the VictoriaMetrics URL:\n got  %v\n want %v", d["name"], d, r)
		}
		if d["type"] == pluginID {
			checkURL(t, m, "data source "+str(d["name"]), str(d["url"]))
			jd, _ := d["jsonData"].(map[string]any)
			checkURL(t, m, "data source "+str(d["name"])+" jsonData.url", str(jd["url"]))
		}
		if d["type"] == "prometheus" {
			jd, _ := d["jsonData"].(map[string]any)
			if got, want := jd["timeInterval"], clusterScrapeConfig(t).Global["scrape_interval"]; got != want {
				t.Errorf("data source %v: timeInterval %v, want the scrape interval %v", d["name"], got, want)
			}
		}
	}
	if !slices.ContainsFunc(ours.Datasources, func(d map[string]any) bool { return d["type"] == pluginID }) {
		t.Errorf("no data source of the plugin %s", pluginID)
	}
	// Both mount this directory as Grafana's data source provisioning.
	w := workload(t, "grafana")
	cm := configMapAt(t, w, mainContainer(t, w), "/etc/grafana/provisioning/datasources")
	b, _ := os.ReadFile(repoPath(t, "deploy", "k8s", "grafana", "datasources", "mockstagram.yml"))
	if cm.Data["mockstagram.yml"] != string(b) {
		t.Errorf("the data source ConfigMap is not deploy/k8s/grafana/datasources/mockstagram.yml")
	}
	g := service(t, compose(t), "grafana")
	if src := bindSource(g, "/etc/grafana/provisioning/datasources"); src != repoPath(t, "deploy", "k8s", "grafana", "datasources") {
		t.Errorf("compose mounts %q as the data source provisioning, want deploy/k8s/grafana/datasources", src)
	}
}

func str(v any) string { s, _ := v.(string); return s }

func checkURL(t *testing.T, m *Manifests, where, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		t.Errorf("%s: %q is not a URL", where, s)
		return
	}
	if err := m.Resolve(u.Host); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	if p := urlPathPrefix[u.Port()]; p != "" && !strings.HasPrefix(u.Path, p) {
		t.Errorf("%s: %s must start with %s", where, s, p)
	}
}

func bindSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && path.Clean(v.Target) == target {
			return v.Source
		}
	}
	return ""
}

// The grafana-files image and compose's bind mounts put the same
// repository directories at the same places in Grafana: the init
// container copies the image's /grafana into the files volume, which
// Grafana mounts by subPath.
func TestGrafanaFilesLayout(t *testing.T) {
	w := workload(t, "grafana")
	if len(w.Pod.Spec.InitContainers) != 1 {
		t.Fatalf("grafana has %d init containers, want the grafana-files copy", len(w.Pod.Spec.InitContainers))
	}
	init := w.Pod.Spec.InitContainers[0]
	st, _ := dockerfile(t).Stage("grafana-files")
	ep := commands[*instructions.EntrypointCommand](st)
	if len(ep) != 1 || !slices.Equal(ep[0].CmdLine, []string{"cp", "-R", "/grafana/."}) {
		t.Fatalf("grafana-files ENTRYPOINT must be [cp -R /grafana/.], the destination its argument")
	}
	if len(init.Args) != 1 {
		t.Fatalf("init container args %v, want the destination directory", init.Args)
	}
	dest := path.Clean(init.Args[0])
	var vol string
	for _, vm := range init.VolumeMounts {
		if path.Clean(vm.MountPath) == dest {
			vol = vm.Name
		}
	}
	if vol == "" {
		t.Fatalf("the init container copies into %s, which is not a volume", dest)
	}
	// inGrafana is where Grafana sees a file the image holds at /grafana/rel.
	inGrafana := func(rel string) string {
		for _, vm := range mainContainer(t, w).VolumeMounts {
			if vm.Name != vol {
				continue
			}
			if rel == vm.SubPath || strings.HasPrefix(rel, vm.SubPath+"/") {
				return path.Join(vm.MountPath, strings.TrimPrefix(rel, vm.SubPath))
			}
		}
		return ""
	}
	g := service(t, compose(t), "grafana")
	copies := commands[*instructions.CopyCommand](st)
	if len(copies) != 3 {
		t.Errorf("grafana-files copies %d directories, want the plugin, the dashboards and their provider", len(copies))
	}
	for _, c := range copies {
		rel, ok := strings.CutPrefix(path.Clean(c.DestPath), "/grafana/")
		if !ok || len(c.SourcePaths) != 1 {
			t.Errorf("COPY %v %s: copy one directory under /grafana/", c.SourcePaths, c.DestPath)
			continue
		}
		k8sPath := inGrafana(rel)
		if k8sPath == "" {
			t.Errorf("COPY %s lands in /grafana/%s, which Grafana does not mount", c.SourcePaths[0], rel)
			continue
		}
		src := repoPath(t, filepath.FromSlash(c.SourcePaths[0]))
		if got := bindSource(g, k8sPath); got != src {
			t.Errorf("Kubernetes puts %s at %s; compose mounts %q there", c.SourcePaths[0], k8sPath, got)
		}
	}
	if got := inGrafana("plugins/" + pluginID); got != "/var/lib/grafana/plugins/"+pluginID {
		t.Errorf("the plugin lands at %q, want /var/lib/grafana/plugins/%s", got, pluginID)
	}
}

// The dashboard provider reads the directory the dashboards are mounted at.
func TestGrafanaDashboardsProvider(t *testing.T) {
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, repoPath(t, "grafana", "provisioning", "dashboards", "mockstagram.yml"), &prov)
	if len(prov.Providers) != 1 {
		t.Fatalf("%d dashboard providers, want 1", len(prov.Providers))
	}
	g := service(t, compose(t), "grafana")
	dir := path.Clean(prov.Providers[0].Options.Path)
	if src := bindSource(g, dir); src != repoPath(t, "grafana", "dashboards") {
		t.Errorf("the provider reads %s, where compose mounts %q, not grafana/dashboards", dir, src)
	}
	files, _ := filepath.Glob(repoPath(t, "grafana", "dashboards", "*.json"))
	if len(files) == 0 {
		t.Error("grafana/dashboards holds no dashboard")
	}
}

var versionRE = regexp.MustCompile(`\d+(\.\d+)*`)

// Both load the unsigned plugin by its id, in a Grafana the plugin
// supports.
func TestGrafanaPlugin(t *testing.T) {
	var pj struct {
		ID           string `json:"id"`
		Dependencies struct {
			Grafana string `json:"grafanaDependency"`
		} `json:"dependencies"`
	}
	b, err := os.ReadFile(repoPath(t, "grafana", "plugin", "src", "plugin.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pj); err != nil {
		t.Fatal(err)
	}
	if pj.ID != pluginID {
		t.Errorf("plugin.json id %q, want %s", pj.ID, pluginID)
	}
	image := strings.TrimPrefix(grafanaImage, "grafana/grafana:")
	if min := versionRE.FindString(pj.Dependencies.Grafana); !strings.HasPrefix(pj.Dependencies.Grafana, ">=") || CompareVersions(image, min) < 0 {
		t.Errorf("Grafana %s does not meet the plugin's grafanaDependency %q", image, pj.Dependencies.Grafana)
	}
	w := workload(t, "grafana")
	c := mainContainer(t, w)
	if c.Image != grafanaImage {
		t.Errorf("Kubernetes runs %s, want %s", c.Image, grafanaImage)
	}
	for where, env := range map[string]string{
		"Kubernetes": effectiveEnv(k8s(t), c)["GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"],
		"compose":    envValue(service(t, compose(t), "grafana"), "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"),
	} {
		if !slices.Contains(strings.Split(env, ","), pluginID) {
			t.Errorf("%s: GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=%q does not name %s", where, env, pluginID)
		}
	}
	if src := bindSource(service(t, compose(t), "grafana"), "/var/lib/grafana/plugins/"+pluginID); src != repoPath(t, pluginDist) {
		t.Errorf("compose mounts %q as the plugin, want %s", src, pluginDist)
	}
}
