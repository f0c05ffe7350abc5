// Package simtest starts an in-process Mockstagram simulator for tests of
// the components that poll it.
package simtest

import (
	"net"
	"testing"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator"
)

// Config returns the reference behaviour over pks min..max with a fixed seed
// and no classifier delay, so that tests are exact and quick.
func Config(min, max int64, drift bool) simulator.Config {
	cfg := simulator.DefaultConfig()
	cfg.PKs = pkrange.Range{Min: min, Max: max}
	cfg.Seed = 42
	cfg.Drift = drift
	cfg.SuspiciousDelayMean = 0
	cfg.SuspiciousDelayStddev = 0
	return cfg
}

// Start serves cfg on a free loopback port until the test ends and returns
// the server and its base URL.
func Start(t testing.TB, cfg simulator.Config) (*simulator.Server, string) {
	t.Helper()
	srv, err := simulator.New(cfg)
	if err != nil {
		t.Fatalf("cannot create simulator: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("simulator: %v", err)
		}
	})
	return srv, "http://" + ln.Addr().String()
}
