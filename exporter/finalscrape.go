package exporter

import (
	"context"
	"sort"
	"sync"
	"time"
)

// A sample polled after the scraper's last visit and before the exporter
// stops exists nowhere else: the next poll after a restart replaces it
// before any scrape sees it. So on a graceful stop the exporter stops
// polling, then keeps serving until every /metrics target it serves has
// been scraped whole once more (WaitFinalScrape); a restart then loses no
// sample. Targets are the whole exposition and each ?slice=k&slices=n, as
// scraped by a scraper (a request with Prometheus' scrape-timeout header,
// which VictoriaMetrics and vmagent send too): a person's curl is not
// waited for.

// scrapeLog remembers, per target, when the last scrape served whole
// started.
type scrapeLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *scrapeLog) served(target string, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if start.After(l.last[target]) {
		l.last[target] = start
	}
}

// behind returns the targets scraped within recent before since whose
// last whole scrape started before since, sorted.
func (l *scrapeLog) behind(since time.Time, recent time.Duration) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for target, at := range l.last {
		if at.Before(since) && since.Sub(at) <= recent {
			out = append(out, target)
		}
	}
	sort.Strings(out)
	return out
}

// finalScrapeRecent is how long ago a target's last scrape may be for the
// exporter to expect another: a target not scraped for this long is taken
// as abandoned (a scraper reconfigured to other slices), not waited for.
const finalScrapeRecent = 10 * time.Minute

// WaitFinalScrape waits until every target scraped in the ten minutes
// before since has been scraped whole by a scrape that started at or after
// since, at most max or until ctx ends. Call it after Run has returned,
// with since the time it returned, while the HTTP surface still serves. It
// returns the targets it gave up on; none when every sample polled reached
// a scraper (or nobody scrapes this exporter).
func (e *Exporter) WaitFinalScrape(ctx context.Context, since time.Time, max time.Duration) []string {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		left := e.scrapes.behind(since, finalScrapeRecent)
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return left
		case <-deadline.C:
			return left
		case <-tick.C:
		}
	}
}
