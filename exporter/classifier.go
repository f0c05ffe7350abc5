package exporter

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fastjson"
)

// SuspiciousConfig shapes the daily suspicious checks. Mockstagram's
// classifier answers in up to 10 s or more, so the checks run on their own
// connections, with their own concurrency bound and timeout, and never take
// a poll's place.
type SuspiciousConfig struct {
	Enabled      bool
	Period       time.Duration // every owned pk gets a verdict once per period, spread evenly
	Concurrency  int           // checks in flight at most
	Timeout      time.Duration // per attempt
	Retries      int           // extra attempts per pk and period
	RetryBackoff time.Duration // first retry delay; doubles per attempt
}

// DefaultSuspiciousConfig is one verdict per influencer a day. At 1M
// influencers that is 11.6 checks/s over all shards, about 120 in flight at
// 10 s per answer; 256 per shard leaves room for one shard doing it alone
// at twice that latency.
func DefaultSuspiciousConfig() SuspiciousConfig {
	return SuspiciousConfig{Enabled: true, Period: 24 * time.Hour, Concurrency: 256,
		Timeout: 30 * time.Second, Retries: 2, RetryBackoff: 10 * time.Second}
}

// Validate reports a configuration that cannot work, naming the flag.
func (c *SuspiciousConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	switch {
	case c.Period < time.Second:
		return fmt.Errorf("suspicious.period=%s is below 1s", c.Period)
	case c.Concurrency < 1:
		return fmt.Errorf("suspicious.concurrency=%d must be at least 1", c.Concurrency)
	case c.Timeout <= 0:
		return fmt.Errorf("suspicious.timeout=%s must be positive", c.Timeout)
	case c.Retries < 0 || c.Retries > 10:
		return fmt.Errorf("suspicious.retries=%d must be in 0..10", c.Retries)
	case c.Retries > 0 && c.RetryBackoff <= 0:
		return fmt.Errorf("suspicious.retry-backoff=%s must be positive when suspicious.retries > 0", c.RetryBackoff)
	}
	return nil
}

// Check outcomes, the label values of
// mockstagram_exporter_suspicious_checks_total{outcome=...}.
const (
	checkOK = iota
	checkTimeout
	checkReset
	checkConnect
	checkHTTP5xx
	checkHTTP4xx
	checkBadJSON
	checkNoData
	checkCanceled
	numCheckOutcomes
)

var checkOutcomeNames = [numCheckOutcomes]string{
	checkOK: "success", checkTimeout: "timeout", checkReset: "reset", checkConnect: "connect", checkHTTP5xx: "http_5xx",
	checkHTTP4xx: "http_4xx", checkBadJSON: "bad_json", checkNoData: "no_data", checkCanceled: "canceled",
}

// classifier walks the shard's pks in store order and checks each once per
// period. The pk at store index i is due at anchor + k*period + i*period/n:
// evenly spread, never a burst. The anchor is kept in the state file, so a
// restarted exporter goes on where it stopped instead of starting a new day.
type classifier struct {
	cfg      SuspiciousConfig
	store    *Store
	upstream func(pk int64) *Upstream // where the pk is polled; its classifier is there too
	// The poll interval: the cold first pass starts one interval after the
	// start, and catch-up checks after a restart wait one, so that every
	// check posts freshly polled counts.
	pollInterval time.Duration
	tel          *checkTelemetry
	logs         *logLimiter
	log          *slog.Logger
	client       *http.Client
	sem          chan struct{}
	now          func() time.Time
	// gates bound the calls in flight to each upstream: the whole
	// concurrency while the upstream keeps up, backing off while it is
	// saturated (see gateDone).
	gates      []*limiter
	urls       []string
	upstreamOf func(pk int64) int
	saturated  func(u int) bool

	anchorMs atomic.Int64 // Unix ms of position 0; 0 until run starts or state sets it
	resumed  bool         // the anchor came from the state file
	pos      atomic.Int64 // next position to dispatch: period k, index i = k*n + i
	lagNs    atomic.Int64 // lag of the last dispatch
	waitDue  atomic.Int64 // Unix ns the position waiting for a free slot was due; 0 = none waiting
	wg       sync.WaitGroup

	// Store indexes with a check in flight: a check with its retries can
	// outlast a short period, and a pk is never checked twice at once.
	busyMu sync.Mutex
	busy   map[int32]struct{}
}

