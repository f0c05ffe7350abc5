package rankd

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/common/expfmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

// telemetry is rankd's own metrics plus the population gauges, which make
// the average-over-time graph a cheap range query on one series.
type telemetry struct {
	reg            *prometheus.Registry
	refreshes      prometheus.Counter
	refreshSeconds prometheus.Histogram
	fetchErrors    *prometheus.CounterVec
	rankSeconds    *prometheus.HistogramVec
	rankBytes      *prometheus.CounterVec
	// gains
	baselineSeconds *prometheus.HistogramVec
	baselineErrors  *prometheus.CounterVec
}

func newTelemetry(s *Server) *telemetry {
	reg := prometheus.NewRegistry()
	t := &telemetry{reg: reg,
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{Name: "rankd_refreshes_total", Help: "Snapshot rebuilds."}),
		refreshSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rankd_refresh_duration_seconds",
			Help: "Time to fetch every exporter's snapshot and rebuild the ordered snapshot.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rankd_source_errors_total", Help: "Failed snapshot reads by exporter."}, []string{"exporter"}),
		rankSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rankd_rank_exposition_duration_seconds",
			Help:    "Time to write /metrics with every influencer's rank (--expose.ranks), by encoding.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 10)}, []string{"encoding"}),
		rankBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rankd_rank_exposition_bytes_total",
			Help: "Bytes sent for /metrics with every influencer's rank (--expose.ranks), by encoding."}, []string{"encoding"}),
		baselineSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rankd_baseline_read_duration_seconds",
			Help:    "Time to read one gains window's baselines from VictoriaMetrics, by window.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"window"}),
		baselineErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rankd_baseline_read_errors_total",
			Help: "Failed reads of a gains window's baselines from VictoriaMetrics, by window."}, []string{"window"}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("rankd"), t.refreshes, t.refreshSeconds, t.fetchErrors, &populationCollector{s: s})
	if s.cfg.ExposeRanks {
		reg.MustRegister(t.rankSeconds, t.rankBytes)
	}
	if s.gains != nil {
		reg.MustRegister(t.baselineSeconds, t.baselineErrors)
	}
	return t
}

func (t *telemetry) handler(s *Server) http.Handler {
	h := promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{Registry: t.reg})
	if !s.cfg.ExposeRanks {
		return h
	}
	return http.HandlerFunc(s.serveMetricsWithRanks)
}

// MetricRank is the per-influencer gauge of --expose.ranks.
const MetricRank = "mockstagram_influencer_rank"

const helpRank = "The influencer's followerCount rank (1 + influencers with strictly more followers) in rankd's current snapshot."

