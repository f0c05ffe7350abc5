// Package exporter polls Mockstagram for the influencers one shard owns and
// exposes their latest followerCount and followingCount as Prometheus gauges,
// streamed from dense arrays.
package exporter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// Config is everything an exporter shard needs. The command line maps onto it.
type Config struct {
	URLs         []string      // Mockstagram base URLs; a pk always goes to the same one
	Range        pkrange.Range // the whole pk space, shared by all shards
	Shard        pkrange.Shard // which part of it this process owns
	Interval     time.Duration // every owned pk is polled once per interval
	Timeout      time.Duration // per poll attempt
	Concurrency  int           // polls in flight at most, per upstream
	Retries      int           // extra attempts per pk and interval
	RetryBackoff time.Duration // first retry delay; doubles per attempt
	MaxAge       time.Duration // a sample younger than this counts as fresh; 0 = Interval + Timeout
	Pipeline     int           // requests in flight per connection (HTTP/1.1 pipelining); 1 = none
	TLSConfig    *tls.Config   // for https upstreams; nil = system defaults
	// Dial connects to an upstream (polls and classifier calls alike); nil
	// is TCP. Tests dial an in-memory network, so that they can run on a
	// fake clock.
	Dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger      *slog.Logger  // nil = slog.Default()
	LogInterval time.Duration // at most one poll error log line per reason per LogInterval

	// FixedConcurrency turns the adaptive limit off: Concurrency polls may be
	// in flight to every upstream whatever its latency. Otherwise
	// Concurrency is the ceiling of a limit found at run time (limiter.go).
	FixedConcurrency bool

	Suspicious SuspiciousConfig // the daily classifier checks; zero = off

	// Steps decides which one-poll changes are published as step series
	// (steps.go); the zero value is DefaultStepThresholds.
	Steps StepThresholds

	StateDir      string        // where the state file lives; "" = no state, every start is cold
	StateInterval time.Duration // how often the state is saved while running (and always at the end of Run)
}

// Validate reports a configuration that cannot work, naming the flag to change.
func (c *Config) Validate() error {
	if len(c.URLs) == 0 {
		return errors.New("no Mockstagram URL; set --mockstagram.url")
	}
	if err := c.Range.Validate(); err != nil {
		return err
	}
	if err := c.Shard.Validate(); err != nil {
		return err
	}
	switch {
	case c.Interval < time.Second:
		return fmt.Errorf("poll.interval=%s is below 1s", c.Interval)
	case c.Timeout <= 0:
		return fmt.Errorf("poll.timeout=%s must be positive", c.Timeout)
	case c.Timeout > c.Interval/2:
		// An attempt that could still run when the pk is due again is never
		// sent (it expires), so a timeout near the interval fails every poll.
		return fmt.Errorf("poll.timeout=%s is more than half of poll.interval=%s; a poll must end well before the pk is due again (lower poll.timeout)", c.Timeout, c.Interval)
	case c.Concurrency < 1:
		return fmt.Errorf("poll.concurrency=%d must be at least 1", c.Concurrency)
	case c.Retries < 0 || c.Retries > 10:
		return fmt.Errorf("poll.retries=%d must be in 0..10", c.Retries)
	case c.Retries > 0 && c.RetryBackoff <= 0:
		return fmt.Errorf("poll.retry-backoff=%s must be positive when poll.retries > 0", c.RetryBackoff)
	case c.Pipeline < 1 || c.Pipeline > c.Concurrency:
		return fmt.Errorf("poll.pipeline=%d must be in 1..poll.concurrency (%d)", c.Pipeline, c.Concurrency)
	case c.MaxAge < 0:
		return fmt.Errorf("coverage.max-age=%s must not be negative", c.MaxAge)
	}
	if err := c.Suspicious.Validate(); err != nil {
		return err
	}
	if c.StateDir != "" {
		if st, err := os.Stat(c.StateDir); err != nil || !st.IsDir() {
			return fmt.Errorf("state.dir=%q is not a directory; create it or point the flag elsewhere", c.StateDir)
		}
		if c.StateInterval < time.Second {
			return fmt.Errorf("state.interval=%s is below 1s", c.StateInterval)
		}
	}
	seen := map[string]bool{}
	for _, u := range c.URLs {
		if seen[u] {
			return fmt.Errorf("mockstagram.url=%q is given twice", u)
		}
		seen[u] = true
	}
	return nil
}

