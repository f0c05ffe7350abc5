package exporter

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Served once. Each influencer is polled once a minute and scraped every
// 30 s; a scraper that took the whole exposition each time would ingest
// every sample twice (and deduplicate one copy away), which was two
// thirds of VictoriaMetrics' CPU at 1M influencers. Instead every stored
// sample and verdict carries a delivery sequence number (Store.Seq), and
// the exporter remembers, per scraper and target, the number up to which
// its last scrape was delivered whole. A scrape serves only what came
// after, each sample with its poll time: one stored row per poll, and a
// verdict reaches VictoriaMetrics within one scrape of being made.
//
// A scraper names itself with the URL parameter scraper=<id> (params in
// the scrape config); a request without it (a person's curl, an old
// config) gets everything, as before. Two scrapers that must each get
// every sample (two VictoriaMetrics for redundancy) need distinct ids;
// the shards of one vmagent cluster share one, since each target is
// scraped by one member.
//
// A body counts as delivered when it was written whole within half the
// scraper's timeout (X-Prometheus-Scrape-Timeout-Seconds): a later body
// may have been dropped by a scraper that already gave up, so the next
// scrape serves it again (a duplicate with the same timestamp, which
// -dedup.minScrapeInterval drops). Half, not nearly all: "written" means
// handed to the kernel, and the last few MB of socket buffers are still
// to be read and parsed by the scraper when the write returns; the other
// half of the timeout is its margin to do so (12 s at the 25 s of
// victoria/scrape.yml, where a 1M slice is written in about a second).
// What the exporter cannot see is a body read whole and then discarded by
// the scraper (a scraper that crashes before storing it): that body is
// not served again.
//
// The scraper must not write staleness markers for series absent from a
// scrape (no_stale_markers: true in the scrape config): absence means
// "nothing new", not "gone".

// ScraperParam is the URL parameter that names a served-once scraper.
const ScraperParam = "scraper"

// deliveredShare is the share of the scrape timeout within which a body
// must have been written whole to count as delivered.
const deliveredShare = 0.5

// Window selects samples by delivery sequence number: After < seq <= Upto.
type Window struct{ After, Upto uint64 }

// Everything is the window of a scrape without a scraper id.
var Everything = Window{After: 0, Upto: math.MaxUint64}

func (w Window) has(seq uint64) bool { return seq > w.After && seq <= w.Upto }

// deliveries remembers, per scraper and target, the sequence number up to
// which everything was delivered.
type deliveries struct {
	mu   sync.Mutex
	last map[string]uint64
}

// maxDeliveryKeys bounds the map: scrapers and slicings are a handful; a
// flood of made-up ids costs each of them one full exposition, not memory.
const maxDeliveryKeys = 4096

// window returns what a scrape by key starting now should serve.
func (d *deliveries) window(key string, now uint64) Window {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Window{After: d.last[key], Upto: now}
}

// delivered records that everything up to upto reached key.
func (d *deliveries) delivered(key string, upto uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil || len(d.last) >= maxDeliveryKeys {
		d.last = map[string]uint64{}
	}
	if upto > d.last[key] {
		d.last[key] = upto
	}
}

// scrapeDeadline is how long a scrape that started at start may take and
// still count as delivered: half the timeout the scraper announced, or
// no limit when it announced none.
func scrapeDeadline(r *http.Request) time.Duration {
	sec, err := strconv.ParseFloat(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || sec <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(sec * deliveredShare * float64(time.Second))
}
