// Command mockstagram_exporter polls one shard of Mockstagram's influencers
// every interval and exposes their follower and following counts as
// Prometheus gauges for VictoriaMetrics to scrape.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sync/errgroup"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/logging"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

// cli is every flag of the exporter; each is also an environment variable.
type cli struct {
	MockstagramURL []string `name:"mockstagram.url" default:"http://127.0.0.1:3000" sep:"," help:"Mockstagram base URL; repeat (or comma-separate) for several upstreams. A pk always goes to the same upstream."`

	PKMin int64 `name:"pk.min" default:"1000000" help:"First pk of the whole range (all shards)."`
	PKMax int64 `name:"pk.max" default:"1999999" help:"Last pk of the whole range, inclusive."`

	ShardIndex        int  `name:"shard.index" default:"0" help:"This process owns the pks with (pk - pk.min) % shard.count == shard.index."`
	ShardCount        int  `name:"shard.count" default:"1" help:"Number of exporter shards sharing the range."`
	ShardFromHostname bool `name:"shard.from-hostname" help:"Take shard.index from the hostname's trailing ordinal (StatefulSet pods: name-0, name-1, ...)."`

	PollInterval     time.Duration `name:"poll.interval" default:"60s" help:"Every owned pk is polled once per interval, spread evenly over it."`
	PollConcurrency  int           `name:"poll.concurrency" default:"512" help:"Polls in flight at most per upstream, over poll.concurrency/poll.pipeline connections. Needs about polls/s x latency."`
	PollTimeout      time.Duration `name:"poll.timeout" default:"5s" help:"Timeout of one poll attempt."`
	PollPipeline     int           `name:"poll.pipeline" default:"32" help:"Requests in flight per connection (HTTP/1.1 pipelining). 1 sends one request per connection at a time; more batches a dispatch tick's requests into one write, which cuts CPU per poll, but a stalled answer delays those queued behind it."`
	PollRetries      int           `name:"poll.retries" default:"2" help:"Extra attempts for a failed poll, within the pk's interval."`
	PollRetryBackoff time.Duration `name:"poll.retry-backoff" default:"1s" help:"Delay before the first retry; doubles with each attempt."`
	CoverageMaxAge   time.Duration `name:"coverage.max-age" default:"0s" help:"A sample younger than this counts as fresh in the coverage metrics; 0 means poll.interval + poll.timeout."`

	PollAdaptiveConcurrency bool `name:"poll.adaptive-concurrency" default:"true" negatable:"" help:"Find each upstream's in-flight limit at run time from its latency, between 4 and poll.concurrency (then a ceiling): an upstream slower than the schedule is polled at its capacity with a short queue. --no-poll.adaptive-concurrency keeps poll.concurrency in flight whatever the latency."`

	SuspiciousEnabled      bool          `name:"suspicious.enabled" default:"true" negatable:"" help:"Ask Mockstagram's classifier for every owned pk's suspicious verdict once per suspicious.period."`
	SuspiciousPeriod       time.Duration `name:"suspicious.period" default:"24h" help:"Every owned pk is checked once per period, spread evenly over it. The first pass after a cold start takes one whole period; shorten it for a faster first pass (owned pks / period = checks/s)."`
	SuspiciousConcurrency  int           `name:"suspicious.concurrency" default:"256" help:"Classifier calls in flight at most, on connections of their own. Needs about checks/s x classifier latency."`
	SuspiciousTimeout      time.Duration `name:"suspicious.timeout" default:"30s" help:"Timeout of one classifier call (Mockstagram states up to 10 s; more under load)."`
	SuspiciousRetries      int           `name:"suspicious.retries" default:"2" help:"Extra attempts for a failed classifier call."`
	SuspiciousRetryBackoff time.Duration `name:"suspicious.retry-backoff" default:"10s" help:"Delay before the first retry of a classifier call; doubles with each attempt."`

	StateDir      string        `name:"state.dir" help:"Directory for the state file (last values, verdicts, check schedule), written atomically every state.interval and at shutdown, loaded at start. Empty: every start is cold."`
	StateInterval time.Duration `name:"state.interval" default:"1m" help:"How often the state file is written while running."`

	WebListenAddress []string `name:"web.listen-address" default:":9866" sep:"," help:"Addresses to serve /metrics, the telemetry path and the landing page on."`
	WebConfigFile    string   `name:"web.config.file" type:"existingfile" help:"Prometheus exporter-toolkit web config file for TLS and basic auth."`
	WebMetricsPath   string   `name:"web.metrics-path" default:"/metrics" help:"Path of the influencer gauges."`
	WebTelemetryPath string   `name:"web.telemetry-path" default:"/telemetry" help:"Path of the exporter's own metrics."`
	WebEnablePprof   bool     `name:"web.enable-pprof" help:"Serve Go profiling endpoints under /debug/pprof/."`

	Log logging.Flags `embed:""`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// parse reads the command line into a cli; kong's own exit is turned into an
// error so that tests can parse.
func parse(args []string, stdout io.Writer) (*cli, *kong.Context, error) {
	var c cli
	exited := false
	p, err := kong.New(&c,
		kong.Name("mockstagram_exporter"),
		kong.Description("Polls a shard of Mockstagram's influencers and exposes them as Prometheus gauges."),
		kong.DefaultEnvars("MOCKSTAGRAM_EXPORTER"),
		kong.Writers(stdout, stdout),
		kong.Exit(func(int) { exited = true }),
	)
	if err != nil {
		return nil, nil, err
	}
	kctx, err := p.Parse(args)
	if exited {
		return nil, nil, errHelp
	}
	if err != nil {
		return nil, nil, err
	}
	return &c, kctx, nil
}

var errHelp = errors.New("help printed")

// config turns the flags into an exporter configuration.
func (c *cli) config() (exporter.Config, error) {
	shard := pkrange.Shard{Index: c.ShardIndex, Count: c.ShardCount}
	if c.ShardFromHostname {
		h, err := pkrange.Hostname()
		if err != nil {
			return exporter.Config{}, fmt.Errorf("cannot read hostname for --shard.from-hostname: %w", err)
		}
		if shard.Index, err = pkrange.OrdinalFromHostname(h); err != nil {
			return exporter.Config{}, err
		}
	}
	cfg := exporter.Config{
		URLs:         c.MockstagramURL,
		Range:        pkrange.Range{Min: c.PKMin, Max: c.PKMax},
		Shard:        shard,
		Interval:     c.PollInterval,
		Timeout:      c.PollTimeout,
		Concurrency:  c.PollConcurrency,
		Retries:      c.PollRetries,
		Pipeline:     c.PollPipeline,
		RetryBackoff: c.PollRetryBackoff,
		MaxAge:       c.CoverageMaxAge,
		Suspicious: exporter.SuspiciousConfig{
			Enabled:      c.SuspiciousEnabled,
			Period:       c.SuspiciousPeriod,
			Concurrency:  c.SuspiciousConcurrency,
			Timeout:      c.SuspiciousTimeout,
			Retries:      c.SuspiciousRetries,
			RetryBackoff: c.SuspiciousRetryBackoff,
		},
		StateDir:      c.StateDir,
		StateInterval: c.StateInterval,
	}
	cfg.FixedConcurrency = !c.PollAdaptiveConcurrency
	return cfg, cfg.Validate()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, _, err := parse(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mockstagram_exporter: %v\n", err)
		return 2
	}
	log, err := c.Log.New(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mockstagram_exporter: %v\n", err)
		return 2
	}
	cfg, err := c.config()
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	cfg.Logger = log
	if err := serve(ctx, c, cfg); err != nil {
		log.Error("exporter failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, c *cli, cfg exporter.Config) error {
	e, err := exporter.New(cfg)
	if err != nil {
		return err
	}
	if cfg.StateDir != "" {
		logStateLoad(cfg.Logger, e.LoadState())
	}
	h := e.Handler(c.WebMetricsPath, c.WebTelemetryPath)
	if c.WebEnablePprof {
		h = webserver.WithPprof(h)
	}
	srv, err := webserver.Listen(webserver.Config{
		ListenAddresses: c.WebListenAddress,
		WebConfigFile:   c.WebConfigFile,
	}, h, cfg.Logger)
	if err != nil {
		return err
	}
	cfg.Logger.Info("serving", "addresses", srv.Addrs(), "metrics_path", c.WebMetricsPath, "telemetry_path", c.WebTelemetryPath)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		e.Run(gctx)
		return nil
	})
	g.Go(func() error { return srv.Serve(gctx) })
	err = g.Wait()
	cfg.Logger.Info("stopped")
	return err
}

// logStateLoad tells the operator what the start found: a resumed state, a
// cold start, or a file set aside and why.
func logStateLoad(log *slog.Logger, r exporter.StateLoad) {
	switch {
	case r.Loaded:
		log.Info("state loaded; resuming", "path", r.Path, "age", r.Age.Round(time.Second),
			"influencers", r.Influencers, "verdicts", r.Verdicts)
	case r.Reason != nil:
		log.Error("state file unusable; starting cold", "path", r.Path, "set_aside_as", r.SetAside, "err", r.Reason)
	default:
		log.Info("no state file; starting cold", "path", r.Path)
	}
}
