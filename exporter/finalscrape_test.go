package exporter_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

// TestWaitFinalScrape: after polling stops, the wait ends exactly when every
// target scraped before the stop (the whole exposition and each slice) has
// been scraped once more; a target nobody scrapes again is given up after
// the maximum wait and named.
func TestWaitFinalScrape(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		_, url := simtest.StartMem(t, simtest.Config(pkMin, pkMin+99, false), n)
		s := startShardMem(t, n, testConfig([]string{url}, pkMin+99, pkrange.Shard{Count: 1}))
		s.waitCycles(t, 1)
		s.scrape(t, "/metrics", false)
		s.scrape(t, "/metrics?slice=1&slices=2", false)
		time.Sleep(time.Second) // polls go on after those scrapes
		s.StopPolling()
		since := time.Now()

		done := make(chan []string, 1)
		go func() { done <- s.E.WaitFinalScrape(context.Background(), since, time.Minute) }()
		waiting := func(want bool) {
			t.Helper()
			time.Sleep(100 * time.Millisecond) // the wait looks again every 50 ms
			synctest.Wait()
			select {
			case left := <-done:
				if want {
					t.Fatalf("the wait ended (left %v) before every target was scraped again", left)
				}
				if left != nil {
					t.Fatalf("the wait ended with %v left, want none", left)
				}
			default:
				if !want {
					t.Fatal("still waiting although every target was scraped again")
				}
			}
		}
		waiting(true)
		s.scrape(t, "/metrics", false)
		waiting(true) // slice 1 of 2 is still behind
		s.scrape(t, "/metrics?slice=1&slices=2", false)
		waiting(false)

		// Nobody scrapes: the wait gives up after its maximum and names
		// what it waited for.
		since = time.Now()
		start := time.Now()
		left := s.E.WaitFinalScrape(context.Background(), since, 30*time.Second)
		if !slices.Equal(left, []string{"1/2", "whole"}) || time.Since(start) != 30*time.Second {
			t.Fatalf("gave up on %v after %s, want [1/2 whole] after 30s", left, time.Since(start))
		}
	})
}

// TestACurlIsNotWaitedFor: a GET without the scraper's header (a person
// looking) does not make the exporter wait for another at shutdown.
func TestACurlIsNotWaitedFor(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		_, url := simtest.StartMem(t, simtest.Config(pkMin, pkMin+9, false), n)
		s := startShardMem(t, n, testConfig([]string{url}, pkMin+9, pkrange.Shard{Count: 1}))
		s.waitCycles(t, 1)
		resp, err := s.Client.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		time.Sleep(time.Second)
		s.StopPolling()
		if left := s.E.WaitFinalScrape(context.Background(), time.Now(), time.Minute); left != nil {
			t.Fatalf("waited for %v after a plain GET", left)
		}
	})
}
