package main

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

// TestStackArgsParse: the command line internal/stack builds for rankd
// parses, every field landing in its flag; a renamed flag fails here, not
// in a launcher run.
func TestStackArgsParse(t *testing.T) {
	spec := stack.Rankd{Addr: "127.0.0.1:7", Exporters: []string{"http://e0", "http://e1"}, Refresh: time.Second,
		RefreshTimeout: 2 * time.Second, LogLevel: "warn", Victoria: "http://vm:8428", GainsWindows: "1m,1h",
		GainsRefresh: 5 * time.Second, GainsLookback: 3 * time.Minute}
	c, err := parse(spec.Args(), io.Discard)
	if err != nil {
		t.Fatalf("parse %q: %v", spec.Args(), err)
	}
	if !slices.Equal(c.Web.ListenAddress, []string{spec.Addr}) || !slices.Equal(c.ExporterURL, spec.Exporters) ||
		c.RefreshInterval != time.Second || c.RefreshTimeout != 2*time.Second || c.Log.Level != "warn" ||
		c.VictoriaURL != spec.Victoria || c.GainsWindows != spec.GainsWindows || c.GainsRefresh != spec.GainsRefresh || c.GainsLookback != spec.GainsLookback {
		t.Fatalf("parse %q = %+v", spec.Args(), c)
	}
}
