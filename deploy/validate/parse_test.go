package validate

import (
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	f := func(in []string, want []Flag, wantErr bool) {
		t.Helper()
		got, err := ParseArgs(in)
		if (err != nil) != wantErr {
			t.Fatalf("ParseArgs(%q) error %v, want error %v", in, err, wantErr)
		}
		if !wantErr && len(got) != len(want) {
			t.Fatalf("ParseArgs(%q) = %v, want %v", in, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("ParseArgs(%q)[%d] = %v, want %v", in, i, got[i], want[i])
			}
		}
	}
	f([]string{"--web.listen-address=:9866", "-httpListenAddr=:8429", "--shard.from-hostname", "--a=b=c"}, []Flag{
		{"web.listen-address", ":9866", true}, {"httpListenAddr", ":8429", true}, {"shard.from-hostname", "", false}, {"a", "b=c", true}}, false)
	f([]string{"--shard.count", "4"}, nil, true)
	f([]string{"-"}, nil, true)
}

func TestParseHelp(t *testing.T) {
	h := ParseHelp(`Flags:
  -h, --help                      Show context-sensitive help.
      --mockstagram.url=http://127.0.0.1:3000,...
                                  Mockstagram base URL
                                  ($MOCKSTAGRAM_EXPORTER_MOCKSTAGRAM_URL).
      --web.listen-address=":3000"
                                  Address to listen on ($MOCKSTAGRAM_SIM_LISTEN_ADDRESS).
      --[no-]drift                Step ($MOCKSTAGRAM_SIM_DRIFT).
      --state.dir=STRING          Directory.
`)
	f := func(flag, def string) {
		t.Helper()
		got, ok := h.Flags[flag]
		if !ok || got != def {
			t.Errorf("flag %s: default %q (listed %v), want %q", flag, got, ok, def)
		}
	}
	f("help", "")
	f("mockstagram.url", "http://127.0.0.1:3000")
	f("web.listen-address", ":3000")
	f("drift", "")
	f("state.dir", "STRING")
	for _, e := range []string{"MOCKSTAGRAM_EXPORTER_MOCKSTAGRAM_URL", "MOCKSTAGRAM_SIM_LISTEN_ADDRESS", "MOCKSTAGRAM_SIM_DRIFT"} {
		if !h.Envs[e] {
			t.Errorf("env %s not found", e)
		}
	}
	if len(h.Flags) != 5 || len(h.Envs) != 3 {
		t.Errorf("parsed %d flags and %d envs, want 5 and 3: %v %v", len(h.Flags), len(h.Envs), h.Flags, h.Envs)
	}
}

func TestCompareVersions(t *testing.T) {
	f := func(a, b string, want int) {
		t.Helper()
		if got := CompareVersions(a, b); got != want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", a, b, got, want)
		}
	}
	f("1.26.8", "1.26.8", 0)
	f("1.26.10", "1.26.8", 1)
	f("1.26", "1.26.1", -1)
	f("12.2.0", "10.4.0", 1)
}

func TestStaticEquivalent(t *testing.T) {
	ref := `global: {scrape_interval: 30s}
scrape_configs:
  - job_name: a
    honor_timestamps: true
    file_sd_configs: [{files: [targets/a*.json]}]
  - job_name: b
    file_sd_configs: [{files: [targets/b*.json]}]
`
	f := func(cand, wantErr string) {
		t.Helper()
		r, err := ParseScrapeConfig([]byte(ref))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseScrapeConfig([]byte(cand))
		if err != nil {
			t.Fatal(err)
		}
		err = StaticEquivalent(r, c, "extra")
		if wantErr == "" && err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		if wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	ok := `global: {scrape_interval: 30s}
scrape_configs:
  - job_name: a
    honor_timestamps: true
    static_configs: [{targets: ["x:1"]}]
  - job_name: b
    static_configs: [{targets: ["y:2"]}]
  - job_name: extra
    static_configs: [{targets: ["z:3"]}]
`
	f(ok, "")
	f(strings.Replace(ok, "30s", "60s", 1), "global differs")
	f(strings.Replace(ok, "honor_timestamps: true", "honor_timestamps: false", 1), "job a differs beyond its targets")
	f(strings.Replace(ok, "job_name: b", "job_name: c", 1), "job b is missing")
	f(strings.Replace(ok, "job_name: extra", "job_name: other", 1), "job other is not in the reference config")
	f(strings.Replace(ok, `static_configs: [{targets: ["y:2"]}]`, `file_sd_configs: [{files: [b.json]}]`, 1), "job b has no static_configs")
}

const resolveManifests = `
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: sql, port: 5432, targetPort: sql}]
---
apiVersion: v1
kind: Service
metadata: {name: db-lb}
spec:
  selector: {app: db}
  ports: [{name: sql, port: 5432, targetPort: 5433}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: web, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: db, ports: [{name: sql, containerPort: 5432}]}]
`

func TestResolve(t *testing.T) {
	objs, err := DecodeStrict([]byte(resolveManifests))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManifests(objs)
	if err != nil {
		t.Fatal(err)
	}
	f := func(hostport, wantErr string) {
		t.Helper()
		err := m.Resolve(hostport)
		if wantErr == "" && err != nil {
			t.Errorf("Resolve(%s): %v", hostport, err)
		}
		if wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("Resolve(%s) = %v, want an error containing %q", hostport, err, wantErr)
		}
	}
	f("web:80", "")
	f("db-0.db:5432", "")
	f("db-1.db:5432", "")
	f("web:8080", "has no port 8080")
	f("nope:80", `no Service "nope"`)
	f("db-2.db:5432", "has 2 replicas, so there is no pod db-2")
	f("db-0.db:9999", "exposes no container port 9999")
	f("web-0.web:80", "is not headless")
	f("db-lb:5432", "targets 5433")
	f("web", "not host:port")
}

func TestDecodeStrict(t *testing.T) {
	f := func(doc, wantErr string) {
		t.Helper()
		_, err := DecodeStrict([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("DecodeStrict error %v, want one containing %q", err, wantErr)
		}
	}
	f("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {selecter: {app: a}}\n", `unknown field "spec.selecter"`)
	f("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}\n", `key "metadata" already set`)
	f("apiVersion: batch/v1\nkind: Job\nmetadata: {name: a}\n", `no kind "Job"`)
}
