package rankd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

const benchN = 1_000_000

// simulatorRecord is influencer i of a population like Mockstagram's:
// followers max(round(100000(1+z)), 5000), following max(round(1000(1+z)), 50),
// polled over the last minute, judged over the last day by upstream's rule.
func simulatorRecord(r *rand.Rand, i int) snapwire.Record {
	f := uint32(max(100000*(1+r.NormFloat64()), 5000))
	g := uint32(max(1000*(1+r.NormFloat64()), 50))
	return snapwire.Record{Followers: f, Following: g, TimeMs: 1_763_800_000_000 + int64(i)%60_000,
		VerdictMs: 1_763_713_600_000 + int64(i)*86_400_000/benchN, Suspicious: float64(f)/float64(g) <= 5.64}
}

// simulatorLike fills n influencers like Mockstagram.
func simulatorLike(n int) *Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	s := &Snapshot{PKMin: 1_000_000, f: make([]uint32, n), m: make([]meta, n)}
	for i := range n {
		x := simulatorRecord(r, i)
		s.set(i, rec{F: x.Followers, meta: meta{G: x.Following, Polled: pollSeconds(x.TimeMs), Verdict: compactVerdict(x.VerdictMs, x.Suspicious)}})
	}
	return s
}

// BenchmarkBuild1M is the ordering part of a refresh of 1M influencers.
// benchShard is one of four exporter-like shards of the benchN
// simulator-like influencers, as its /snapshot body.
type benchShard struct {
	h    snapwire.Header
	body []byte
}

// benchShards are the four shards the refresh benchmarks serve, the same
// influencers every time.
func benchShards(b *testing.B) []benchShard {
	const shards = 4
	r := rand.New(rand.NewPCG(1, 2))
	var out []benchShard
	for k := range shards {
		var body bytes.Buffer
		h := snapwire.Header{First: 1_000_000 + int64(k), Step: shards, N: benchN / shards}
		if err := snapwire.Write(&body, h, func(i int) snapwire.Record { return simulatorRecord(r, k+i*shards) }); err != nil {
			b.Fatal(err)
		}
		out = append(out, benchShard{h, body.Bytes()})
	}
	return out
}

// refreshLoop times whole refreshes of s and reports the process CPU
// each took (the decode runs on several goroutines).
func refreshLoop(b *testing.B, s *Server) {
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Refresh(context.Background())
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/refresh")
}

func BenchmarkBuild1M(b *testing.B) {
	s := simulatorLike(benchN)
	var sc buildScratch // kept between refreshes, as the server does
	b.ReportAllocs()
	for b.Loop() {
		s.build(&sc)
	}
}

// BenchmarkLookup1M is one rank lookup among 1M influencers, at pks spread
// over the whole range.
func BenchmarkLookup1M(b *testing.B) {
	s := simulatorLike(benchN)
	s.build(nil)
	b.ReportAllocs()
	pk := int64(1_000_000)
	for b.Loop() {
		if _, ok := s.Lookup(pk); !ok {
			b.Fatal("missing")
		}
		pk = 1_000_000 + (pk-1_000_000+7919)%benchN
	}
}

// BenchmarkRefresh1M is a whole refresh of 1M influencers read from four
// exporter-like shards over loopback HTTP (they serve ready-made bytes, so
// nearly all the CPU is rankd's). It reports the process CPU per refresh
// and rankd's live heap per influencer after the refreshes (both
// snapshots, the sort buffer and everything else the server holds).
func BenchmarkRefresh1M(b *testing.B) {
	var urls []string
	for _, sh := range benchShards(b) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(sh.body) }))
		b.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	s, err := New(Config{Sources: urls, Refresh: time.Second, Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	s.Refresh(context.Background()) // the first refresh allocates the arrays
	s.Refresh(context.Background())
	refreshLoop(b, s)
	if snap := s.Snapshot(); !snap.Complete || snap.Count != benchN {
		b.Fatalf("snapshot of %d influencers, complete %v", snap.Count, snap.Complete)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/benchN, "heapB/influencer")
	runtime.KeepAlive(s)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteRanks1M is the --expose.ranks part of one /metrics scrape
// at 1M influencers, plain and gzipped (BestSpeed, as served).
func BenchmarkWriteRanks1M(b *testing.B) {
	s := simulatorLike(benchN)
	s.build(nil)
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var n int64
			for b.Loop() {
				cw := &webserver.CountingWriter{W: io.Discard}
				var w io.Writer = cw
				var z *gzip.Writer
				if gz {
					z = gzipPool.Get().(*gzip.Writer)
					z.Reset(cw)
					w = z
				}
				if _, err := s.WriteRanks(w); err != nil {
					b.Fatal(err)
				}
				if z != nil {
					z.Close()
					gzipPool.Put(z)
				}
				n = cw.N
			}
			b.ReportMetric(float64(n), "bytes/scrape")
		})
	}
}

// discardWriter is the cheapest http.ResponseWriter: what a benchmark of the
// handler needs, without net/http's connection machinery around it.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkHandler1M is rankd's own CPU for one API request among 1M
// influencers: routing, the lookup and the JSON, everything rankd adds to
// net/http's connection handling (which wrk measures with it, see
// docs/rankd.md). "influencer" is GET /api/v1/influencers/{pk} at pks
// spread over the range, "top-1000" the largest leaderboard page.
func BenchmarkHandler1M(b *testing.B) {
	h := benchServer(b).Handler()
	influencers := make([]*http.Request, 1024)
	for i := range influencers {
		influencers[i] = httptest.NewRequest(http.MethodGet, "/api/v1/influencers/"+strconv.Itoa(1_000_000+(i*7919)%benchN), nil)
	}
	for _, c := range []struct {
		name string
		reqs []*http.Request
	}{
		{"influencer", influencers},
		{"top-1000", []*http.Request{httptest.NewRequest(http.MethodGet, "/api/v1/top?n=1000&offset=5000", nil)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, c.reqs[i%len(c.reqs)])
				if w.code != 0 && w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
				i++
			}
		})
	}
}

// benchServer is a rankd holding a complete snapshot of 1M influencers.
func benchServer(b *testing.B) *Server {
	srv, err := New(Config{Sources: []string{"http://127.0.0.1:1"}, Refresh: time.Second, Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	s := simulatorLike(benchN)
	s.build(nil)
	s.Complete = true
	srv.snap.Store(s)
	return srv
}
