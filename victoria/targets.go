package victoria

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
// dir/targets/, keyed by file name ("influencers.json", ...).
func WriteScrapeConfig(victoriaDir, dir string, targets map[string][]TargetGroup) error {
	src, err := os.ReadFile(filepath.Join(victoriaDir, "scrape.yml"))
	if err != nil {
		return fmt.Errorf("cannot read the scrape config (run from the repository root or set --victoria.dir): %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scrape.yml"), src, 0o644); err != nil {
		return err
	}
	return WriteTargets(dir, targets)
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
