package exporter

import (
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

// Default paths of the exporter's HTTP surface.
const (
	DefaultMetricsPath   = "/metrics"
	DefaultTelemetryPath = "/telemetry"
	// InfoSuffix is appended to the metrics path for the info series.
	InfoSuffix = "/info"
)

// Handler serves the influencer exposition on metricsPath, the exporter's
// own metrics on telemetryPath, health endpoints and a landing page.
func (e *Exporter) Handler(metricsPath, telemetryPath string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(metricsPath, e.serveMetrics)
	mux.HandleFunc(metricsPath+InfoSuffix, e.serveInfo)
	mux.HandleFunc(SnapshotPath, e.serveSnapshot)
	mux.Handle(telemetryPath, promhttp.HandlerFor(e.tel.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		Registry:          e.tel.reg,
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "OK\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !e.started.Load() {
			http.Error(w, "not polling yet", http.StatusServiceUnavailable)
			return
		}
		// Ready whatever the upstreams do (an upstream that limits the rate
		// is no reason to stop scraping this one), but say so.
		io.WriteString(w, "OK\n")
		for _, b := range e.Bottlenecks() {
			io.WriteString(w, b+"\n")
		}
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		e.serveLanding(w, r, metricsPath, telemetryPath)
	})
	return mux
}

// gzip at BestSpeed: measured about 3x cheaper than the stdlib default level
// for this very repetitive text, at a slightly larger body.
var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// sliceOf reads ?slice=k&slices=n: the index range to serve and the
// target's name; ok is false after an error answer was sent.
func (e *Exporter) sliceOf(w http.ResponseWriter, r *http.Request) (lo, hi int, target string, ok bool) {
	lo, hi = 0, e.store.Len()
	target = "whole"
	q := r.URL.Query()
	if q.Has("slice") || q.Has("slices") {
		k, err1 := strconv.Atoi(q.Get("slice"))
		n, err2 := strconv.Atoi(q.Get("slices"))
		if err1 != nil || err2 != nil || n < 1 || k < 0 || k >= n {
			http.Error(w, fmt.Sprintf("bad slice: want ?slice=k&slices=n with 0 <= k < n, got slice=%q slices=%q",
				q.Get("slice"), q.Get("slices")), http.StatusBadRequest)
			return 0, 0, "", false
		}
		lo, hi = SliceBounds(e.store.Len(), k, n)
		target = strconv.Itoa(k) + "/" + strconv.Itoa(n)
	}
	return lo, hi, target, true
}

// serveMetrics streams the influencer counts, or slice k of n of them
// (?slice=k&slices=n), so that one big shard can be scraped as n targets
// that each stay under the scraper's size limit and are parsed in
// parallel. A named scraper (?scraper=id) gets only what it has not had
// (delivery.go).
func (e *Exporter) serveMetrics(w http.ResponseWriter, r *http.Request) {
	lo, hi, target, ok := e.sliceOf(w, r)
	if !ok {
		return
	}
	start := time.Now()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if r.Method == http.MethodHead {
		return // the headers are the answer; rendering 200 MB to discard them is not
	}
	win, key := Everything, ""
	if id := r.URL.Query().Get(ScraperParam); id != "" {
		key = id + " " + target
		win = e.delivered.window(key, e.store.Seq())
	}
	enc := "identity"
	cw := &webserver.CountingWriter{W: w}
	var err error
	var samples int64
	if webserver.AcceptsGzip(r.Header.Get("Accept-Encoding")) {
		enc = "gzip"
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipPool.Get().(*gzip.Writer)
		samples, err = e.expo.writeGzip(cw, gz, lo, hi, win)
		gzipPool.Put(gz)
	} else {
		rr := e.expo.render(cw, lo, hi, win)
		samples, err = rr.samples, rr.err
	}
	if key != "" {
		e.tel.servedSamples.Add(float64(samples))
	}
	took := time.Since(start)
	e.tel.renderSeconds.WithLabelValues(enc).Observe(took.Seconds())
	e.tel.renderBytes.WithLabelValues(enc).Add(float64(cw.N))
	if err != nil {
		// The client went away mid-stream; nothing can be sent any more.
		e.log.Debug("scrape aborted", "remote", r.RemoteAddr, "err", err)
		if key != "" {
			e.tel.scrapes.WithLabelValues("aborted").Inc()
		}
		return
	}
	if key != "" {
		if took > scrapeDeadline(r) {
			// The scraper may have given up on this body already: serve
			// it again next time rather than risk losing it.
			e.tel.scrapes.WithLabelValues("late").Inc()
			e.log.Debug("scrape written too late to count as delivered", "target", target, "took", took)
			return
		}
		e.delivered.delivered(key, win.Upto)
		e.tel.scrapes.WithLabelValues("delivered").Inc()
	}
	// Only scrapers are waited for at shutdown: Prometheus, VictoriaMetrics
	// and vmagent send this header; a person's curl does not.
	if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "" {
		e.scrapes.served(target, start)
	}
}

// serveInfo streams the info series (or a slice of them): constant while
// no influencer is first polled or renamed, so scraped every 10 minutes,
// not with every count.
func (e *Exporter) serveInfo(w http.ResponseWriter, r *http.Request) {
	lo, hi, _, ok := e.sliceOf(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	var err error
	if webserver.AcceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipPool.Get().(*gzip.Writer)
		err = e.expo.WriteInfoGzip(w, gz, lo, hi)
		gzipPool.Put(gz)
	} else {
		_, err = e.expo.WriteInfo(w, lo, hi)
	}
	if err != nil {
		e.log.Debug("info scrape aborted", "remote", r.RemoteAddr, "err", err)
	}
}

