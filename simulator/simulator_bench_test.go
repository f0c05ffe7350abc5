package simulator

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

func benchServer(b *testing.B) *Server {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Seed = 1
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchURIs spreads requests over the range like a real poller.
func benchURIs() [][]byte {
	uris := make([][]byte, 4096)
	for i := range uris {
		pk := pkrange.DefaultMin + int64(i)*244
		uris[i] = []byte("/api/v1/influencers/" + strconv.FormatInt(pk, 10))
	}
	return uris
}

// BenchmarkHandleInfluencer is the handler alone: routing, pk parsing, the
// step and the body, without HTTP parsing or I/O.
func BenchmarkHandleInfluencer(b *testing.B) {
	s := benchServer(b)
	uris := benchURIs()
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ctx.Request.Header.SetRequestURIBytes(uris[i%len(uris)])
		ctx.Response.Reset()
		s.handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d", ctx.Response.StatusCode())
		}
	}
}

// BenchmarkHandleInfluencerParallel adds contention on the counters and the
// telemetry.
func BenchmarkHandleInfluencerParallel(b *testing.B) {
	s := benchServer(b)
	uris := benchURIs()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		for i := 0; pb.Next(); i++ {
			ctx.Request.Header.SetRequestURIBytes(uris[i%len(uris)])
			ctx.Response.Reset()
			s.handle(&ctx)
		}
	})
}

// BenchmarkServeInfluencer is the whole request over loopback TCP with a
// fasthttp client in the same process. cpu-us/op is the process's CPU time
// (client and server together) per request; BenchmarkServeBaseline measures
// the same for a server that answers a constant body, so the difference is
// what the simulator adds.
func BenchmarkServeInfluencer(b *testing.B) {
	benchServe(b, benchServer(b).srv)
}

// BenchmarkServeBaseline is BenchmarkServeInfluencer against a fasthttp
// server that does no work.
func BenchmarkServeBaseline(b *testing.B) {
	body := []byte(`{"pk":1000001,"username":"influencer-1000001","followerCount":57166,"followingCount":1328}`)
	benchServe(b, &fasthttp.Server{NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentTypeBytes(contentTypeJSON)
		ctx.SetBody(body)
	}})
}

func benchServe(b *testing.B, server *fasthttp.Server) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- server.Serve(ln) }()
	defer func() {
		if err := server.Shutdown(); err != nil {
			b.Error(err)
		}
		<-served
	}()

	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 1024}
	defer client.CloseIdleConnections()
	uris := benchURIs()
	b.SetParallelism(32) // 64 connections on 2 cores, like a busy poller
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for i := 0; pb.Next(); i++ {
			req.SetRequestURIBytes(uris[i%len(uris)])
			req.SetHost("sim")
			if err := client.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 200 {
				b.Errorf("status %d", resp.StatusCode())
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNewState is start-up: seeding one million influencers.
func BenchmarkNewState(b *testing.B) {
	r := pkrange.Range{Min: pkrange.DefaultMin, Max: pkrange.DefaultMax}
	b.ReportAllocs()
	for b.Loop() {
		newState(r, 1, true)
	}
}

func BenchmarkJSNumber(b *testing.B) {
	b.ReportAllocs()
	for _, in := range []string{"1000001", "1e6", " 0x1E8481 "} {
		b.Run(in, func(b *testing.B) {
			for b.Loop() {
				jsNumber(in)
			}
		})
	}
}
