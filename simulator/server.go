package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Server is a running simulator: the influencer state, the HTTP handler and
// its telemetry. Create it with New, run it with Serve, stop it with Shutdown.
// Peek, Set and Requests are safe to call while it serves.
type Server struct {
	cfg    Config
	seed   int64
	st     *state
	faulty bool // any influencer fault configured
	start  time.Time
	now    func() time.Time // replaced by tests of the outage window

	srv      *fasthttp.Server
	stopping chan struct{} // closed by Shutdown; cuts injected sleeps short
	stopOnce sync.Once
	mu       sync.Mutex
	closed   bool
	lns      []net.Listener

	// conns are the open connections, closed by Shutdown after
	// shutdownGrace (fasthttp itself waits for ever for a connection that
	// sent half a request and went silent).
	conns         map[net.Conn]struct{}
	shutdownGrace time.Duration

	stallUntil atomic.Int64 // unix ns; influencer GETs wait until then (Stall)
	requests   atomic.Uint64
	fifo       fifo // the one-thread capacity (--capacity)
	landing    []byte
	metrics    fasthttp.RequestHandler
	tel        telemetry
}

// New validates cfg and seeds every influencer.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	for seed == 0 {
		seed = int64(rand.Uint64())
	}
	s := &Server{
		cfg:      cfg,
		seed:     seed,
		st:       newState(cfg.PKs, uint64(seed), cfg.Drift),
		faulty:   cfg.Faults.influencerFaults(),
		start:    time.Now(),
		now:      time.Now,
		stopping: make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
		// Injected sleeps end at once; a response still in flight takes
		// milliseconds. Only a silent client is waited for this long.
		shutdownGrace: 5 * time.Second,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.tel = newTelemetry(reg)
	s.fifo.set(cfg.Capacity)
	s.tel.capacity.Set(cfg.Capacity)
	s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.landing = s.landingPage()

	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s.srv = &fasthttp.Server{
		Handler: s.handle,
		// Express sends no Server header.
		NoDefaultServerHeader: true,
		// Each classifier call sleeps in its own worker for seconds; the
		// exporter keeps ~120 and tests thousands in flight.
		Concurrency:        256 * 1024,
		IdleTimeout:        cfg.IdleTimeout,
		MaxRequestBodySize: 1 << 20,
		Logger:             fasthttpLogger{logger},
	}
	return s, nil
}

// Serve answers requests on ln until Shutdown, then returns nil. It may be
// called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	if err := s.srv.Serve(trackingListener{ln, s}); err != nil {
		return fmt.Errorf("cannot serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting, ends injected delays at once (the requests still
// get their responses) and waits for open connections to finish; idle
// keep-alive connections are closed, and so, after a grace of 5 s, are
// connections that are still open (a client that sent half a request and
// went silent, for example because the network between them dropped).
func (s *Server) Shutdown() error {
	s.mu.Lock()
	s.closed = true
	lns := s.lns
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stopping) })
	ctx, cancel := context.WithTimeout(context.Background(), s.shutdownGrace)
	err := s.srv.ShutdownWithContext(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		err = s.srv.ShutdownWithContext(context.Background())
	}
	// A Serve that has not yet registered its listener with fasthttp would
	// otherwise accept forever; closing it makes that Serve return.
	for _, ln := range lns {
		_ = ln.Close()
	}
	return err
}

// trackingListener records the connections it accepts in Server.conns
// until they are closed.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.conns[c] = struct{}{}
	l.s.mu.Unlock()
	return &trackedConn{Conn: c, s: l.s}, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c.Conn)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// Seed is the seed in use; when Config.Seed was 0 it is the random one drawn,
// so passing it back as --seed reproduces the data.
func (s *Server) Seed() int64 { return s.seed }

// Peek returns pk's current counts without stepping them; ok is false
// outside the range.
func (s *Server) Peek(pk int64) (followers, following int64, ok bool) {
	i := s.st.index(pk)
	if i < 0 {
		return 0, 0, false
	}
	f, g := s.st.peek(i)
	return int64(f), int64(g), true
}

// Set replaces pk's counts, e.g. to inject a follower jump in an end-to-end
// test. Values below the floors are allowed (following 0 tests division by
// zero downstream); the next step floors them again.
func (s *Server) Set(pk, followers, following int64) error {
	i := s.st.index(pk)
	if i < 0 {
		return fmt.Errorf("cannot set pk %d: outside pk range %d..%d", pk, s.cfg.PKs.Min, s.cfg.PKs.Max)
	}
	if followers < 0 || followers > math.MaxUint32 || following < 0 || following > math.MaxUint32 {
		return fmt.Errorf("cannot set pk %d to %d followers, %d following: counts must be in 0..%d", pk, followers, following, uint32(math.MaxUint32))
	}
	s.st.set(i, uint32(followers), uint32(following))
	return nil
}

// Calls is how many times pk was stepped, that is how many GETs of it were
// answered with its data; always 0 with drift off.
func (s *Server) Calls(pk int64) uint32 {
	i := s.st.index(pk)
	if i < 0 {
		return 0
	}
	return s.st.calls[i].Load()
}

