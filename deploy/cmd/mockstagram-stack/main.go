// Command mockstagram-stack runs the pipeline on one machine, supervised:
// the Mockstagram simulator (unless --mockstagram.url points elsewhere), the
// exporter shards, rankd, VictoriaMetrics scraping them with
// victoria/scrape.yml, and vmalert with victoria/rules, each on its own loopback port with its
// log under --data.dir. It prints where to look, shows polling progress, and stops
// everything in order on Ctrl-C or SIGTERM. A component that dies stops the
// whole stack with the tail of its log.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/promtext"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
)

type cli struct {
	BinDir           string        `name:"bin.dir" default:"bin" help:"Directory holding the built binaries."`
	DataDir          string        `name:"data.dir" default:"data" help:"Logs and endpoints.json go here."`
	MockstagramURL   []string      `name:"mockstagram.url" sep:"," help:"Poll this Mockstagram instead of starting the simulator (repeatable)."`
	PKCount          int           `name:"pk.count" default:"1000000" help:"Influencers to track, from pk 1000000."`
	Shards           int           `name:"shards" default:"2" help:"Exporter shards."`
	SuspiciousPeriod time.Duration `name:"suspicious.period" default:"24h" help:"Every influencer gets a suspicious verdict once per period (the exporters' --suspicious.period); 0 turns the checks off."`
	PollInterval     time.Duration `name:"poll.interval" default:"60s" help:"Every influencer is polled once per interval."`
	GainsWindows     string        `name:"gains.windows" default:"1h,24h,7d,30d" help:"rankd's gains windows (its --gains.windows); short ones such as 1m show gains and movers within minutes of a start."`
	PortsBase        int           `name:"ports.base" default:"19000" help:"First of a block of loopback ports: simulator = base, VictoriaMetrics = base+1, vmalert = base+2, rankd = base+3, exporter shard i = base+10+i."`
	VictoriaDir      string        `name:"victoria.dir" default:"victoria" help:"Where scrape.yml and rules/*.yml are (the repository's victoria/)."`
	StatusEvery      time.Duration `name:"status.every" default:"30s" help:"Print a status line this often once the first cycle is done."`
	Verbose          bool          `name:"verbose" help:"Also copy every component's log to the terminal, prefixed."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("mockstagram-stack"), kong.Description("Runs the Mockstagram pipeline locally."),
		kong.DefaultEnvars("MOCKSTAGRAM_STACK"))
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "mockstagram-stack: %v\n", err)
		os.Exit(1)
	}
}

// Port offsets within the --ports.base block.
const (
	portSim      = 0
	portVM       = 1
	portVMAlert  = 2
	portRankd    = 3
	portExporter = 10 // exporter shard i listens on base+10+i
)

func run(ctx context.Context, c *cli, out io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	logDir := filepath.Join(c.DataDir, "logs")
	// The stop budget covers an exporter's wait for its final scrape (one
	// 30 s scrape interval) and a population query vmalert is waiting on.
	st := &stack.Stack{BinDir: c.BinDir, LogDir: logDir, ReadyTimeout: 2 * time.Minute, StopTimeout: 45 * time.Second}
	if c.Verbose {
		st.Tee = func(name string) io.Writer { return &prefixWriter{w: out, prefix: name + " | "} }
	}
	var expNames []string
	for i := range c.Shards {
		expNames = append(expNames, fmt.Sprintf("exporter-%d", i))
	}
	defer func() {
		// vmalert first (it may wait on a query), then rankd, then every
		// exporter at once: each waits for its own final scrape, up to a
		// scrape interval, and one after another they took the sum of
		// those waits (40.6 s at 1M with 2 shards). Then VictoriaMetrics
		// and the simulator, last started first.
		var errs []error
		for _, names := range [][]string{{"vmalert"}, {"rankd"}, expNames} {
			errs = append(errs, st.StopTogether(names...))
		}
		errs = append(errs, st.Stop())
		if err := errors.Join(errs...); err != nil {
			fmt.Fprintln(out, err)
		}
	}()
	pks := pkrange.First(c.PKCount)
	upstreams := c.MockstagramURL
	if len(upstreams) == 0 {
		fmt.Fprintf(out, "starting the Mockstagram simulator with %d influencers...\n", c.PKCount)
		if _, err := st.Start(ctx, "mockstagram-sim", stack.Simulator{Addr: c.addr(portSim), PKs: pks}); err != nil {
			return err
		}
		upstreams = []string{c.url(portSim)}
	}
	// VictoriaMetrics starts before the exporters and so stops after them:
	// a stopping exporter waits for its final scrape (--shutdown.scrape-wait),
	// and a restarted one is scraped from its first sample on, so neither a
	// stop nor a restart loses a polled sample. The launcher only writes the
	// file_sd targets next to a copy of the checked-in scrape config; the
	// exporters' addresses are known before they start.
	var expHosts, exps []string
	for i := range c.Shards {
		expHosts, exps = append(expHosts, c.addr(portExporter+i)), append(exps, c.url(portExporter+i))
	}
	vdir := filepath.Join(c.DataDir, "victoria")
	slices := victoria.SlicesFor(c.PKCount / c.Shards)
	var simHosts []string
	if len(c.MockstagramURL) == 0 {
		simHosts = []string{c.addr(portSim)}
	}
	// Two scrapes per poll interval at least, so that no poll is replaced
	// before a scrape takes it (docs/victoria.md).
	if err := victoria.WriteScrapeConfig(c.VictoriaDir, vdir, c.PollInterval/2, map[string][]victoria.TargetGroup{
		"influencers.json":     victoria.InfluencerTargets(expHosts, slices),
		"exporters.json":       victoria.Hosts(expHosts...),
		"simulators.json":      victoria.Hosts(simHosts...),
		"victoriametrics.json": victoria.Hosts(c.addr(portVM)),
		"vmalert.json":         victoria.Hosts(c.addr(portVMAlert)),
		"rankd.json":           victoria.Hosts(c.addr(portRankd)),
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "starting VictoriaMetrics (scraping %d shard(s) as %d slice(s) each)...\n", c.Shards, slices)
	if _, err := st.Start(ctx, "victoria-metrics", stack.Victoria{Addr: c.addr(portVM), DataDir: filepath.Join(vdir, "data"),
		ScrapeConfig: filepath.Join(vdir, "scrape.yml"), MaxUniqueTimeseries: 3_000_000,
		// A query running when the stop comes may take up to
		// -search.maxQueryDuration (30s); let it end rather than exit 255.
		Extra: []string{"-http.maxGracefulShutdownDuration=35s"}}); err != nil {
		return err
	}
	stateDir := filepath.Join(c.DataDir, "exporters")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	for i := range c.Shards {
		if _, err := st.Start(ctx, expNames[i], stack.Exporter{Addr: expHosts[i], Upstreams: upstreams,
			PKs: pks, Shard: pkrange.Shard{Index: i, Count: c.Shards},
			PollInterval: c.PollInterval, PollTimeout: min(5*time.Second, c.PollInterval/2),
			SuspiciousPeriod: c.SuspiciousPeriod, SuspiciousOff: c.SuspiciousPeriod == 0,
			// Verdicts and the check schedule survive a restart of the stack.
			StateDir: stateDir}); err != nil {
			return err
		}
	}
	// rankd reads its gains' baselines from this VictoriaMetrics, at most
	// once every five poll intervals (5 minutes at the defaults: a read of
	// 1M costs VictoriaMetrics about 20 CPU-seconds), from the last sample
	// within two polls (at least 2 minutes) of each window's start.
	if _, err := st.Start(ctx, "rankd", stack.Rankd{Addr: c.addr(portRankd), Exporters: exps,
		Refresh: min(5*time.Second, c.PollInterval), Victoria: c.url(portVM), GainsWindows: c.GainsWindows,
		GainsRefresh: min(5*time.Minute, 5*c.PollInterval), GainsLookback: max(2*time.Minute, 2*c.PollInterval)}); err != nil {
		return err
	}
	fmt.Fprintf(out, "starting vmalert...\n")
	rules, _ := filepath.Glob(filepath.Join(c.VictoriaDir, "rules", "*.yml"))
	if len(rules) == 0 {
		return fmt.Errorf("no rule files in %s/rules; run from the repository root or set --victoria.dir", c.VictoriaDir)
	}
	if _, err := st.Start(ctx, "vmalert", stack.VMAlert{Addr: c.addr(portVMAlert), Datasource: c.url(portVM), RemoteRead: true,
		Rules: rules, EvaluationInterval: time.Minute}); err != nil {
		return err
	}
	if err := announce(c, out, upstreams, exps, logDir); err != nil {
		return err
	}
	return supervise(ctx, c, out, st.Procs, exps)
}

// validate checks the flags, and that the whole port block is free before
// anything starts.
func (c *cli) validate() error {
	if c.PKCount < 1 || c.Shards < 1 {
		return errors.New("--pk.count and --shards must be at least 1")
	}
	if c.PollInterval < time.Second {
		return fmt.Errorf("--poll.interval=%s is below 1s", c.PollInterval)
	}
	if _, err := rankd.ParseWindows(c.GainsWindows); err != nil {
		return fmt.Errorf("--%w", err)
	}
	if c.SuspiciousPeriod != 0 && c.SuspiciousPeriod < time.Second {
		return fmt.Errorf("--suspicious.period=%s is below 1s (0 turns the checks off)", c.SuspiciousPeriod)
	}
	if c.PortsBase < 1 || c.PortsBase+portExporter+c.Shards > 65535 {
		return fmt.Errorf("--ports.base=%d leaves no room for %d ports", c.PortsBase, portExporter+c.Shards)
	}
	ports := []int{portVM, portVMAlert, portRankd}
	if len(c.MockstagramURL) == 0 {
		ports = append(ports, portSim)
	}
	for i := range c.Shards {
		ports = append(ports, portExporter+i)
	}
	for _, i := range ports {
		if err := proc.PortFree(c.addr(i)); err != nil {
			return fmt.Errorf("port %s is taken (%v); pick another block with --ports.base", c.addr(i), err)
		}
	}
	return nil
}

// addr is the loopback address at offset i of the --ports.base block.
func (c *cli) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(c.PortsBase+i) }

// url is addr as an http:// base URL.
func (c *cli) url(i int) string { return "http://" + c.addr(i) }

// announce prints where to look and writes the same as endpoints.json.
func announce(c *cli, out io.Writer, upstreams, exps []string, logDir string) error {
	endpoints := map[string]any{"upstreams": upstreams, "exporters": exps, "victoriametrics": c.url(portVM),
		"vmui": c.url(portVM) + "/vmui/", "vmalert": c.url(portVMAlert), "rankd": c.url(portRankd), "logs": logDir}
	fmt.Fprintf(out, "\nThe pipeline is up. Where to look:\n")
	if len(c.MockstagramURL) == 0 {
		fmt.Fprintf(out, "  simulator          %s/api/v1/influencers/1000001\n", upstreams[0])
		endpoints["simulator"] = upstreams[0]
	}
	for i, u := range exps {
		fmt.Fprintf(out, "  exporter-%-9d %s/  (gauges at /metrics, telemetry at /telemetry)\n", i, u)
	}
	q := "mockstagram_influencer_followers{pk=\"1000001\"}"
	fmt.Fprintf(out, "  VictoriaMetrics    %s/vmui/#/?g0.expr=%s&g0.range_input=1h\n", c.url(portVM), neturl.QueryEscape(q))
	fmt.Fprintf(out, "  vmalert alerts     %s/vmalert/alerts\n", c.url(portVMAlert))
	fmt.Fprintf(out, "  rankd              %s/api/v1/influencers/1000001  (also /api/v1/average, /api/v1/top?n=10)\n", c.url(portRankd))
	if ws, err := rankd.ParseWindows(c.GainsWindows); err == nil && len(ws) > 0 {
		fmt.Fprintf(out, "  movers             %s/api/v1/movers?window=%s&order=gainers&limit=10  (gains over %s, once VictoriaMetrics holds that much history)\n",
			c.url(portRankd), ws[0].Name, rankd.WindowNames(ws))
	}
	fmt.Fprintf(out, "  logs               %s/\n\n", logDir)
	if b, err := json.MarshalIndent(endpoints, "", "  "); err == nil {
		if err := os.WriteFile(filepath.Join(c.DataDir, "endpoints.json"), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("cannot write endpoints.json: %w", err)
		}
	}
	return nil
}

// supervise prints progress until ctx ends or a component dies.
func supervise(ctx context.Context, c *cli, out io.Writer, comps []*stack.Proc, exps []string) error {
	died := make(chan *stack.Proc, len(comps))
	for _, comp := range comps {
		go func() {
			<-comp.Done()
			died <- comp
		}()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	sr := &statusReader{exps: exps, client: &http.Client{Timeout: 2 * time.Second}}
	firstDone, resumedSaid := false, false
	lastStatus := time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "\nstopping: vmalert and rankd, then the exporters once VictoriaMetrics has scraped their last samples (up to 30s), then VictoriaMetrics...\n")
			return nil
		case comp := <-died:
			return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", comp.Name, comp.Err(), comp.LogPath, comp.Tail(20))
		case <-tick.C:
			s := sr.read()
			if !firstDone && s.resumed > 0 && !resumedSaid {
				resumedSaid = true
				fmt.Fprintf(out, "the exporters resumed %.0f influencers' samples and verdicts from their state files (%s); they are served while the first cycle polls anew\n",
					s.resumed, filepath.Join(c.DataDir, "exporters"))
			}
			if !firstDone {
				what, ratio := "first cycle", s.polledRatio
				if s.resumed > 0 {
					what, ratio = "first cycle since the restart", s.cyclePolled
				}
				fmt.Fprintf(out, "\r%s: %5.1f%% of %d influencers polled, %6.0f polls/s   ", what, 100*ratio, c.PKCount, s.pollsPerSec)
				if s.cycles >= float64(len(exps)) {
					firstDone = true
					fmt.Fprintf(out, "\nfirst cycle done; a status line every %s (Ctrl-C stops everything)\n", c.StatusEvery)
				}
			} else if time.Since(lastStatus) >= c.StatusEvery {
				lastStatus = time.Now()
				fmt.Fprintf(out, "%s coverage %.4f, %.0f polls/s, %.0f failed polls/s, oldest sample %.0fs\n",
					time.Now().Format(time.TimeOnly), s.coverage, s.pollsPerSec, s.errPerSec, s.oldest)
			}
		}
	}
}

type snapshot struct {
	polledRatio, coverage, pollsPerSec, errPerSec, oldest, cycles float64
	// cyclePolled is the current cycle's progress: after a restart from
	// state every influencer already has a sample, so polledRatio says
	// nothing about this run.
	cyclePolled float64
	resumed     float64 // influencers resumed from state files
}

// statusReader sums the exporters' telemetry; rates come from the previous
// reading.
type statusReader struct {
	exps        []string
	client      *http.Client // with a timeout: a hung exporter must not hang the launcher
	at          time.Time
	polls, errs float64
}

func (r *statusReader) read() snapshot {
	var s snapshot
	var owned, polled, fresh, polls, success, progress float64
	for _, u := range r.exps {
		f, err := promtext.Fetch(r.client, u+"/telemetry")
		if err != nil {
			continue
		}
		owned += f.Sum("mockstagram_exporter_owned_influencers")
		polled += f.Sum("mockstagram_exporter_polled_influencers")
		fresh += f.Sum("mockstagram_exporter_fresh_influencers")
		s.cycles += min(f.Sum("mockstagram_exporter_cycles_total"), 1)
		s.resumed += f.Sum("mockstagram_exporter_state_resumed_influencers")
		progress += f.Sum("mockstagram_exporter_cycle_progress_ratio") * f.Sum("mockstagram_exporter_owned_influencers")
		s.oldest = max(s.oldest, f.Sum("mockstagram_exporter_oldest_sample_age_seconds"))
		polls += f.Sum("mockstagram_exporter_polls_total")
		success += f.Sum("mockstagram_exporter_polls_total", "outcome", "success")
	}
	errs := polls - success
	if owned > 0 {
		s.polledRatio, s.coverage, s.cyclePolled = polled/owned, fresh/owned, progress/owned
	}
	now := time.Now()
	if !r.at.IsZero() {
		d := now.Sub(r.at).Seconds()
		s.pollsPerSec, s.errPerSec = (polls-r.polls)/d, (errs-r.errs)/d
	}
	r.at, r.polls, r.errs = now, polls, errs
	return s
}

// prefixWriter prefixes every line written to w.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var buf []byte
	for _, c := range b {
		if !p.mid {
			buf = append(buf, p.prefix...)
			p.mid = true
		}
		buf = append(buf, c)
		if c == '\n' {
			p.mid = false
		}
	}
	_, err := p.w.Write(buf)
	return len(b), err
}