// Exporter polls one shard of influencers and serves them.
type Exporter struct {
	cfg        Config
	log        *slog.Logger
	store      *Store
	expo       *Exposition // renders store on /metrics
	upstreams  []*Upstream
	scheds     []*scheduler // one per upstream: a stalled upstream holds up only its own pks
	limiters   []*limiter   // one per upstream: its adaptive in-flight bound
	tel        *telemetry
	pollLogs   [numReasons]logLimiter // one poll error line per reason per LogInterval
	scrapes    scrapeLog              // when each /metrics target was last served whole
	delivered  deliveries             // per scraper and target, what it has had (delivery.go)
	classifier *classifier            // nil when suspicious checks are off

	started   atomic.Bool
	lastCycle atomic.Pointer[CycleReport]

	// Per-upstream cycle reports wait here until every upstream has
	// reported the cycle; then the shard's report is their sum.
	cmu     sync.Mutex
	pending map[int64]*pendingCycle

	state *stateFile // nil without a state.dir
	// The classifier schedule read from the state file, written back as is
	// while the classifier is off.
	loadedSchedule Schedule
}

type pendingCycle struct {
	n int
	r CycleReport
}

// New validates cfg and prepares a shard; Run starts polling.
func New(cfg Config) (*Exporter, error) {
	if cfg.StateDir != "" && cfg.StateInterval == 0 {
		cfg.StateInterval = time.Minute
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = cfg.Interval + cfg.Timeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogInterval == 0 {
		cfg.LogInterval = 10 * time.Second
	}
	pks := pkrange.Owned(cfg.Range, cfg.Shard)
	e := &Exporter{cfg: cfg, log: cfg.Logger, store: NewStore(pks)}
	if cfg.Steps == (StepThresholds{}) {
		cfg.Steps = DefaultStepThresholds
	}
	e.store.SetStepThresholds(cfg.Steps)
	e.expo = NewExposition(e.store)
	for _, u := range cfg.URLs {
		up, err := NewUpstream(u, cfg.TLSConfig)
		if err != nil {
			return nil, err
		}
		e.upstreams = append(e.upstreams, up)
	}
	// Each upstream gets its own scheduler over the pks it serves.
	byUpstream := make([][]int32, len(e.upstreams)) // nil: all pks
	if len(e.upstreams) > 1 {
		for u := range byUpstream {
			byUpstream[u] = []int32{}
		}
		for i := range pks.Len {
			u := e.upstreamFor(pks.PK(i))
			byUpstream[u] = append(byUpstream[u], int32(i))
		}
	}
	e.pending = map[int64]*pendingCycle{}
	for u := range e.upstreams {
		s := newScheduler(byUpstream[u], pks.Len, cfg.Interval, cfg.Timeout, cfg.Concurrency, cfg.Retries, cfg.RetryBackoff)
		s.onCycle = e.upstreamCycleDone
		s.onMissed = func(n int) { e.tel.missed.Add(float64(n)) }
		s.onExpire = func(n int) { e.tel.expired.Add(float64(n)) }
		e.scheds = append(e.scheds, s)
		l := newLimiter(cfg.Concurrency, cfg.FixedConcurrency, float64(s.n)/cfg.Interval.Seconds(), time.Now)
		s.onTick = l.tick
		if !cfg.FixedConcurrency {
			s.room = l.room
		}
		e.limiters = append(e.limiters, l)
	}
	e.tel = newTelemetry(e.upstreams, e.limiters, pks.Len, cfg.Interval, e, cfg.StateDir != "")
	for r := range e.pollLogs {
		e.pollLogs[r] = logLimiter{every: cfg.LogInterval, dropped: e.tel.logsDropped}
	}
	if cfg.Suspicious.Enabled {
		e.classifier = newClassifier(cfg.Suspicious, classifierDeps{
			store:        e.store,
			upstream:     func(pk int64) *Upstream { return e.upstreams[e.upstreamFor(pk)] },
			urls:         cfg.URLs,
			upstreamOf:   e.upstreamFor,
			saturated:    func(u int) bool { return e.limiters[u].status().Saturated },
			pollInterval: cfg.Interval,
			tlsConfig:    cfg.TLSConfig,
			dial:         cfg.Dial,
			tel:          e.tel.checks,
			logs:         &logLimiter{every: cfg.LogInterval, dropped: e.tel.logsDropped},
			log:          e.log,
		})
		e.classifier.register(e.tel.reg)
	}
	if cfg.StateDir != "" {
		e.state = &stateFile{dir: cfg.StateDir, path: StateFile(cfg.StateDir, cfg.Range, cfg.Shard)}
	}
	return e, nil
}

// Store returns the exporter's sample store.
func (e *Exporter) Store() *Store { return e.store }

// Run polls (and checks, when the classifier is on) until ctx ends, then
// waits for the polls in flight, cancels the checks in flight and saves the
// state when there is a state.dir.
func (e *Exporter) Run(ctx context.Context) {
	pks := e.store.PKs()
	e.log.Info("polling", "shard", e.cfg.Shard.Index, "shards", e.cfg.Shard.Count,
		"pks", pks.Len, "first_pk", pks.First, "step", pks.Step,
		"interval", e.cfg.Interval, "rate_per_second", float64(pks.Len)/e.cfg.Interval.Seconds(),
		"concurrency", e.cfg.Concurrency, "upstreams", len(e.upstreams))
	if c := e.classifier; c != nil {
		e.log.Info("checking suspicious", "period", c.cfg.Period, "checks_per_second", float64(pks.Len)/c.cfg.Period.Seconds(),
			"concurrency", c.cfg.Concurrency, "timeout", c.cfg.Timeout)
	}
	var wg sync.WaitGroup
	for u, s := range e.scheds {
		for k := range e.connsPerUpstream() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.runConn(u, k, s.jobs, e.cfg.Pipeline, s.done)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	if e.classifier != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.classifier.run(ctx)
		}()
	}
	if e.cfg.StateDir != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.saveLoop(ctx)
		}()
	}
	e.started.Store(true)
	wg.Wait()
	if e.cfg.StateDir != "" {
		e.saveAndReport("shutdown")
	}
}