// classifierDeps is what a classifier uses of the shard around it.
type classifierDeps struct {
	store        *Store
	upstream     func(pk int64) *Upstream
	urls         []string           // every upstream's URL, by index
	upstreamOf   func(pk int64) int // the index of upstream(pk)
	saturated    func(u int) bool   // whether polls find upstream u saturated
	pollInterval time.Duration
	tlsConfig    *tls.Config
	dial         func(ctx context.Context, network, addr string) (net.Conn, error) // nil = TCP
	tel          *checkTelemetry
	logs         *logLimiter
	log          *slog.Logger
}

func newClassifier(cfg SuspiciousConfig, d classifierDeps) *classifier {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     d.tlsConfig,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
	}
	if d.dial != nil {
		tr.DialContext = d.dial
	}
	c := &classifier{cfg: cfg, store: d.store, upstream: d.upstream, pollInterval: d.pollInterval,
		tel: d.tel, logs: d.logs, log: d.log, client: &http.Client{Transport: tr},
		sem: make(chan struct{}, cfg.Concurrency), now: time.Now, busy: map[int32]struct{}{},
		upstreamOf: d.upstreamOf, saturated: d.saturated}
	if c.upstreamOf == nil {
		c.upstreamOf = func(int64) int { return 0 }
	}
	if c.saturated == nil {
		c.saturated = func(int) bool { return false }
	}
	c.urls = d.urls
	if len(c.urls) == 0 {
		c.urls = []string{""}
	}
	for range c.urls {
		c.gates = append(c.gates, newLimiter(cfg.Concurrency, true, 0, time.Now))
	}
	return c
}

// gateDone adjusts upstream u's bound after a call: an overload failure
// (timeout, reset, connect, 5xx) while polls find the upstream saturated
// halves it, down to 1; an answered call grows it, by one per bound's
// worth of answers while saturated, doubling otherwise, up to
// --suspicious.concurrency.
func (c *classifier) gateDone(u, outcome int) {
	g := c.gates[u]
	sat := c.saturated(u)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch outcome {
	case checkTimeout, checkReset, checkConnect, checkHTTP5xx:
		if sat {
			g.limit = math.Max(1, g.limit/2)
		}
	case checkOK:
		if sat {
			g.limit = math.Min(float64(g.ceiling), g.limit+1/g.limit)
		} else {
			g.limit = math.Min(float64(g.ceiling), g.limit*2)
		}
	}
	g.notifyLocked()
	g.grantLocked()
}

// schedule is where the walk stands, for the state file.
func (c *classifier) schedule() Schedule {
	return Schedule{AnchorMs: c.anchorMs.Load(), Period: c.cfg.Period}
}

// resumeFrom takes the walk's schedule from a state file. A schedule of
// another period is a new walk: its anchor does not apply.
func (c *classifier) resumeFrom(s Schedule) {
	if s.AnchorMs > 0 && s.Period == c.cfg.Period {
		c.anchorMs.Store(s.AnchorMs)
		c.resumed = true
	}
}

// slot is when position p is due.
func (c *classifier) slot(p int64) time.Time {
	n := int64(max(c.store.Len(), 1))
	k, i := p/n, p%n
	per := int64(c.cfg.Period)
	off := per/n*i + per%n*i/n // i*per/n without overflowing int64
	return time.UnixMilli(c.anchorMs.Load()).Add(time.Duration(k*per + off))
}

// resume sets where the walk starts. A fresh anchor starts the first period
// now. A known anchor (from the state file) resumes one period back, so the
// walk passes again over the pks whose slot came while the exporter was
// down; those judged within half a period are skipped, the others (missed
// during the downtime) are checked as soon as run has waited one poll
// interval for fresh counts, at most Concurrency at a time.
func (c *classifier) resume(now time.Time) {
	if a := time.UnixMilli(c.anchorMs.Load()); c.anchorMs.Load() != 0 && a.After(now) && a.Sub(now) <= c.pollInterval {
		// Saved during its first poll interval: the first pass has not
		// started yet.
		c.pos.Store(0)
		return
	}
	if c.anchorMs.Load() == 0 {
		// Cold: the first pass starts one poll interval from now, when every
		// pk has been polled once and has data to post.
		c.anchorMs.Store(now.Add(c.pollInterval).UnixMilli())
		c.pos.Store(0)
		return
	}
	n := int64(max(c.store.Len(), 1))
	elapsed := now.Sub(time.UnixMilli(c.anchorMs.Load()))
	if elapsed < 0 { // the clock stepped back past the anchor: start anew
		c.anchorMs.Store(now.UnixMilli())
		c.pos.Store(0)
		return
	}
	// The position due now, then one period back.
	p := int64(float64(elapsed) / float64(c.cfg.Period) * float64(n))
	c.pos.Store(max(p-n, 0))
}

