package victoria

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

// TestWriteScrapeConfigCapsTheInterval: the copy of scrape.yml scrapes at
// least twice per poll interval when asked to, keeps its timeout below
// the interval and its comments, leaves a slower request alone, and
// VictoriaMetrics accepts the result.
func TestWriteScrapeConfigCapsTheInterval(t *testing.T) {
	f := func(max time.Duration, wantInterval, wantTimeout string) {
		t.Helper()
		dir := t.TempDir()
		if err := WriteScrapeConfig(vmtest.RepoRoot()+"/victoria", dir, max, nil); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "scrape.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Global struct {
				Interval string `yaml:"scrape_interval"`
				Timeout  string `yaml:"scrape_timeout"`
			}
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Global.Interval != wantInterval || cfg.Global.Timeout != wantTimeout {
			t.Fatalf("max %s: interval %s timeout %s, want %s and %s", max, cfg.Global.Interval, cfg.Global.Timeout, wantInterval, wantTimeout)
		}
		if !strings.Contains(string(b), "# The influencer gauges") {
			t.Fatalf("max %s: the comments are gone:\n%s", max, b)
		}
		if out, err := run(t, vmtest.Binary(t, "victoria-metrics"), "-promscrape.config="+filepath.Join(dir, "scrape.yml"), "-dryRun"); err != nil {
			t.Fatalf("max %s: VictoriaMetrics refuses the copy: %v\n%s", max, err, out)
		}
	}
	f(0, "30s", "25s")              // as checked in
	f(30*time.Second, "30s", "25s") // the default poll interval's half
	f(time.Minute, "30s", "25s")
	f(2500*time.Millisecond, "2500ms", "2083ms")
	f(time.Second, "1s", "833ms")
	f(2*time.Second, "2s", "1666ms")
}
