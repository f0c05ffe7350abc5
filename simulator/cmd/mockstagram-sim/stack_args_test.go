package main

import (
	"io"
	"testing"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

// TestStackArgsParse: the command line internal/stack builds for the
// simulator parses, every field landing in its flag; a renamed flag
// fails here, not in a launcher run.
func TestStackArgsParse(t *testing.T) {
	spec := stack.Simulator{Addr: "127.0.0.1:7", PKs: pkrange.First(2000), Seed: 3, LogLevel: "warn"}
	c, err := parse(spec.Args(), io.Discard)
	if err != nil {
		t.Fatalf("parse %q: %v", spec.Args(), err)
	}
	if c.ListenAddress != spec.Addr || c.PKMin != spec.PKs.Min || c.PKMax != spec.PKs.Max || c.Seed != 3 || c.Log.Level != "warn" {
		t.Fatalf("parse %q = %+v", spec.Args(), c)
	}
}
