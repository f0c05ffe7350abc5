package main

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

// TestStackArgsParse: the command lines internal/stack builds for an
// exporter shard parse, every field landing in its flag; a renamed flag
// fails here, not in a launcher run.
func TestStackArgsParse(t *testing.T) {
	f := func(spec stack.Exporter, check func(c *cli) bool) {
		t.Helper()
		c, err := parse(spec.Args(), io.Discard)
		if err != nil {
			t.Fatalf("parse %q: %v", spec.Args(), err)
		}
		if !check(c) {
			t.Fatalf("parse %q = %+v", spec.Args(), c)
		}
	}
	spec := stack.Exporter{Addr: "127.0.0.1:7", Upstreams: []string{"http://a", "http://b"}, PKs: pkrange.First(2000),
		Shard: pkrange.Shard{Index: 1, Count: 2}, PollInterval: 2 * time.Second, PollTimeout: time.Second,
		PollConcurrency: 16, SuspiciousPeriod: time.Hour, StateDir: t.TempDir(), LogLevel: "warn"}
	f(spec, func(c *cli) bool {
		return slices.Equal(c.Web.ListenAddress, []string{spec.Addr}) && slices.Equal(c.MockstagramURL, spec.Upstreams) &&
			c.PKMin == spec.PKs.Min && c.PKMax == spec.PKs.Max && c.ShardIndex == 1 && c.ShardCount == 2 &&
			c.PollInterval == spec.PollInterval && c.PollTimeout == spec.PollTimeout && c.PollConcurrency == 16 &&
			c.SuspiciousEnabled && c.SuspiciousPeriod == time.Hour && c.StateDir == spec.StateDir && c.Log.Level == "warn"
	})
	f(stack.Exporter{Addr: "127.0.0.1:7", SuspiciousOff: true}, func(c *cli) bool { return !c.SuspiciousEnabled })
}
