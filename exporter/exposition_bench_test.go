package exporter

import (
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

// filledStore returns a store of n influencers polled as the scheduler polls
// them: in pk order, about 17 per millisecond (1M per minute).
func filledStore(n int) *Store {
	s := NewStore(pkrange.Owned(pkrange.Range{Min: pkrange.DefaultMin, Max: pkrange.DefaultMin + int64(n) - 1}, pkrange.Shard{Count: 1}))
	t0 := int64(1_763_800_000_000)
	for i := range n {
		s.Set(i, Sample{Followers: uint32(5000 + i*7919%200000), Following: uint32(50 + i*31%2000), TimeMs: t0 + int64(i)/17})
	}
	return s
}

// judge gives every influencer a verdict as the classifier does over a day:
// in pk order, one every 86.4 ms, about 10% suspicious.
func judge(s *Store) *Store {
	t0 := int64(1_763_700_000_000)
	for i := range s.Len() {
		s.SetVerdict(i, Verdict{TimeMs: t0 + int64(i)*864/10, Suspicious: i%10 == 3})
	}
	return s
}

// BenchmarkRender1M renders one full exposition of 1M influencers (3M lines).
// Targets: <= 100 ms plain, <= 300 ms gzipped, <= 16 B of hot data each.
func BenchmarkRender1M(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := filledStore(1_000_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perPK := float64(after.HeapAlloc-before.HeapAlloc) / 1e6

	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		var n int64
		for b.Loop() {
			n, _ = NewExposition(s).Write(io.Discard, 0, s.Len())
		}
		b.ReportMetric(float64(n)/1e6, "MB/scrape")
		b.ReportMetric(perPK, "heapB/pk")
	})
	b.Run("plain-verdicts", func(b *testing.B) {
		// After the first day every influencer also has a suspicious line.
		v := judge(filledStore(1_000_000))
		b.ReportAllocs()
		var n int64
		for b.Loop() {
			n, _ = NewExposition(v).Write(io.Discard, 0, v.Len())
		}
		b.ReportMetric(float64(n)/1e6, "MB/scrape")
	})
	b.Run("gzip", func(b *testing.B) {
		b.ReportAllocs()
		cw := &webserver.CountingWriter{W: io.Discard}
		gz, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed)
		x := NewExposition(s)
		for b.Loop() {
			cw.N = 0
			x.WriteGzip(cw, gz, 0, s.Len(), Everything)
		}
		b.ReportMetric(float64(cw.N)/1e6, "MB/scrape")
	})
}

// BenchmarkVerdictTimestamps compares the two ways of formatting 1M verdict
// timestamps 86 ms apart, side by side.
func BenchmarkVerdictTimestamps(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.Run("strconv", func(b *testing.B) {
		for b.Loop() {
			for i := range int64(1_000_000) {
				buf = strconv.AppendInt(buf[:0], 1_763_700_000_000+i*86, 10)
			}
		}
	})
	b.Run("tsText", func(b *testing.B) {
		for b.Loop() {
			var t tsText
			for i := range int64(1_000_000) {
				buf = t.append(buf[:0], 1_763_700_000_000+i*86)
			}
		}
	})
}
