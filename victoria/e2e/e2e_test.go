// Package e2e runs the pipeline end to end with real VictoriaMetrics
// binaries: simulator -> exporter shards -> VictoriaMetrics (directly, or
// through vmagent) -> vmalert, and checks what a user would query.
package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter/exportertest"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/promtext"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

const (
	pollInterval = 2 * time.Second
	// Scrape twice per poll interval, as victoria/scrape.yml does (30 s for 60 s).
	scrapeInterval = pollInterval / 2
)

// startShards runs n exporter shards polling every poll interval, pipelined.
func startShards(t *testing.T, url string, pks pkrange.Range, n int) []*exportertest.Shard {
	t.Helper()
	var out []*exportertest.Shard
	for i := range n {
		cfg := exportertest.Config([]string{url}, pks.Min, pks.Max, pkrange.Shard{Index: i, Count: n})
		cfg.Interval, cfg.Timeout, cfg.Concurrency, cfg.Pipeline = pollInterval, 500*time.Millisecond, 32, 8
		cfg.RetryBackoff = 100 * time.Millisecond
		// A pass every 10 s: 300 checks/s for 3000 pks, light enough not to
		// starve the scrapes that must catch every poll.
		cfg.Suspicious.Period = 10 * time.Second
		out = append(out, exportertest.Start(t, cfg))
	}
	return out
}

