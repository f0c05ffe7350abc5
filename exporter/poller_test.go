package exporter

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

func connTestConfig(urls []string, max int64, pipeline int) Config {
	return Config{
		URLs: urls, Range: pkrange.Range{Min: 1_000_000, Max: max}, Shard: pkrange.Shard{Count: 1},
		Interval: time.Second, Timeout: 300 * time.Millisecond, Concurrency: 16, Pipeline: pipeline,
		Retries: 2, RetryBackoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	}
}

func runFor(t *testing.T, cfg Config, cycles int64) *Exporter {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, ok := e.LastCycle(); ok && r.Cycle >= cycles-1 {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report of cycle %d", cycles-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStalledUpstreamHoldsUpOnlyItsOwnPKs: one upstream accepts connections
// and never answers; the pks of the healthy one are all polled every cycle.
func TestStalledUpstreamHoldsUpOnlyItsOwnPKs(t *testing.T) {
	const max = 1_000_000 + 999
	_, good := simtest.Start(t, simtest.Config(1_000_000, max, false))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, never answer
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	cfg := connTestConfig([]string{good, "http://" + ln.Addr().String()}, max, 4)
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	e := runFor(t, cfg, 2)
	healthy := 0
	for i := range e.store.Len() {
		if e.upstreamFor(e.store.pks.PK(i)) == 0 {
			healthy++
		}
	}
	r, _ := e.LastCycle()
	if r.Polled != healthy {
		t.Fatalf("cycle %+v: want all %d pks of the healthy upstream polled", r, healthy)
	}
	if r.Polled+r.Failed+r.Missed != r.Owned || r.Failed+r.Missed != 1000-healthy {
		t.Fatalf("cycle %+v: the stalled upstream's %d pks must be failed or missed", r, 1000-healthy)
	}
	if f := e.Freshness(); f.Fresh != healthy {
		t.Fatalf("%d fresh samples, want %d", f.Fresh, healthy)
	}
	if v := e.tel.inflight; v == nil {
		t.Fatal("no in-flight gauge")
	}
	// The cycle line blames the stalled upstream, not the exporter's CPU.
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="cycle done"`) && strings.Contains(l, "cycle=1 ") {
			line = l
		}
	}
	if want := "upstream http://" + ln.Addr().String() + " is down"; !strings.Contains(line, want) || strings.Contains(line, "CPU") {
		t.Fatalf("cycle log line %q: want it to say %q and not blame the exporter's CPU", line, want)
	}
}

// lockedBuffer is a bytes.Buffer for a logger written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pipelineProbe is an HTTP/1.1 server that answers like Mockstagram and
// records the most requests it ever saw queued on one connection.
type pipelineProbe struct {
	ln       net.Listener
	maxQueue atomic.Int64
	answers  atomic.Int64
}

func startProbe(t *testing.T) *pipelineProbe {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pipelineProbe{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *pipelineProbe) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var req fasthttp.Request
	for {
		if err := req.Read(br); err != nil {
			return
		}
		// Let a pipelining client's next requests arrive, then count how
		// many are already waiting behind this one.
		time.Sleep(5 * time.Millisecond)
		queued := int64(1 + strings.Count(peekAll(br, c), "GET "))
		for {
			m := p.maxQueue.Load()
			if queued <= m || p.maxQueue.CompareAndSwap(m, queued) {
				break
			}
		}
		path := string(req.URI().Path())
		pk, _ := strconv.ParseInt(path[strings.LastIndexByte(path, '/')+1:], 10, 64)
		body := fmt.Sprintf(`{"pk":%d,"username":"influencer-%d","followerCount":5000,"followingCount":50}`, pk, pk)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		p.answers.Add(1)
	}
}

// peekAll returns what is already buffered or arrives within a moment.
func peekAll(br *bufio.Reader, c net.Conn) string {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	br.Peek(1)
	c.SetReadDeadline(time.Time{})
	b, _ := br.Peek(br.Buffered())
	return string(b)
}

// TestPipelineDepth: --poll.pipeline=1 never puts a second request on a
// connection before the first is answered; a depth of 8 does pipeline,
// but never past 8.
func TestPipelineDepth(t *testing.T) {
	for _, depth := range []int{1, 8} {
		p := startProbe(t)
		cfg := connTestConfig([]string{"http://" + p.ln.Addr().String()}, 1_000_000+399, depth)
		cfg.Concurrency = 16
		runFor(t, cfg, 1)
		got := p.maxQueue.Load()
		if depth == 1 && got != 1 {
			t.Fatalf("pipeline=1: %d requests were queued on one connection", got)
		}
		if depth == 8 && (got < 2 || got > 8) {
			t.Fatalf("pipeline=8: at most %d requests queued on one connection, want 2..8", got)
		}
	}
}

// TestConnectionCloseCostsNoAttempt: an upstream that closes the connection
// after every answer still gets every pk polled when pipelining was asked
// for: the requests it never answered go out again without spending a
// retry, and pipelining to it stops. (The answer a closing server sends can
// itself be lost to the reset its close causes; that is a failed attempt,
// retried.)
func TestConnectionCloseCostsNoAttempt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pk := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, `{"pk":%s,"username":"influencer-%s","followerCount":5000,"followingCount":50}`, pk, pk)
	}))
	t.Cleanup(srv.Close)
	cfg := connTestConfig([]string{srv.URL}, 1_000_000+199, 16)
	e := runFor(t, cfg, 2)
	if r, _ := e.LastCycle(); r.Polled != 200 {
		t.Fatalf("cycle %+v: want all 200 polled", r)
	}
	aborted := testutilValue(e.tel.polls[0][Aborted])
	retries := testutilValue(e.tel.retries)
	if aborted == 0 || retries >= aborted {
		t.Fatalf("%v aborted requests and %v retries: the aborted ones must go out again without a retry", aborted, retries)
	}
}

func testutilValue(c interface{ Desc() *prometheus.Desc }) float64 {
	return testutil.ToFloat64(c.(prometheus.Collector))
}
