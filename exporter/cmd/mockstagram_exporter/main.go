// Command mockstagram_exporter polls one shard of Mockstagram's influencers
// every interval and exposes their follower and following counts as
// Prometheus gauges for VictoriaMetrics to scrape.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sync/errgroup"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/cmdline"
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
	PollTimeout      time.Duration `name:"poll.timeout" help:"Timeout of one poll attempt; at most half of poll.interval. Default: the smaller of ${poll_timeout} and poll.interval/2."`
	PollPipeline     int           `name:"poll.pipeline" help:"Requests in flight per connection (HTTP/1.1 pipelining), at most poll.concurrency. 1 sends one request per connection at a time; more batches a dispatch tick's requests into one write, which cuts CPU per poll, but a stalled answer delays those queued behind it. Default: the smaller of ${poll_pipeline} and poll.concurrency."`
	PollRetries      int           `name:"poll.retries" default:"2" help:"Extra attempts for a failed poll, within the pk's interval."`
	PollRetryBackoff time.Duration `name:"poll.retry-backoff" default:"1s" help:"Delay before the first retry; doubles with each attempt."`
	CoverageMaxAge   time.Duration `name:"coverage.max-age" default:"0s" help:"A sample younger than this counts as fresh in the coverage metrics; 0 means poll.interval + poll.timeout."`

	PollAdaptiveConcurrency bool `name:"poll.adaptive-concurrency" default:"true" negatable:"" help:"Find each upstream's in-flight limit at run time from its latency, between 4 and poll.concurrency (then a ceiling): an upstream slower than the schedule is polled at its capacity with a short queue. --no-poll.adaptive-concurrency keeps poll.concurrency in flight whatever the latency."`

	// The classifier's defaults are exporter.DefaultSuspiciousConfig's,
	// passed in as kong variables (vars), so they are written down once.
	SuspiciousEnabled      bool          `name:"suspicious.enabled" default:"${suspicious_enabled}" negatable:"" help:"Ask Mockstagram's classifier for every owned pk's suspicious verdict once per suspicious.period."`
	SuspiciousPeriod       time.Duration `name:"suspicious.period" default:"${suspicious_period}" help:"Every owned pk is checked once per period, spread evenly over it. The first pass after a cold start takes one whole period; shorten it for a faster first pass (owned pks / period = checks/s)."`
	SuspiciousConcurrency  int           `name:"suspicious.concurrency" default:"${suspicious_concurrency}" help:"Classifier calls in flight at most, on connections of their own. Needs about checks/s x classifier latency."`
	SuspiciousTimeout      time.Duration `name:"suspicious.timeout" default:"${suspicious_timeout}" help:"Timeout of one classifier call (Mockstagram states up to 10 s; more under load)."`
	SuspiciousRetries      int           `name:"suspicious.retries" default:"${suspicious_retries}" help:"Extra attempts for a failed classifier call."`
	SuspiciousRetryBackoff time.Duration `name:"suspicious.retry-backoff" default:"${suspicious_retry_backoff}" help:"Delay before the first retry of a classifier call; doubles with each attempt."`

	StepsMinFollowers int64 `name:"steps.min-followers" default:"${steps_min_followers}" help:"Publish mockstagram_influencer_followers_step for a pk while its latest poll moved followerCount by at least this much either way (negative: never). Keep it below the InfluencerFollowerJump threshold; the default is 5 sigma of Mockstagram's per-poll step."`
	StepsMinFollowing int64 `name:"steps.min-following" default:"${steps_min_following}" help:"Publish mockstagram_influencer_following_step for a pk while its latest poll moved followingCount by at least this much either way (negative: never). Keep it below the InfluencerFollowingSpike threshold."`

	ShutdownScrapeWait time.Duration `name:"shutdown.scrape-wait" default:"65s" help:"On SIGTERM, after polling stops, keep serving until every /metrics target scraped lately has been scraped once more, at most this long, so that no polled sample is lost to a restart (0: exit at once). Cover one scrape interval plus a scrape's duration."`

	StateDir      string        `name:"state.dir" help:"Directory for the state file (last values, verdicts, check schedule), written atomically every state.interval and at shutdown, loaded at start; created with its parents if missing. Empty: every start is cold."`
	StateInterval time.Duration `name:"state.interval" default:"1m" help:"How often the state file is written while running."`

	Web              webserver.Flags `embed:""`
	WebMetricsPath   string          `name:"web.metrics-path" default:"/metrics" help:"Path of the influencer gauges; the info series are served on it plus /info."`
	WebTelemetryPath string          `name:"web.telemetry-path" default:"/telemetry" help:"Path of the exporter's own metrics."`

	Log logging.Flags `embed:""`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Defaults of the flags whose default depends on another flag: the
