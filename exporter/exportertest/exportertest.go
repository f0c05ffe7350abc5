// Package exportertest runs exporter shards in-process for the tests of the
// components that read them (rankd, VictoriaMetrics end to end, the
// exporter's own integration tests).
package exportertest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// Config is a shard of pks min..max polling urls every second, with short
// timeouts and retries, quiet logs, and a suspicious check of every pk every
// 4 s (the first pass starts after the first poll cycle).
func Config(urls []string, min, max int64, shard pkrange.Shard) exporter.Config {
	return exporter.Config{
		URLs: urls, Range: pkrange.Range{Min: min, Max: max}, Shard: shard,
		Interval: time.Second, Timeout: 300 * time.Millisecond, Concurrency: 16, Pipeline: 4,
		Retries: 2, RetryBackoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Suspicious: exporter.SuspiciousConfig{Enabled: true, Period: 4 * time.Second, Concurrency: 32,
			Timeout: 2 * time.Second, Retries: 2, RetryBackoff: 50 * time.Millisecond},
	}
}

// Shard is an exporter polling in-process and served over HTTP until the
// test ends.
type Shard struct {
	E      *exporter.Exporter
	URL    string       // base URL of its HTTP surface
	Client *http.Client // reaches URL

	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs cfg until the test ends.
func Start(t testing.TB, cfg exporter.Config) *Shard {
	t.Helper()
	e, err := exporter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shard{E: e, cancel: cancel, done: make(chan struct{})}
	go func() { e.Run(ctx); close(s.done) }()
	web := httptest.NewServer(e.Handler(exporter.DefaultMetricsPath, exporter.DefaultTelemetryPath))
	s.URL, s.Client = web.URL, http.DefaultClient
	t.Cleanup(func() { s.StopPolling(); web.Close() })
	return s
}

// StartMem runs cfg until the test ends with every connection on the
// in-memory network n: it dials its upstreams there and serves its HTTP
// surface there too. Inside a synctest bubble, the whole shard then runs on
// the bubble's fake clock.
func StartMem(t testing.TB, cfg exporter.Config, n *memnet.Network) *Shard {
	t.Helper()
	cfg.Dial = n.Dial
	e, err := exporter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := n.ListenUnique("exporter")
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shard{E: e, cancel: cancel, done: make(chan struct{}), URL: "http://" + ln.Addr().String()}
	tr := &http.Transport{DialContext: n.Dial}
	s.Client = &http.Client{Transport: tr}
	go func() { e.Run(ctx); close(s.done) }()
	web := &http.Server{Handler: e.Handler(exporter.DefaultMetricsPath, exporter.DefaultTelemetryPath)}
	go web.Serve(ln)
	t.Cleanup(func() {
		s.StopPolling()
		web.Close()
		tr.CloseIdleConnections()
	})
	return s
}

// StopPolling ends polling; the shard keeps serving what it holds. It may
// be called more than once.
func (s *Shard) StopPolling() {
	s.cancel()
	<-s.done
}

// WaitCycles waits until n cycles have been reported and returns the last.
func (s *Shard) WaitCycles(t testing.TB, n int64) exporter.CycleReport {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r, ok := s.E.LastCycle(); ok && r.Cycle >= n-1 {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no report of cycle %d within 60s", n-1)
	return exporter.CycleReport{}
}

// WaitComplete waits for a cycle in which every owned pk was polled.
func (s *Shard) WaitComplete(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r, ok := s.E.LastCycle(); ok && r.Polled == r.Owned {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the exporter never polled every pk in one cycle")
}

// WaitVerdicts waits until every owned pk has a suspicious verdict.
func (s *Shard) WaitVerdicts(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if judged, _, _ := s.E.Store().VerdictStats(0); judged == s.E.Store().Len() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	judged, _, _ := s.E.Store().VerdictStats(0)
	t.Fatalf("only %d of %d pks have a verdict after 60s", judged, s.E.Store().Len())
}