// Polled returns the successful polls since the start, all upstreams: the
// mockstagram_exporter_polls_total{outcome="success"} of /telemetry. Read
// after Run has returned, it is the number of samples a lossless pipeline
// stores for this shard (the stop logs it; bench-stack counts them back).
func (e *Exporter) Polled() int64 {
	var n float64
	for u := range e.tel.polls {
		var m dto.Metric
		if err := e.tel.polls[u][OK].Write(&m); err == nil {
			n += m.GetCounter().GetValue()
		}
	}
	return int64(n)
}

// progress sums the current cycle's dispatch progress over the upstreams.
func (e *Exporter) progress() (cycle int64, sent int) {
	for _, s := range e.scheds {
		c, n := s.progress()
		cycle = max(cycle, c)
		sent += n
	}
	return cycle, sent
}

// lag is the largest schedule lag of any upstream.
func (e *Exporter) lag() time.Duration {
	var d time.Duration
	for _, s := range e.scheds {
		d = max(d, s.lag())
	}
	return d
}

// connsPerUpstream is how many connections carry poll.concurrency polls in
// flight per upstream at the configured pipeline depth.
func (e *Exporter) connsPerUpstream() int {
	return (e.cfg.Concurrency + e.cfg.Pipeline - 1) / e.cfg.Pipeline
}

