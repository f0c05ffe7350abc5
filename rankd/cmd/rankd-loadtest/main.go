// Command rankd-loadtest measures rankd's HTTP latency the way
// docs/rankd.md quotes it. It starts a simulator, one exporter and rankd
// from bin/, waits until rankd's snapshot holds every influencer, then runs
// a load generator from Debian against GET /api/v1/influencers/{pk} at
// random pks and, alternating with it, against rankd's empty /-/healthy:
// the floor that net/http and the machine give any answer. Refreshes run
// all along. It prints every run and the medians: requests/s, p50, p90,
// p99 and rankd's CPU per request.
//
// Two generators: wrk (a closed loop: each connection sends its next
// request when the answer arrives, so it finds the saturation point) and
// h2load (a fixed rate per connection).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

type cli struct {
	BinDir      string        `name:"bin.dir" default:"bin" help:"Directory holding mockstagram-sim, mockstagram_exporter and rankd."`
	WorkDir     string        `name:"work.dir" default:"data/rankd-loadtest" help:"Where process logs and the generator's files go."`
	PKCount     int           `name:"pk.count" default:"1000000" help:"Influencers (from pk 1000000), all polled once a minute."`
	Generator   string        `name:"generator" default:"wrk" enum:"wrk,h2load" help:"Load generator: wrk (closed loop) or h2load (fixed rate)."`
	Connections int           `name:"connections" help:"Connections (default: 2 for wrk, 20 for h2load)."`
	Rate        int           `name:"rate" default:"10000" help:"h2load only: requests/s over all connections."`
	Duration    time.Duration `name:"duration" default:"15s" help:"Length of one run."`
	Runs        int           `name:"runs" default:"5" help:"Runs per target; the API and /-/healthy alternate."`
	Refresh     time.Duration `name:"refresh.interval" default:"5s" help:"rankd --refresh.interval."`
	RankdArgs   []string      `name:"rankd.arg" help:"Extra flag for rankd (repeatable)."`
	JSON        string        `name:"json" help:"Also write the runs as JSON to this file."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("rankd-loadtest"), kong.Description("Measures rankd's HTTP latency under a load generator while refreshes run."),
		kong.DefaultEnvars("RANKD_LOADTEST"))
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "rankd-loadtest: %v\n", err)
		os.Exit(1)
	}
}

// result is one run of the generator against one target.
type result struct {
	Target      string  `json:"target"` // "api" or "healthy"
	Requests    int     `json:"requests"`
	PerSecond   float64 `json:"requestsPerSecond"`
	P50Ms       float64 `json:"p50Ms"`
	P90Ms       float64 `json:"p90Ms"`
	P99Ms       float64 `json:"p99Ms"`
	CPUPerReqUs float64 `json:"rankdCpuPerRequestUs"`
}

func run(ctx context.Context, c *cli, out io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	st := &stack.Stack{BinDir: c.BinDir, LogDir: c.WorkDir}
	defer st.Stop()
	pks := pkrange.First(c.PKCount)
	sim, err := st.Start(ctx, "sim", stack.Simulator{PKs: pks, Seed: 1, LogLevel: "warn"})
	if err != nil {
		return err
	}
	exp, err := st.Start(ctx, "exporter", stack.Exporter{Upstreams: []string{sim.URL}, PKs: pks, LogLevel: "warn"})
	if err != nil {
		return err
	}
	rankd, err := st.Start(ctx, "rankd", stack.Rankd{Exporters: []string{exp.URL}, Refresh: c.Refresh, LogLevel: "warn", Extra: c.RankdArgs})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "waiting until rankd holds all %d influencers (the exporter's first poll cycle, about a minute)...\n", c.PKCount)
	if err := waitComplete(ctx, rankd.URL, c.PKCount, st, out); err != nil {
		return err
	}
	gen, err := newGenerator(c, rankd.URL, pks)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "%s, %d connection(s), %s per run, %d run(s) per target, rankd refreshing every %s\n",
		c.Generator, c.Connections, c.Duration, c.Runs, c.Refresh)
	var runs []result
	for range c.Runs {
		for _, target := range []string{"api", "healthy"} {
			cpu0, err := rankd.CPU()
			if err != nil {
				return err
			}
			r, err := gen(ctx, target)
			if err != nil {
				return err
			}
			cpu1, err := rankd.CPU()
			if err != nil {
				return fmt.Errorf("rankd: %w\n%s", err, rankd.Tail(20))
			}
			r.Target = target
			r.CPUPerReqUs = float64((cpu1 - cpu0).Microseconds()) / float64(r.Requests)
			fmt.Fprintln(out, "  "+r.String())
			runs = append(runs, r)
			if err := st.Exited(); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "medians of %d run(s):\n", c.Runs)
	for _, target := range []string{"api", "healthy"} {
		fmt.Fprintln(out, "  "+medians(runs, target).String())
	}
	if c.JSON != "" {
		b, _ := json.MarshalIndent(runs, "", "  ")
		return os.WriteFile(c.JSON, append(b, '\n'), 0o644)
	}
	return nil
}

// validate fills in the default connections and checks that the generator
// is installed and can run as asked.
func (c *cli) validate() error {
	if c.Connections == 0 {
		c.Connections = map[string]int{"wrk": 2, "h2load": 20}[c.Generator]
	}
	if _, err := exec.LookPath(c.Generator); err != nil {
		pkg := map[string]string{"wrk": "wrk", "h2load": "nghttp2-client"}[c.Generator]
		return fmt.Errorf("%s is not installed; install it with apt-get install %s", c.Generator, pkg)
	}
	if c.Generator == "h2load" && (c.Rate < c.Connections || c.Rate%c.Connections != 0) {
		return fmt.Errorf("rate=%d must be a multiple of connections=%d (h2load paces each connection at rate/connections)", c.Rate, c.Connections)
	}
	if c.Duration < time.Second || c.Duration%time.Second != 0 {
		return fmt.Errorf("duration=%s must be whole seconds, at least 1s (the generators take seconds)", c.Duration)
	}
	return nil
}

// generator runs the load generator against target ("api" or "healthy")
// once.
type generator func(ctx context.Context, target string) (result, error)

// newGenerator writes the chosen generator's input files for the rankd at
// base, which serves pks.
func newGenerator(c *cli, base string, pks pkrange.Range) (generator, error) {
	targets := map[string]string{"api": "", "healthy": base + "/-/healthy"}
	switch c.Generator {
	case "wrk":
		script := filepath.Join(c.WorkDir, "random-pk.lua")
		if err := os.WriteFile(script, fmt.Appendf(nil, "request = function()\n  return wrk.format(\"GET\", \"/api/v1/influencers/\" .. math.random(%d, %d))\nend\n", pks.Min, pks.Max), 0o644); err != nil {
			return nil, err
		}
		return func(ctx context.Context, target string) (result, error) {
			args := []string{"-t1", "-c" + strconv.Itoa(c.Connections), fmt.Sprintf("-d%ds", int(c.Duration.Seconds())), "--latency"}
			url := targets[target]
			if target == "api" {
				args, url = append(args, "-s", script), base
			}
			b, err := exec.CommandContext(ctx, "wrk", append(args, url)...).CombinedOutput()
			if err != nil {
				return result{}, fmt.Errorf("wrk: %v\n%s", err, b)
			}
			return parseWrk(string(b))
		}, nil
	case "h2load":
		uris := map[string]string{"api": filepath.Join(c.WorkDir, "uris-api.txt"), "healthy": filepath.Join(c.WorkDir, "uris-healthy.txt")}
		if err := writeURIs(uris["api"], base, pks); err != nil {
			return nil, err
		}
		if err := os.WriteFile(uris["healthy"], []byte(targets["healthy"]+"\n"), 0o644); err != nil {
			return nil, err
		}
		return func(ctx context.Context, target string) (result, error) {
			log := filepath.Join(c.WorkDir, "h2load.log")
			os.Remove(log)
			args := []string{"--h1", "-c", strconv.Itoa(c.Connections), "--rps", strconv.Itoa(c.Rate / c.Connections),
				"-D", strconv.Itoa(int(c.Duration.Seconds())), "-i", uris[target], "--log-file=" + log}
			if b, err := exec.CommandContext(ctx, "h2load", args...).CombinedOutput(); err != nil {
				return result{}, fmt.Errorf("h2load: %v\n%s", err, b)
			}
			f, err := os.Open(log)
			if err != nil {
				return result{}, err
			}
			defer f.Close()
			return parseH2loadLog(f)
		}, nil
	}
	return nil, fmt.Errorf("unknown --generator=%q; use wrk or h2load", c.Generator)
}

func (r result) String() string {
	return fmt.Sprintf("%-8s %8.0f req/s  p50 %6.3f ms  p90 %6.3f ms  p99 %6.3f ms  rankd CPU %5.1f us/request (refreshes included)",
		r.Target, r.PerSecond, r.P50Ms, r.P90Ms, r.P99Ms, r.CPUPerReqUs)
}

// waitComplete waits until rankd's snapshot is complete and holds n
// influencers, or a process dies.
func waitComplete(ctx context.Context, base string, n int, procs *stack.Stack, out io.Writer) error {
	client := &http.Client{Timeout: 5 * time.Second}
	last := time.Now()
	for {
		var st struct {
			Complete    bool `json:"complete"`
			Influencers int  `json:"influencers"`
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/status", nil)
		if resp, err := client.Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if st.Complete && st.Influencers == n {
			return nil
		}
		if time.Since(last) >= 15*time.Second {
			fmt.Fprintf(out, "  rankd holds %d of %d influencers\n", st.Influencers, n)
			last = time.Now()
		}
		if err := procs.Exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// writeURIs writes h2load's input: random influencer URLs, cycled through.
func writeURIs(path, base string, pks pkrange.Range) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		fmt.Fprintf(w, "%s/api/v1/influencers/%d\n", base, pks.Min+int64(r.IntN(pks.Len())))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var (
	wrkPercentile = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkRequests   = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkErrors     = regexp.MustCompile(`(?m)^\s*(Non-2xx or 3xx responses|Socket errors):.*$`)
)

// parseWrk reads wrk --latency's report. Any error answer or socket error
// fails the run: latencies of errors are not latencies of answers.
func parseWrk(s string) (result, error) {
	if m := wrkErrors.FindString(s); m != "" {
		return result{}, fmt.Errorf("wrk saw errors (%s); the figures would not be of answers:\n%s", strings.TrimSpace(m), s)
	}
	var r result
	m := wrkRequests.FindStringSubmatch(s)
	if m == nil {
		return result{}, fmt.Errorf("no request count in wrk's output:\n%s", s)
	}
	r.Requests, _ = strconv.Atoi(m[1])
	secs, _ := strconv.ParseFloat(m[2], 64)
	secs *= map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m[3]]
	if r.Requests == 0 || secs == 0 {
		return result{}, fmt.Errorf("wrk made no requests:\n%s", s)
	}
	r.PerSecond = float64(r.Requests) / secs
	found := 0
	for _, m := range wrkPercentile.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		v *= map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}[m[3]]
		switch m[1] {
		case "50":
			r.P50Ms = v
		case "90":
			r.P90Ms = v
		case "99":
			r.P99Ms = v
		}
		found++
	}
	if found != 3 {
		return result{}, fmt.Errorf("no latency distribution in wrk's output (was --latency given?):\n%s", s)
	}
	return r, nil
}

// parseH2loadLog reads h2load's --log-file: per request, the start time
// (us since the epoch), the status and the microseconds to the end of the
// answer. Percentiles are nearest rank.
func parseH2loadLog(f io.Reader) (result, error) {
	var lat []int64
	var first, last int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 3 {
			return result{}, fmt.Errorf("h2load log line %q has fewer than 3 columns", sc.Text())
		}
		start, err1 := strconv.ParseInt(cols[0], 10, 64)
		d, err2 := strconv.ParseInt(cols[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return result{}, fmt.Errorf("h2load log line %q: %w", sc.Text(), err)
		}
		if cols[1] != "200" {
			return result{}, fmt.Errorf("h2load got status %s; the figures would not be of answers", cols[1])
		}
		if len(lat) == 0 || start < first {
			first = start
		}
		last = max(last, start)
		lat = append(lat, d)
	}
	if err := sc.Err(); err != nil {
		return result{}, err
	}
	if len(lat) < 2 || last == first {
		return result{}, errors.New("h2load made fewer than 2 requests")
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e3 }
	return result{Requests: len(lat), PerSecond: float64(len(lat)) / (float64(last-first) / 1e6),
		P50Ms: q(0.5), P90Ms: q(0.9), P99Ms: q(0.99)}, nil
}

// medians is the median of every figure over the runs against target.
func medians(runs []result, target string) result {
	med := func(f func(result) float64) float64 {
		var v []float64
		for _, r := range runs {
			if r.Target == target {
				v = append(v, f(r))
			}
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return result{Target: target,
		PerSecond:   med(func(r result) float64 { return r.PerSecond }),
		P50Ms:       med(func(r result) float64 { return r.P50Ms }),
		P90Ms:       med(func(r result) float64 { return r.P90Ms }),
		P99Ms:       med(func(r result) float64 { return r.P99Ms }),
		CPUPerReqUs: med(func(r result) float64 { return r.CPUPerReqUs }),
	}
}
