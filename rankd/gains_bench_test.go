package rankd

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// benchWindows are the default gains windows.
func benchWindows(b *testing.B) []Window {
	ws, err := ParseWindows(DefaultWindows)
	if err != nil {
		b.Fatal(err)
	}
	return ws
}

// benchBaseline is a baseline for the 1M simulator-like influencers of
// simulatorLike: each count a random walk of sigma 10,000 a poll away, a
// step for each of polls polls (60 for an hour), 2% without history.
func benchBaseline(s *Snapshot, polls int, seed uint64) *baseline {
	r := rand.New(rand.NewPCG(seed, 9))
	n := s.Span()
	b := &baseline{PKMin: s.PKMin, f: make([]uint32, n), gt: make([]baseRest, n),
		origin: 1_763_700_000_000, Start: time.UnixMilli(1_763_700_120_000)}
	sd := 10_000 * sqrtInt(polls)
	for i := range n {
		if r.IntN(50) == 0 {
			continue
		}
		b.f[i] = uint32(max(0, int64(s.f[i])+int64(r.NormFloat64()*sd)))
		b.gt[i].G = uint32(max(0, int64(s.m[i].G)+int64(r.NormFloat64()*sd/100)))
		b.gt[i].T = uint32(1 + r.IntN(120_000))
	}
	b.index()
	return b
}

func sqrtInt(n int) float64 {
	x := float64(n)
	for range 30 {
		x = (x + float64(n)/x) / 2
	}
	return x
}

// benchGainsSnapshot is an ordered 1M snapshot with gains over the
// default windows.
func benchGainsSnapshot(b *testing.B) *Snapshot {
	s := simulatorLike(benchN)
	var sc buildScratch
	s.build(&sc)
	var bases []*baseline
	for k, polls := range []int{60, 1440, 43200, 10080} { // 1h, 24h, 30d, 7d: the windows in name order
		bases = append(bases, benchBaseline(s, polls, uint64(k)))
	}
	s.buildGains(bases, nil, &sc)
	return s
}

// BenchmarkGains1M is the gains part of a refresh of 1M influencers: for
// each of the four default windows, subtract the baselines, sort the gains
// and pick the movers lists.
func BenchmarkGains1M(b *testing.B) {
	s := benchGainsSnapshot(b)
	bases := make([]*baseline, len(s.gains))
	for k := range s.gains {
		bases[k] = s.gains[k].base
	}
	var sc buildScratch
	b.ReportAllocs()
	for b.Loop() {
		s.buildGains(bases, nil, &sc)
	}
}

// BenchmarkGainLookup1M is one influencer's gains and gain ranks in the
// four default windows (what /api/v1/influencers/{pk} adds), at pks spread
// over the whole range; ns/op is for all four.
func BenchmarkGainLookup1M(b *testing.B) {
	s := benchGainsSnapshot(b)
	dst := make([]Gain, 0, 4)
	pk := int64(1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		dst = s.Gains(pk, dst[:0])
		pk = 1_000_000 + (pk-1_000_000+7919)%benchN
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4, "ns/window")
}

// BenchmarkMovers1M is a page of 100 movers of the 24h window, the first
// page and the last the lists hold, gainers and losers.
func BenchmarkMovers1M(b *testing.B) {
	s := benchGainsSnapshot(b)
	for _, c := range []struct {
		name    string
		gainers bool
		offset  int
	}{{"gainers/offset=0", true, 0}, {"gainers/offset=9900", true, 9900}, {"losers/offset=0", false, 0}, {"losers/offset=9900", false, 9900}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ms, _ := s.Movers(1, c.gainers, 100, c.offset); len(ms) != 100 {
					b.Fatalf("%d movers", len(ms))
				}
			}
		})
	}
}

// churningExporters are four exporter-like shards of 1M simulator-like
// influencers over loopback HTTP that, like real ones, answer each read
// with new counts for the twelfth of their influencers polled since (a 5 s
// refresh of 1-minute polls): a step of sigma 10,000 followers.
func churningExporters(b *testing.B) []string {
	var urls []string
	for k, sh := range benchShards(b) {
		data := sh.body
		n, reads := int(sh.h.N), 0
		rs := rand.New(rand.NewPCG(uint64(k), 3))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			part := reads % 12
			for i := part * n / 12; i < (part+1)*n/12; i++ {
				off := 28 + i*snapwire.RecordSize // after the 28-byte header
				f := int64(binary.LittleEndian.Uint32(data[off:]))
				binary.LittleEndian.PutUint32(data[off:], uint32(max(5000, f+int64(rs.NormFloat64()*10_000))))
			}
			reads++
			w.Write(data)
		}))
		b.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls
}

// BenchmarkRefreshGains1M is a whole refresh of 1M influencers from four
// churning exporter-like shards, without gains (windows=0) and with gains
// over the four default windows (windows=4; baselines set in memory:
// reading them from VictoriaMetrics is BenchmarkBaselineRead1M, make
// bench-gains-vm). cpu-ms/refresh of the two is the cost of gains.
// heapB/influencer is the whole server's live heap after a GC, as in
// BenchmarkRefresh1M; gainB/influencer/window is what the gains add to it
// (the server without gains measured first, in the same process), per
// window.
func BenchmarkRefreshGains1M(b *testing.B) {
	urls := churningExporters(b)
	windows := benchWindows(b)
	var plainHeap uint64
	for _, nw := range []int{0, len(windows)} {
		b.Run("windows="+strconv.Itoa(nw), func(b *testing.B) {
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			cfg := Config{Sources: urls, Refresh: time.Second, Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)}
			if nw > 0 {
				cfg.Victoria, cfg.Windows = "http://127.0.0.1:1", windows
			}
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			s.Refresh(context.Background()) // the first refresh allocates the arrays
			if nw > 0 {
				for k, polls := range []int{60, 1440, 43200, 10080} { // 1h, 24h, 30d, 7d: the windows in name order
					s.gains.base[k].Store(benchBaseline(s.Snapshot(), polls, uint64(k)))
				}
			}
			s.Refresh(context.Background())
			s.Refresh(context.Background()) // both snapshots hold gains
			refreshLoop(b, s)
			snap := s.Snapshot()
			if !snap.Complete || snap.Count != benchN || (nw > 0 && snap.gains[0].Count() < benchN*9/10) {
				b.Fatalf("snapshot of %d influencers, complete %v", snap.Count, snap.Complete)
			}
			runtime.GC()
			runtime.ReadMemStats(&m1)
			heap := m1.HeapAlloc - m0.HeapAlloc
			b.ReportMetric(float64(heap)/benchN, "heapB/influencer")
			if nw == 0 {
				plainHeap = heap
			} else if plainHeap > 0 {
				b.ReportMetric((float64(heap)-float64(plainHeap))/benchN/float64(nw), "gainB/influencer/window")
			}
			runtime.KeepAlive(s)
		})
	}
}
