// Command mockstagram-stack runs the pipeline on one machine, supervised:
// the Mockstagram simulator (unless --mockstagram.url points elsewhere) and
// the exporter shards, each on its own loopback port with its log under
// --data.dir. It prints where to look, shows polling progress, and stops
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
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
)

type cli struct {
	BinDir         string        `name:"bin.dir" default:"bin" help:"Directory holding the built binaries."`
	DataDir        string        `name:"data.dir" default:"data" help:"Logs and endpoints.json go here."`
	MockstagramURL []string      `name:"mockstagram.url" sep:"," help:"Poll this Mockstagram instead of starting the simulator (repeatable)."`
	PKCount        int           `name:"pk.count" default:"1000000" help:"Influencers to track, from pk 1000000."`
	Shards         int           `name:"shards" default:"1" help:"Exporter shards."`
	PollInterval   time.Duration `name:"poll.interval" default:"60s" help:"Every influencer is polled once per interval."`
	PortsBase      int           `name:"ports.base" default:"19000" help:"First of a block of loopback ports: simulator = base, exporter shard i = base+1+i."`
	StatusEvery    time.Duration `name:"status.every" default:"30s" help:"Print a status line this often once the first cycle is done."`
	Verbose        bool          `name:"verbose" help:"Also copy every component's log to the terminal, prefixed."`
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

type component struct {
	name, url, ready string
	p                *proc.Proc
}

func run(ctx context.Context, c *cli, out io.Writer) error {
	if c.PKCount < 1 || c.Shards < 1 {
		return errors.New("--pk.count and --shards must be at least 1")
	}
	if c.PollInterval < time.Second {
		return fmt.Errorf("--poll.interval=%s is below 1s", c.PollInterval)
	}
	if c.PortsBase < 1 || c.PortsBase+1+c.Shards > 65535 {
		return fmt.Errorf("--ports.base=%d leaves no room for %d ports", c.PortsBase, c.Shards+1)
	}
	// Check the whole port block before starting anything.
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(c.PortsBase+i) }
	for i := 0; i <= c.Shards; i++ {
		if i == 0 && len(c.MockstagramURL) > 0 {
			continue
		}
		if err := proc.PortFree(addr(i)); err != nil {
			return fmt.Errorf("port %s is taken (%v); pick another block with --ports.base", addr(i), err)
		}
	}
	logDir := filepath.Join(c.DataDir, "logs")
	var comps []*component
	stopAll := func() {
		for i := len(comps) - 1; i >= 0; i-- {
			if err := comps[i].p.Stop(20 * time.Second); err != nil {
				fmt.Fprintf(out, "%s: %v\n", comps[i].name, err)
			}
		}
	}
	defer stopAll()
	start := func(name, bin string, args []string, url, ready string) error {
		var tee io.Writer
		if c.Verbose {
			tee = &prefixWriter{w: out, prefix: name + " | "}
		}
		p, err := proc.Start(name, filepath.Join(c.BinDir, bin), args, filepath.Join(logDir, name+".log"), tee)
		if err != nil {
			return err
		}
		comp := &component{name: name, url: url, ready: ready, p: p}
		comps = append(comps, comp)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return proc.WaitHTTP(wctx, url+ready, p)
	}
	pkMax := strconv.Itoa(1_000_000 + c.PKCount - 1)
	upstreams := c.MockstagramURL
	if len(upstreams) == 0 {
		fmt.Fprintf(out, "starting the Mockstagram simulator with %d influencers...\n", c.PKCount)
		if err := start("mockstagram-sim", "mockstagram-sim", []string{"--web.listen-address=" + addr(0), "--pk.max=" + pkMax},
			"http://"+addr(0), "/-/ready"); err != nil {
			return err
		}
		upstreams = []string{"http://" + addr(0)}
	}
	for i := range c.Shards {
		name := fmt.Sprintf("exporter-%d", i)
		args := []string{"--web.listen-address=" + addr(1+i), "--pk.max=" + pkMax,
			"--shard.index=" + strconv.Itoa(i), "--shard.count=" + strconv.Itoa(c.Shards),
			"--poll.interval=" + c.PollInterval.String(), "--poll.timeout=" + min(5*time.Second, c.PollInterval/2).String(),
			"--mockstagram.url=" + strings.Join(upstreams, ",")}
		if err := start(name, "mockstagram_exporter", args, "http://"+addr(1+i), "/-/ready"); err != nil {
			return err
		}
	}
	endpoints := map[string]any{"upstreams": upstreams}
	fmt.Fprintf(out, "\nThe pipeline is up. Where to look:\n")
	if len(c.MockstagramURL) == 0 {
		fmt.Fprintf(out, "  simulator          %s/api/v1/influencers/1000001\n", upstreams[0])
		endpoints["simulator"] = upstreams[0]
	}
	var exps []string
	for _, comp := range comps {
		if strings.HasPrefix(comp.name, "exporter-") {
			fmt.Fprintf(out, "  %-18s %s/  (gauges at /metrics, telemetry at /telemetry)\n", comp.name, comp.url)
			exps = append(exps, comp.url)
		}
	}
	endpoints["exporters"] = exps
	endpoints["logs"] = logDir
	fmt.Fprintf(out, "  logs               %s/\n\n", logDir)
	if b, err := json.MarshalIndent(endpoints, "", "  "); err == nil {
		if err := os.WriteFile(filepath.Join(c.DataDir, "endpoints.json"), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("cannot write endpoints.json: %w", err)
		}
	}
	return supervise(ctx, c, out, comps, exps)
}