var landingTmpl = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html><head><title>Mockstagram exporter, shard {{.Shard}} of {{.Shards}}</title>
<style>body{font-family:sans-serif;margin:2em}td{padding:0 1em 0 0}</style></head><body>
<h1>Mockstagram exporter</h1>
<p>Shard {{.Shard}} of {{.Shards}}: pks {{.First}}, {{.Second}}, ... {{.Last}} ({{.Owned}} influencers of {{.RangeMin}}..{{.RangeMax}}),
polled every {{.Interval}} ({{printf "%.0f" .Rate}} polls/s) with up to {{.Concurrency}} in flight per upstream{{if .Adaptive}}, fewer while an upstream's latency says it cannot take more{{end}}.</p>
<h2>Now</h2><table>
<tr><td>Current cycle</td><td>#{{.Cycle}}, {{printf "%.1f" .Progress}}% dispatched, schedule lag {{.Lag}}</td></tr>
<tr><td>Coverage</td><td>{{.Fresh}} of {{.Owned}} influencers have a sample younger than {{.MaxAge}} ({{printf "%.3f" .Coverage}}%); oldest sample {{.Oldest}} old</td></tr>
<tr><td>Resolution</td><td>sample age: median {{.AgeP50}}, 99th percentile {{.AgeP99}}, oldest {{.Oldest}}</td></tr>
{{range .Bottlenecks}}<tr><td><b>Bottleneck</b></td><td><b>{{.}}</b></td></tr>{{end}}
<tr><td>Last finished cycle</td><td>{{if .HasLast}}#{{.Last1.Cycle}}: {{.Last1.Polled}} polled, {{.Last1.Failed}} failed, {{.Last1.Missed}} missed, took {{.Last1.Duration}}{{else}}none yet{{end}}</td></tr>
</table>
<h2>Upstreams</h2><table><tr><th>upstream</th><th>state</th><th>in flight / limit</th><th>polls/s answered</th><th>needed</th><th>queue delay</th></tr>
{{range .Upstreams}}<tr><td>{{.URL}}</td><td>{{if not .Up}}DOWN ({{.Failures}} consecutive failures){{else if .Saturated}}saturated at about {{printf "%.0f" .Capacity}} polls/s{{else}}up{{end}}</td>
<td>{{.InFlight}} / {{.Limit}}</td><td>{{printf "%.0f" .Throughput}}</td><td>{{printf "%.0f" .Demand}}</td><td>{{.Delay}}</td></tr>{{end}}</table>
<h2>Endpoints</h2><ul>
<li><a href="{{.MetricsPath}}">{{.MetricsPath}}</a>: influencer counts, step series and verdicts (add ?slice=k&amp;slices=n for a slice; ?scraper=id serves each sample once per id)</li>
<li><a href="{{.MetricsPath}}/info">{{.MetricsPath}}/info</a>: the info series (usernames)</li>
<li><a href="{{.TelemetryPath}}">{{.TelemetryPath}}</a>: the exporter's own metrics</li>
<li>{{.SnapshotPath}}: binary snapshot of every owned influencer, for rankd</li>
<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a></li>
</ul></body></html>
`))

func (e *Exporter) serveLanding(w http.ResponseWriter, _ *http.Request, metricsPath, telemetryPath string) {
	pks := e.store.PKs()
	cycle, sent := e.progress()
	f := e.Freshness()
	last, hasLast := e.LastCycle()
	type upView struct {
		URL      string
		Up       bool
		Failures int64
		limiterStatus
	}
	var ups []upView
	for i, u := range e.upstreams {
		down, n := u.down()
		st := e.limiters[i].status()
		st.Delay = st.Delay.Round(100 * time.Microsecond)
		ups = append(ups, upView{URL: u.URL, Up: !down, Failures: n, limiterStatus: st})
	}
	progress := 100.0
	if pks.Len > 0 {
		progress = 100 * float64(sent) / float64(pks.Len)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := landingTmpl.Execute(w, map[string]any{
		"Shard": e.cfg.Shard.Index, "Shards": e.cfg.Shard.Count,
		"First": pks.PK(0), "Second": pks.PK(1), "Last": pks.PK(max(pks.Len-1, 0)), "Owned": pks.Len,
		"RangeMin": e.cfg.Range.Min, "RangeMax": e.cfg.Range.Max,
		"Interval": e.cfg.Interval, "Rate": float64(pks.Len) / e.cfg.Interval.Seconds(), "Concurrency": e.cfg.Concurrency, "Adaptive": !e.cfg.FixedConcurrency,
		"Cycle": cycle, "Progress": progress, "Lag": e.lag().Round(time.Millisecond),
		"Fresh": f.Fresh, "MaxAge": e.cfg.MaxAge, "Coverage": 100 * f.Coverage(), "Oldest": f.OldestAge.Round(time.Second),
		"HasLast": hasLast, "Last1": last, "Upstreams": ups, "Bottlenecks": e.Bottlenecks(),
		"AgeP50": f.AgeP50.Round(100 * time.Millisecond), "AgeP99": f.AgeP99.Round(100 * time.Millisecond),
		"MetricsPath": metricsPath, "TelemetryPath": telemetryPath, "SnapshotPath": SnapshotPath,
	})
	if err != nil {
		e.log.Debug("landing page aborted", "err", err)
	}
}
