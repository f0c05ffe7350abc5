// Command bench-storage measures what the pipeline's history costs on
// disk. It writes a synthetic but realistic history into a fresh
// single-node VictoriaMetrics through its import API: pk.count influencers
// polled once a minute for the given days (Mockstagram's random walk:
// followers sigma 10,000 per poll floored at 5,000, following sigma 100
// floored at 50; poll times on each pk's own phase with millisecond
// jitter), the info series every 10 minutes and one verdict a day, exactly
// what the scrape stores. It then flushes and merges every part, measures
// the data and index directories, checks that every sample is there, and
// extrapolates to 1M influencers for a day, a month and a year. A second
// VictoriaMetrics receives the hourly last values of the counts (what
// victoria/streamaggr-hourly.yml makes vmagent write to the long-term
// store) and is measured the same way.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/promtext"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

type cli struct {
	BinDir   string        `name:"bin.dir" default:"bin" help:"Where victoria-metrics is."`
	WorkDir  string        `name:"work.dir" default:"data/bench-storage/work" help:"VictoriaMetrics' data directories go here; emptied first."`
	PKCount  int           `name:"pk.count" default:"100000" help:"Influencers in the synthetic history."`
	Days     int           `name:"days" default:"1" help:"Days of history, ending now."`
	Interval time.Duration `name:"poll.interval" default:"60s" help:"Poll interval of the history."`
	JitterMs float64       `name:"jitter-ms" default:"25" help:"Standard deviation of a poll's delay after its scheduled time, in ms (half-normal)."`
	Scale    int           `name:"scale.to" default:"1000000" help:"Influencers to extrapolate to."`
	Seed     uint64        `name:"seed" default:"1" help:"Seed of the random walks."`
	JSON     string        `name:"json" help:"Also write the results here."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("bench-storage"), kong.Description("Measures VictoriaMetrics' disk use for the pipeline's history."),
		kong.DefaultEnvars("BENCH_STORAGE"))
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-storage: %v\n", err)
		os.Exit(1)
	}
}

// Tier is one VictoriaMetrics measured after its history was imported and
// merged.
type Tier struct {
	Name           string
	Samples        int64
	Series         int64
	DataBytes      int64
	IndexBytes     int64
	BytesPerSample float64 // data and index
	ImportSeconds  float64
	ImportCPU      float64 // VictoriaMetrics' CPU seconds while importing
	MergeCPU       float64 // while flushing and merging
	RSSMiB         float64 // after the import and merge
	QueryRSSMiB    float64 // after one population query over the history
	PerDay1M       float64 // bytes a day at scale.to influencers
}

// Result is the whole run.
type Result struct {
	PKCount, Days, ScaleTo int
	Raw, Hourly            Tier
	RawPerMonth1M          float64
	RawPerYear1M           float64
	HourlyPerYear1M        float64
}

func run(ctx context.Context, c *cli, out io.Writer) error {
	if c.PKCount < 1 || c.Days < 1 || c.Interval < time.Second {
		return fmt.Errorf("pk.count=%d, days=%d and poll.interval=%s must be positive (interval at least 1s)", c.PKCount, c.Days, c.Interval)
	}
	if err := os.RemoveAll(c.WorkDir); err != nil {
		return err
	}
	st := &stack.Stack{BinDir: c.BinDir, LogDir: filepath.Join(c.WorkDir, "logs"), ReadyTimeout: time.Minute, StopTimeout: time.Minute}
	defer st.Stop()
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-time.Duration(c.Days) * 24 * time.Hour)
	h := newHistory(c, start, end)
	fmt.Fprintf(out, "%d influencers x %d day(s) at %s polls: %d samples of counts, %d of info, %d verdicts\n",
		c.PKCount, c.Days, c.Interval, 2*int64(c.PKCount)*int64(h.polls), int64(c.PKCount)*int64(h.infos), int64(c.PKCount)*int64(c.Days))
	var r Result
	r.PKCount, r.Days, r.ScaleTo = c.PKCount, c.Days, c.Scale
	var err error
	if r.Raw, err = measure(ctx, st, c, "raw", h.raw, out); err != nil {
		return err
	}
	if r.Hourly, err = measure(ctx, st, c, "hourly", h.hourly, out); err != nil {
		return err
	}
	scale := float64(c.Scale) / float64(c.PKCount) / float64(c.Days)
	r.Raw.PerDay1M = float64(r.Raw.DataBytes+r.Raw.IndexBytes) * scale
	r.Hourly.PerDay1M = float64(r.Hourly.DataBytes+r.Hourly.IndexBytes) * scale
	r.RawPerMonth1M, r.RawPerYear1M = 30*r.Raw.PerDay1M, 365*r.Raw.PerDay1M
	r.HourlyPerYear1M = 365 * r.Hourly.PerDay1M
	print(out, c, r)
	if c.JSON != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		os.MkdirAll(filepath.Dir(c.JSON), 0o755)
		return os.WriteFile(c.JSON, append(b, '\n'), 0o644)
	}
	return nil
}

// measure starts a VictoriaMetrics, imports one tier's history, merges it
// and measures it.
func measure(ctx context.Context, st *stack.Stack, c *cli, name string, gen func(lo, hi int, w *bytes.Buffer) int64, out io.Writer) (Tier, error) {
	t := Tier{Name: name}
	dir := filepath.Join(c.WorkDir, name)
	vm, err := st.Start(ctx, "victoria-metrics-"+name, stack.Victoria{DataDir: dir, QueryFresh: true, LogLevel: "WARN",
		Extra: []string{"-retentionPeriod=100y", "-search.maxQueryDuration=10m", "-search.maxUniqueTimeseries=10000000"}})
	if err != nil {
		return t, err
	}
	pid := vm.Cmd.Process.Pid
	cpu0, _ := proc.CPUOf(pid)
	t0 := time.Now()
	const batch = 500
	jobs := make(chan [2]int)
	errs := make(chan error, 2)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for j := range jobs {
				buf.Reset()
				n := gen(j[0], j[1], &buf)
				mu.Lock()
				t.Samples += n
				mu.Unlock()
				resp, err := http.Post(vm.URL+"/api/v1/import", "application/json", &buf)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("import answered %s", resp.Status)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for lo := 0; lo < c.PKCount; lo += batch {
		select {
		case jobs <- [2]int{lo, min(lo+batch, c.PKCount)}:
		case err := <-errs:
			close(jobs)
			return t, err
		case <-ctx.Done():
			close(jobs)
			return t, ctx.Err()
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return t, err
	default:
	}
	t.ImportSeconds = time.Since(t0).Seconds()
	cpu1, _ := proc.CPUOf(pid)
	t.ImportCPU = (cpu1 - cpu0).Seconds()
	fmt.Fprintf(out, "%s: imported %d samples in %.0f s; merging\n", name, t.Samples, t.ImportSeconds)
	if err := mergeAll(ctx, vm.URL); err != nil {
		return t, err
	}
	cpu2, _ := proc.CPUOf(pid)
	t.MergeCPU = (cpu2 - cpu1).Seconds()
	rss, _ := proc.RSSOf(pid)
	t.RSSMiB = float64(rss) / (1 << 20)
	t.DataBytes = du(filepath.Join(dir, "data"))
	t.IndexBytes = du(filepath.Join(dir, "indexdb"))
	t.BytesPerSample = float64(t.DataBytes+t.IndexBytes) / float64(t.Samples)
	// Every sample is there: one population query over the whole history.
	stored, series, err := count(ctx, vm.URL, c.Days)
	if err != nil {
		return t, err
	}
	if stored != t.Samples {
		return t, fmt.Errorf("%s: VictoriaMetrics holds %d samples, %d were imported", name, stored, t.Samples)
	}
	t.Series = series
	rss, _ = proc.RSSOf(pid)
	t.QueryRSSMiB = float64(rss) / (1 << 20)
	return t, vm.Stop(time.Minute)
}

// mergeAll flushes the in-memory parts and merges every partition into
// one, then waits until no merge runs.
func mergeAll(ctx context.Context, vm string) error {
	for _, path := range []string{"/internal/force_flush", "/internal/force_merge"} {
		resp, err := http.Get(vm + path)
		if err != nil {
			return fmt.Errorf("cannot call %s: %w", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	idle := 0
	for idle < 5 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		f, err := promtext.Fetch(http.DefaultClient, vm+"/metrics")
		if err != nil {
			return err
		}
		if f.Sum("vm_active_merges") == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return nil
}

func count(ctx context.Context, vm string, days int) (samples, series int64, err error) {
	get := func(q string) (int64, error) {
		v := url.Values{"query": {q}}
		req, _ := http.NewRequestWithContext(ctx, "GET", vm+"/api/v1/query?"+v.Encode(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data.Result) != 1 {
			return 0, fmt.Errorf("cannot read the answer to %s: %v %+v", q, err, body)
		}
		s, _ := body.Data.Result[0].Value[1].(string)
		return strconv.ParseInt(s, 10, 64)
	}
	w := fmt.Sprintf("[%dh]", 24*days+2)
	if samples, err = get(`sum(count_over_time({__name__=~"mockstagram_.+"}` + w + `))`); err != nil {
		return 0, 0, err
	}
	series, err = get(`count(last_over_time({__name__=~"mockstagram_.+"}` + w + `))`)
	return samples, series, err
}

func du(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// history generates the synthetic history, pk by pk, deterministically.
type history struct {
	c            *cli
	start, end   time.Time
	polls, infos int
}

func newHistory(c *cli, start, end time.Time) *history {
	span := end.Sub(start)
	return &history{c: c, start: start, end: end, polls: int(span / c.Interval), infos: int(span / (10 * time.Minute))}
}

// walk returns pk i's poll times and counts.
func (h *history) walk(i int) (ts []int64, followers, following []int64) {
	c := h.c
	rng := rand.New(rand.NewPCG(c.Seed, uint64(i)))
	phase := int64(i) * c.Interval.Milliseconds() / int64(c.PKCount) // the scheduler spreads pks over the interval
	f := max(int64(math.Round(100_000*(1+rng.NormFloat64()))), 5_000)
	g := max(int64(math.Round(1_000*(1+rng.NormFloat64()))), 50)
	t0 := h.start.UnixMilli()
	for k := range h.polls {
		jitter := int64(math.Abs(rng.NormFloat64()) * c.JitterMs)
		ts = append(ts, t0+int64(k)*c.Interval.Milliseconds()+phase+jitter)
		f = max(f+int64(math.Round(10_000*rng.NormFloat64())), 5_000)
		g = max(g+int64(math.Round(100*rng.NormFloat64())), 50)
		followers, following = append(followers, f), append(following, g)
	}
	return ts, followers, following
}

// line is one /api/v1/import JSON line.
type line struct {
	Metric     map[string]string `json:"metric"`
	Values     []int64           `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

func (h *history) labels(name string, i int) map[string]string {
	pk := strconv.Itoa(1_000_000 + i)
	m := map[string]string{"__name__": name, "job": "mockstagram_influencers", "pk": pk}
	if name == "mockstagram_influencer_info" {
		m["job"], m["username"] = "mockstagram_influencer_info", "influencer-"+pk
	}
	return m
}

// raw writes pks [lo, hi) as the scrape stores them and returns the
// number of samples.
func (h *history) raw(lo, hi int, w *bytes.Buffer) int64 {
	enc := json.NewEncoder(w)
	var n int64
	t0 := h.start.UnixMilli()
	for i := lo; i < hi; i++ {
		ts, f, g := h.walk(i)
		enc.Encode(line{h.labels("mockstagram_influencer_followers", i), f, ts})
		enc.Encode(line{h.labels("mockstagram_influencer_following", i), g, ts})
		info := line{Metric: h.labels("mockstagram_influencer_info", i)}
		for k := range h.infos {
			info.Values = append(info.Values, 1)
			info.Timestamps = append(info.Timestamps, t0+int64(k)*600_000+int64(i)%600_000)
		}
		enc.Encode(info)
		v := line{Metric: h.labels("mockstagram_influencer_suspicious", i)}
		for d := range h.c.Days {
			v.Values = append(v.Values, int64(i%10/9)) // about 10% suspicious
			v.Timestamps = append(v.Timestamps, t0+int64(d)*86_400_000+int64(i)*86_400_000/int64(h.c.PKCount))
		}
		enc.Encode(v)
		n += int64(2*len(ts) + len(info.Values) + len(v.Values))
	}
	return n
}

// hourly writes the last value of each hour of the counts of pks [lo, hi),
// stamped at the end of the hour, as stream aggregation's `last` output
// does; an hour not over yet has no value.
func (h *history) hourly(lo, hi int, w *bytes.Buffer) int64 {
	enc := json.NewEncoder(w)
	var n int64
	for i := lo; i < hi; i++ {
		ts, f, g := h.walk(i)
		var hts, hf, hg []int64
		for k := range ts {
			hour := (ts[k]/3_600_000 + 1) * 3_600_000
			if hour > h.end.UnixMilli() {
				break // the hour is not over yet
			}
			if k == len(ts)-1 || (ts[k+1]/3_600_000+1)*3_600_000 != hour {
				hts, hf, hg = append(hts, hour), append(hf, f[k]), append(hg, g[k])
			}
		}
		enc.Encode(line{h.labels("mockstagram_influencer_followers", i), hf, hts})
		enc.Encode(line{h.labels("mockstagram_influencer_following", i), hg, hts})
		n += int64(2 * len(hts))
	}
	return n
}

func gib(b float64) string { return fmt.Sprintf("%.1f GiB", b/(1<<30)) }

func print(out io.Writer, c *cli, r Result) {
	fmt.Fprintf(out, "\n%d influencers x %d day(s), merged; extrapolated to %d influencers\n\n", r.PKCount, r.Days, r.ScaleTo)
	fmt.Fprintf(out, "| tier | samples | series | data | index | bytes/sample | import s | VM CPU s import + merge | VM RSS MiB after / after a population query | per day at %d |\n|---|---|---|---|---|---|---|---|---|---|\n", r.ScaleTo)
	for _, t := range []Tier{r.Raw, r.Hourly} {
		fmt.Fprintf(out, "| %s | %d | %d | %.1f MiB | %.1f MiB | %.2f | %.0f | %.0f + %.0f | %.0f / %.0f | %s |\n", t.Name, t.Samples, t.Series,
			float64(t.DataBytes)/(1<<20), float64(t.IndexBytes)/(1<<20), t.BytesPerSample, t.ImportSeconds, t.ImportCPU, t.MergeCPU, t.RSSMiB, t.QueryRSSMiB, gib(t.PerDay1M))
	}
	fmt.Fprintf(out, "\nraw one-minute data at %d: %s a day, %s a 30-day month, %s a year\n", r.ScaleTo, gib(r.Raw.PerDay1M), gib(r.RawPerMonth1M), gib(r.RawPerYear1M))
	fmt.Fprintf(out, "hourly last values at %d: %s a year, %s for 5 years\n", r.ScaleTo, gib(r.HourlyPerYear1M), gib(5*r.HourlyPerYear1M))
}
