package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

// TestFailedScrapeReplacesNoSample: a scrape of an exporter that fails (the
// exporter killed, or a scrape timed out on a loaded machine) must not cost
// the sample the exporter served before it. A scraper that writes
// staleness markers writes them with the timestamps the series carried,
// here a poll's, and -dedup.minScrapeInterval keeps the marker over the
// sample it collides with: one sample per influencer lost, as seen twice
// (an exporter kill losing about a cycle more than it held unscraped, and
// a restart under load storing 1,913 of 2,013 polls). With the checked-in
// scrape config (no_stale_markers) both samples stay.
func TestFailedScrapeReplacesNoSample(t *testing.T) {
	var mu sync.Mutex
	fail, polledAt := false, time.Now().Add(-time.Second).UnixMilli()
	exp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "mockstagram_influencer_followers{pk=\"1000000\"} 5 %d\n", polledAt)
	}))
	t.Cleanup(exp.Close)
	dir := t.TempDir()
	host := strings.TrimPrefix(exp.URL, "http://")
	if err := victoria.WriteScrapeConfig(filepath.Join(vmtest.RepoRoot(), "victoria"), dir, time.Second,
		map[string][]victoria.TargetGroup{"influencers.json": victoria.InfluencerTargets([]string{host}, 1)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	vm := vmtest.Run(t, stack.Victoria{DataDir: filepath.Join(dir, "data"), ScrapeConfig: filepath.Join(dir, "scrape.yml"),
		QueryFresh: true, LogLevel: "WARN"})
	set := func(f bool, at int64) {
		mu.Lock()
		fail, polledAt = f, at
		mu.Unlock()
	}
	time.Sleep(2500 * time.Millisecond) // the first sample, scraped twice
	first := polledAt
	set(true, first)
	time.Sleep(2500 * time.Millisecond) // failed scrapes
	second := time.Now().UnixMilli()
	set(false, second)
	time.Sleep(2500 * time.Millisecond)
	vm.Flush(t)
	series := vm.Export(t, `mockstagram_influencer_followers`, start, time.Now().Add(time.Minute))
	if len(series) != 1 {
		t.Fatalf("%d series stored, want 1: %+v", len(series), series)
	}
	var got []string // a staleness marker exports as null: 0 here
	for _, p := range series[0].Values {
		got = append(got, fmt.Sprintf("%d=%v", p.T, p.V))
	}
	if want := []string{fmt.Sprintf("%d=5", first), fmt.Sprintf("%d=5", second)}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stored %v, want both polls %v", got, want)
	}
}
