package exporter

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
)

const namespace = "mockstagram_exporter"

// telemetry is the exporter's own small set of metrics, served on the
// telemetry path through client_golang. Counters used per poll are resolved
// once into arrays so that the poll path does no map lookup.
type telemetry struct {
	reg *prometheus.Registry

	polls    [][numReasons]prometheus.Counter // [upstream][reason]
	latency  []prometheus.Observer            // [upstream]
	inflight prometheus.Gauge
	retries  prometheus.Counter
	missed   prometheus.Counter
	expired  prometheus.Counter
	deferred prometheus.Counter
	cycles   prometheus.Counter
	lastCycleCoverage,
	lastCycleDuration,
	lastCycleFailed,
	lastCycleMissed prometheus.Gauge
	renderSeconds *prometheus.HistogramVec
	renderBytes   *prometheus.CounterVec
	logsDropped   prometheus.Counter
	scrapes       *prometheus.CounterVec // served-once scrapes by outcome
	servedSamples prometheus.Counter

	checks *checkTelemetry

	stateBytes, stateSeconds, stateLast prometheus.Gauge
	stateResumed                        prometheus.Gauge
	stateErrors                         prometheus.Counter
}

// shardStatus is what the telemetry reads of the running shard at scrape
// time.
type shardStatus interface {
	progress() (cycle int64, sent int)
	lag() time.Duration
	Freshness() Freshness
}

// newTelemetry registers the shard's metrics; owned is how many pks it
// polls, every interval, from upstreams.
func newTelemetry(upstreams []*Upstream, limiters []*limiter, owned int, interval time.Duration, status shardStatus, withState bool) *telemetry {
	reg := prometheus.NewRegistry()
	t := &telemetry{reg: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(versioncollector.NewCollector(namespace))

	pollsVec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "polls_total",
		Help: "Polls of Mockstagram by upstream and outcome: success, or the reason the poll failed (retries count again).",
	}, []string{"upstream", "outcome"})
	latencyVec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "poll_duration_seconds",
		Help:    "Duration of one poll of Mockstagram, whatever its outcome.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"upstream"})
	f(pollsVec)
	f(latencyVec)
	t.polls = make([][numReasons]prometheus.Counter, len(upstreams))
	t.latency = make([]prometheus.Observer, len(upstreams))
	for u, up := range upstreams {
		for r := Reason(0); r < numReasons; r++ {
			t.polls[u][r] = pollsVec.WithLabelValues(up.URL, r.String())
		}
		t.latency[u] = latencyVec.WithLabelValues(up.URL)
		up := up
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "upstream_up",
			Help:        fmt.Sprintf("1 while the upstream answers; 0 after %d consecutive failed polls, until one succeeds.", downAfter),
			ConstLabels: prometheus.Labels{"upstream": up.URL},
		}, func() float64 {
			if down, _ := up.down(); down {
				return 0
			}
			return 1
		}))
		l := limiters[u]
		upGauge := func(name, help string, fn func(limiterStatus) float64) {
			f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: name, Help: help,
				ConstLabels: prometheus.Labels{"upstream": up.URL},
			}, func() float64 { return fn(l.status()) }))
		}
		upGauge("upstream_concurrency_limit", "Polls allowed in flight to the upstream now: the adaptive limit, between 4 and --poll.concurrency (docs/exporter.md).",
			func(s limiterStatus) float64 { return float64(s.Limit) })
		upGauge("upstream_capacity_polls_per_second", "Polls/s the upstream answered at its knee while saturated; while it is not saturated, the most it answered recently (it can do at least this). 0 before the first measurement.",
			func(s limiterStatus) float64 { return s.Capacity })
		upGauge("upstream_demand_polls_per_second", "Polls/s the schedule needs from the upstream: its share of the owned pks / --poll.interval.",
			func(s limiterStatus) float64 { return s.Demand })
		upGauge("upstream_saturated", "1 while the upstream, not the exporter, limits the poll rate: the limit binds, its queue delay is at the target and it answers less than the schedule needs. Add upstream instances; more concurrency or shards will not help.",
			func(s limiterStatus) float64 {
				if s.Saturated {
					return 1
				}
				return 0
			})
		upGauge("upstream_queue_delay_seconds", "Mean poll latency above the upstream's no-load latency, in the last window of the adaptive limit.",
			func(s limiterStatus) float64 { return s.Delay.Seconds() })
	}

	t.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "polls_in_flight", Help: "Polls waiting for Mockstagram's answer."})
	t.retries = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "poll_retries_total", Help: "Failed polls scheduled for another attempt within the pk's interval."})
	t.missed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "polls_missed_total", Help: "Scheduled polls never dispatched because the shard fell behind its schedule; raise --poll.concurrency or add shards."})
	t.expired = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "polls_expired_total", Help: "Dispatched polls and retries given up unsent because they could no longer end before the pk's next poll (the shard is saturated)."})
	t.deferred = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "polls_deferred_total", Help: "Polls held back until the pk's previous sample (from a retry that ended late in its interval) was half an interval old, so that a scrape takes it before the poll replaces it."})
	t.cycles = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "cycles_total", Help: "Finished poll cycles."})
	t.lastCycleCoverage = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_cycle_coverage_ratio", Help: "Fraction of owned influencers polled successfully in the last finished cycle."})
	t.lastCycleDuration = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_cycle_duration_seconds", Help: "From the start of the last finished cycle to the end of its last poll (about one interval when on schedule)."})
	t.lastCycleFailed = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_cycle_failed_influencers", Help: "Influencers of the last finished cycle whose every attempt failed."})
	t.lastCycleMissed = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "last_cycle_missed_influencers", Help: "Influencers of the last finished cycle never dispatched (the shard was behind)."})
	t.renderSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "render_duration_seconds",
		Help:    "Time to render and send one influencer exposition (one /metrics scrape or slice).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"encoding"})
	t.renderBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "render_bytes_total", Help: "Bytes of influencer exposition sent, after compression."}, []string{"encoding"})
	t.logsDropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "log_messages_suppressed_total", Help: "Poll error log lines suppressed by the per-reason rate limit."})
	t.scrapes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "served_once_scrapes_total",
		Help: "Scrapes of /metrics by a named scraper (?scraper=): delivered (written whole within half the scrape timeout), late (written whole after it; served again) or aborted (the scraper hung up; served again)."}, []string{"outcome"})
	t.servedSamples = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "served_once_samples_total",
		Help: "Samples (counts, steps, verdicts) written to named scrapers, delivered or not: about 2 per successful poll plus 1 per verdict when each is served once."})
	for _, c := range []prometheus.Collector{t.inflight, t.retries, t.missed, t.expired, t.deferred, t.cycles, t.lastCycleCoverage, t.lastCycleDuration, t.lastCycleFailed, t.lastCycleMissed, t.renderSeconds, t.renderBytes, t.logsDropped, t.scrapes, t.servedSamples} {
		f(c)
	}

	gauge := func(name, help string, fn func() float64) {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, fn))
	}
	gauge("owned_influencers", "Influencers this shard polls.", func() float64 { return float64(owned) })
	gauge("poll_interval_seconds", "Configured --poll.interval.", func() float64 { return interval.Seconds() })
	gauge("cycle_progress_ratio", "Fraction of the current cycle's influencers dispatched.", func() float64 {
		_, sent := status.progress()
		if owned == 0 {
			return 1
		}
		return float64(sent) / float64(owned)
	})
	gauge("schedule_lag_seconds", "How far dispatching is behind the even schedule; above 0 for long means the shard is saturated.", func() float64 {
		return status.lag().Seconds()
	})
	f(&freshnessCollector{status: status})

	t.checks = newCheckTelemetry(reg)

	t.stateBytes = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "state_file_bytes", Help: "Size of the last state file written."})
	t.stateSeconds = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "state_save_duration_seconds", Help: "Time the last state save took, fsync included."})
	t.stateLast = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "state_last_save_timestamp_seconds", Help: "When the state file was last written successfully (0: never)."})
	t.stateErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "state_save_errors_total", Help: "State saves that failed."})
	t.stateResumed = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "state_resumed_influencers", Help: "Influencers whose sample came back from the state file at start (0: a cold start)."})
	if withState {
		f(t.stateResumed)
		f(t.stateBytes)
		f(t.stateSeconds)
		f(t.stateLast)
		f(t.stateErrors)
	}
	return t
}