// Requests counts requests routed to GET /api/v1/influencers/:pk, whatever
// their outcome (not found, injected fault or success).
func (s *Server) Requests() uint64 { return s.requests.Load() }

// sleep waits d, or less if the server is shutting down. Sleeping in the
// handler costs a parked goroutine, not CPU.
func (s *Server) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-s.stopping:
		t.Stop()
	}
}

func (s *Server) landingPage() []byte {
	var b bytes.Buffer
	r := s.cfg.PKs
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html><head><title>Mockstagram simulator</title></head><body>
<h1>Mockstagram simulator</h1>
<p>pks %d..%d (%d influencers), seed %d, drift %t, unknown pk answers %d.<br>
Classifier delay max(0, %s + %s&middot;z), cap %s.<br>
Active faults: %s</p>
<h2>Mockstagram API</h2>
<ul>
<li>GET /api/v1/influencers/{pk} (steps the influencer, like upstream): <a href="/api/v1/influencers/%d">example</a></li>
<li>POST /api/v1/influencers/is_suspicious with the influencer JSON</li>
</ul>
<h2>Test only (upstream has none of these)</h2>
<ul>
<li>GET /admin/influencers/{pk}: current values without stepping: <a href="/admin/influencers/%d">example</a></li>
<li>POST /admin/influencers/{pk} with {"followerCount":N,"followingCount":M}: set values</li>
<li>GET /admin/capacity, POST /admin/capacity?rps=N: read or change the requests/s served (0 = unlimited); now %s</li>
<li><a href="/metrics">/metrics</a>, <a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a></li>
</ul>
</body></html>
`, r.Min, r.Max, r.Len(), s.seed, s.cfg.Drift, s.cfg.NotFoundStatus,
		s.cfg.SuspiciousDelayMean, s.cfg.SuspiciousDelayStddev, capString(s.cfg.SuspiciousDelayMax),
		html.EscapeString(s.cfg.Faults.String()), r.Min, r.Min, capacityString(s.cfg.Capacity))
	return b.Bytes()
}

func capacityString(rps float64) string {
	if rps == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(rps, 'f', -1, 64) + "/s at start"
}

func capString(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

// fasthttpLogger sends fasthttp's messages (mostly clients hanging up) to
// slog at debug level: with faults on they are routine.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}

// Route labels of mockstagram_sim_requests_total.
const (
	routeInfluencer = iota
	routeSuspicious
	routeAdmin
	routeMeta
	routeUnknown
	numRoutes
)

var routeNames = [numRoutes]string{"influencer", "is_suspicious", "admin", "meta", "unknown"}

// Fault kinds of mockstagram_sim_faults_injected_total.
const (
	faultLatency = iota
	faultSpike
	faultError
	faultReset
	faultBadJSON
	faultWrongPK
	faultOutage
	faultSuspiciousError
	numFaults
)

var faultNames = [numFaults]string{"latency", "latency_spike", "error", "reset", "bad_json", "wrong_pk", "outage", "suspicious_error"}

// codeReset labels requests whose connection was reset instead of answered.
const codeReset = 0

// telemetry is the simulator's own small metric set. Counters for the
// expected (route, code) pairs are bound up front so that the hot path does
// no label lookup.
type telemetry struct {
	requests     *prometheus.CounterVec
	bound        [numRoutes]map[int]prometheus.Counter
	faults       [numFaults]prometheus.Counter
	inFlight     prometheus.Gauge
	capacity     prometheus.Gauge
	queueSeconds prometheus.Counter
}

func newTelemetry(reg prometheus.Registerer) telemetry {
	t := telemetry{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mockstagram_sim_requests_total",
			Help: "HTTP requests answered, by route and status code (code 0: connection reset without a response).",
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mockstagram_sim_suspicious_in_flight",
			Help: "Classifier calls currently waiting out their delay.",
		}),
	}
	t.capacity = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mockstagram_sim_capacity_requests_per_second",
		Help: "API requests/s served, one at a time in arrival order (--capacity, POST /admin/capacity); 0 = unlimited.",
	})
	t.queueSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mockstagram_sim_queue_seconds_total",
		Help: "Time API requests spent waiting for and taking their turn at the capacity, summed; rate() / rate(requests) is the mean wait.",
	})
	faults := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mockstagram_sim_faults_injected_total",
		Help: "Faults injected, by kind.",
	}, []string{"kind"})
	for k, name := range faultNames {
		t.faults[k] = faults.WithLabelValues(name)
	}
	for r, codes := range [numRoutes][]int{
		routeInfluencer: {codeReset, 200, 400, 500, 503},
		routeSuspicious: {200, 500},
		routeAdmin:      {200, 400, 404},
		routeMeta:       {200},
		routeUnknown:    {404},
	} {
		t.bound[r] = map[int]prometheus.Counter{}
		for _, code := range codes {
			t.bound[r][code] = t.requests.WithLabelValues(routeNames[r], strconv.Itoa(code))
		}
	}
	reg.MustRegister(t.requests, faults, t.inFlight, t.capacity, t.queueSeconds)
	return t
}

func (t *telemetry) count(route, code int) {
	if c, ok := t.bound[route][code]; ok {
		c.Inc()
		return
	}
	t.requests.WithLabelValues(routeNames[route], strconv.Itoa(code)).Inc()
}
