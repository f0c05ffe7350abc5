package validate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
)

// ScrapeConfig is a Prometheus-style scrape config kept as plain data, so
// that two configs compare setting by setting.
type ScrapeConfig struct {
	Global map[string]any   `json:"global"`
	Jobs   []map[string]any `json:"scrape_configs"`
}

// ParseScrapeConfig reads a scrape config; unknown top-level keys are an
// error (VictoriaMetrics rejects them too).
func ParseScrapeConfig(data []byte) (ScrapeConfig, error) {
	var c ScrapeConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, err
	}
	for i, j := range c.Jobs {
		if _, ok := j["job_name"].(string); !ok {
			return c, fmt.Errorf("scrape_configs[%d] has no job_name", i)
		}
	}
	return c, nil
}

// Job returns the job of that name.
func (c ScrapeConfig) Job(name string) (map[string]any, bool) {
	for _, j := range c.Jobs {
		if j["job_name"] == name {
			return j, true
		}
	}
	return nil, false
}

// JobNames lists the jobs in order.
func (c ScrapeConfig) JobNames() []string {
	var out []string
	for _, j := range c.Jobs {
		out = append(out, j["job_name"].(string))
	}
	return out
}

// StaticTargets returns a job's static_configs as target groups.
func StaticTargets(job map[string]any) ([]victoria.TargetGroup, error) {
	b, err := json.Marshal(job["static_configs"])
	if err != nil {
		return nil, err
	}
	var out []victoria.TargetGroup
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("job %v: static_configs: %w", job["job_name"], err)
	}
	return out, nil
}

// TargetHosts lists every target (host:port) of a job's static_configs.
func TargetHosts(job map[string]any) ([]string, error) {
	groups, err := StaticTargets(job)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range groups {
		out = append(out, g.Targets...)
	}
	return out, nil
}

// StaticEquivalent checks that cand is ref with every job's file_sd_configs
// written out as static_configs: the same global section and, for every job
// of ref, the same settings apart from how targets are found. cand may add
// jobs of its own (listed in extra); it may not drop one of ref's.
func StaticEquivalent(ref, cand ScrapeConfig, extra ...string) error {
	var errs []string
	if !reflect.DeepEqual(ref.Global, cand.Global) {
		errs = append(errs, fmt.Sprintf("global differs: %v, want %v", cand.Global, ref.Global))
	}
	for _, rj := range ref.Jobs {
		name := rj["job_name"].(string)
		cj, ok := cand.Job(name)
		if !ok {
			errs = append(errs, fmt.Sprintf("job %s is missing", name))
			continue
		}
		if _, ok := cj["static_configs"]; !ok {
			errs = append(errs, fmt.Sprintf("job %s has no static_configs", name))
		}
		if _, ok := cj["file_sd_configs"]; ok {
			errs = append(errs, fmt.Sprintf("job %s still reads file_sd_configs, which nothing writes in this layout", name))
		}
		r, c := without(rj, "file_sd_configs"), without(cj, "static_configs")
		if !reflect.DeepEqual(r, c) {
			errs = append(errs, fmt.Sprintf("job %s differs beyond its targets:\n  got  %v\n  want %v", name, c, r))
		}
	}
	for _, name := range cand.JobNames() {
		if _, ok := ref.Job(name); ok {
			continue
		}
		allowed := false
		for _, e := range extra {
			allowed = allowed || e == name
		}
		if !allowed {
			errs = append(errs, fmt.Sprintf("job %s is not in the reference config", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func without(m map[string]any, key string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}