// gzip at BestSpeed, like the exporter: the rank lines are very repetitive
// and the stdlib default level costs several times more CPU.
var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// serveMetricsWithRanks writes the registry's metrics, then streams one
// rank gauge per influencer straight from the snapshot's arrays: a
// registry would cost hundreds of bytes and microseconds per series.
func (s *Server) serveMetricsWithRanks(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	mfs, err := s.tel.reg.Gather()
	if err != nil {
		http.Error(w, "cannot gather metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if r.Method == http.MethodHead {
		return
	}
	enc := "identity"
	cw := &webserver.CountingWriter{W: w}
	var out io.Writer = cw
	var gz *gzip.Writer
	if webserver.AcceptsGzip(r.Header.Get("Accept-Encoding")) {
		enc = "gzip"
		w.Header().Set("Content-Encoding", "gzip")
		gz = gzipPool.Get().(*gzip.Writer)
		defer gzipPool.Put(gz)
		gz.Reset(cw)
		out = gz
	}
	err = func() error {
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(out, mf); err != nil {
				return err
			}
		}
		snap := s.acquire()
		defer release(snap)
		if snap != nil && snap.Complete {
			if _, err := snap.WriteRanks(out); err != nil {
				return err
			}
		}
		if gz != nil {
			return gz.Close()
		}
		return nil
	}()
	if err != nil {
		s.log.Debug("scrape aborted", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.tel.rankSeconds.WithLabelValues(enc).Observe(time.Since(start).Seconds())
	s.tel.rankBytes.WithLabelValues(enc).Add(float64(cw.N))
}

const rankFlushSize = 128 << 10

// WriteRanks writes the text exposition of every influencer's rank, in
// rank order, to w, in chunks of 128 KiB; it returns the bytes written.
func (s *Snapshot) WriteRanks(w io.Writer) (int64, error) {
	buf := make([]byte, 0, rankFlushSize+256)
	buf = append(buf, "# HELP "+MetricRank+" "+helpRank+"\n# TYPE "+MetricRank+" gauge\n"...)
	var n int64
	var rankText []byte
	for k, i := range s.order {
		// A new follower count starts a new rank; the bits say where
		// without reading the counts, which are in pk order.
		if s.starts.words[k>>6]&(1<<(k&63)) != 0 {
			rankText = strconv.AppendInt(append(rankText[:0], ' '), int64(k+1), 10)
			rankText = append(rankText, '\n')
		}
		buf = append(buf, MetricRank+`{pk="`...)
		buf = strconv.AppendInt(buf, s.PKMin+int64(i), 10)
		buf = append(buf, `"}`...)
		buf = append(buf, rankText...)
		if len(buf) >= rankFlushSize {
			m, err := w.Write(buf)
			n += int64(m)
			if err != nil {
				return n, err
			}
			buf = buf[:0]
		}
	}
	m, err := w.Write(buf)
	return n + int64(m), err
}

var (
	descAvg      = prometheus.NewDesc("mockstagram_population_followers_average", "Mean followerCount over every influencer with data.", nil, nil)
	descCount    = prometheus.NewDesc("mockstagram_population_influencers", "Influencers with data in rankd's snapshot.", nil, nil)
	descSum      = prometheus.NewDesc("mockstagram_population_followers_sum", "Sum of followerCount over every influencer with data.", nil, nil)
	descQuantile = prometheus.NewDesc("mockstagram_population_followers", "followerCount quantiles over the population (min is 0, max is 1).", []string{"quantile"}, nil)
	descAge      = prometheus.NewDesc("rankd_snapshot_age_seconds", "Age of the snapshot answers come from.", nil, nil)
	descComplete = prometheus.NewDesc("rankd_snapshot_complete", "1 once every exporter has answered at least once.", nil, nil)
	descSource   = prometheus.NewDesc("rankd_source_up", "1 when the exporter's last snapshot read succeeded.", []string{"exporter"}, nil)
	descSusp     = prometheus.NewDesc("mockstagram_population_suspicious", "Influencers with data whose latest verdict is suspicious.", nil, nil)
	descVerdicts = prometheus.NewDesc("mockstagram_population_verdicts", "Influencers with data and a suspicious verdict (either way).", nil, nil)
	descGain     = prometheus.NewDesc("mockstagram_population_followers_gain", "Quantiles of the followerCount gained over the window, over the influencers with a baseline that old (min is 0, max is 1).", []string{"window", "quantile"}, nil)
	descGainAvg  = prometheus.NewDesc("mockstagram_population_followers_gain_average", "Mean followerCount gained over the window, over the influencers with a baseline that old.", []string{"window"}, nil)
	descGainN    = prometheus.NewDesc("mockstagram_population_gain_influencers", "Influencers with data and a baseline at the window's start.", []string{"window"}, nil)
	descBaseAge  = prometheus.NewDesc("rankd_baseline_start_age_seconds", "Age of the window start of the gains baselines in use, by window: the window's length plus at most its re-read period.", []string{"window"}, nil)
)

// populationCollector reads the current snapshot at scrape time: the
// statistics are precomputed, so this costs microseconds.
type populationCollector struct{ s *Server }

func (c *populationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAvg, descCount, descSum, descQuantile, descAge, descComplete, descSource, descSusp, descVerdicts,
		descGain, descGainAvg, descGainN, descBaseAge} {
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
	ch <- prometheus.MustNewConstMetric(descSusp, prometheus.GaugeValue, float64(st.Suspicious))
	ch <- prometheus.MustNewConstMetric(descVerdicts, prometheus.GaugeValue, float64(st.Verdicts))
	for q, v := range map[string]float64{"0": float64(st.Min), "0.5": float64(st.Percentiles["p50"]),
		"0.9": float64(st.Percentiles["p90"]), "0.99": float64(st.Percentiles["p99"]), "0.999": float64(st.Percentiles["p999"]), "1": float64(st.Max)} {
		ch <- prometheus.MustNewConstMetric(descQuantile, prometheus.GaugeValue, v, q)
	}
	for k, w := range c.s.Windows() {
		x := &snap.gains[k]
		if x.base == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descBaseAge, prometheus.GaugeValue, c.s.now().Sub(x.base.Start).Seconds(), w.Name)
		n := x.Count()
		ch <- prometheus.MustNewConstMetric(descGainN, prometheus.GaugeValue, float64(n), w.Name)
		if n == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descGainAvg, prometheus.GaugeValue, float64(x.Sum)/float64(n), w.Name)
		for _, q := range gainQuantiles {
			ch <- prometheus.MustNewConstMetric(descGain, prometheus.GaugeValue, float64(x.Quantile(q.q)), w.Name, q.label)
		}
	}
}

// gainQuantiles are the gain quantiles published: losers matter as much
// as gainers, so both tails.
var gainQuantiles = []struct {
	q     float64
	label string
}{{0, "0"}, {0.01, "0.01"}, {0.1, "0.1"}, {0.5, "0.5"}, {0.9, "0.9"}, {0.99, "0.99"}, {1, "1"}}