// run dispatches checks as they come due until ctx ends, then cancels the
// checks in flight (they are redone after a restart; nothing half-done is
// stored) and waits for them.
func (c *classifier) run(ctx context.Context) {
	c.resume(c.now())
	n := int64(c.store.Len())
	if n == 0 {
		<-ctx.Done()
		return
	}
	if c.resumed {
		// The counts loaded from the state file are as old as the
		// downtime: the checks missed meanwhile wait one poll interval, so
		// that they post fresh data.
		select {
		case <-time.After(c.pollInterval):
		case <-ctx.Done():
			return
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		c.wg.Wait()
		c.client.CloseIdleConnections() // an upstream's graceful shutdown waits for them
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := c.now()
		for {
			p := c.pos.Load()
			due := c.slot(p)
			if due.After(now) {
				c.lagNs.Store(0)
				timer.Reset(min(max(due.Sub(now), minTick), time.Second))
				break
			}
			i := int(p % n)
			if c.judgedRecently(i, due) || !c.claim(i) {
				c.pos.Add(1)
				continue
			}
			c.waitDue.Store(due.UnixNano())
			select { // the concurrency bound; waiting here is lag, not loss
			case c.sem <- struct{}{}:
			case <-ctx.Done():
				c.release(i)
				return
			}
			c.waitDue.Store(0)
			c.lagNs.Store(int64(c.now().Sub(due)))
			c.pos.Add(1)
			c.wg.Add(1)
			go func() {
				defer func() { c.release(i); <-c.sem; c.wg.Done() }()
				c.check(cctx, i)
			}()
		}
	}
}

// claim marks the pk at index i as being checked; false when it already is.
func (c *classifier) claim(i int) bool {
	c.busyMu.Lock()
	defer c.busyMu.Unlock()
	if _, ok := c.busy[int32(i)]; ok {
		return false
	}
	c.busy[int32(i)] = struct{}{}
	return true
}

func (c *classifier) release(i int) {
	c.busyMu.Lock()
	delete(c.busy, int32(i))
	c.busyMu.Unlock()
}

// judgedRecently reports whether the pk at index i has a verdict from
// within half a period of its slot: from a catch-up after a restart, or
// from this very slot before a restart.
func (c *classifier) judgedRecently(i int, due time.Time) bool {
	v := c.store.Verdict(i)
	return v.TimeMs != 0 && due.Sub(time.UnixMilli(v.TimeMs)) < c.cfg.Period/2
}

// check asks for the verdict of the pk at index i, posting its latest
// polled data, with bounded retries.
func (c *classifier) check(ctx context.Context, i int) {
	pk := c.store.PKs().PK(i)
	up := c.upstream(pk)
	u := c.upstreamOf(pk)
	gate := c.gates[u]
	backoff := c.cfg.RetryBackoff
	first := -1 // the first failure's outcome
	var firstErr error
	for attempt := 0; ; attempt++ {
		if _, ok := gate.acquire(ctx.Done()); !ok {
			return
		}
		outcome, err := c.attempt(ctx, up, i, pk)
		gate.release(0, 0, false)
		c.gateDone(u, outcome)
		c.tel.checks[outcome].Inc()
		if outcome == checkOK && first >= 0 {
			// A failure a retry fixed: counted and logged, quietly.
			c.tel.recovered.Inc()
			c.log.Debug("suspicious check succeeded after a retry", "upstream", up.URL, "pk", pk,
				"attempts", attempt+1, "first_reason", checkOutcomeNames[first], "first_err", firstErr)
		}
		if outcome == checkOK || outcome == checkCanceled || attempt >= c.cfg.Retries {
			if outcome != checkOK && outcome != checkCanceled && c.logs.allow(time.Now()) {
				c.log.Warn("suspicious check failed; the pk keeps its previous verdict until its next check",
					"upstream", up.URL, "pk", pk, "reason", checkOutcomeNames[outcome], "err", err)
			}
			return
		}
		if first < 0 {
			first, firstErr = outcome, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff *= 2
	}
}

func (c *classifier) attempt(ctx context.Context, up *Upstream, i int, pk int64) (int, error) {
	smp, ok := c.store.Get(i)
	if !ok {
		return checkNoData, errors.New("never polled successfully; nothing to post")
	}
	body := appendInfluencerJSON(nil, pk, c.store.Username(i), smp)
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, up.URL+"/api/v1/influencers/is_suspicious", bytes.NewReader(body))
	if err != nil {
		return checkConnect, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := c.now()
	c.tel.inFlight.Inc()
	resp, err := c.client.Do(req)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		end := c.now()
		c.tel.inFlight.Dec()
		c.tel.seconds.Observe(end.Sub(start).Seconds())
		switch {
		case err == nil:
			return c.verdict(i, pk, resp.StatusCode, b, end)
		case ctx.Err() != nil:
			return checkCanceled, err
		case actx.Err() != nil:
			return checkTimeout, err
		}
		return checkErrOutcome(err), err
	}
	c.tel.inFlight.Dec()
	switch {
	case ctx.Err() != nil:
		return checkCanceled, err
	case actx.Err() != nil:
		return checkTimeout, err
	}
	return checkErrOutcome(err), err
}

// checkErrOutcome classifies a failed call like a failed poll: a
// connection the upstream reset or closed (a saturated upstream does, and
// so does one closing an idle keep-alive connection as it is reused) is a
// reset, not a failure to connect.
func checkErrOutcome(err error) int {
	switch classifyErr(err) {
	case Reset:
		return checkReset
	case Timeout:
		return checkTimeout
	}
	return checkConnect
}

// verdict reads the classifier's answer and stores it.
func (c *classifier) verdict(i int, pk int64, status int, b []byte, at time.Time) (int, error) {
	switch {
	case status >= 500:
		return checkHTTP5xx, fmt.Errorf("HTTP %d: %s", status, truncate(b))
	case status != http.StatusOK:
		return checkHTTP4xx, fmt.Errorf("HTTP %d: %s", status, truncate(b))
	}
	// Held to the JSON grammar first: fastjson's parser alone is lenient
	// (it reads 0100 as 100), as the poll decoder found under fuzzing.
	err := fastjson.ValidateBytes(b)
	var v *fastjson.Value
	if err == nil {
		v, err = fastjson.ParseBytes(b)
	}
	if err != nil {
		return checkBadJSON, fmt.Errorf("answer is not JSON: %w: %s", err, truncate(b))
	}
	// The pk is always posted, and the classifier echoes what it was sent:
	// an answer without it means the body never arrived (a proxy dropped
	// it), and its "suspicious": false would be a verdict about nothing.
	if n, err := exactInt(v, "pk"); err != nil || n != pk {
		return checkBadJSON, fmt.Errorf("answer is not about pk %d (its pk: %s): %s", pk, v.Get("pk"), truncate(b))
	}
	s := v.Get("suspicious")
	if s == nil || (s.Type() != fastjson.TypeTrue && s.Type() != fastjson.TypeFalse) {
		return checkBadJSON, fmt.Errorf("answer has no boolean \"suspicious\": %s", truncate(b))
	}
	c.store.SetVerdict(i, Verdict{TimeMs: at.UnixMilli(), Suspicious: s.Type() == fastjson.TypeTrue})
	return checkOK, nil
}

// appendInfluencerJSON is the body Mockstagram answered for the pk, which
// is what its classifier expects.
func appendInfluencerJSON(b []byte, pk int64, username string, smp Sample) []byte {
	b = append(b, `{"pk":`...)
	b = strconv.AppendInt(b, pk, 10)
	b = append(b, `,"username":`...)
	name, _ := json.Marshal(username) // JSON escaping; Go's quoting differs
	b = append(b, name...)
	b = append(b, `,"followerCount":`...)
	b = strconv.AppendUint(b, uint64(smp.Followers), 10)
	b = append(b, `,"followingCount":`...)
	b = strconv.AppendUint(b, uint64(smp.Following), 10)
	return append(b, '}')
}

// lag is how far the walk is behind its schedule (waiting for a free
// concurrency slot); above 0 for long means suspicious.concurrency is too
// small for the classifier's latency.
func (c *classifier) lag() time.Duration {
	if due := c.waitDue.Load(); due != 0 { // blocked now: the lag grows while it waits
		return c.now().Sub(time.Unix(0, due))
	}
	return time.Duration(c.lagNs.Load())
}

// checkTelemetry is the classifier's own counters. They exist whether the
// classifier is on or not, so that dashboards see zeros rather than nothing.
type checkTelemetry struct {
	checks    [numCheckOutcomes]prometheus.Counter
	recovered prometheus.Counter
	inFlight  prometheus.Gauge
	seconds   prometheus.Observer
}

func newCheckTelemetry(reg prometheus.Registerer) *checkTelemetry {
	t := &checkTelemetry{}
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "suspicious_checks_total",
		Help: "Classifier calls by outcome (success, timeout, reset, connect, http_5xx, http_4xx, bad_json, no_data: never polled yet, canceled: at shutdown)."}, []string{"outcome"})
	t.recovered = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "suspicious_checks_recovered_total",
		Help: "Classifier checks that failed and then succeeded on a retry (each logged at debug level)."})
	for o := range numCheckOutcomes {
		t.checks[o] = checks.WithLabelValues(checkOutcomeNames[o])
	}
	t.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "suspicious_checks_in_flight", Help: "Classifier calls waiting for an answer."})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "suspicious_check_duration_seconds",
		Help: "Latency of classifier calls that were answered.", Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60}})
	t.seconds = hist
	reg.MustRegister(checks, t.recovered, t.inFlight, hist)
	return t
}

