package exporter_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// TestLateRetryIsNotReplacedUnscraped: a poll that fails and succeeds on a
// retry late in its interval leaves a young sample at the pk's next slot.
// Polling the pk then would replace that sample within less than a scrape
// interval (scrapes come twice per poll interval), so that it may never
// be scraped: counted as a successful poll, never stored. The next poll
// waits until the sample is half an interval old.
func TestLateRetryIsNotReplacedUnscraped(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 99
		const victim = pkMin + 5
		var mu sync.Mutex
		var answered []time.Time // 200s for the victim
		calls := 0
		ln := n.ListenUnique("upstream")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pk, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/api/v1/influencers/"), 10, 64)
			if pk == victim {
				mu.Lock()
				calls++
				first := calls == 1
				mu.Unlock()
				if first {
					// The first attempt fails slowly; its retry, a backoff
					// later, lands past the middle of the interval.
					time.Sleep(150 * time.Millisecond)
					http.Error(w, "Internal Server Error", http.StatusInternalServerError)
					return
				}
				mu.Lock()
				answered = append(answered, time.Now())
				mu.Unlock()
			}
			fmt.Fprintf(w, `{"pk":%d,"username":"u","followerCount":10,"followingCount":5}`, pk)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		cfg := testConfig([]string{"http://" + ln.Addr().String()}, max, pkrange.Shard{Count: 1})
		cfg.RetryBackoff = 400 * time.Millisecond // fails at +150ms, retried at +550ms of a 1 s interval
		s := startShardMem(t, n, cfg)
		s.waitCycles(t, 4)
		mu.Lock()
		got := slices.Clone(answered)
		mu.Unlock()
		if len(got) < 3 {
			t.Fatalf("the victim pk was answered %d times in 4 cycles", len(got))
		}
		for i := 1; i < len(got); i++ {
			if d := got[i].Sub(got[i-1]); d < cfg.Interval/2 {
				t.Fatalf("samples of one pk %v apart (answers at %v): the first was replaced before a scrape every %v could take it",
					d, got, cfg.Interval/2)
			}
		}
		tel := s.scrape(t, "/telemetry", false)
		if v := gaugeValue(tel, "mockstagram_exporter_polls_deferred_total"); v != 1 {
			t.Fatalf("polls_deferred_total = %v, want 1", v)
		}
	})
}
