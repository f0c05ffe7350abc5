package validate

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
)

// envPrefix is the environment variable prefix of each of our binaries.
var envPrefix = map[string]string{
	"mockstagram_exporter": "MOCKSTAGRAM_EXPORTER_",
	"rankd":                "RANKD_",
	"mockstagram-sim":      "MOCKSTAGRAM_SIM_",
}

// Every flag and environment variable the deploy files give our binaries
// is one the binary has (kong refuses unknown flags at start; an unknown
// variable would be ignored silently, which is worse).
func TestFlagsExist(t *testing.T) {
	check := func(where, image string, argv []string, env map[string]string) {
		bin := ourImages[imageName(image)]
		if bin == "" {
			return
		}
		h := help(t, bin)
		for _, f := range args(t, argv) {
			if _, ok := h.Flags[f.Name]; !ok {
				t.Errorf("%s: %s has no flag --%s", where, bin, f.Name)
			}
		}
		for k := range env {
			if !h.Envs[k] {
				t.Errorf("%s: %s reads no environment variable %s", where, bin, k)
			}
		}
	}
	m := k8s(t)
	for _, w := range m.Workloads() {
		for _, c := range w.Pod.Spec.Containers {
			check(w.Name, c.Image, c.Args, effectiveEnv(m, &c))
		}
	}
	for _, s := range compose(t).Services {
		env := map[string]string{}
		for k := range s.Environment {
			env[k] = envValue(s, k)
		}
		check("compose "+s.Name, s.Image, s.Command, env)
	}
}

// The k8s containers of ours use only their binary's variables, so a typo
// in a variable name cannot hide.
func TestEnvNamesHaveTheBinaryPrefix(t *testing.T) {
	m := k8s(t)
	for _, w := range m.Workloads() {
		for _, c := range w.Pod.Spec.Containers {
			bin := ourImages[imageName(c.Image)]
			if bin == "" {
				continue
			}
			for k := range effectiveEnv(m, &c) {
				if !strings.HasPrefix(k, envPrefix[bin]) {
					t.Errorf("%s: $%s is not one of %s's %s* variables", w.Name, k, bin, envPrefix[bin])
				}
			}
		}
	}
}

// Our binaries start with the command lines compose gives them, changed
// only where the host differs from the containers: listen addresses on
// loopback, other containers' names as loopback ports, the state
// directory in a temporary one.
func TestBinariesStartWithComposeArgs(t *testing.T) {
	p := compose(t)
	// Loopback stand-ins for the container names the command lines use.
	names := []string{"mockstagram-sim:3000"}
	for i := range 4 {
		names = append(names, fmt.Sprintf("mockstagram-exporter-%d.mockstagram-exporter:9866", i))
	}
	ports, err := proc.FreePorts(len(names) + 1)
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]string{}
	for i, n := range names {
		local[n] = fmt.Sprintf("127.0.0.1:%d", ports[i])
	}
	rankdAddr := fmt.Sprintf("127.0.0.1:%d", ports[len(names)])
	rewrite := func(s types.ServiceConfig, listen string) []string {
		var out []string
		for _, a := range s.Command {
			if strings.HasPrefix(a, "--web.listen-address=") {
				a = "--web.listen-address=" + listen
			}
			if strings.HasPrefix(a, "--state.dir=") {
				a = "--state.dir=" + t.TempDir()
			}
			for n, l := range local {
				a = strings.ReplaceAll(a, "//"+n, "//"+l)
			}
			out = append(out, a)
		}
		return out
	}
	logs := t.TempDir()
	start := func(name, bin string, argv []string, url string) {
		t.Helper()
		pr, err := proc.Start(name, ourBinary(t, bin), argv, filepath.Join(logs, name+".log"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.Stop(10 * time.Second) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := proc.WaitHTTP(ctx, url, pr); err != nil {
			t.Fatalf("%s with the compose command line %v: %v\n%s", name, argv, err, pr.Tail(10))
		}
	}
	sim := local["mockstagram-sim:3000"]
	start("mockstagram-sim", "mockstagram-sim", rewrite(service(t, p, "mockstagram-sim"), sim), "http://"+sim+"/-/ready")

	// One shard is enough to prove its command line; it polls the
	// simulator, as compose's environment says.
	exp := service(t, p, "mockstagram-exporter-0")
	upstream := envValue(exp, "MOCKSTAGRAM_EXPORTER_MOCKSTAGRAM_URL")
	t.Setenv("MOCKSTAGRAM_EXPORTER_MOCKSTAGRAM_URL", strings.ReplaceAll(upstream, "//mockstagram-sim:3000", "//"+sim))
	e0 := local[names[1]]
	start("exporter-0", "mockstagram_exporter", rewrite(exp, e0), "http://"+e0+"/-/ready")

	// rankd stays unready while three of its shards are missing; healthy
	// means it parsed its flags and serves.
	start("rankd", "rankd", rewrite(service(t, p, "rankd"), rankdAddr), "http://"+rankdAddr+"/-/healthy")
}
