package exporter_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

// classifierTap passes every request through to the simulator and records
// the classifier calls: when each arrived, for which pk, and how many were
// in flight at most.
type classifierTap struct {
	URL      string
	mu       sync.Mutex
	arrivals []time.Time
	pks      []int64
	inflight atomic.Int64
	maxSeen  atomic.Int64
}

// tapClassifier serves the tap on n, in front of upstream on n.
func tapClassifier(t *testing.T, n *memnet.Network, upstream string) *classifierTap {
	t.Helper()
	tap := &classifierTap{}
	tap.URL = classifierProxy(t, n, "tap", upstream, func(w http.ResponseWriter, r *http.Request, pk int64, forward func()) {
		tap.mu.Lock()
		tap.arrivals = append(tap.arrivals, time.Now())
		tap.pks = append(tap.pks, pk)
		tap.mu.Unlock()
		n := tap.inflight.Add(1)
		for m := tap.maxSeen.Load(); n > m && !tap.maxSeen.CompareAndSwap(m, n); m = tap.maxSeen.Load() {
		}
		defer tap.inflight.Add(-1)
		forward()
	})
	return tap
}

// classifierProxy serves a reverse proxy to upstream on n (at a fresh
// name-<k>:80) and returns its URL. Every request goes through to
// upstream, but a classifier call goes to check first, with the pk it
// posts; check forwards it or answers itself.
func classifierProxy(t *testing.T, n *memnet.Network, name, upstream string,
	check func(w http.ResponseWriter, r *http.Request, pk int64, forward func())) string {
	t.Helper()
	u, _ := url.Parse(upstream)
	proxy := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{DialContext: n.Dial}
	proxy.Transport = tr
	proxy.ErrorLog = log.New(io.Discard, "", 0) // calls cut at shutdown are expected
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/is_suspicious") {
			proxy.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var posted struct{ PK int64 }
		json.Unmarshal(body, &posted)
		check(w, r, posted.PK, func() { proxy.ServeHTTP(w, r) })
	})}
	ln := n.ListenUnique(name)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); tr.CloseIdleConnections() })
	return "http://" + ln.Addr().String()
}

func (c *classifierTap) calls() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.arrivals...)
}

// posted returns the pk of every call, in arrival order.
func (c *classifierTap) posted() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.pks...)
}

func suspiciousConfig(url string, max int64, period time.Duration, concurrency int) exporter.Config {
	cfg := testConfig([]string{url}, max, pkrange.Shard{Count: 1})
	cfg.Suspicious = exporter.SuspiciousConfig{Enabled: true, Period: period, Concurrency: concurrency,
		Timeout: 5 * time.Second, Retries: 2, RetryBackoff: 50 * time.Millisecond}
	return cfg
}

// TestSuspiciousVerdictsAreExact checks every pk's flag against the
// simulator's rule on the values the exporter posted (frozen counts), in the
// exposition with the verdict's time as the sample timestamp.
func TestSuspiciousVerdictsAreExact(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		sim, url := simtest.StartMem(t, simtest.Config(pkMin, pkMin+499, false), n)
		s := startShardMem(t, n, suspiciousConfig(url, pkMin+499, 2*time.Second, 32))
		start := time.Now()
		s.WaitVerdicts(t)
		mfs := s.scrape(t, "/metrics", false)
		flags := byPK(t, mfs[exporter.MetricSuspicious])
		if len(flags) != 500 {
			t.Fatalf("%d suspicious series, want 500", len(flags))
		}
		flagged := 0
		for pk, m := range flags {
			fo, fg, _ := sim.Peek(pk)
			want := 0.0
			if fg > 0 && float64(fo)/float64(fg) <= 5.64 {
				want = 1
				flagged++
			}
			if got := m.GetGauge().GetValue(); got != want {
				t.Fatalf("pk %d (followers %d, following %d): suspicious %v, want %v", pk, fo, fg, got, want)
			}
			ts := time.UnixMilli(m.GetTimestampMs())
			if ts.Before(start) || ts.After(time.Now()) {
				t.Fatalf("pk %d: verdict time %s outside the test's run", pk, ts)
			}
		}
		if flagged == 0 || flagged == 500 {
			t.Fatalf("%d of 500 flagged; the population should have some of each", flagged)
		}
		tel := s.scrape(t, "/telemetry", false)
		if got := gaugeValue(tel, "mockstagram_exporter_suspicious_flagged_influencers"); got != float64(flagged) {
			t.Fatalf("flagged_influencers %v, want %d", got, flagged)
		}
		if got := gaugeValue(tel, "mockstagram_exporter_suspicious_verdicts"); got != 500 {
			t.Fatalf("suspicious_verdicts %v, want 500", got)
		}
	})
}

