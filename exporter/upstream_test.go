package exporter_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

// get returns the body of path on the shard's HTTP surface.
func (s *shard) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := s.Client.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// histogramMean is sum/count of a histogram family's series with the labels.
func histogramMean(mfs map[string]*dto.MetricFamily, name string) float64 {
	var sum, n float64
	for _, m := range mfs[name].GetMetric() {
		sum += m.GetHistogram().GetSampleSum()
		n += float64(m.GetHistogram().GetSampleCount())
	}
	return sum / n
}

// callSpread is the fewest and the most GETs any pk of min..max got from sim.
func callSpread(sim *simulator.Server, min, max int64) (lo, hi uint32) {
	lo = ^uint32(0)
	for pk := min; pk <= max; pk++ {
		c := sim.Calls(pk)
		lo, hi = (minU32(lo, c)), maxU32(hi, c)
	}
	return lo, hi
}

func minU32(a, b uint32) uint32 { return min(a, b) }
func maxU32(a, b uint32) uint32 { return max(a, b) }

// TestSaturatedUpstream: 4,000 pks a second against an upstream that
// answers 1,000/s, with the ceiling at 256 and at 4,096 in flight. The
// limit settles low, the upstream answers at its capacity with a short
// queue (no timeout, nothing aborted, latency far below the timeout),
// every pk is polled once before any is polled twice, and the exporter
// says the upstream is the bottleneck and how many instances to add.
func TestSaturatedUpstream(t *testing.T) {
	for _, ceiling := range []int{256, 4096} {
		t.Run("concurrency="+strconv.Itoa(ceiling), func(t *testing.T) {
			inBubble(t, func(t *testing.T, n *memnet.Network) {
				const max = pkMin + 3999
				cfg := simtest.Config(pkMin, max, true)
				cfg.Capacity = 1000
				sim, url := simtest.StartMem(t, cfg, n)
				ecfg := testConfig([]string{url}, max, pkrange.Shard{Count: 1})
				ecfg.Concurrency, ecfg.Pipeline = ceiling, 8
				// A dispatcher that is behind sends pks whose slot is long
				// past; with a 1 s interval, a 200 ms timeout leaves too
				// little room before the pk's next slot (docs/exporter.md).
				ecfg.Timeout = 100 * time.Millisecond
				s := startShardMem(t, n, ecfg)
				s.waitCycles(t, 5)
				r0 := sim.Requests()
				t0 := time.Now()
				r := s.waitCycles(t, 10)
				rate := float64(sim.Requests()-r0) / time.Since(t0).Seconds()
				tel := s.scrape(t, "/telemetry", false)
				limit := gaugeValue(tel, "mockstagram_exporter_upstream_concurrency_limit", "upstream", url)
				capacity := gaugeValue(tel, "mockstagram_exporter_upstream_capacity_polls_per_second", "upstream", url)
				latency := histogramMean(tel, "mockstagram_exporter_poll_duration_seconds")
				t.Logf("last cycle %+v; %.0f polls/s, limit %v, capacity estimate %v, mean latency %.1f ms", r, rate, limit, capacity, latency*1000)
				if rate < 950 {
					t.Errorf("%.0f polls/s against an upstream answering 1000/s", rate)
				}
				if limit > 64 {
					t.Errorf("limit %v: the upstream's queue is long", limit)
				}
				if capacity < 900 || capacity > 1100 {
					t.Errorf("capacity estimate %v, want about 1000", capacity)
				}
				if v := gaugeValue(tel, "mockstagram_exporter_upstream_saturated", "upstream", url); v != 1 {
					t.Errorf("upstream_saturated = %v", v)
				}
				if latency > 0.05 {
					t.Errorf("mean poll latency %.0f ms: the upstream's queue is long", latency*1000)
				}
				if v := gaugeValue(tel, "mockstagram_exporter_polls_expired_total"); v != 0 {
					t.Errorf("%v polls expired", v)
				}
				for _, o := range []string{"timeout", "aborted"} {
					if v := gaugeValue(tel, "mockstagram_exporter_polls_total", "outcome", o); v != 0 {
						t.Errorf("%v polls %s", v, o)
					}
				}
				// Degrade evenly: no pk polled twice before every pk once.
				if lo, hi := callSpread(sim, pkMin, max); hi-lo > 1 {
					t.Errorf("pks polled between %d and %d times", lo, hi)
				}
				if p50 := gaugeSummaryQuantile(tel, "mockstagram_exporter_sample_age_seconds", 0.5); p50 < 1.5 || p50 > 2.5 {
					t.Errorf("median sample age %vs, want about 2 s (a full pass takes 4 s)", p50)
				}
				want := "upstream " + url + " saturated at about"
				for _, path := range []string{"/-/ready", "/"} {
					if b := s.get(t, path); !strings.Contains(b, want) || !strings.Contains(b, "this interval needs 4000/s: add 3 upstream instances or lengthen --poll.interval") {
						t.Errorf("%s does not name the bottleneck:\n%s", path, b)
					}
				}
			})
		})
	}
}

