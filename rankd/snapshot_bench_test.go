package rankd

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// simulatorLike fills n influencers like Mockstagram: max(round(100000(1+z)), 5000).
func simulatorLike(n int) *Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	s := &Snapshot{PKMin: 1_000_000, followers: make([]uint32, n), following: make([]uint32, n), timeMs: make([]int64, n)}
	for i := range n {
		s.followers[i] = uint32(max(100000*(1+r.NormFloat64()), 5000))
		s.following[i] = uint32(max(1000*(1+r.NormFloat64()), 50))
		s.timeMs[i] = 1_763_800_000_000 + int64(i/17)
	}
	return s
}

// BenchmarkBuild1M is the ordering part of a refresh of 1M influencers.
func BenchmarkBuild1M(b *testing.B) {
	s := simulatorLike(1_000_000)
	var sc buildScratch // kept between refreshes, as the server does
	b.ReportAllocs()
	for b.Loop() {
		s.build(&sc)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t := simulatorLike(1_000_000)
	t.build(nil)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/1e6, "heapB/influencer")
	runtime.KeepAlive(t)
}

// BenchmarkLookup1M is one rank lookup among 1M influencers.
func BenchmarkLookup1M(b *testing.B) {
	s := simulatorLike(1_000_000)
	s.build(nil)
	b.ReportAllocs()
	pk := int64(1_000_000)
	for b.Loop() {
		if _, ok := s.Lookup(pk); !ok {
			b.Fatal("missing")
		}
		pk = 1_000_000 + (pk-1_000_000+7919)%1_000_000
	}
}