// upstreamFor maps a pk to its upstream with a fixed hash, so that a pk
// always meets the same upstream state whatever the shard layout, and every
// shard spreads over all upstreams.
func (e *Exporter) upstreamFor(pk int64) int {
	if len(e.upstreams) == 1 {
		return 0
	}
	h := uint64(pk) * 0x9E3779B97F4A7C15
	h ^= h >> 32
	return int(h % uint64(len(e.upstreams)))
}

// finish accounts for one poll attempt: telemetry, the store, and the
// job's fate (done, or retried within its interval).
func (e *Exporter) finish(u int, j job, pk int64, res result, start, end time.Time) {
	up := e.upstreams[u]
	sched := e.scheds[u]
	e.tel.latency[u].Observe(end.Sub(start).Seconds())
	e.tel.polls[u][res.reason].Inc()
	if res.reason == OK {
		up.consecutiveFailures.Store(0)
		// A sample older than the one held (the wall clock stepped back) is
		// refused; the username is only taken with a stored sample.
		if e.store.Set(int(j.idx), res.sample) && res.name != nil {
			e.store.SetUsername(int(j.idx), res.name)
		}
		sched.complete(j, true, end)
		return
	}
	if res.reason == Aborted {
		// Never answered, so not an attempt: send it again at once.
		if sched.requeue(j, end) {
			return
		}
		sched.complete(j, false, end)
		return
	}
	up.consecutiveFailures.Add(1)
	e.logPollError(up, pk, j, res)
	if res.reason.retryable() && sched.retryAt(j, end) {
		e.tel.retries.Inc()
		return
	}
	sched.complete(j, false, end)
}

// replacesUnscraped reports whether a poll of store index i now would
// replace a sample younger than half an interval, and if so when it may go
// instead. Scrapes come twice per poll interval (scrape.yml), so a sample
// that lives half an interval is scraped; one replaced sooner may never
// be. Only a retry that ended late in its pk's interval leaves so young a
// sample at the pk's next slot: without the wait a chaos run that stalled
// the upstream for 20 s lost 1,799 successfully polled samples that way
// (docs/operations.md, chaos). Waiting keeps every sample and the next
// one within half an interval of it. A sample stamped in the future (the
// clock stepped back) does not hold a poll back.
func (e *Exporter) replacesUnscraped(i int32, now time.Time) (time.Time, bool) {
	t := e.store.TimeMs(int(i))
	half := e.cfg.Interval.Milliseconds() / 2
	if age := now.UnixMilli() - t; t == 0 || age < 0 || age >= half {
		return time.Time{}, false
	}
	return time.UnixMilli(t + half), true
}

// logPollError logs at most one line per reason per LogInterval, and counts
// the rest, so that an upstream outage cannot flood the log.
func (e *Exporter) logPollError(up *Upstream, pk int64, j job, res result) {
	if !e.pollLogs[res.reason].allow(time.Now()) {
		return
	}
	e.log.Warn("poll failed", "upstream", up.URL, "pk", pk, "reason", res.reason.String(),
		"attempt", int(j.attempt)+1, "err", res.err)
}

// upstreamCycleDone collects one upstream's report of a cycle; the shard's
// report goes out once every upstream reported it.
func (e *Exporter) upstreamCycleDone(r CycleReport) {
	e.cmu.Lock()
	p := e.pending[r.Cycle]
	if p == nil {
		p = &pendingCycle{r: CycleReport{Cycle: r.Cycle, Start: r.Start}}
		e.pending[r.Cycle] = p
	}
	p.n++
	p.r.Owned += r.Owned
	p.r.Polled += r.Polled
	p.r.Failed += r.Failed
	p.r.Missed += r.Missed
	p.r.Duration = max(p.r.Duration, r.Duration)
	done := p.n == len(e.scheds)
	if done {
		delete(e.pending, r.Cycle)
	}
	// An upstream that skipped cycles after a stall never reports them.
	for c := range e.pending {
		if c < r.Cycle-8 {
			delete(e.pending, c)
		}
	}
	e.cmu.Unlock()
	if done {
		e.cycleDone(p.r)
	}
}