func gaugeSummaryQuantile(mfs map[string]*dto.MetricFamily, name string, q float64) float64 {
	for _, m := range mfs[name].GetMetric() {
		for _, x := range m.GetSummary().GetQuantile() {
			if x.GetQuantile() == q {
				return x.GetValue()
			}
		}
	}
	return -1
}

// TestSaturationRecovers: when the upstream's capacity returns, the limit
// grows, the saturation clears and every cycle is whole again.
func TestSaturationRecovers(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 1999
		cfg := simtest.Config(pkMin, max, false)
		cfg.Capacity = 500
		sim, url := simtest.StartMem(t, cfg, n)
		ecfg := testConfig([]string{url}, max, pkrange.Shard{Count: 1})
		ecfg.Concurrency, ecfg.Pipeline, ecfg.Timeout = 512, 8, 100*time.Millisecond
		s := startShardMem(t, n, ecfg)
		r := s.waitCycles(t, 5)
		if r.Coverage() > 0.3 {
			t.Fatalf("coverage %v against an upstream a quarter as fast as the schedule", r.Coverage())
		}
		sim.SetCapacity(0)
		r = s.waitCycles(t, r.Cycle+4)
		tel := s.scrape(t, "/telemetry", false)
		if r.Coverage() != 1 || gaugeValue(tel, "mockstagram_exporter_upstream_saturated", "upstream", url) != 0 {
			t.Fatalf("three cycles after the capacity returned: %+v, saturated %v", r, gaugeValue(tel, "mockstagram_exporter_upstream_saturated", "upstream", url))
		}
		if b := s.get(t, "/-/ready"); b != "OK\n" {
			t.Fatalf("/-/ready after recovery: %q", b)
		}
	})
}

// TestSaturatedUpstreamBesideFastOne: one upstream answers a quarter of
// what its pks need, the other is fast. The fast one's pks are polled every
// cycle, its limit is not the slow one's, and only the slow one is reported
// saturated.
func TestSaturatedUpstreamBesideFastOne(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 3999
		slowCfg := simtest.Config(pkMin, max, true)
		slowCfg.Capacity = 500
		slow, slowURL := simtest.StartMem(t, slowCfg, n)
		fast, fastURL := simtest.StartMem(t, simtest.Config(pkMin, max, true), n)
		ecfg := testConfig([]string{slowURL, fastURL}, max, pkrange.Shard{Count: 1})
		ecfg.Concurrency, ecfg.Pipeline, ecfg.Timeout = 512, 8, 100*time.Millisecond // see TestSaturatedUpstream
		s := startShardMem(t, n, ecfg)
		s.waitCycles(t, 6)
		start := time.Now()
		s.waitCycles(t, 8)
		tel := s.scrape(t, "/telemetry", false)
		if a, b := gaugeValue(tel, "mockstagram_exporter_upstream_saturated", "upstream", slowURL),
			gaugeValue(tel, "mockstagram_exporter_upstream_saturated", "upstream", fastURL); a != 1 || b != 0 {
			t.Fatalf("saturated: slow %v, fast %v", a, b)
		}
		// A retry of one of the saturated upstream's few failed polls waits
		// for the same limit as every other poll (no storm), and may then
		// run out of its interval and be given up: expired polls stay a
		// trace, at most one per thousand of its successes.
		ok := gaugeValue(tel, "mockstagram_exporter_polls_total", "upstream", slowURL, "outcome", "success")
		if v := gaugeValue(tel, "mockstagram_exporter_polls_expired_total"); ok <= 0 || v < 0 || v > ok/1000 {
			t.Errorf("%v polls expired against %v successes of the saturated upstream", v, ok)
		}
		fastPKs, stale := 0, 0
		followers := byPK(t, s.scrape(t, "/metrics", false)["mockstagram_influencer_followers"])
		for pk := int64(pkMin); pk <= max; pk++ {
			if fast.Calls(pk) == 0 {
				if slow.Calls(pk) == 0 {
					t.Fatalf("pk %d polled on neither upstream", pk)
				}
				continue
			}
			fastPKs++
			if time.UnixMilli(followers[pk].GetTimestampMs()).Before(start) {
				stale++
			}
		}
		if fastPKs < 1500 || stale > 0 {
			t.Fatalf("%d of the fast upstream's %d pks not polled in the last two cycles", stale, fastPKs)
		}
	})
}