// supervise prints progress until ctx ends or a component dies.
func supervise(ctx context.Context, c *cli, out io.Writer, comps []*component, exps []string) error {
	died := make(chan *component, len(comps))
	for _, comp := range comps {
		go func() {
			<-comp.p.Done()
			died <- comp
		}()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	firstDone := false
	lastStatus := time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "\nstopping...\n")
			return nil
		case comp := <-died:
			return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", comp.name, comp.p.Err(), comp.p.LogPath, comp.p.Tail(20))
		case <-tick.C:
			s := status(exps)
			if !firstDone {
				fmt.Fprintf(out, "\rfirst cycle: %5.1f%% of %d influencers polled, %6.0f polls/s   ", 100*s.polledRatio, c.PKCount, s.pollsPerSec)
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
}

var prev struct {
	at          time.Time
	polls, errs float64
}

func status(exps []string) snapshot {
	var s snapshot
	var owned, polled, fresh, polls, errs float64
	for _, u := range exps {
		resp, err := http.Get(u + "/telemetry")
		if err != nil {
			continue
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			continue
		}
		get := func(name string) float64 {
			var v float64
			if mf := mfs[name]; mf != nil {
				for _, m := range mf.Metric {
					v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
			return v
		}
		owned += get("mockstagram_exporter_owned_influencers")
		polled += get("mockstagram_exporter_polled_influencers")
		fresh += get("mockstagram_exporter_fresh_influencers")
		s.cycles += min(get("mockstagram_exporter_cycles_total"), 1)
		s.oldest = max(s.oldest, get("mockstagram_exporter_oldest_sample_age_seconds"))
		if mf := mfs["mockstagram_exporter_polls_total"]; mf != nil {
			for _, m := range mf.Metric {
				polls += m.GetCounter().GetValue()
				for _, l := range m.Label {
					if l.GetName() == "outcome" && l.GetValue() != "success" {
						errs += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if owned > 0 {
		s.polledRatio, s.coverage = polled/owned, fresh/owned
	}
	now := time.Now()
	if !prev.at.IsZero() {
		d := now.Sub(prev.at).Seconds()
		s.pollsPerSec, s.errPerSec = (polls-prev.polls)/d, (errs-prev.errs)/d
	}
	prev.at, prev.polls, prev.errs = now, polls, errs
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
