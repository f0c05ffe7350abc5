// Command exporter-loadtest measures the exporter the way the docs quote it:
// it starts simulator and exporter processes from bin/, lets one poll cycle
// warm up, then measures whole cycles: polls/s, coverage of every cycle,
// CPU per poll of each process (from /proc), poll latency, memory, and the
// CPU cost of one full scrape, plain and gzipped.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	dto "github.com/prometheus/client_model/go"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/promtext"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

type cli struct {
	BinDir          string        `name:"bin.dir" default:"bin" help:"Directory holding mockstagram-sim and mockstagram_exporter."`
	WorkDir         string        `name:"work.dir" default:"data/loadtest" help:"Where process logs go."`
	PKCount         int           `name:"pk.count" default:"1000000" help:"Influencers to poll (from pk 1000000)."`
	Shards          int           `name:"shards" default:"1" help:"Exporter processes, each polling 1/shards of the pks."`
	Sims            int           `name:"sims" default:"1" help:"Simulator processes; every exporter spreads its pks over all of them."`
	PollInterval    time.Duration `name:"poll.interval" default:"60s" help:"Exporter --poll.interval."`
	PollConcurrency int           `name:"poll.concurrency" default:"512" help:"Exporter --poll.concurrency."`
	Cycles          int           `name:"cycles" default:"2" help:"Poll cycles to measure after one warm-up cycle."`
	Scrape          bool          `name:"scrape" default:"true" negatable:"" help:"Also measure the CPU of one full scrape, plain and gzipped."`
	ExporterArgs    []string      `name:"exporter.arg" help:"Extra flag for every exporter (repeatable)."`
	SimArgs         []string      `name:"sim.arg" help:"Extra flag for every simulator (repeatable)."`
	SimCapacity     float64       `name:"sim.capacity" default:"0" help:"Requests/s every simulator serves, one at a time like the reference server's one Node thread (mockstagram-sim --capacity); 0 = unlimited."`
	CapacityChange  float64       `name:"sim.capacity-change" default:"-1" help:"Change every simulator's capacity to this many requests/s (0 = unlimited) sim.capacity-change-after into the measurement, and report how long the exporters took to find the new knee; -1 = no change."`
	ChangeAfter     time.Duration `name:"sim.capacity-change-after" default:"30s" help:"When to change the capacity, from the start of the measurement."`
	JSON            string        `name:"json" help:"Also write the results as JSON to this file."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("exporter-loadtest"), kong.Description("Measures exporter shards polling simulators."),
		kong.DefaultEnvars("EXPORTER_LOADTEST"))
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "exporter-loadtest: %v\n", err)
		os.Exit(1)
	}
}

type results struct {
	PKs, Shards, Sims  int
	Interval           string
	MeasuredSeconds    float64
	Polls              float64
	PollsPerSecond     float64
	TargetPollsPerSec  float64
	CycleCoverage      []float64 // per shard and measured cycle
	MinCycleCoverage   float64
	ExporterCPUPerPoll float64 // microseconds, all exporters together
	SimCPUPerRequest   float64 // microseconds, all simulators together
	ExporterCPUCores   float64
	PollLatencyP50Ms   float64
	PollLatencyP99Ms   float64
	ExporterRSSMiB     []float64
	ScrapePlainCPUMs   float64 `json:",omitempty"`
	ScrapeGzipCPUMs    float64 `json:",omitempty"`
	ScrapePlainMB      float64 `json:",omitempty"`
	ScrapeGzipMB       float64 `json:",omitempty"`
	Errors             map[string]float64
	SuspiciousChecks   float64 // successful classifier calls during the measurement, all shards
	SuspiciousPerSec   float64
	SimCapacity        float64 // requests/s per simulator; 0 = unlimited
	// The exporters' view of the upstreams at the end (summed over shards
	// per upstream; limits listed per shard and upstream).
	Upstreams          []upstreamView
	SampleAgeP50       float64 // seconds, worst shard
	SampleAgeP99       float64
	OldestSampleAge    float64
	KneeSeconds        float64 `json:",omitempty"` // from the exporters' start until every upstream's capacity estimate was within 10% of the truth
	CapacityChangedTo  float64 `json:",omitempty"`
	KneeAfterChangeSec float64 `json:",omitempty"` // from the change until the same held for the new capacity
}

type upstreamView struct {
	URL       string
	Limits    []float64 // per shard
	Capacity  float64   // estimate, summed over shards
	Demand    float64   // summed over shards
	Saturated []float64 // per shard
}

// kneeWatch samples the exporters' capacity estimates until every
// upstream's (summed over shards) is within 10% of want and saturated in
// every shard, and reports when that first held.
type kneeWatch struct {
	found chan time.Duration
}

func watchKnee(ctx context.Context, expURLs []string, want float64, since time.Time) *kneeWatch {
	k := &kneeWatch{found: make(chan time.Duration, 1)}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			capacity := map[string]float64{}
			ok := true
			for _, u := range expURLs {
				mfs, err := promtext.Fetch(http.DefaultClient, u+"/telemetry")
				if err != nil {
					ok = false
					break
				}
				for _, m := range mfs.Series("mockstagram_exporter_upstream_capacity_polls_per_second") {
					capacity[promtext.Label(m, "upstream")] += m.GetGauge().GetValue()
				}
				for _, m := range mfs.Series("mockstagram_exporter_upstream_saturated") {
					ok = ok && m.GetGauge().GetValue() == 1
				}
			}
			for _, v := range capacity {
				ok = ok && math.Abs(v-want) <= 0.1*want
			}
			if ok && len(capacity) > 0 {
				k.found <- time.Since(since)
				return
			}
		}
	}()
	return k
}

// wait returns the time to the knee, or 0 if it has not been found.
func (k *kneeWatch) wait() float64 {
	select {
	case t := <-k.found:
		return t.Seconds()
	default:
		return 0
	}
}

func run(ctx context.Context, c *cli, out io.Writer) error {
	st := &stack.Stack{BinDir: c.BinDir, LogDir: c.WorkDir}
	defer st.Stop()
	pks := pkrange.First(c.PKCount)
	var sims, exps []*proc.Proc
	var simURLs, expURLs []string
	for i := range c.Sims {
		p, err := st.Start(ctx, fmt.Sprintf("sim-%d", i), stack.Simulator{PKs: pks, Seed: 1, LogLevel: "warn",
			Extra: append([]string{"--capacity=" + strconv.FormatFloat(c.SimCapacity, 'f', -1, 64)}, c.SimArgs...)})
		if err != nil {
			return err
		}
		sims, simURLs = append(sims, p.Proc), append(simURLs, p.URL)
	}
	expStart := time.Now()
	for i := range c.Shards {
		p, err := st.Start(ctx, fmt.Sprintf("exporter-%d", i), stack.Exporter{Upstreams: simURLs, PKs: pks,
			Shard: pkrange.Shard{Index: i, Count: c.Shards}, PollInterval: c.PollInterval, PollConcurrency: c.PollConcurrency,
			Extra: c.ExporterArgs})
		if err != nil {
			return err
		}
		exps, expURLs = append(exps, p.Proc), append(expURLs, p.URL)
	}
	fmt.Fprintf(out, "polling %d influencers every %s with %d exporter shard(s) against %d simulator(s) (capacity %s); warm-up cycle...\n",
		c.PKCount, c.PollInterval, c.Shards, c.Sims, capacityString(c.SimCapacity))
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	saturating := c.SimCapacity > 0 && c.SimCapacity*float64(c.Sims) < float64(c.PKCount)/c.PollInterval.Seconds()
	var knee *kneeWatch
	if saturating {
		knee = watchKnee(wctx, expURLs, c.SimCapacity, expStart)
	}

	before, err := waitForCycles(ctx, st, expURLs, 1, nil)
	if err != nil {
		return err
	}
	t0 := time.Now()
	expCPU0, simCPU0 := cpu(exps), cpu(sims)
	simReq0 := simRequests(simURLs)
	fmt.Fprintf(out, "measuring %d cycle(s)...\n", c.Cycles)
	var kneeChange *kneeWatch
	if c.CapacityChange >= 0 {
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.ChangeAfter):
			}
			for _, u := range simURLs {
				resp, err := http.Post(u+"/admin/capacity?rps="+strconv.FormatFloat(c.CapacityChange, 'f', -1, 64), "", nil)
				if err == nil {
					resp.Body.Close()
				}
			}
			fmt.Fprintf(out, "  capacity changed to %s per simulator\n", capacityString(c.CapacityChange))
		}()
		if c.CapacityChange > 0 && c.CapacityChange*float64(c.Sims) < float64(c.PKCount)/c.PollInterval.Seconds() {
			kneeChange = watchKnee(wctx, expURLs, c.CapacityChange, t0.Add(c.ChangeAfter))
		}
	}
	var coverage []float64
	after, err := waitForCycles(ctx, st, expURLs, float64(1+c.Cycles), func(shard int, mfs promtext.Families) {
		cov := mfs.Sum("mockstagram_exporter_last_cycle_coverage_ratio")
		coverage = append(coverage, cov)
		fmt.Fprintf(out, "  shard %d: cycle done, coverage %.5f, polls/s so far %.0f\n", shard, cov, pollsSince(before, mfs, shard)/time.Since(t0).Seconds())
	})
	if err != nil {
		return err
	}
	// The last cycle's report may arrive with the same telemetry read that
	// ends the wait; take the coverage from it.
	for i, mfs := range after {
		if len(coverage) < (i+1)*c.Cycles {
			coverage = append(coverage, mfs.Sum("mockstagram_exporter_last_cycle_coverage_ratio"))
		}
	}
	elapsed := time.Since(t0)
	expCPU, simCPU := cpu(exps)-expCPU0, cpu(sims)-simCPU0
	r := results{PKs: c.PKCount, Shards: c.Shards, Sims: c.Sims, Interval: c.PollInterval.String(),
		MeasuredSeconds: elapsed.Seconds(), TargetPollsPerSec: float64(c.PKCount) / c.PollInterval.Seconds(),
		CycleCoverage: coverage, MinCycleCoverage: 1, Errors: map[string]float64{}}
	for i := range after {
		r.Polls += pollsSince(before, after[i], i)
	}
	for _, cv := range coverage {
		r.MinCycleCoverage = math.Min(r.MinCycleCoverage, cv)
	}
	r.PollsPerSecond = r.Polls / elapsed.Seconds()
	r.ExporterCPUPerPoll = float64(expCPU.Microseconds()) / r.Polls
	r.ExporterCPUCores = expCPU.Seconds() / elapsed.Seconds()
	if req := simRequests(simURLs) - simReq0; req > 0 {
		r.SimCPUPerRequest = float64(simCPU.Microseconds()) / req
	}
	r.PollLatencyP50Ms, r.PollLatencyP99Ms = latency(before, after)
	for i := range after {
		for _, m := range after[i].Series("mockstagram_exporter_polls_total") {
			if o := promtext.Label(m, "outcome"); o != "success" {
				r.Errors[o] += m.GetCounter().GetValue() - before[i].Sum("mockstagram_exporter_polls_total", "outcome", o)
			}
		}
	}
	for i := range after {
		r.SuspiciousChecks += after[i].Sum("mockstagram_exporter_suspicious_checks_total", "outcome", "success") -
			before[i].Sum("mockstagram_exporter_suspicious_checks_total", "outcome", "success")
	}
	r.SuspiciousPerSec = r.SuspiciousChecks / elapsed.Seconds()
	r.SimCapacity = c.SimCapacity
	views := map[string]*upstreamView{}
	var order []string
	for i := range after {
		view := func(m *dto.Metric) *upstreamView {
			u := promtext.Label(m, "upstream")
			if views[u] == nil {
				views[u] = &upstreamView{URL: u}
				order = append(order, u)
			}
			return views[u]
		}
		for _, m := range after[i].Series("mockstagram_exporter_upstream_concurrency_limit") {
			v := view(m)
			v.Limits = append(v.Limits, m.GetGauge().GetValue())
		}
		for _, m := range after[i].Series("mockstagram_exporter_upstream_saturated") {
			v := view(m)
			v.Saturated = append(v.Saturated, m.GetGauge().GetValue())
		}
		for _, m := range after[i].Series("mockstagram_exporter_upstream_capacity_polls_per_second") {
			view(m).Capacity += m.GetGauge().GetValue()
		}
		for _, m := range after[i].Series("mockstagram_exporter_upstream_demand_polls_per_second") {
			view(m).Demand += m.GetGauge().GetValue()
		}
		for _, m := range after[i].Series("mockstagram_exporter_sample_age_seconds") {
			for _, q := range m.GetSummary().GetQuantile() {
				switch q.GetQuantile() {
				case 0.5:
					r.SampleAgeP50 = math.Max(r.SampleAgeP50, q.GetValue())
				case 0.99:
					r.SampleAgeP99 = math.Max(r.SampleAgeP99, q.GetValue())
				}
			}
		}
		r.OldestSampleAge = math.Max(r.OldestSampleAge, after[i].Sum("mockstagram_exporter_oldest_sample_age_seconds"))
	}
	for _, u := range order {
		r.Upstreams = append(r.Upstreams, *views[u])
	}
	if knee != nil {
		r.KneeSeconds = knee.wait()
	}
	if c.CapacityChange >= 0 {
		r.CapacityChangedTo = c.CapacityChange
	}
	if kneeChange != nil {
		r.KneeAfterChangeSec = kneeChange.wait()
	}
	for _, p := range exps {
		rss, _ := p.RSS()
		r.ExporterRSSMiB = append(r.ExporterRSSMiB, float64(rss)/(1<<20))
	}
	if c.Scrape {
		if err := measureScrapes(&r, exps[0], expURLs[0], expCPU.Seconds()/elapsed.Seconds()/float64(len(exps))); err != nil {
			return err
		}
	}
	report(out, r)
	if c.JSON != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		return os.WriteFile(c.JSON, b, 0o644)
	}
	return nil
}

// waitForCycles reads the shards' telemetry until every shard has finished
// target poll cycles, calling onCycle (when set) with the telemetry of a
// shard that finished one more since the last reading. It returns the last
// reading of every shard.
func waitForCycles(ctx context.Context, st *stack.Stack, expURLs []string, target float64, onCycle func(shard int, mfs promtext.Families)) ([]promtext.Families, error) {
	last := make([]float64, len(expURLs))
	for {
		all := make([]promtext.Families, len(expURLs))
		done := true
		for i, u := range expURLs {
			mfs, err := promtext.Fetch(http.DefaultClient, u+"/telemetry")
			if err != nil {
				return nil, err
			}
			all[i] = mfs
			n := mfs.Sum("mockstagram_exporter_cycles_total")
			if n > last[i] && last[i] > 0 && onCycle != nil {
				onCycle(i, mfs)
			}
			last[i] = n
			done = done && n >= target
		}
		if done {
			return all, nil
		}
		if err := st.Exited(); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// measureScrapes measures the CPU of one full scrape of a shard, plain
// and gzipped, into r. A scrape's CPU is the process's CPU during it,
// minus what polling costs over the same wall time (pollCores, measured
// before). gzip is scraped twice and the second kept: the first also
// fills the info cache.
func measureScrapes(r *results, exp *proc.Proc, url string, pollCores float64) error {
	measure := func(gz bool) (float64, int64, error) {
		cpu0, t0 := cpu([]*proc.Proc{exp}), time.Now()
		n, err := scrapeSize(url+"/metrics", gz)
		d := (cpu([]*proc.Proc{exp}) - cpu0).Seconds() - pollCores*time.Since(t0).Seconds()
		return max(d, 0) * 1000, n, err
	}
	var n int64
	var err error
	if r.ScrapePlainCPUMs, n, err = measure(false); err != nil {
		return err
	}
	r.ScrapePlainMB = float64(n) / 1e6
	if _, _, err = measure(true); err != nil {
		return err
	}
	if r.ScrapeGzipCPUMs, n, err = measure(true); err != nil {
		return err
	}
	r.ScrapeGzipMB = float64(n) / 1e6
	return nil
}

func report(out io.Writer, r results) {
	fmt.Fprintf(out, "\n| measure | value |\n|---|---|\n")
	row := func(k, format string, v ...any) { fmt.Fprintf(out, "| %s | %s |\n", k, fmt.Sprintf(format, v...)) }
	row("influencers, shards, simulators, interval", "%d, %d, %d, %s", r.PKs, r.Shards, r.Sims, r.Interval)
	row("measured", "%.0f s, %.0f polls", r.MeasuredSeconds, r.Polls)
	row("polls/s (target)", "%.0f (%.0f)", r.PollsPerSecond, r.TargetPollsPerSec)
	row("coverage per cycle (min)", "%.5f", r.MinCycleCoverage)
	row("exporter CPU per poll", "%.1f us (%.2f cores)", r.ExporterCPUPerPoll, r.ExporterCPUCores)
	row("simulator CPU per request", "%.1f us", r.SimCPUPerRequest)
	row("poll latency p50 / p99", "%.2f ms / %.2f ms", r.PollLatencyP50Ms, r.PollLatencyP99Ms)
	row("exporter RSS", "%s MiB", fmtList(r.ExporterRSSMiB))
	row("suspicious checks answered", "%.0f (%.1f/s)", r.SuspiciousChecks, r.SuspiciousPerSec)
	row("simulator capacity", "%s", capacityString(r.SimCapacity))
	for _, u := range r.Upstreams {
		row("upstream "+u.URL, "limit %s, saturated %s, capacity estimate %.0f/s, needed %.0f/s", fmtList(u.Limits), fmtList(u.Saturated), u.Capacity, u.Demand)
	}
	row("sample age median / p99 / oldest (worst shard)", "%.1f s / %.1f s / %.1f s", r.SampleAgeP50, r.SampleAgeP99, r.OldestSampleAge)
	if r.KneeSeconds > 0 {
		row("knee found after start", "%.1f s", r.KneeSeconds)
	}
	if r.CapacityChangedTo > 0 {
		row("knee found after the capacity changed to "+capacityString(r.CapacityChangedTo), "%s", kneeString(r.KneeAfterChangeSec))
	}
	if r.ScrapePlainMB > 0 {
		row("one full scrape of shard 0, plain (CPU beyond polling)", "%.0f ms, %.1f MB", r.ScrapePlainCPUMs, r.ScrapePlainMB)
		row("one full scrape of shard 0, gzip (CPU beyond polling)", "%.0f ms, %.1f MB", r.ScrapeGzipCPUMs, r.ScrapeGzipMB)
	}
	var errs []string
	for k, v := range r.Errors {
		if v > 0 {
			errs = append(errs, fmt.Sprintf("%s=%.0f", k, v))
		}
	}
	sort.Strings(errs)
	row("failed polls by reason", "%s", strings.Join(append(errs, ""), " "))
}

func capacityString(rps float64) string {
	if rps <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f requests/s", rps)
}

func kneeString(s float64) string {
	if s <= 0 {
		return "not found"
	}
	return fmt.Sprintf("%.1f s", s)
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, ", ")
}

func cpu(ps []*proc.Proc) time.Duration {
	var t time.Duration
	for _, p := range ps {
		d, _ := p.CPU()
		t += d
	}
	return t
}

// simRequests sums the influencer GETs the simulators served.
func simRequests(urls []string) float64 {
	var n float64
	for _, u := range urls {
		if f, err := promtext.Fetch(http.DefaultClient, u+"/metrics"); err == nil {
			n += f.Sum("mockstagram_sim_requests_total", "route", "influencer")
		}
	}
	return n
}

func scrapeSize(url string, gz bool) (int64, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Encoding", "identity")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	// A bare transport: the body is counted as sent, not decompressed.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

func pollsSince(before []promtext.Families, now promtext.Families, shard int) float64 {
	return now.Sum("mockstagram_exporter_polls_total") - before[shard].Sum("mockstagram_exporter_polls_total")
}

// latency estimates p50 and p99 of the poll latency over the measured
// window from the histogram buckets, interpolating within a bucket.
func latency(before, after []promtext.Families) (p50, p99 float64) {
	counts := map[float64]float64{}
	var total float64
	for i := range after {
		for _, m := range after[i].Series("mockstagram_exporter_poll_duration_seconds") {
			for _, b := range m.GetHistogram().GetBucket() {
				counts[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
			total += float64(m.GetHistogram().GetSampleCount())
		}
		for _, m := range before[i].Series("mockstagram_exporter_poll_duration_seconds") {
			for _, b := range m.GetHistogram().GetBucket() {
				counts[b.GetUpperBound()] -= float64(b.GetCumulativeCount())
			}
			total -= float64(m.GetHistogram().GetSampleCount())
		}
	}
	var bounds []float64
	for b := range counts {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	q := func(phi float64) float64 {
		want := phi * total
		prevB, prevC := 0.0, 0.0
		for _, b := range bounds {
			if c := counts[b]; c >= want {
				if c == prevC {
					return b * 1000
				}
				return (prevB + (b-prevB)*(want-prevC)/(c-prevC)) * 1000
			}
			prevB, prevC = b, counts[b]
		}
		return math.Inf(1)
	}
	if total <= 0 {
		return 0, 0
	}
	return q(0.5), q(0.99)
}
