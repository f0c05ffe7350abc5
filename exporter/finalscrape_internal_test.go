package exporter

import (
	"slices"
	"testing"
	"time"
)

// TestScrapeLogBehind: a target is behind when its last whole scrape
// started before the stop, unless that was so long ago that its scraper
// has moved on.
func TestScrapeLogBehind(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var l scrapeLog
	l.served("whole", t0.Add(-time.Second))
	l.served("0/2", t0.Add(-time.Second))
	l.served("0/2", t0)                      // again, at the stop: done
	l.served("1/2", t0.Add(-2*time.Second))  // an older scrape of 1/2 ...
	l.served("1/2", t0.Add(-3*time.Second))  // ... is not undone by an earlier start ending later
	l.served("0/3", t0.Add(-11*time.Minute)) // abandoned
	if got, want := l.behind(t0, finalScrapeRecent), []string{"1/2", "whole"}; !slices.Equal(got, want) {
		t.Fatalf("behind = %v, want %v", got, want)
	}
	if got := l.behind(t0.Add(-time.Hour), finalScrapeRecent); len(got) != 0 {
		t.Fatalf("behind a time before every scrape = %v, want none", got)
	}
}
