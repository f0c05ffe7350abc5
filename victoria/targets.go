package victoria

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// TargetGroup is one entry of a Prometheus file_sd file.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Exposition size per influencer and the largest slice scrape.yml accepts
// (max_scrape_size 32 MiB, with headroom).
const (
	BytesPerInfluencer = 210
	MaxSliceBytes      = 30 << 20
)

// SlicesFor is how many slices an exporter holding owned influencers is
// scraped as, so that each stays under the scrape size limit.
func SlicesFor(owned int) int {
	return owned*BytesPerInfluencer/MaxSliceBytes + 1
}

// InfluencerTargets lists every exporter (host:port) once per slice, with
// the slice as URL parameters and an instance label of its own.
func InfluencerTargets(exporters []string, slices int) []TargetGroup {
	var out []TargetGroup
	for _, e := range exporters {
		for k := range slices {
			out = append(out, TargetGroup{Targets: []string{e}, Labels: map[string]string{
				"instance":       fmt.Sprintf("%s/%d", e, k),
				"__param_slice":  strconv.Itoa(k),
				"__param_slices": strconv.Itoa(slices),
			}})
		}
	}
	return out
}

// Hosts makes one plain target group of some host:port addresses.
func Hosts(hosts ...string) []TargetGroup {
	if len(hosts) == 0 {
		return []TargetGroup{}
	}
	return []TargetGroup{{Targets: hosts}}
}

// WriteScrapeConfig copies scrape.yml from victoriaDir (the repository's
// victoria/) into dir and writes the file_sd files it reads into
// dir/targets/, keyed by file name ("influencers.json", ...). With
// maxInterval > 0 the copy scrapes at least that often: the checked-in 30 s
// suits the 60 s poll interval, and a shorter poll interval would otherwise
// see polls replaced before any scrape took them.
func WriteScrapeConfig(victoriaDir, dir string, maxInterval time.Duration, targets map[string][]TargetGroup) error {
	src, err := os.ReadFile(filepath.Join(victoriaDir, "scrape.yml"))
	if err != nil {
		return fmt.Errorf("cannot read the scrape config (run from the repository root or set --victoria.dir): %w", err)
	}
	if maxInterval > 0 {
		if src, err = capScrapeInterval(src, maxInterval); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scrape.yml"), src, 0o644); err != nil {
		return err
	}
	return WriteTargets(dir, targets)
}

// capScrapeInterval lowers the config's global scrape_interval to max when
// it is longer, and its scrape_timeout below that, keeping the rest of the
// file (comments included) as it is.
func capScrapeInterval(src []byte, max time.Duration) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 {
		return nil, fmt.Errorf("cannot parse scrape.yml: %v", err)
	}
	global := mapValue(doc.Content[0], "global")
	if global == nil {
		return nil, errors.New("scrape.yml has no global section to set scrape_interval in")
	}
	get := func(key string) time.Duration {
		if n := mapValue(global, key); n != nil {
			if d, err := time.ParseDuration(n.Value); err == nil {
				return d
			}
		}
		return 0 // absent, or a form Go does not read ("1d"): set anew
	}
	set := func(key string, d time.Duration) {
		v := strconv.FormatInt(d.Milliseconds(), 10) + "ms" // read alike by Prometheus and VictoriaMetrics
		if d%time.Second == 0 {
			v = strconv.FormatInt(int64(d/time.Second), 10) + "s"
		}
		if n := mapValue(global, key); n != nil {
			n.Value = v
			return
		}
		global.Content = append(global.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: v})
	}
	if interval := get("scrape_interval"); interval == 0 || interval > max {
		set("scrape_interval", max)
	}
	if timeout := get("scrape_timeout"); timeout == 0 || timeout >= max {
		set("scrape_timeout", max*5/6)
	}
	return yaml.Marshal(&doc)
}

// mapValue is the value node of key in mapping node m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// WriteTargets writes file_sd files into dir/targets/.
func WriteTargets(dir string, targets map[string][]TargetGroup) error {
	for name, groups := range targets {
		b, err := json.MarshalIndent(groups, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "targets", name), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", name, err)
		}
	}
	return nil
}