func (e *Exporter) cycleDone(r CycleReport) {
	e.lastCycle.Store(&r)
	e.tel.cycles.Inc()
	e.tel.lastCycleCoverage.Set(r.Coverage())
	e.tel.lastCycleDuration.Set(r.Duration.Seconds())
	e.tel.lastCycleFailed.Set(float64(r.Failed))
	e.tel.lastCycleMissed.Set(float64(r.Missed))
	lvl := slog.LevelInfo
	if r.Failed+r.Missed > 0 {
		lvl = slog.LevelWarn
	}
	attrs := []any{"cycle", r.Cycle, "owned", r.Owned,
		"polled", r.Polled, "failed", r.Failed, "missed", r.Missed,
		"coverage", fmt.Sprintf("%.4f", r.Coverage()), "duration", r.Duration.Round(time.Millisecond)}
	if b := e.Bottlenecks(); len(b) > 0 {
		attrs = append(attrs, "bottleneck", strings.Join(b, "; "))
	} else if down := e.downUpstreams(); len(down) > 0 && r.Failed+r.Missed > 0 {
		attrs = append(attrs, "bottleneck", strings.Join(down, "; "))
	} else if r.Missed > 0 {
		attrs = append(attrs, "bottleneck", exporterBound)
	}
	e.log.Log(context.Background(), lvl, "cycle done", attrs...)
}

// downUpstreams names each upstream that is down (upstream_up 0: downAfter
// or more consecutive failed polls): its pks fail or are missed however fast
// the exporter is, so the exporter is not to blame.
func (e *Exporter) downUpstreams() []string {
	var out []string
	for _, up := range e.upstreams {
		if down, n := up.down(); down {
			out = append(out, fmt.Sprintf("upstream %s is down (%d polls in a row failed): check it and the network to it", up.URL, n))
		}
	}
	return out
}

// exporterBound names the exporter as the bottleneck: it fell behind while
// no upstream was saturated.
const exporterBound = "the exporter fell behind with no upstream saturated: check its CPU (process_cpu_seconds_total), raise --poll.concurrency or add shards"

// Bottlenecks names each upstream that limits the poll rate now, with
// what would fix it; empty when none does.
func (e *Exporter) Bottlenecks() []string {
	need := float64(e.store.Len()) / e.cfg.Interval.Seconds() // the whole shard's polls/s
	var out []string
	for u, l := range e.limiters {
		st := l.status()
		if !st.Saturated {
			continue
		}
		add := 1
		if st.Capacity > 0 {
			// A tenth of an instance of slack: an estimate a hair under
			// the true capacity must not ask for one more.
			add = max(1, int(math.Ceil(need/st.Capacity-0.1))-len(e.upstreams))
		}
		out = append(out, fmt.Sprintf("upstream %s saturated at about %.0f polls/s; this interval needs %.0f/s: add %d upstream instances or lengthen --poll.interval",
			e.upstreams[u].URL, st.Capacity, st.Demand, add))
	}
	return out
}

// LastCycle returns the report of the last finished cycle, if any.
func (e *Exporter) LastCycle() (CycleReport, bool) {
	r := e.lastCycle.Load()
	if r == nil {
		return CycleReport{}, false
	}
	return *r, true
}

// Freshness scans the store once for fresh samples and sample ages.
func (e *Exporter) Freshness() Freshness {
	now := time.Now()
	a := e.store.Ages(now.UnixMilli(), now.Add(-e.cfg.MaxAge).UnixMilli())
	f := Freshness{Owned: e.store.Len(), Fresh: a.Fresh, Polled: a.Polled, AgeP50: a.P50, AgeP99: a.P99, AgeSum: a.Sum}
	if a.OldestMs > 0 {
		f.OldestAge = now.Sub(time.UnixMilli(a.OldestMs))
	}
	return f
}
