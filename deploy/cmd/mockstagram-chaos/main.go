// Command mockstagram-chaos breaks a real pipeline on purpose and measures
// what each fault costs: the simulator, two exporter shards, rankd,
// VictoriaMetrics behind vmagent (the multi-node layout) and vmalert, at
// 100k influencers polled every 15 s. It SIGKILLs each component in turn
// at a random moment (--seed) and restarts it as a supervisor would, fills
// VictoriaMetrics' data disk (a tmpfs of --disk.size), stalls the upstream
// and drops the network between the exporters and the upstream (the
// simulator runs in a network namespace of its own). For each fault it
// reports the time to recover (rankd answering exact data again, coverage
// back to 1.0), the samples lost (stored in VictoriaMetrics against the
// successful polls the exporters counted) beside the loss that is inherent
// to the fault and its bound, the alerts that fired and resolved, and what
// did not recover. It needs root (mount, ip netns). Behind `make chaos`;
// docs/operations.md has the measured table.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
)

type cli struct {
	BinDir       string        `name:"bin.dir" default:"bin" help:"Directory holding the built binaries (make build)."`
	VictoriaDir  string        `name:"victoria.dir" default:"victoria" help:"Where scrape.yml and rules/*.yml are (the repository's victoria/)."`
	WorkDir      string        `name:"work.dir" help:"Logs, state and data go here; empty: a temporary directory, removed at the end unless a fault did not recover."`
	PKCount      int           `name:"pk.count" default:"100000" help:"Influencers, from pk 1000000."`
	PollInterval time.Duration `name:"poll.interval" default:"15s" help:"The exporters' --poll.interval; scrapes run at half of it."`
	Seed         uint64        `name:"seed" default:"1" help:"Seeds the moments of the faults and the simulator's data: the same seed runs the same schedule."`
	Short        bool          `name:"short" help:"Hold each lasting fault 20 s instead of --fault.duration, and wait less between faults."`
	FaultFor     time.Duration `name:"fault.duration" default:"40s" help:"How long a lasting fault (full disk, stalled upstream, dropped network) is held."`
	Only         []string      `name:"faults" sep:"," help:"Run only these faults (names as in the report, comma-separated)."`
	Recover      time.Duration `name:"recover.timeout" default:"3m" help:"A fault that has not recovered this long after it ended is reported as not recovered."`
	DiskSize     string        `name:"disk.size" default:"384m" help:"Size of the tmpfs that holds VictoriaMetrics' data (mount -o size=)."`
	JSON         string        `name:"json" help:"Also write the results as JSON to this file."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c cli
	kong.Parse(&c, kong.Name("mockstagram-chaos"),
		kong.Description("Kills and breaks every part of a running pipeline and measures recovery and loss (needs root)."),
		kong.DefaultEnvars("MOCKSTAGRAM_CHAOS"))
	if err := run(ctx, &c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "mockstagram-chaos: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *cli, out io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	ch, err := setUp(ctx, c, out)
	if ch != nil {
		defer ch.tearDown()
	}
	if err != nil {
		return err
	}
	return ch.runFaults(ctx)
}

func (c *cli) validate() error {
	if c.PKCount < 2 {
		return fmt.Errorf("--pk.count=%d: want at least 2 (two shards)", c.PKCount)
	}
	if c.PollInterval < 4*time.Second {
		return fmt.Errorf("--poll.interval=%s: want at least 4s (scrapes run at half of it)", c.PollInterval)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("mockstagram-chaos needs root: it mounts a tmpfs for VictoriaMetrics' disk and puts the simulator in a network namespace (run it with sudo)")
	}
	for _, f := range c.Only {
		if faultByName(f) == nil {
			return fmt.Errorf("--faults: unknown fault %q; the faults are %s", f, faultNames())
		}
	}
	if c.Short {
		c.FaultFor = min(c.FaultFor, 20*time.Second)
	}
	return nil
}
