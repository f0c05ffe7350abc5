package rankd

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// telemetry is rankd's own metrics plus the population gauges, which make
// the average-over-time graph a cheap range query on one series.
type telemetry struct {
	reg            *prometheus.Registry
	refreshes      prometheus.Counter
	refreshSeconds prometheus.Histogram
	fetchErrors    *prometheus.CounterVec
}

func newTelemetry(s *Server) *telemetry {
	reg := prometheus.NewRegistry()
	t := &telemetry{reg: reg,
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{Name: "rankd_refreshes_total", Help: "Snapshot rebuilds."}),
		refreshSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rankd_refresh_duration_seconds",
			Help: "Time to fetch every exporter's snapshot and rebuild the ordered snapshot.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rankd_source_errors_total", Help: "Failed snapshot reads by exporter."}, []string{"exporter"}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("rankd"), t.refreshes, t.refreshSeconds, t.fetchErrors, &populationCollector{s: s})
	return t
}

func (t *telemetry) handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{Registry: t.reg})
}

var (
	descAvg      = prometheus.NewDesc("mockstagram_population_followers_average", "Mean followerCount over every influencer with data.", nil, nil)
	descCount    = prometheus.NewDesc("mockstagram_population_influencers", "Influencers with data in rankd's snapshot.", nil, nil)
	descSum      = prometheus.NewDesc("mockstagram_population_followers_sum", "Sum of followerCount over every influencer with data.", nil, nil)
	descQuantile = prometheus.NewDesc("mockstagram_population_followers", "followerCount quantiles over the population (min is 0, max is 1).", []string{"quantile"}, nil)
	descAge      = prometheus.NewDesc("rankd_snapshot_age_seconds", "Age of the snapshot answers come from.", nil, nil)
	descComplete = prometheus.NewDesc("rankd_snapshot_complete", "1 once every exporter has answered at least once.", nil, nil)
	descSource   = prometheus.NewDesc("rankd_source_up", "1 when the exporter's last snapshot read succeeded.", []string{"exporter"}, nil)
)

// populationCollector reads the current snapshot at scrape time: the
// statistics are precomputed, so this costs microseconds.
type populationCollector struct{ s *Server }

func (c *populationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAvg, descCount, descSum, descQuantile, descAge, descComplete, descSource} {
		ch <- d
	}
}

func (c *populationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.s.Status() {
		up := 0.0
		if st.Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSource, prometheus.GaugeValue, up, st.URL)
	}
	snap := c.s.acquire()
	defer release(snap)
	if snap == nil {
		ch <- prometheus.MustNewConstMetric(descComplete, prometheus.GaugeValue, 0)
		return
	}
	complete := 0.0
	if snap.Complete {
		complete = 1
	}
	ch <- prometheus.MustNewConstMetric(descComplete, prometheus.GaugeValue, complete)
	ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, time.Since(snap.Built).Seconds())
	if !snap.Complete || snap.Count == 0 {
		return
	}
	st := snap.PopulationStats()
	ch <- prometheus.MustNewConstMetric(descAvg, prometheus.GaugeValue, st.Average)
	ch <- prometheus.MustNewConstMetric(descCount, prometheus.GaugeValue, float64(st.Count))
	ch <- prometheus.MustNewConstMetric(descSum, prometheus.GaugeValue, float64(st.Sum))
	for q, v := range map[string]float64{"0": float64(st.Min), "0.5": float64(st.Percentiles["p50"]),
		"0.9": float64(st.Percentiles["p90"]), "0.99": float64(st.Percentiles["p99"]), "0.999": float64(st.Percentiles["p999"]), "1": float64(st.Max)} {
		ch <- prometheus.MustNewConstMetric(descQuantile, prometheus.GaugeValue, v, q)
	}
}