// TestSuspiciousChecksAreSpreadOverThePeriod: one check per pk per period,
// evenly spread, never a burst.
func TestSuspiciousChecksAreSpreadOverThePeriod(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		_, url := simtest.StartMem(t, simtest.Config(pkMin, pkMin+399, false), n)
		tap := tapClassifier(t, n, url)
		const period = 4 * time.Second
		cfg := suspiciousConfig(tap.URL, pkMin+399, period, 64)
		s := startShardMem(t, n, cfg)
		s.WaitCycles(t, 1) // the first pass starts one poll interval after the start
		time.Sleep(2*period + period/2)
		s.StopPolling()
		calls, pks := tap.calls(), tap.posted()
		if len(calls) < 800 {
			t.Fatalf("%d checks in two and a half periods of 400 pks, want at least 800", len(calls))
		}
		first := calls[0]
		// Two whole periods from the first call: 400 checks each, 100 per
		// quarter. On the fake clock nothing wakes late, so the spread is
		// exact but for a check on a quarter's boundary.
		var quarters [8]int
		for _, c := range calls {
			if q := int(c.Sub(first) / (period / 4)); q < len(quarters) {
				quarters[q]++
			}
		}
		for q, n := range quarters {
			if n < 99 || n > 101 {
				t.Fatalf("quarter %d of the first two periods had %d checks, want 100 (+-1); all: %v", q, n, quarters)
			}
		}
		// Each period checks every pk exactly once: every pk is checked at
		// least twice in the first two and a half periods, its checks one
		// period apart. (Judged per pk: arrival order at the tap may swap two
		// checks due at the same moment on either side of a period's end.)
		at := map[int64][]time.Time{}
		for i, pk := range pks {
			at[pk] = append(at[pk], calls[i])
		}
		if len(at) != 400 {
			t.Fatalf("%d distinct pks checked, want all 400", len(at))
		}
		for pk, ts := range at {
			if len(ts) < 2 {
				t.Fatalf("pk %d checked %d time(s) in two and a half periods, want at least 2", pk, len(ts))
			}
			for k := 1; k < len(ts); k++ {
				if gap := ts[k].Sub(ts[k-1]); gap < period*3/4 || gap > period*5/4 {
					t.Fatalf("pk %d checked %s after its previous check, want one period (%s)", pk, gap, period)
				}
			}
		}
	})
}

// TestSuspiciousConcurrencyIsBounded: with answers slower than the
// schedule needs, no more than suspicious.concurrency calls are in flight,
// the walk reports its lag, and polling goes on untouched.
func TestSuspiciousConcurrencyIsBounded(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		scfg := simtest.Config(pkMin, pkMin+199, false)
		scfg.SuspiciousDelayMean = 300 * time.Millisecond
		_, url := simtest.StartMem(t, scfg, n)
		tap := tapClassifier(t, n, url)
		// 200 checks per second at 0.3 s each need 60 in flight; allow 4.
		s := startShardMem(t, n, suspiciousConfig(tap.URL, pkMin+199, time.Second, 4))
		r := s.waitCycles(t, 4)
		if r.Polled != r.Owned {
			t.Fatalf("polling suffered: cycle %+v", r)
		}
		if got := tap.maxSeen.Load(); got != 4 {
			t.Fatalf("at most %d classifier calls in flight, want exactly the bound 4", got)
		}
		tel := s.scrape(t, "/telemetry", false)
		if lag := gaugeValue(tel, "mockstagram_exporter_suspicious_schedule_lag_seconds"); lag <= 0 {
			t.Fatalf("schedule lag %v with a saturated classifier, want > 0", lag)
		}
	})
}

