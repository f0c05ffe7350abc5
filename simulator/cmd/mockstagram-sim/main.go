// Command mockstagram-sim serves a fast, faithful simulation of the
// Mockstagram API (package simulator) for load tests and end-to-end tests.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/cmdline"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/logging"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// cli is every flag of mockstagram-sim; each is also an environment variable.
type cli struct {
	ListenAddress string        `name:"web.listen-address" default:":3000" env:"MOCKSTAGRAM_SIM_LISTEN_ADDRESS" help:"Address to listen on (host:port; port 0 picks a free one)."`
	IdleTimeout   time.Duration `name:"web.idle-timeout" default:"${idle_timeout}" env:"MOCKSTAGRAM_SIM_IDLE_TIMEOUT" help:"Close keep-alive connections idle this long (duration; Node's default is 5s)."`
	Log           logging.Flags `embed:""`

	// The defaults that simulator.DefaultConfig defines come in as kong
	// variables (vars), so they are written down once.
	PKMin          int64 `name:"pk.min" default:"${pk_min}" env:"MOCKSTAGRAM_SIM_PK_MIN" help:"Lowest influencer pk (inclusive)."`
	PKMax          int64 `name:"pk.max" default:"${pk_max}" env:"MOCKSTAGRAM_SIM_PK_MAX" help:"Highest influencer pk (inclusive)."`
	Seed           int64 `name:"seed" default:"0" env:"MOCKSTAGRAM_SIM_SEED" help:"Seed for deterministic data (0 draws a random seed and logs it)."`
	Drift          bool  `name:"drift" default:"${drift}" negatable:"" env:"MOCKSTAGRAM_SIM_DRIFT" help:"Step an influencer's counts on every GET, like upstream (--drift=false freezes them)."`
	NotFoundStatus int   `name:"not-found.status" default:"${not_found_status}" enum:"500,400" env:"MOCKSTAGRAM_SIM_NOT_FOUND_STATUS" help:"HTTP status for an unknown pk (${enum}; 500 is the reference server, 400 its later variant)."`

	Capacity float64 `name:"capacity" default:"0" env:"MOCKSTAGRAM_SIM_CAPACITY" help:"API requests/s served, one at a time in arrival order like the reference server's one Node thread (measured 4.1k-7.1k/s): beyond it requests queue and latency grows; nothing is refused. 0 is unlimited. POST /admin/capacity?rps=N changes it while running."`

	SuspiciousDelayMean   time.Duration `name:"suspicious.delay.mean" default:"${suspicious_delay_mean}" env:"MOCKSTAGRAM_SIM_SUSPICIOUS_DELAY_MEAN" help:"Mean classifier delay (duration)."`
	SuspiciousDelayStddev time.Duration `name:"suspicious.delay.stddev" default:"${suspicious_delay_stddev}" env:"MOCKSTAGRAM_SIM_SUSPICIOUS_DELAY_STDDEV" help:"Standard deviation of the classifier delay (duration; negative draws answer at once)."`
	SuspiciousDelayMax    time.Duration `name:"suspicious.delay.max" default:"0s" env:"MOCKSTAGRAM_SIM_SUSPICIOUS_DELAY_MAX" help:"Cap on the classifier delay (duration; 0 means no cap)."`

	FaultLatencyMean       time.Duration `name:"fault.latency.mean" default:"0s" env:"MOCKSTAGRAM_SIM_FAULT_LATENCY_MEAN" help:"Mean latency added to every influencer GET (duration)."`
	FaultLatencyStddev     time.Duration `name:"fault.latency.stddev" default:"0s" env:"MOCKSTAGRAM_SIM_FAULT_LATENCY_STDDEV" help:"Standard deviation of the added latency (duration; floored at 0)."`
	FaultLatencySpikeRatio float64       `name:"fault.latency.spike-ratio" default:"0" env:"MOCKSTAGRAM_SIM_FAULT_LATENCY_SPIKE_RATIO" help:"Fraction of influencer GETs (0..1) that stall for --fault.latency.spike."`
	FaultLatencySpike      time.Duration `name:"fault.latency.spike" default:"0s" env:"MOCKSTAGRAM_SIM_FAULT_LATENCY_SPIKE" help:"Length of a latency spike (duration)."`
	FaultErrorRatio        float64       `name:"fault.error-ratio" default:"0" env:"MOCKSTAGRAM_SIM_FAULT_ERROR_RATIO" help:"Fraction of influencer GETs (0..1) answered 500 with a non-JSON body; the influencer is not stepped."`
	FaultResetRatio        float64       `name:"fault.reset-ratio" default:"0" env:"MOCKSTAGRAM_SIM_FAULT_RESET_RATIO" help:"Fraction of influencer GETs (0..1) whose TCP connection is reset without a response; the influencer is not stepped."`
	FaultBadJSONRatio      float64       `name:"fault.bad-json-ratio" default:"0" env:"MOCKSTAGRAM_SIM_FAULT_BAD_JSON_RATIO" help:"Fraction of influencer GETs (0..1) answered 200 with truncated JSON; the influencer is stepped."`
	FaultWrongPKRatio      float64       `name:"fault.wrong-pk-ratio" default:"0" env:"MOCKSTAGRAM_SIM_FAULT_WRONG_PK_RATIO" help:"Fraction of influencer GETs (0..1) answered 200 with another pk's values."`
	FaultOutageAfter       time.Duration `name:"fault.outage.after" default:"0s" env:"MOCKSTAGRAM_SIM_FAULT_OUTAGE_AFTER" help:"Start of the outage window, measured from start-up (duration)."`
	FaultOutageDuration    time.Duration `name:"fault.outage.duration" default:"0s" env:"MOCKSTAGRAM_SIM_FAULT_OUTAGE_DURATION" help:"Length of the outage window (duration; 0 means no outage)."`
	FaultOutageMode        string        `name:"fault.outage.mode" default:"${outage_mode}" enum:"reset,503" env:"MOCKSTAGRAM_SIM_FAULT_OUTAGE_MODE" help:"What influencer GETs get during the outage (${enum})."`
	FaultSuspiciousError   float64       `name:"fault.suspicious.error-ratio" default:"0" env:"MOCKSTAGRAM_SIM_FAULT_SUSPICIOUS_ERROR_RATIO" help:"Fraction of classifier calls (0..1) answered 500 after their delay."`
}