// default is the smaller of these and what the other flag allows.
const (
	defaultPollTimeout  = 5 * time.Second
	defaultPollPipeline = 32
)

// vars are the defaults the kong tags refer to: those defined in Go
// elsewhere, and those quoted in help texts.
func vars() kong.Vars {
	d := exporter.DefaultSuspiciousConfig()
	return kong.Vars{
		"web_listen_address":       ":9866",
		"poll_timeout":             defaultPollTimeout.String(),
		"poll_pipeline":            strconv.Itoa(defaultPollPipeline),
		"suspicious_enabled":       strconv.FormatBool(d.Enabled),
		"suspicious_period":        d.Period.String(),
		"suspicious_concurrency":   strconv.Itoa(d.Concurrency),
		"suspicious_timeout":       d.Timeout.String(),
		"suspicious_retries":       strconv.Itoa(d.Retries),
		"suspicious_retry_backoff": d.RetryBackoff.String(),
		"steps_min_followers":      strconv.FormatInt(exporter.DefaultStepThresholds.Followers, 10),
		"steps_min_following":      strconv.FormatInt(exporter.DefaultStepThresholds.Following, 10),
	}
}

// parse reads the command line into a cli.
func parse(args []string, stdout io.Writer) (*cli, error) {
	var c cli
	_, err := cmdline.Parse(&c, "mockstagram_exporter",
		"Polls a shard of Mockstagram's influencers and exposes them as Prometheus gauges.",
		"MOCKSTAGRAM_EXPORTER", vars(), args, stdout)
	return &c, err
}

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
		Timeout:      cmdline.Derived(c.PollTimeout, func() time.Duration { return min(defaultPollTimeout, c.PollInterval/2) }),
		Concurrency:  c.PollConcurrency,
		Retries:      c.PollRetries,
		Pipeline:     cmdline.Derived(c.PollPipeline, func() int { return min(defaultPollPipeline, c.PollConcurrency) }),
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
		Steps:         exporter.StepThresholds{Followers: c.StepsMinFollowers, Following: c.StepsMinFollowing},
		StateDir:      c.StateDir,
		StateInterval: c.StateInterval,
	}
	cfg.FixedConcurrency = !c.PollAdaptiveConcurrency
	// Before Validate, which wants the directory to exist.
	if err := makeStateDir(cfg.StateDir); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// makeStateDir creates --state.dir with its parents, as Prometheus does
// with its storage path, so that a fresh volume or host needs no mkdir.
// Only a path that cannot be a directory is refused.
func makeStateDir(dir string) error {
	if dir == "" {
		return nil
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("state.dir=%q is a file, not a directory; point the flag at a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create state.dir=%q: %w; point the flag at a directory the exporter can create or write", dir, err)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c *cli
	log, code := cmdline.Start("mockstagram_exporter", func() (err error) { c, err = parse(args, stdout); return err },
		func() logging.Flags { return c.Log }, stderr)
	if log == nil {
		return code
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
	srv, err := c.Web.Listen(e.Handler(c.WebMetricsPath, c.WebTelemetryPath), cfg.Logger)
	if err != nil {
		return err
	}
	cfg.Logger.Info("serving", "addresses", srv.Addrs(), "metrics_path", c.WebMetricsPath, "telemetry_path", c.WebTelemetryPath)
	g, gctx := errgroup.WithContext(ctx)
	// The HTTP surface outlives polling by the final scrape's wait.
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	g.Go(func() error {
		defer stopServing()
		e.Run(gctx)
		if ctx.Err() != nil && c.ShutdownScrapeWait > 0 { // a stop, not a failed listener
			waitFinalScrape(e, c.ShutdownScrapeWait, cfg.Logger)
		}
		return nil
	})
	g.Go(func() error { return srv.Serve(serveCtx) })
	err = g.Wait()
	// The shard's total: a lossless pipeline stores exactly this many
	// samples of each count for it (bench-stack checks that at 1M).
	cfg.Logger.Info("stopped", "successful_polls", e.Polled())
	return err
}

// waitFinalScrape keeps serving until the scrapers have taken every sample
// polled before the stop (exporter.WaitFinalScrape), and says so.
func waitFinalScrape(e *exporter.Exporter, max time.Duration, log *slog.Logger) {
	since := time.Now()
	log.Info("polling stopped; serving until every /metrics target is scraped once more", "at_most", max)
	if left := e.WaitFinalScrape(context.Background(), since, max); len(left) > 0 {
		log.Warn("not every target was scraped again before --shutdown.scrape-wait ran out; the samples polled since their last scrape are lost",
			"targets", left, "waited", time.Since(since).Round(time.Millisecond))
		return
	}
	log.Info("final scrape done", "waited", time.Since(since).Round(time.Millisecond))
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