// TestSuspiciousRetriesAndTimeouts: failed calls are retried a bounded
// number of times, timeouts are cut at suspicious.timeout, and a pk
// without a successful answer has no verdict (absent, not 0).
func TestSuspiciousRetriesAndTimeouts(t *testing.T) {
	t.Run("errors", func(t *testing.T) {
		inBubble(t, func(t *testing.T, n *memnet.Network) {
			scfg := simtest.Config(pkMin, pkMin+9, false)
			scfg.Faults.SuspiciousErrorRatio = 1
			_, url := simtest.StartMem(t, scfg, n)
			tap := tapClassifier(t, n, url)
			cfg := suspiciousConfig(tap.URL, pkMin+9, 40*time.Second, 8) // a pk every 4 s
			s := startShardMem(t, n, cfg)
			s.WaitCycles(t, 1)
			time.Sleep(1500 * time.Millisecond) // the first pk's 3 attempts: 0, +50 ms, +150 ms
			tel := s.scrape(t, "/telemetry", false)
			if got := gaugeValue(tel, "mockstagram_exporter_suspicious_checks_total", "outcome", "http_5xx"); got != 3 {
				t.Fatalf("%v failed calls for the first pk, want 3 (1 + 2 retries)", got)
			}
			if n := len(tap.calls()); n != 3 {
				t.Fatalf("%d calls reached the classifier, want 3", n)
			}
			if got := byPK(t, s.scrape(t, "/metrics", false)[exporter.MetricSuspicious]); len(got) != 0 {
				t.Fatalf("%d pks have a flag although every call failed", len(got))
			}
		})
	})
	t.Run("timeouts", func(t *testing.T) {
		inBubble(t, func(t *testing.T, n *memnet.Network) {
			scfg := simtest.Config(pkMin, pkMin+9, false)
			scfg.SuspiciousDelayMean = 5 * time.Second
			_, url := simtest.StartMem(t, scfg, n)
			cfg := suspiciousConfig(url, pkMin+9, 40*time.Second, 8)
			cfg.Suspicious.Timeout = 200 * time.Millisecond
			cfg.Suspicious.Retries = 1
			s := startShardMem(t, n, cfg)
			s.WaitCycles(t, 1)
			time.Sleep(1200 * time.Millisecond)
			tel := s.scrape(t, "/telemetry", false)
			if got := gaugeValue(tel, "mockstagram_exporter_suspicious_checks_total", "outcome", "timeout"); got != 2 {
				t.Fatalf("%v timed-out calls for the first pk, want 2 (1 + 1 retry)", got)
			}
			if got := gaugeValue(tel, "mockstagram_exporter_suspicious_verdicts"); got != 0 {
				t.Fatalf("%v verdicts after timeouts, want 0", got)
			}
		})
	})
}

// TestSuspiciousOff: a Config without Suspicious never calls the
// classifier.
func TestSuspiciousOff(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		_, url := simtest.StartMem(t, simtest.Config(pkMin, pkMin+49, false), n)
		tap := tapClassifier(t, n, url)
		s := startShardMem(t, n, testConfig([]string{tap.URL}, pkMin+49, pkrange.Shard{Count: 1}))
		s.waitCycles(t, 3)
		if n := len(tap.calls()); n != 0 {
			t.Fatalf("%d classifier calls with the classifier off", n)
		}
		if got := byPK(t, s.scrape(t, "/metrics", false)[exporter.MetricSuspicious]); len(got) != 0 {
			t.Fatalf("%d flags with the classifier off", len(got))
		}
	})
}