// resetFirstCall serves a proxy to upstream on n whose first classifier
// call of each pk has its connection closed unanswered, like a saturated
// upstream or one closing a reused keep-alive connection; everything else
// goes through.
func resetFirstCall(t *testing.T, n *memnet.Network, upstream string) string {
	t.Helper()
	var mu sync.Mutex
	seen := map[int64]bool{}
	return classifierProxy(t, n, "reset", upstream, func(w http.ResponseWriter, r *http.Request, pk int64, forward func()) {
		mu.Lock()
		first := !seen[pk]
		seen[pk] = true
		mu.Unlock()
		if !first {
			forward()
			return
		}
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
}

// TestSuspiciousResetIsCountedAsReset: a classifier call whose connection
// is closed unanswered counts as reset, not connect; the retry that fixes
// it is counted as recovered, and every pk still gets its verdict.
func TestSuspiciousResetIsCountedAsReset(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 19
		_, simURL := simtest.StartMem(t, simtest.Config(pkMin, max, false), n)
		url := resetFirstCall(t, n, simURL)
		s := startShardMem(t, n, suspiciousConfig(url, max, 2*time.Second, 8))
		s.WaitVerdicts(t)
		time.Sleep(time.Second)
		tel := s.scrape(t, "/telemetry", false)
		reset := gaugeValue(tel, "mockstagram_exporter_suspicious_checks_total", "outcome", "reset")
		connect := gaugeValue(tel, "mockstagram_exporter_suspicious_checks_total", "outcome", "connect")
		recovered := gaugeValue(tel, "mockstagram_exporter_suspicious_checks_recovered_total")
		if reset < 20 || connect != 0 || recovered < 20 {
			t.Fatalf("reset %v, connect %v, recovered %v: want every pk's first call reset and recovered", reset, connect, recovered)
		}
	})
}

// TestSuspiciousBacksOffASaturatedUpstream: while polls find the upstream
// saturated and classifier calls to it fail, the classifier's bound for it
// drops; once the upstream keeps up again the bound returns to
// --suspicious.concurrency. Verdicts keep coming throughout.
func TestSuspiciousBacksOffASaturatedUpstream(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 1999
		cfg := simtest.Config(pkMin, max, false)
		cfg.Capacity = 500
		cfg.Faults.SuspiciousErrorRatio = 0.5
		sim, url := simtest.StartMem(t, cfg, n)
		ecfg := suspiciousConfig(url, max, 4*time.Second, 64)
		ecfg.Concurrency, ecfg.Pipeline, ecfg.Timeout = 512, 8, 100*time.Millisecond
		s := startShardMem(t, n, ecfg)
		s.waitCycles(t, 8)
		tel := s.scrape(t, "/telemetry", false)
		limit := gaugeValue(tel, "mockstagram_exporter_suspicious_concurrency_limit", "upstream", url)
		verdicts := gaugeValue(tel, "mockstagram_exporter_suspicious_verdicts")
		if gaugeValue(tel, "mockstagram_exporter_upstream_saturated", "upstream", url) != 1 || limit > 16 || verdicts == 0 {
			t.Fatalf("saturated upstream, half the classifier calls failing: classifier bound %v of 64, %v verdicts", limit, verdicts)
		}
		sim.SetCapacity(0)
		r := s.waitCycles(t, 14)
		tel = s.scrape(t, "/telemetry", false)
		if limit := gaugeValue(tel, "mockstagram_exporter_suspicious_concurrency_limit", "upstream", url); limit != 64 || r.Coverage() != 1 {
			t.Fatalf("after the capacity returned: classifier bound %v, want 64; last cycle %+v", limit, r)
		}
	})
}

// TestRetriesWaitForTheLimit: against a saturated upstream that fails a
// third of its answers, retries take tokens like first attempts: the
// upstream's queue stays short (no timeout, latency near the target), and
// attempts, retries included, run at its capacity, not above it.
func TestRetriesWaitForTheLimit(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 3999
		cfg := simtest.Config(pkMin, max, false)
		cfg.Capacity = 1000
		cfg.Faults.ErrorRatio = 0.3
		sim, url := simtest.StartMem(t, cfg, n)
		ecfg := testConfig([]string{url}, max, pkrange.Shard{Count: 1})
		ecfg.Concurrency, ecfg.Pipeline, ecfg.Timeout = 512, 8, 100*time.Millisecond
		s := startShardMem(t, n, ecfg)
		s.waitCycles(t, 4)
		r0, t0 := sim.Requests(), time.Now()
		s.waitCycles(t, 8)
		rate := float64(sim.Requests()-r0) / time.Since(t0).Seconds()
		tel := s.scrape(t, "/telemetry", false)
		latency := histogramMean(tel, "mockstagram_exporter_poll_duration_seconds")
		retries := gaugeValue(tel, "mockstagram_exporter_poll_retries_total")
		timeouts := gaugeValue(tel, "mockstagram_exporter_polls_total", "outcome", "timeout")
		t.Logf("%.0f requests/s, mean latency %.1f ms, %v retries, %v timeouts", rate, latency*1000, retries, timeouts)
		if rate < 950 || rate > 1010 || latency > 0.05 || retries < 1000 || timeouts != 0 {
			t.Fatalf("retries against a saturated upstream: %.0f requests/s (capacity 1000), mean latency %.1f ms, %v retries, %v timeouts", rate, latency*1000, retries, timeouts)
		}
	})
}
