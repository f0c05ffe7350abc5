// Command bench-stack measures the whole pipeline at full scale on one
// machine: it runs the launcher (bin/mockstagram-stack, 1M influencers by
// default), lets it settle, then samples every process's CPU and RSS from
// /proc, VictoriaMetrics' rows ingested against the exporters' successful
// polls, vmalert's rule evaluation times, VictoriaMetrics' rollup cache
// resets and the alerts firing, and times the dashboards' queries. Last
// it stops the pipeline as an operator does (SIGINT) and counts every
// follower and following sample VictoriaMetrics stored against the
// successful polls the exporters logged at their stop: a lossless pipeline
// stores exactly one of each per poll. It prints a table (medians over the
// sampling intervals) and writes JSON.
//
// The launcher, binaries and victoria/ directory are flags, so that an
// older checkout built into another directory is measured the same way
// (docs/performance.md shows a before and after).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/promtext"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
)

type cli struct {
	Launcher    string        `name:"launcher" default:"bin/mockstagram-stack" help:"The launcher binary to run."`
	BinDir      string        `name:"bin.dir" default:"bin" help:"Binaries the launcher starts (its --bin.dir)."`
	VictoriaDir string        `name:"victoria.dir" default:"victoria" help:"scrape.yml and rules of the measured version (the launcher's --victoria.dir)."`
	WorkDir     string        `name:"work.dir" default:"data/bench-stack/work" help:"The launcher's --data.dir; emptied first."`
	PKCount     int           `name:"pk.count" default:"1000000" help:"Influencers."`
	Shards      int           `name:"shards" default:"2" help:"Exporter shards."`
	PortsBase   int           `name:"ports.base" default:"19200" help:"The launcher's --ports.base."`
	Warmup      time.Duration `name:"warmup" default:"4m" help:"Wait this long after the pipeline is up before measuring (the first poll cycle and VictoriaMetrics' first merges)."`
	Measure     time.Duration `name:"measure" default:"8m" help:"Length of the measured window."`
	Every       time.Duration `name:"every" default:"30s" help:"Sampling interval inside the window; figures are medians over these intervals."`
	Queries     int           `name:"queries" default:"5" help:"Times each dashboard query is run after the window."`
	Count       bool          `name:"count" default:"true" negatable:"" help:"Stop the pipeline at the end and count the stored samples against the successful polls (--no-count: leave it to the deferred stop)."`
	JSON        string        `name:"json" help:"Also write the results here."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("bench-stack"), kong.Description("Measures the whole pipeline at 1M influencers, per process."),
		kong.DefaultEnvars("BENCH_STACK"))
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-stack: %v\n", err)
		os.Exit(1)
	}
}

// Result is what one run measured.
type Result struct {
	Launcher          string                 `json:"launcher"`
	PKCount           int                    `json:"pk_count"`
	Shards            int                    `json:"shards"`
	Window            string                 `json:"window"`
	Processes         map[string]ProcResult  `json:"processes"`
	PipelineCPU       float64                `json:"pipeline_cpu_cores_excl_simulator"` // median
	RowsPerPoll       float64                `json:"vm_rows_per_poll_sample"`           // over the window
	RowsMedian        float64                `json:"vm_rows_per_poll_sample_median"`    // of the intervals
	RowsPerSec        float64                `json:"vm_rows_per_second"`
	PollsPerSec       float64                `json:"successful_polls_per_second"`
	Groups            map[string]GroupResult `json:"rule_groups"`
	CacheResets       int                    `json:"rollup_cache_resets"`
	CacheResetsPerMin float64                `json:"rollup_cache_resets_per_minute"`
	Firing            []string               `json:"firing_alerts"`
	Queries           []QueryResult          `json:"dashboard_queries"`
	Count             *CountResult           `json:"stored_vs_polled,omitempty"`
}

// CountResult is the whole run's stored samples against its successful
// polls, counted after a clean stop.
type CountResult struct {
	Polled         string // how long the exporters polled, start to stop
	Polls          int64  // successful polls, all shards, from their stop lines
	Followers      int64  // follower samples VictoriaMetrics stored
	Following      int64  // following samples
	FinalScrapes   int    // shards that logged their final scrape done
	StopSeconds    float64
	LostFollowers  int64 // Polls - Followers
	LostFollowing  int64
	ShardsReported int
	NotCounted     string `json:",omitempty"` // why the count could not be taken
}

// ProcResult is one process over the window.
type ProcResult struct {
	CPUMedian, CPUMax float64 // cores, per sampling interval
	RSSMedianMiB      float64
	RSSMaxMiB         float64
}

// GroupResult is one vmalert group over the window.
type GroupResult struct {
	Evaluations float64
	MeanSeconds float64
}

// QueryResult is one dashboard query, run again and again.
type QueryResult struct {
	Query    string
	FirstMs  float64
	MedianMs float64 // of the runs after the first
}

func run(ctx context.Context, c *cli, out io.Writer) error {
	if c.Every <= 0 || c.Measure < 2*c.Every {
		return fmt.Errorf("measure=%s must hold at least two intervals of every=%s", c.Measure, c.Every)
	}
	if err := os.RemoveAll(c.WorkDir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.WorkDir, 0o755); err != nil {
		return err
	}
	args := []string{"--bin.dir=" + c.BinDir, "--data.dir=" + c.WorkDir, "--victoria.dir=" + c.VictoriaDir,
		"--pk.count=" + strconv.Itoa(c.PKCount), "--shards=" + strconv.Itoa(c.Shards),
		"--ports.base=" + strconv.Itoa(c.PortsBase), "--status.every=1m"}
	fmt.Fprintf(out, "%s %s\n", c.Launcher, strings.Join(args, " "))
	launcher, err := proc.Start("mockstagram-stack", c.Launcher, args, filepath.Join(c.WorkDir, "launcher.log"), nil)
	if err != nil {
		return err
	}
	defer func() {
		launcher.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-launcher.Done():
		case <-time.After(2 * time.Minute):
			launcher.Cmd.Process.Kill()
		}
	}()
	// Up when the launcher has written where everything is.
	for {
		if _, err := os.Stat(filepath.Join(c.WorkDir, "endpoints.json")); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-launcher.Done():
			return fmt.Errorf("the launcher exited before the pipeline was up: %v\n%s", launcher.Err(), launcher.Tail(20))
		case <-time.After(time.Second):
		}
	}
	up := time.Now()
	fmt.Fprintf(out, "pipeline up; warming up for %s\n", c.Warmup)
	if err := sleep(ctx, launcher, c.Warmup); err != nil {
		return err
	}
	u := urls{base: c.PortsBase, shards: c.Shards}
	var samples []sample
	logPath := filepath.Join(c.WorkDir, "logs", "victoria-metrics.log")
	for n := int(c.Measure / c.Every); len(samples) <= n; {
		s, err := take(launcher.Cmd.Process.Pid, u, logPath)
		if err != nil {
			return err
		}
		samples = append(samples, s)
		fmt.Fprintf(out, "sample %d of %d\n", len(samples), n+1)
		if len(samples) <= n {
			if err := sleep(ctx, launcher, c.Every); err != nil {
				return err
			}
		}
	}
	r := summarize(c, samples)
	if r.Firing, err = firing(u.vmalert()); err != nil {
		return err
	}
	r.Queries = timeQueries(ctx, u.vm(), c.Queries)
	if c.Count {
		fmt.Fprintf(out, "stopping the pipeline (SIGINT) to count the stored samples against the successful polls...\n")
		if r.Count, err = count(ctx, c, launcher, up); err != nil {
			return err
		}
	}
	print(out, r)
	if c.JSON != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.MkdirAll(filepath.Dir(c.JSON), 0o755); err != nil {
			return err
		}
		return os.WriteFile(c.JSON, append(b, '\n'), 0o644)
	}
	return nil
}

func sleep(ctx context.Context, launcher *proc.Proc, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-launcher.Done():
		return fmt.Errorf("the launcher exited: %v\n%s", launcher.Err(), launcher.Tail(20))
	case <-time.After(d):
		return nil
	}
}

// urls follows the launcher's port block.
type urls struct{ base, shards int }

func (u urls) at(off int) string { return "http://127.0.0.1:" + strconv.Itoa(u.base+off) }
func (u urls) vm() string        { return u.at(1) }
func (u urls) vmalert() string   { return u.at(2) }
func (u urls) exporter(i int) string {
	return u.at(10 + i)
}

// sample is one reading of everything.
type sample struct {
	at      time.Time
	cpu     map[string]time.Duration // by process name
	rss     map[string]int64
	rows    float64 // vm_rows_inserted_total
	polls   float64 // successful polls, all shards
	evalSum map[string]float64
	evalN   map[string]float64
	resets  int
}

func take(launcherPID int, u urls, vmLog string) (sample, error) {
	s := sample{at: time.Now(), cpu: map[string]time.Duration{}, rss: map[string]int64{},
		evalSum: map[string]float64{}, evalN: map[string]float64{}}
	kids, err := children(launcherPID)
	if err != nil {
		return s, err
	}
	kids[launcherPID] = "mockstagram-stack"
	for pid, name := range kids {
		cpu, err1 := proc.CPUOf(pid)
		rss, err2 := proc.RSSOf(pid)
		if err1 != nil || err2 != nil {
			continue // exited between the listing and the reading
		}
		s.cpu[name] += cpu
		s.rss[name] += rss
	}
	vm, err := promtext.Fetch(http.DefaultClient, u.vm()+"/metrics")
	if err != nil {
		return s, fmt.Errorf("cannot read VictoriaMetrics' metrics: %w", err)
	}
	s.rows = vm.Sum("vm_rows_inserted_total")
	for i := range u.shards {
		f, err := promtext.Fetch(http.DefaultClient, u.exporter(i)+"/telemetry")
		if err != nil {
			return s, fmt.Errorf("cannot read exporter %d's telemetry: %w", i, err)
		}
		s.polls += f.Sum("mockstagram_exporter_polls_total", "outcome", "success")
	}
	va, err := promtext.Fetch(http.DefaultClient, u.vmalert()+"/metrics")
	if err != nil {
		return s, fmt.Errorf("cannot read vmalert's metrics: %w", err)
	}
	// vmalert writes its summaries untyped: name_sum and name_count.
	for _, m := range va.Series("vmalert_iteration_duration_seconds_count") {
		g := promtext.Label(m, "group")
		s.evalN[g] = va.Sum("vmalert_iteration_duration_seconds_count", "group", g)
		s.evalSum[g] = va.Sum("vmalert_iteration_duration_seconds_sum", "group", g)
	}
	if b, err := os.ReadFile(vmLog); err == nil {
		s.resets = strings.Count(string(b), "resetting rollup result cache")
	}
	return s, nil
}

// children maps the launcher's child processes to their binary names.
func children(ppid int) (map[int]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("cannot list processes (Linux /proc needed): %w", err)
	}
	out := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		name := filepath.Base(strings.SplitN(string(cmd), "\x00", 2)[0])
		if strings.HasPrefix(name, "mockstagram_exporter") {
			// One row per shard.
			name = fmt.Sprintf("%s-%d", name, len(filterPrefix(out, "mockstagram_exporter")))
		}
		out[pid] = name
	}
	return out, nil
}

func filterPrefix(m map[int]string, p string) []string {
	var o []string
	for _, v := range m {
		if strings.HasPrefix(v, p) {
			o = append(o, v)
		}
	}
	return o
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(c *cli, ss []sample) Result {
	first, last := ss[0], ss[len(ss)-1]
	window := last.at.Sub(first.at)
	r := Result{Launcher: c.Launcher, PKCount: c.PKCount, Shards: c.Shards, Window: window.Round(time.Second).String(),
		Processes: map[string]ProcResult{}, Groups: map[string]GroupResult{}}
	names := map[string]bool{}
	for _, s := range ss {
		for n := range s.cpu {
			names[n] = true
		}
	}
	pipeline := make([]float64, len(ss)-1)
	var ratios []float64
	for n := range names {
		var cpu, rss []float64
		for k := 1; k < len(ss); k++ {
			a, b := ss[k-1], ss[k]
			if _, ok := a.cpu[n]; !ok {
				continue
			}
			cores := (b.cpu[n] - a.cpu[n]).Seconds() / b.at.Sub(a.at).Seconds()
			cpu = append(cpu, cores)
			if n != "mockstagram-sim" && n != "mockstagram-stack" {
				pipeline[k-1] += cores
			}
		}
		for _, s := range ss {
			if v, ok := s.rss[n]; ok {
				rss = append(rss, float64(v)/(1<<20))
			}
		}
		mx := func(v []float64) float64 {
			m := 0.0
			for _, x := range v {
				m = max(m, x)
			}
			return m
		}
		r.Processes[n] = ProcResult{CPUMedian: median(cpu), CPUMax: mx(cpu), RSSMedianMiB: median(rss), RSSMaxMiB: mx(rss)}
	}
	for k := 1; k < len(ss); k++ {
		a, b := ss[k-1], ss[k]
		if dp := b.polls - a.polls; dp > 0 {
			ratios = append(ratios, (b.rows-a.rows)/(2*dp))
		}
	}
	r.PipelineCPU = median(pipeline)
	// The window's ratio is the figure: the 10-minute info scrapes land in
	// some 30 s intervals and not others, which skews a median of
	// intervals (upwards when about half the intervals hold one).
	r.RowsPerPoll = (last.rows - first.rows) / (2 * (last.polls - first.polls))
	r.RowsMedian = median(ratios)
	r.RowsPerSec = (last.rows - first.rows) / window.Seconds()
	r.PollsPerSec = (last.polls - first.polls) / window.Seconds()
	for g, n := range last.evalN {
		dn := n - first.evalN[g]
		gr := GroupResult{Evaluations: dn}
		if dn > 0 {
			gr.MeanSeconds = (last.evalSum[g] - first.evalSum[g]) / dn
		}
		r.Groups[g] = gr
	}
	r.CacheResets = last.resets - first.resets
	r.CacheResetsPerMin = float64(r.CacheResets) / window.Minutes()
	return r
}

// firing lists the alerts firing now, as name{pk or instance} (scope).
func firing(vmalert string) ([]string, error) {
	alerts, err := victoria.Alerts(nil, vmalert)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range alerts {
		if a.State == "firing" {
			out = append(out, fmt.Sprintf("%s (%s) %v", a.Name, a.Labels["scope"], a.Labels))
		}
	}
	sort.Strings(out)
	return out, nil
}

// dashboardQueries are what the Influencer and Leaderboard dashboards ask
// VictoriaMetrics for, as 24 h range queries at a 1 m step.
var dashboardQueries = []string{
	`mockstagram_influencer_followers{pk="1000001"}`,
	`mockstagram_influencer_followers{pk="1000001"} / (mockstagram_influencer_following{pk="1000001"} > 0)`,
	`last_over_time(mockstagram_influencer_suspicious{pk="1000001"}[2d])`,
	`mockstagram_population_followers_average`,
	`sum by (outcome) (rate(mockstagram_exporter_polls_total[2m]))`,
	`count(ALERTS{alertname="InfluencerFollowerJump", alertstate="firing"}) or vector(0)`,
}

func timeQueries(ctx context.Context, vm string, n int) []QueryResult {
	var out []QueryResult
	for _, q := range dashboardQueries {
		var ms []float64
		for range max(n, 2) {
			end := time.Now().Truncate(time.Minute)
			v := url.Values{"query": {q}, "start": {strconv.FormatInt(end.Add(-24*time.Hour).Unix(), 10)},
				"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"60"}}
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "GET", vm+"/api/v1/query_range?"+v.Encode(), nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = errors.New(resp.Status)
				}
			}
			if err != nil {
				ms = append(ms, -1)
				continue
			}
			ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
			time.Sleep(2 * time.Second) // a dashboard refresh, not a hammer
		}
		out = append(out, QueryResult{Query: q, FirstMs: ms[0], MedianMs: median(ms[1:])})
	}
	return out
}

func print(out io.Writer, r Result) {
	fmt.Fprintf(out, "\n%d influencers, %d shards, window %s (medians over %s intervals)\n\n", r.PKCount, r.Shards, r.Window, "the sampling")
	fmt.Fprintf(out, "| process | CPU cores (median) | CPU max | RSS MiB (median) | RSS max |\n|---|---|---|---|---|\n")
	var names []string
	for n := range r.Processes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := r.Processes[n]
		fmt.Fprintf(out, "| %s | %.3f | %.3f | %.0f | %.0f |\n", n, p.CPUMedian, p.CPUMax, p.RSSMedianMiB, p.RSSMaxMiB)
	}
	fmt.Fprintf(out, "\npipeline CPU, simulator and launcher excluded: %.3f cores (median)\n", r.PipelineCPU)
	fmt.Fprintf(out, "VictoriaMetrics rows ingested per successful poll sample: %.3f over the window (%.0f rows/s for %.0f polls/s, 2 counts each; median of the intervals %.3f)\n", r.RowsPerPoll, r.RowsPerSec, r.PollsPerSec, r.RowsMedian)
	fmt.Fprintf(out, "rollup result cache resets: %d (%.2f a minute)\n", r.CacheResets, r.CacheResetsPerMin)
	var groups []string
	for g := range r.Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	fmt.Fprintf(out, "\n| rule group | evaluations | mean seconds |\n|---|---|---|\n")
	for _, g := range groups {
		fmt.Fprintf(out, "| %s | %.0f | %.3f |\n", g, r.Groups[g].Evaluations, r.Groups[g].MeanSeconds)
	}
	fmt.Fprintf(out, "\nfiring alerts: %d\n", len(r.Firing))
	for _, a := range r.Firing {
		fmt.Fprintf(out, "  %s\n", a)
	}
	fmt.Fprintf(out, "\n| dashboard query (24 h, 1 m step) | first ms | median ms of the rest |\n|---|---|---|\n")
	for _, q := range r.Queries {
		fmt.Fprintf(out, "| `%s` | %.1f | %.1f |\n", q.Query, q.FirstMs, q.MedianMs)
	}
	if n := r.Count; n != nil && n.NotCounted != "" {
		fmt.Fprintf(out, "\nstored against polled: not counted: %s\n", n.NotCounted)
	} else if n != nil {
		fmt.Fprintf(out, "\nstored against polled, the whole run (%s of polling, then a clean stop in %.1f s, %d of %d shards' final scrapes done):\n",
			n.Polled, n.StopSeconds, n.FinalScrapes, r.Shards)
		fmt.Fprintf(out, "  successful polls %d; stored follower samples %d (lost %d), following samples %d (lost %d)\n",
			n.Polls, n.Followers, n.LostFollowers, n.Following, n.LostFollowing)
	}
}