// register adds the running classifier's gauges: its period, its lag and
// the verdicts held.
func (c *classifier) register(reg prometheus.Registerer) {
	gauge := func(name, help string, fn func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, fn))
	}
	for u, g := range c.gates {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "suspicious_concurrency_limit",
			Help:        "Classifier calls allowed in flight to the upstream: --suspicious.concurrency, less while the upstream is saturated and calls to it fail.",
			ConstLabels: prometheus.Labels{"upstream": c.urls[u]}}, func() float64 { return float64(g.status().Limit) }))
	}
	gauge("suspicious_period_seconds", "Configured --suspicious.period: every owned influencer gets a verdict this often.", func() float64 { return c.cfg.Period.Seconds() })
	gauge("suspicious_schedule_lag_seconds", "How far the checks are behind their even schedule; above 0 for long means --suspicious.concurrency is too small for the classifier's latency.", func() float64 { return c.lag().Seconds() })
	reg.MustRegister(&verdictCollector{store: c.store, period: c.cfg.Period})
}

var (
	descVerdicts = prometheus.NewDesc(namespace+"_suspicious_verdicts",
		"Owned influencers with a verdict from the classifier.", nil, nil)
	descFreshVerdicts = prometheus.NewDesc(namespace+"_suspicious_fresh_verdicts",
		"Owned influencers with a verdict younger than --suspicious.period.", nil, nil)
	descFlagged = prometheus.NewDesc(namespace+"_suspicious_flagged_influencers",
		"Owned influencers whose latest verdict is suspicious.", nil, nil)
)

// verdictCollector scans the verdicts at scrape time, like freshnessCollector.
type verdictCollector struct {
	store  *Store
	period time.Duration
}

func (c *verdictCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descVerdicts
	ch <- descFreshVerdicts
	ch <- descFlagged
}

func (c *verdictCollector) Collect(ch chan<- prometheus.Metric) {
	since := time.Now().Add(-c.period).UnixMilli()
	judged, fresh, flagged := c.store.VerdictStats(since)
	ch <- prometheus.MustNewConstMetric(descVerdicts, prometheus.GaugeValue, float64(judged))
	ch <- prometheus.MustNewConstMetric(descFreshVerdicts, prometheus.GaugeValue, float64(fresh))
	ch <- prometheus.MustNewConstMetric(descFlagged, prometheus.GaugeValue, float64(flagged))
}