// scrapeDir copies the checked-in victoria/scrape.yml into a temp dir with
// the test's scrape interval, and writes file_sd targets for the shards,
// each scraped as `slices` slices.
func scrapeDir(t *testing.T, shards []*exportertest.Shard, slices int) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(vmtest.RepoRoot(), "victoria", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"].(map[string]any)["scrape_interval"] = scrapeInterval.String()
	cfg["global"].(map[string]any)["scrape_timeout"] = scrapeInterval.String()
	out, _ := yaml.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "scrape.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, s := range shards {
		hosts = append(hosts, strings.TrimPrefix(s.URL, "http://"))
	}
	os.MkdirAll(filepath.Join(dir, "targets"), 0o755)
	if err := victoria.WriteTargets(dir, map[string][]victoria.TargetGroup{
		"influencers.json": victoria.InfluencerTargets(hosts, slices),
		"exporters.json":   victoria.Hosts(hosts...),
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pipeline is one test's simulator, exporter shards and scrape directory.
type pipeline struct {
	sim    *simulator.Server
	shards []*exportertest.Shard
	dir    string
	pks    pkrange.Range
	start  time.Time
}

func newPipeline(t *testing.T, pks int, drift bool, shards, slices int) *pipeline {
	t.Helper()
	p := &pipeline{pks: pkrange.First(pks), start: time.Now()}
	var url string
	p.sim, url = simtest.Start(t, simtest.Config(p.pks.Min, p.pks.Max, drift))
	p.shards = startShards(t, url, p.pks, shards)
	p.dir = scrapeDir(t, p.shards, slices)
	return p
}

// startVM starts VictoriaMetrics, scraping the shards itself or not.
func (p *pipeline) startVM(t *testing.T, scrape bool) *vmtest.Proc {
	t.Helper()
	spec := stack.Victoria{DataDir: filepath.Join(p.dir, "vm"), QueryFresh: true, LogLevel: "WARN"}
	if scrape {
		spec.ScrapeConfig = filepath.Join(p.dir, "scrape.yml")
	}
	return vmtest.Run(t, spec)
}

// checkEveryPollStoredOnce is the package function for this pipeline.
func (p *pipeline) checkEveryPollStoredOnce(t *testing.T, vm *vmtest.Proc, drift bool) {
	t.Helper()
	checkEveryPollStoredOnce(t, vm, p.shards, p.sim, p.pks, p.start, drift)
}

func successfulPolls(t *testing.T, shards []*exportertest.Shard) float64 {
	t.Helper()
	var n float64
	for _, s := range shards {
		f, err := promtext.Fetch(http.DefaultClient, s.URL+"/telemetry")
		if err != nil {
			t.Fatal(err)
		}
		n += f.Sum("mockstagram_exporter_polls_total", "outcome", "success")
	}
	return n
}

// waitCycles waits until VictoriaMetrics holds at least n samples of every
// one of the pks influencers.
func waitCycles(t *testing.T, vm *vmtest.Proc, n, pks int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d poll cycles of %d pks in VictoriaMetrics", n, pks), func() bool {
		vm.Flush(t)
		r := vm.Query(t, fmt.Sprintf(`count(count_over_time(mockstagram_influencer_followers[1h]) >= %d)`, n), time.Time{})
		return len(r) == 1 && r[0].Value.V == float64(pks)
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkEveryPollStoredOnce stops polling, lets the scraper take the last
// samples, and checks that VictoriaMetrics holds exactly one sample per
// successful poll, each with a distinct poll timestamp, for every pk. The
// values are the simulator's: every sample with fixed counts, the last one
// with drifting counts (every poll moved them; the last poll saw the final
// state).
func checkEveryPollStoredOnce(t *testing.T, vm *vmtest.Proc, shards []*exportertest.Shard, sim *simulator.Server, pks pkrange.Range, start time.Time, drift bool) {
	t.Helper()
	for _, s := range shards {
		s.StopPolling()
	}
	polls := successfulPolls(t, shards)
	var stored int
	var series []vmtest.Series
	waitFor(t, 30*time.Second, "every poll to be stored", func() bool {
		vm.Flush(t)
		series = vm.Export(t, `mockstagram_influencer_followers`, start.Add(-time.Minute), time.Now().Add(time.Minute))
		stored = 0
		for _, s := range series {
			stored += len(s.Values)
		}
		return float64(stored) >= polls
	})
	if float64(stored) != polls {
		t.Fatalf("VictoriaMetrics holds %d follower samples for %v successful polls", stored, polls)
	}
	if want := pks.Len(); len(series) != want {
		t.Fatalf("%d follower series stored, want %d", len(series), want)
	}
	for _, s := range series {
		if _, ok := s.Metric["instance"]; ok {
			t.Fatalf("influencer series carry the scrape target: %v", s.Metric)
		}
		pk, err := strconv.ParseInt(s.Metric["pk"], 10, 64)
		if err != nil {
			t.Fatalf("series without a pk: %v", s.Metric)
		}
		f, _, _ := sim.Peek(pk)
		for i, p := range s.Values {
			if i > 0 && p.T <= s.Values[i-1].T {
				t.Fatalf("pk %d: samples not strictly increasing in time: %v", pk, s.Values)
			}
			if i > 0 && time.Duration(p.T-s.Values[i-1].T)*time.Millisecond < pollInterval/2 {
				t.Fatalf("pk %d: two samples %d ms apart, closer than one poll interval", pk, p.T-s.Values[i-1].T)
			}
			if (!drift || i == len(s.Values)-1) && p.V != float64(f) {
				t.Fatalf("pk %d stored %v (sample %d of %d), simulator has %d", pk, p.V, i+1, len(s.Values), f)
			}
			if p.T < start.UnixMilli() || p.T > time.Now().UnixMilli() {
				t.Fatalf("pk %d sample stamped %v, outside the test", pk, time.UnixMilli(p.T))
			}
		}
	}
}

// TestScrapeStoreQuery: every poll stored once at its poll time, the ratio
// query equals the simulator's followers/following, nothing else scraped
// by mistake.
func TestScrapeStoreQuery(t *testing.T) {
	p := newPipeline(t, 3000, false, 2, 3)
	sim := p.sim
	vm := p.startVM(t, true)

	waitCycles(t, vm, 3, 3000)
	// followerRatio, as the catalogue defines it.
	r := vm.Query(t, `mockstagram_influencer_followers / (mockstagram_influencer_following > 0)`, time.Time{})
	if len(r) != 3000 {
		t.Fatalf("ratio query returned %d series, want 3000", len(r))
	}
	for _, s := range r {
		pk, _ := strconv.ParseInt(s.Metric["pk"], 10, 64)
		f, g, _ := sim.Peek(pk)
		if want := float64(f) / float64(g); s.Value.V != want {
			t.Fatalf("pk %d ratio %v, want %v", pk, s.Value.V, want)
		}
	}
	if up := vm.Query(t, `up{job="mockstagram_influencers"} == 1`, time.Time{}); len(up) != 6 {
		t.Fatalf("%d of 6 influencer slices up", len(up))
	}
	for _, s := range p.shards {
		s.WaitVerdicts(t)
	}
	p.checkEveryPollStoredOnce(t, vm, false)
	checks := checkEveryVerdictStoredOnce(t, vm, p)
	// Served once: the scrapes carried each sample about once, not once
	// per scrape (two scrapes per poll here), and no info series with the
	// counts. (Late bodies are served again; every sample at least once.)
	polls := successfulPolls(t, p.shards)
	var served float64
	for _, s := range p.shards {
		f, err := promtext.Fetch(http.DefaultClient, s.URL+"/telemetry")
		if err != nil {
			t.Fatal(err)
		}
		served += f.Sum("mockstagram_exporter_served_once_samples_total")
	}
	if want := 2*polls + checks; served < want || served > 1.1*want {
		t.Fatalf("the exporters served %v samples to VictoriaMetrics for %v polls (2 counts each) and %v verdicts; want about %v", served, polls, checks, want)
	}
}

// checkEveryVerdictStoredOnce (after polling and checking stopped): one
// stored sample per successful classifier call, at the verdict's time
// (the repeats of every scrape are deduplicated), and every pk's latest
// flag is the simulator's rule applied to its frozen counts.
func checkEveryVerdictStoredOnce(t *testing.T, vm *vmtest.Proc, p *pipeline) (checks float64) {
	t.Helper()
	for _, s := range p.shards {
		f, err := promtext.Fetch(http.DefaultClient, s.URL+"/telemetry")
		if err != nil {
			t.Fatal(err)
		}
		checks += f.Sum("mockstagram_exporter_suspicious_checks_total", "outcome", "success")
	}
	var series []vmtest.Series
	stored := 0
	waitFor(t, 30*time.Second, "every verdict to be stored", func() bool {
		vm.Flush(t)
		series = vm.Export(t, `mockstagram_influencer_suspicious`, p.start.Add(-time.Minute), time.Now().Add(time.Minute))
		stored = 0
		for _, s := range series {
			stored += len(s.Values)
		}
		return float64(stored) >= checks
	})
	if float64(stored) != checks || len(series) != p.pks.Len() {
		t.Fatalf("VictoriaMetrics holds %d verdict samples in %d series for %v successful checks of %d pks", stored, len(series), checks, p.pks.Len())
	}
	flagged := 0
	for _, s := range series {
		pk, _ := strconv.ParseInt(s.Metric["pk"], 10, 64)
		f, g, _ := p.sim.Peek(pk)
		want := 0.0
		if float64(f)/float64(g) <= 5.64 {
			want = 1
			flagged++
		}
		for _, v := range s.Values {
			if v.V != want {
				t.Fatalf("pk %d (followers %d, following %d) stored suspicious=%v, want %v", pk, f, g, v.V, want)
			}
		}
	}
	if flagged == 0 {
		t.Fatal("no pk flagged; the check proves nothing")
	}
	return checks
}

// TestDriftingTimeSeries: with counts that move on every poll, each pk's
// stored series moves too, one sample per poll, and ends at the simulator's
// final state.
func TestDriftingTimeSeries(t *testing.T) {
	p := newPipeline(t, 1000, true, 1, 2)
	vm := p.startVM(t, true)
	waitCycles(t, vm, 4, 1000)
	// Most series moved (those on the 5,000 floor may stay put).
	r := vm.Query(t, `count(changes(mockstagram_influencer_followers[1h]) >= 2)`, time.Time{})
	if len(r) != 1 || r[0].Value.V < 700 {
		t.Fatalf("only %v of 1000 follower series changed at least twice", r)
	}
	p.checkEveryPollStoredOnce(t, vm, true)
}

// TestVMAgentBuffersThroughAnOutage: vmagent scrapes and remote-writes to
// VictoriaMetrics; VictoriaMetrics stops for several poll cycles and comes
// back; vmagent's on-disk buffer delivers everything: every poll stored
// once, none lost, none duplicated.
func TestVMAgentBuffersThroughAnOutage(t *testing.T) {
	p := newPipeline(t, 1000, false, 2, 2)
	vm := p.startVM(t, false)
	vmtest.Run(t, stack.VMAgent{BufferDir: filepath.Join(p.dir, "vmagent-buffer"), ScrapeConfig: filepath.Join(p.dir, "scrape.yml"),
		RemoteWrite: vm.URL, FlushInterval: 200 * time.Millisecond, LogLevel: "WARN"})
	waitCycles(t, vm, 2, 1000)
	if err := vm.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * pollInterval) // polls and scrapes go on; vmagent buffers
	vm = vmtest.Run(t, vm.Spec)  // where it was: same port, same data
	p.checkEveryPollStoredOnce(t, vm, false)
}

// TestJumpAlertFiresForThatPKOnly: the simulator's admin API gives one
// influencer a follower jump and another a following spike; vmalert,
// running the checked-in rules against what the exporter published,
// fires InfluencerFollowerJump and InfluencerFollowingSpike for those pks
// and no other.
func TestJumpAlertFiresForThatPKOnly(t *testing.T) {
	const jumpPK, spikePK = pkrange.DefaultMin + 417, pkrange.DefaultMin + 733
	p := newPipeline(t, 1000, false, 1, 1)
	sim := p.sim
	vm := p.startVM(t, true)
	waitCycles(t, vm, 2, 1000)
	f, g, _ := sim.Peek(jumpPK)
	if err := sim.Set(jumpPK, f+500_000, g); err != nil {
		t.Fatal(err)
	}
	f2, g2, _ := sim.Peek(spikePK)
	if err := sim.Set(spikePK, f2, g2+2_000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the jump to be stored", func() bool {
		vm.Flush(t)
		r := vm.Query(t, fmt.Sprintf(`mockstagram_influencer_followers{pk="%d"}`, jumpPK), time.Time{})
		return len(r) == 1 && r[0].Value.V == float64(f+500_000)
	})
	rules, _ := filepath.Glob(filepath.Join(vmtest.RepoRoot(), "victoria", "rules", "*.yml"))
	vmalert := vmtest.Run(t, stack.VMAlert{Datasource: vm.URL, Rules: rules, NoDelay: true, LogLevel: "WARN"})
	firing := map[string][]string{}
	waitFor(t, 60*time.Second, "InfluencerFollowerJump and InfluencerFollowingSpike to fire", func() bool {
		alerts, err := victoria.Alerts(nil, vmalert.URL)
		if err != nil {
			return false
		}
		firing = map[string][]string{}
		for _, a := range alerts {
			if a.State == "firing" {
				firing[a.Name] = append(firing[a.Name], a.Labels["pk"])
			}
		}
		return len(firing["InfluencerFollowerJump"]) > 0 && len(firing["InfluencerFollowingSpike"]) > 0
	})
	if got := firing["InfluencerFollowerJump"]; len(got) != 1 || got[0] != strconv.Itoa(jumpPK) {
		t.Fatalf("InfluencerFollowerJump fires for pks %v, want only %d", got, jumpPK)
	}
	if got := firing["InfluencerFollowingSpike"]; len(got) != 1 || got[0] != strconv.Itoa(spikePK) {
		t.Fatalf("InfluencerFollowingSpike fires for pks %v, want only %d", got, spikePK)
	}
}

// TestHourlyTierKeepsLastValues: vmagent writes every sample to one
// VictoriaMetrics and, through victoria/streamaggr-hourly.yml (its
// interval shortened to the test's pace), only each interval's last value
// to a second one, the long-term tier. Once polling stops, the long-term
// store's latest value of every pk is the short-term store's, under the
// same metric name and labels, from far fewer samples.
func TestHourlyTierKeepsLastValues(t *testing.T) {
	p := newPipeline(t, 500, true, 1, 1)
	short := p.startVM(t, false)
	longSpec := stack.Victoria{DataDir: filepath.Join(p.dir, "vm-long"), QueryFresh: true, LogLevel: "WARN"}
	long := vmtest.Run(t, longSpec)
	raw, err := os.ReadFile(filepath.Join(vmtest.RepoRoot(), "victoria", "streamaggr-hourly.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const every = 4 * time.Second // two polls an interval, as an hour holds sixty
	aggr := strings.Replace(string(raw), "interval: 1h", "interval: "+every.String(), 1)
	if aggr == string(raw) {
		t.Fatal("streamaggr-hourly.yml has no `interval: 1h` to shorten")
	}
	aggrPath := filepath.Join(p.dir, "streamaggr.yml")
	if err := os.WriteFile(aggrPath, []byte(aggr), 0o644); err != nil {
		t.Fatal(err)
	}
	vmtest.Run(t, stack.VMAgent{BufferDir: filepath.Join(p.dir, "vmagent-buffer"), ScrapeConfig: filepath.Join(p.dir, "scrape.yml"),
		RemoteWrite: short.URL, FlushInterval: 200 * time.Millisecond, LogLevel: "WARN",
		Extra: []string{"-remoteWrite.url=" + long.URL + "/api/v1/write", "-remoteWrite.streamAggr.config=," + aggrPath}})
	waitCycles(t, short, 3, 500)
	p.shards[0].StopPolling()
	latest := func(vm *vmtest.Proc) map[string]float64 {
		out := map[string]float64{}
		for _, s := range vm.Query(t, `last_over_time(mockstagram_influencer_followers[1h])`, time.Time{}) {
			out[s.Metric["pk"]+" "+s.Metric["job"]] = s.Value.V
		}
		return out
	}
	var want, got map[string]float64
	waitFor(t, 6*every, "the long-term tier to hold every pk's last value", func() bool {
		short.Flush(t)
		long.Flush(t)
		want, got = latest(short), latest(long)
		if len(want) != 500 || len(got) != 500 {
			return false
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	count := func(vm *vmtest.Proc) float64 {
		r := vm.Query(t, `sum(count_over_time(mockstagram_influencer_followers[1h]))`, time.Time{})
		if len(r) != 1 {
			t.Fatalf("no follower samples in %s", vm.URL)
		}
		return r[0].Value.V
	}
	if s, l := count(short), count(long); l > s*0.75 {
		t.Fatalf("the long-term tier holds %v follower samples for the short-term's %v; want about one per %s", l, s, every)
	}
}
