// Package simtest starts an in-process Mockstagram simulator for tests of
// the components that poll it.
package simtest

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
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
	serve(t, srv, ln)
	return srv, "http://" + ln.Addr().String()
}

// StartMem serves cfg on an in-memory network until the test ends, for
// tests that run on a fake clock (testing/synctest), and returns the server
// and its base URL.
func StartMem(t testing.TB, cfg simulator.Config, n *memnet.Network) (*simulator.Server, string) {
	t.Helper()
	srv, err := simulator.New(cfg)
	if err != nil {
		t.Fatalf("cannot create simulator: %v", err)
	}
	ln := n.ListenUnique("sim")
	// Runs after serve's cleanup stops the server (cleanups run last
	// first): fasthttp's worker-pool cleaner looks for the stop every 10 s
	// and would still be asleep when the bubble ends. On the bubble's clock
	// this wait is free.
	t.Cleanup(func() { time.Sleep(15 * time.Second) })
	serve(t, srv, ln)
	return srv, "http://" + ln.Addr().String()
}

// fasthttp keeps its Date header fresh from a goroutine started on first
// use that never ends. Started here, at package init, it stays outside any
// synctest bubble, whose end it would otherwise block.
func init() {
	var h fasthttp.ResponseHeader
	h.AppendBytes(nil)
}

func serve(t testing.TB, srv *simulator.Server, ln net.Listener) {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("simulator: %v", err)
		}
	})
}
