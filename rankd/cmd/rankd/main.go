// Command rankd answers followerCount rank, the population average and each
// influencer's latest values from a live in-memory snapshot of the exporter
// shards, in microseconds per request.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sync/errgroup"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/logging"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
)

type cli struct {
	ExporterURL      []string      `name:"exporter.url" sep:"," help:"Exporter shard base URL to read (repeatable, or comma-separated)."`
	ExporterURLsFile string        `name:"exporter.urls-file" type:"existingfile" help:"File with one exporter base URL per line (# comments allowed), in addition to --exporter.url."`
	RefreshInterval  time.Duration `name:"refresh.interval" default:"5s" help:"Rebuild the snapshot this often; answers are never older than this plus one refresh."`
	RefreshTimeout   time.Duration `name:"refresh.timeout" default:"4s" help:"Deadline of one refresh's exporter reads, shared in turn (healthy exporters first): one that hangs is cut off at the end of its share and keeps its last data."`
	ExposeRanks      bool          `name:"expose.ranks" help:"Also expose every influencer's rank on /metrics as mockstagram_influencer_rank{pk} (1M series: about 45 MB a scrape, see docs/rankd.md)."`
	WebListenAddress []string      `name:"web.listen-address" default:":9867" sep:"," help:"Addresses to serve the API and /metrics on."`
	WebConfigFile    string        `name:"web.config.file" type:"existingfile" help:"Prometheus exporter-toolkit web config file for TLS and basic auth."`
	WebEnablePprof   bool          `name:"web.enable-pprof" help:"Serve Go profiling endpoints under /debug/pprof/."`
	Log              logging.Flags `embed:""`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

var errHelp = errors.New("help printed")

func parse(args []string, stdout io.Writer) (*cli, error) {
	var c cli
	exited := false
	p, err := kong.New(&c, kong.Name("rankd"),
		kong.Description("Answers influencer rank, population average and latest values from a live snapshot of the exporters."),
		kong.DefaultEnvars("RANKD"), kong.Writers(stdout, stdout), kong.Exit(func(int) { exited = true }))
	if err != nil {
		return nil, err
	}
	_, err = p.Parse(args)
	if exited {
		return nil, errHelp
	}
	return &c, err
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
	c, err := parse(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rankd: %v\n", err)
		return 2
	}
	log, err := c.Log.New(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rankd: %v\n", err)
		return 2
	}
	urls, err := c.sources()
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	srv, err := rankd.New(rankd.Config{Sources: urls, Refresh: c.RefreshInterval, Timeout: c.RefreshTimeout, ExposeRanks: c.ExposeRanks, Logger: log})
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	h := srv.Handler()
	if c.WebEnablePprof {
		h = webserver.WithPprof(h)
	}
	web, err := webserver.Listen(webserver.Config{ListenAddresses: c.WebListenAddress, WebConfigFile: c.WebConfigFile}, h, log)
	if err != nil {
		log.Error("cannot serve", "err", err)
		return 1
	}
	log.Info("serving", "addresses", web.Addrs(), "exporters", len(urls), "refresh", c.RefreshInterval)
	if c.RefreshTimeout >= c.RefreshInterval {
		log.Warn("--refresh.timeout is not below --refresh.interval: while an exporter hangs, every refresh takes the whole timeout and the snapshot can be up to interval + timeout old; lower --refresh.timeout",
			"refresh.interval", c.RefreshInterval, "refresh.timeout", c.RefreshTimeout)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { srv.Run(gctx); return nil })
	g.Go(func() error { return web.Serve(gctx) })
	if err := g.Wait(); err != nil {
		log.Error("rankd failed", "err", err)
		return 1
	}
	return 0
}
