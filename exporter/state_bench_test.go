package exporter

import (
	"log/slog"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// BenchmarkState1M saves and loads the state of 1M influencers, each with a
// sample and a verdict. Target: a few MB, well under a second.
func BenchmarkState1M(b *testing.B) {
	dir := b.TempDir()
	cfg := Config{URLs: []string{"http://127.0.0.1:1"}, Range: pkrange.Range{Min: pkrange.DefaultMin, Max: pkrange.DefaultMin + 999_999},
		Shard: pkrange.Shard{Count: 1}, Interval: time.Minute, Timeout: time.Second, Concurrency: 1, Pipeline: 1,
		Suspicious: DefaultSuspiciousConfig(), StateDir: dir, Logger: slog.New(slog.DiscardHandler)}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	e.store = judge(filledStore(1_000_000))
	e.classifier.anchorMs.Store(1_763_700_000_000)
	b.Run("save", func(b *testing.B) {
		var n int64
		for b.Loop() {
			if n, err = e.SaveState(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/1e6, "MB")
		b.ReportMetric(float64(n)/1e6, "B/pk")
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e2, _ := New(cfg)
			b.StartTimer()
			if res := e2.LoadState(); !res.Loaded || res.Verdicts != 1_000_000 {
				b.Fatalf("%+v", res)
			}
		}
	})
}