var (
	descFresh = prometheus.NewDesc(namespace+"_fresh_influencers",
		"Owned influencers with a sample younger than --coverage.max-age.", nil, nil)
	descPolled = prometheus.NewDesc(namespace+"_polled_influencers",
		"Owned influencers with at least one sample since start.", nil, nil)
	descCoverage = prometheus.NewDesc(namespace+"_coverage_ratio",
		"fresh_influencers / owned_influencers.", nil, nil)
	descOldest = prometheus.NewDesc(namespace+"_oldest_sample_age_seconds",
		"Age of the oldest sample held (0 while nothing is held).", nil, nil)
	descAge = prometheus.NewDesc(namespace+"_sample_age_seconds",
		"Age of the samples held, over every polled influencer: the achieved resolution (the median is about half the time a full pass over the shard takes).", nil, nil)
)

// freshnessCollector scans the poll times at scrape time (5-9 ms per
// million influencers, BenchmarkAges1M), so coverage is exact, not sampled.
type freshnessCollector struct{ status shardStatus }

func (c *freshnessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFresh
	ch <- descPolled
	ch <- descCoverage
	ch <- descOldest
	ch <- descAge
}

func (c *freshnessCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.status.Freshness()
	ch <- prometheus.MustNewConstMetric(descFresh, prometheus.GaugeValue, float64(f.Fresh))
	ch <- prometheus.MustNewConstMetric(descPolled, prometheus.GaugeValue, float64(f.Polled))
	ch <- prometheus.MustNewConstMetric(descCoverage, prometheus.GaugeValue, f.Coverage())
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, f.OldestAge.Seconds())
	ch <- prometheus.MustNewConstSummary(descAge, uint64(f.Polled), f.AgeSum.Seconds(),
		map[float64]float64{0.5: f.AgeP50.Seconds(), 0.99: f.AgeP99.Seconds()})
}

// Freshness is a snapshot of how current the shard's data is.
type Freshness struct {
	Owned, Fresh, Polled int
	OldestAge            time.Duration
	// The age of the median and the 99th-percentile sample, and of all
	// together: the resolution the shard achieves.
	AgeP50, AgeP99, AgeSum time.Duration
}

// Coverage is the fraction of owned influencers with a fresh sample.
func (f Freshness) Coverage() float64 {
	if f.Owned == 0 {
		return 1
	}
	return float64(f.Fresh) / float64(f.Owned)
}

// logLimiter lets one log line through per interval and counts the lines
// it holds back, so that an upstream outage cannot flood the log.
type logLimiter struct {
	every   time.Duration
	last    atomic.Int64 // Unix ns of the last line let through
	dropped prometheus.Counter
}

// allow reports whether a line may be logged now.
func (l *logLimiter) allow(now time.Time) bool {
	n := now.UnixNano()
	prev := l.last.Load()
	if n-prev < int64(l.every) || !l.last.CompareAndSwap(prev, n) {
		l.dropped.Inc()
		return false
	}
	return true
}