func (c *cli) config(logger *slog.Logger) simulator.Config {
	return simulator.Config{
		PKs:                   pkrange.Range{Min: c.PKMin, Max: c.PKMax},
		Seed:                  c.Seed,
		Drift:                 c.Drift,
		NotFoundStatus:        c.NotFoundStatus,
		Capacity:              c.Capacity,
		SuspiciousDelayMean:   c.SuspiciousDelayMean,
		SuspiciousDelayStddev: c.SuspiciousDelayStddev,
		SuspiciousDelayMax:    c.SuspiciousDelayMax,
		IdleTimeout:           c.IdleTimeout,
		Logger:                logger,
		Faults: simulator.Faults{
			LatencyMean:          c.FaultLatencyMean,
			LatencyStddev:        c.FaultLatencyStddev,
			LatencySpikeRatio:    c.FaultLatencySpikeRatio,
			LatencySpike:         c.FaultLatencySpike,
			ErrorRatio:           c.FaultErrorRatio,
			ResetRatio:           c.FaultResetRatio,
			BadJSONRatio:         c.FaultBadJSONRatio,
			WrongPKRatio:         c.FaultWrongPKRatio,
			OutageAfter:          c.FaultOutageAfter,
			OutageDuration:       c.FaultOutageDuration,
			OutageMode:           c.FaultOutageMode,
			SuspiciousErrorRatio: c.FaultSuspiciousError,
		},
	}
}

// vars are the defaults of simulator.DefaultConfig, for the kong tags.
func vars() kong.Vars {
	d := simulator.DefaultConfig()
	return kong.Vars{
		"idle_timeout":            d.IdleTimeout.String(),
		"pk_min":                  strconv.FormatInt(d.PKs.Min, 10),
		"pk_max":                  strconv.FormatInt(d.PKs.Max, 10),
		"drift":                   strconv.FormatBool(d.Drift),
		"not_found_status":        strconv.Itoa(d.NotFoundStatus),
		"suspicious_delay_mean":   d.SuspiciousDelayMean.String(),
		"suspicious_delay_stddev": d.SuspiciousDelayStddev.String(),
		"outage_mode":             d.Faults.OutageMode,
	}
}

// parse reads args into a cli.
func parse(args []string, stdout io.Writer) (cli, error) {
	var c cli
	_, err := cmdline.Parse(&c, "mockstagram-sim",
		"A fast simulator of the Mockstagram API. Every flag is also an environment variable.",
		"MOCKSTAGRAM_SIM", vars(), args, stdout)
	return c, err
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c cli
	logger, code := cmdline.Start("mockstagram-sim", func() (err error) { c, err = parse(args, stdout); return err },
		func() logging.Flags { return c.Log }, stderr)
	if logger == nil {
		return code
	}
	if err := serve(ctx, &c, logger); err != nil {
		logger.Error("mockstagram-sim failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, c *cli, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	began := time.Now()
	srv, err := simulator.New(c.config(logger))
	if err != nil {
		return fmt.Errorf("cannot configure the simulator: %w", err)
	}
	ln, err := webserver.Bind(c.ListenAddress)
	if err != nil {
		return err
	}
	logger.Info("mockstagram-sim listening",
		"address", ln.Addr().String(),
		"url", "http://"+reachable(ln.Addr()),
		"pk.min", c.PKMin, "pk.max", c.PKMax,
		"seed", srv.Seed(), "drift", c.Drift,
		"not_found_status", c.NotFoundStatus,
		"capacity_rps", c.Capacity,
		"faults", c.config(nil).Faults.String(),
		"startup", time.Since(began).Round(time.Millisecond))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	stopping := time.Now()
	if err := srv.Shutdown(); err != nil {
		return fmt.Errorf("cannot shut down cleanly: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	logger.Info("stopped", "took", time.Since(stopping).Round(time.Millisecond))
	return nil
}

// reachable turns a wildcard listen address into one a browser can open.
func reachable(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("localhost", fmt.Sprint(tcp.Port))
}
