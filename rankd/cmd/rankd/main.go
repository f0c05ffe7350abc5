// Command rankd answers followerCount rank, the population average and each
// influencer's latest values from a live in-memory snapshot of the exporter
// shards, in microseconds per request.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sync/errgroup"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/cmdline"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/logging"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
)

// cli is every flag of rankd; each is also an environment variable.
type cli struct {
	ExporterURL      []string        `name:"exporter.url" sep:"," help:"Exporter shard base URL to read (repeatable, or comma-separated)."`
	ExporterURLsFile string          `name:"exporter.urls-file" type:"existingfile" help:"File with one exporter base URL per line (# comments allowed), in addition to --exporter.url."`
	RefreshInterval  time.Duration   `name:"refresh.interval" default:"5s" help:"Rebuild the snapshot this often; answers are never older than this plus one refresh."`
	RefreshTimeout   time.Duration   `name:"refresh.timeout" help:"Deadline of one refresh's exporter reads, shared in turn (healthy exporters first): one that hangs is cut off at the end of its share and keeps its last data. Default: 4/5 of refresh.interval (4s for 5s), so a refresh ends before the next is due."`
	ExposeRanks      bool            `name:"expose.ranks" help:"Also expose every influencer's rank on /metrics as mockstagram_influencer_rank{pk} (1M series: about 45 MB a scrape, see docs/rankd.md)."`
	VictoriaURL      string          `name:"victoria.url" help:"VictoriaMetrics that stores the exporters' samples (http://victoria-metrics:8428; vmselect: http://vmselect:8481/select/0/prometheus): the gains' baselines are read from it. Empty turns gains and /api/v1/movers off."`
	GainsWindows     string          `name:"gains.windows" default:"${gains_windows}" help:"Comma-separated gains windows (Prometheus durations: 1h, 24h, 7d, 30d)."`
	GainsRefresh     time.Duration   `name:"gains.refresh" default:"5m" help:"Read the baselines that are due this often; a window is re-read every gains.refresh or every 1/60 of its length, whichever is longer (one population export from VictoriaMetrics each, about 20 CPU-seconds there at 1M: docs/rankd.md)."`
	GainsLookback    time.Duration   `name:"gains.lookback" default:"2m" help:"A baseline is the influencer's last sample at most this long before the window start; keep it above the poll interval."`
	GainsTimeout     time.Duration   `name:"gains.timeout" default:"2m" help:"Deadline of one metric's export from VictoriaMetrics."`
	Web              webserver.Flags `embed:""`
	Log              logging.Flags   `embed:""`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func parse(args []string, stdout io.Writer) (*cli, error) {
	var c cli
	_, err := cmdline.Parse(&c, "rankd",
		"Answers influencer rank, population average and latest values from a live snapshot of the exporters.",
		"RANKD", kong.Vars{"web_listen_address": ":9867", "gains_windows": rankd.DefaultWindows}, args, stdout)
	return &c, err
}

// refreshTimeout is --refresh.timeout, derived from --refresh.interval
// when not given.
func (c *cli) refreshTimeout() time.Duration {
	return cmdline.Derived(c.RefreshTimeout, func() time.Duration { return c.RefreshInterval * 4 / 5 })
}

// sources merges --exporter.url and the lines of --exporter.urls-file.
func (c *cli) sources() ([]string, error) {
	urls := append([]string(nil), c.ExporterURL...)
	if c.ExporterURLsFile == "" {
		return urls, nil
	}
	f, err := os.Open(c.ExporterURLsFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read --exporter.urls-file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			urls = append(urls, line)
		}
	}
	return urls, sc.Err()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c *cli
	log, code := cmdline.Start("rankd", func() (err error) { c, err = parse(args, stdout); return err },
		func() logging.Flags { return c.Log }, stderr)
	if log == nil {
		return code
	}
	urls, err := c.sources()
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	timeout := c.refreshTimeout()
	windows, err := rankd.ParseWindows(c.GainsWindows)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	srv, err := rankd.New(rankd.Config{Sources: urls, Refresh: c.RefreshInterval, Timeout: timeout, ExposeRanks: c.ExposeRanks, Logger: log,
		Victoria: c.VictoriaURL, Windows: windows, GainsRefresh: c.GainsRefresh, GainsLookback: c.GainsLookback, GainsTimeout: c.GainsTimeout})
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	web, err := c.Web.Listen(srv.Handler(), log)
	if err != nil {
		log.Error("cannot serve", "err", err)
		return 1
	}
	log.Info("serving", "addresses", web.Addrs(), "exporters", len(urls), "refresh", c.RefreshInterval)
	if c.VictoriaURL == "" {
		log.Info("gains are off: set --victoria.url to serve gains and /api/v1/movers")
	} else {
		log.Info("gains", "victoria", c.VictoriaURL, "windows", rankd.WindowNames(windows), "refresh", c.GainsRefresh, "lookback", c.GainsLookback)
	}
	if timeout >= c.RefreshInterval { // only when given: the derived timeout is below
		log.Warn("--refresh.timeout is not below --refresh.interval: while an exporter hangs, every refresh takes the whole timeout and the snapshot can be up to interval + timeout old; lower --refresh.timeout",
			"refresh.interval", c.RefreshInterval, "refresh.timeout", timeout)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { srv.Run(gctx); return nil })
	g.Go(func() error { return web.Serve(gctx) })
	if err := g.Wait(); err != nil {
		log.Error("rankd failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
