package exporter_test

import (
	"bytes"
	"cmp"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/exporter/exportertest"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

const pkMin = 1_000_000

// shard is an exporter running against the given upstreams until the test ends.
type shard struct{ *exportertest.Shard }

func testConfig(urls []string, max int64, s pkrange.Shard) exporter.Config {
	return exporter.Config{
		URLs:         urls,
		Range:        pkrange.Range{Min: pkMin, Max: max},
		Shard:        s,
		Interval:     time.Second,
		Timeout:      200 * time.Millisecond,
		Concurrency:  16,
		Retries:      4,
		RetryBackoff: 20 * time.Millisecond,
		Pipeline:     1,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

func startShard(t *testing.T, cfg exporter.Config) *shard {
	t.Helper()
	return &shard{exportertest.Start(t, cfg)}
}

// startShardMem runs cfg on the in-memory network n (see
// exportertest.StartMem), for tests inside a synctest bubble.
func startShardMem(t *testing.T, n *memnet.Network, cfg exporter.Config) *shard {
	t.Helper()
	return &shard{exportertest.StartMem(t, cfg, n)}
}

// inBubble runs f in a synctest bubble over an in-memory network: the
// exporter, its upstreams and the test's scrapes all run on the bubble's
// fake clock, so a test of several one-second cycles costs milliseconds,
// and no load on the machine can make a poll late.
func inBubble(t *testing.T, f func(t *testing.T, n *memnet.Network)) {
	synctest.Test(t, func(t *testing.T) { f(t, memnet.New()) })
}

func (s *shard) waitCycles(t *testing.T, n int64) exporter.CycleReport {
	t.Helper()
	return s.WaitCycles(t, n)
}

func (s *shard) scrape(t *testing.T, path string, gzip bool) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "25") // as a scraper does
	if !gzip {
		req.Header.Set("Accept-Encoding", "identity")
	} // else Go's transport asks for gzip and decodes it transparently
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if gzip != resp.Uncompressed {
		t.Fatalf("GET %s: gzip asked %v, got gzip %v", path, gzip, resp.Uncompressed)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s does not parse: %v", path, err)
	}
	return mfs
}

func byPK(t *testing.T, mf *dto.MetricFamily) map[int64]*dto.Metric {
	t.Helper()
	out := map[int64]*dto.Metric{}
	if mf == nil {
		return out
	}
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if l.GetName() == "pk" {
				pk, err := strconv.ParseInt(l.GetValue(), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				if out[pk] != nil {
					t.Fatalf("pk %d exposed twice in %s", pk, mf.GetName())
				}
				out[pk] = m
			}
		}
	}
	return out
}

func gaugeValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return -1
	}
	for _, m := range mf.Metric {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if match {
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	return -1
}

// TestExporterMirrorsSimulator polls a fixed simulator and checks that the
// exposition holds exactly the simulator's values for every pk, in both
// encodings, stamped with a poll time inside the cycle.
func TestExporterMirrorsSimulator(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 1999
		sim, url := simtest.StartMem(t, simtest.Config(pkMin, max, false), n)
		start := time.Now()
		s := startShardMem(t, n, testConfig([]string{url}, max, pkrange.Shard{Count: 1}))
		// A busy machine can starve the first cycle of a few dispatches
		// (counted as missed); the values must be exact once a cycle is whole.
		s.WaitComplete(t)
		for _, gz := range []bool{false, true} {
			mfs := s.scrape(t, "/metrics", gz)
			followers := byPK(t, mfs[exporter.MetricFollowers])
			following := byPK(t, mfs[exporter.MetricFollowing])
			info := byPK(t, s.scrape(t, "/metrics/info", gz)[exporter.MetricInfo])
			if len(followers) != 2000 || len(following) != 2000 || len(info) != 2000 {
				t.Fatalf("exposed %d/%d/%d influencers, want 2000", len(followers), len(following), len(info))
			}
			for pk := int64(pkMin); pk <= max; pk++ {
				f, g, _ := sim.Peek(pk)
				mf, mg := followers[pk], following[pk]
				if mf.GetGauge().GetValue() != float64(f) || mg.GetGauge().GetValue() != float64(g) {
					t.Fatalf("pk %d: exposed %v/%v, simulator has %d/%d", pk, mf.GetGauge().GetValue(), mg.GetGauge().GetValue(), f, g)
				}
				if ts := time.UnixMilli(mf.GetTimestampMs()); ts.Before(start) || ts.After(time.Now()) {
					t.Fatalf("pk %d stamped %v, outside the test", pk, ts)
				}
				if u := info[pk].Label[1].GetValue(); u != "influencer-"+strconv.FormatInt(pk, 10) {
					t.Fatalf("pk %d username %q", pk, u)
				}
			}
		}
	})
}

// TestExporterDrift: with a drifting upstream, each cycle stores new values
// with a newer poll time; every poll advanced the simulator exactly once.
func TestExporterDrift(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 299
		sim, url := simtest.StartMem(t, simtest.Config(pkMin, max, true), n)
		s := startShardMem(t, n, testConfig([]string{url}, max, pkrange.Shard{Count: 1}))
		s.waitCycles(t, 1)
		first := byPK(t, s.scrape(t, "/metrics", false)[exporter.MetricFollowers])
		s.waitCycles(t, 3)
		later := byPK(t, s.scrape(t, "/metrics", false)[exporter.MetricFollowers])
		changed := 0
		for pk, m := range later {
			if m.GetTimestampMs() <= first[pk].GetTimestampMs() {
				t.Fatalf("pk %d: poll time did not advance", pk)
			}
			if m.GetGauge().GetValue() != first[pk].GetGauge().GetValue() {
				changed++
			}
		}
		// Influencers on the 5,000 floor stay put on a negative step, so not all
		// move; most must.
		if changed < 200 {
			t.Fatalf("only %d of 300 follower counts moved in two cycles of a drifting upstream", changed)
		}
		// No hidden requests: the simulator saw one request per counted
		// attempt (a retry after a timeout on a busy machine is an attempt),
		// plus at most the 16 in flight.
		tel := s.scrape(t, "/telemetry", false)
		var attempts float64
		for _, m := range tel["mockstagram_exporter_polls_total"].GetMetric() {
			attempts += m.GetCounter().GetValue()
		}
		if got := float64(sim.Requests()); got < attempts || got > attempts+16 {
			t.Fatalf("simulator served %v requests for %v poll attempts", got, attempts)
		}
	})
}

// TestShardsPartitionTheRange: three shards together expose every pk once.
func TestShardsPartitionTheRange(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 1000
		_, url := simtest.StartMem(t, simtest.Config(pkMin, max, false), n)
		seen := map[int64]int{}
		for i := range 3 {
			s := startShardMem(t, n, testConfig([]string{url}, max, pkrange.Shard{Index: i, Count: 3}))
			s.waitCycles(t, 1)
			for pk := range byPK(t, s.scrape(t, "/metrics", false)[exporter.MetricFollowers]) {
				if int((pk-pkMin)%3) != i {
					t.Fatalf("shard %d exposes pk %d, which it does not own", i, pk)
				}
				seen[pk]++
			}
		}
		if len(seen) != 1001 {
			t.Fatalf("shards expose %d distinct pks, want 1001", len(seen))
		}
	})
}

// TestSeveralUpstreams: a pk always goes to the same upstream, and every
// upstream gets a share.
func TestSeveralUpstreams(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 599
		var sims []*simulator.Server
		var urls []string
		for range 3 {
			sim, url := simtest.StartMem(t, simtest.Config(pkMin, max, true), n)
			sims = append(sims, sim)
			urls = append(urls, url)
		}
		s := startShardMem(t, n, testConfig(urls, max, pkrange.Shard{Count: 1}))
		s.waitCycles(t, 2)
		var total uint64
		for i, sim := range sims {
			n := sim.Requests()
			if n < 300 {
				t.Fatalf("upstream %d served only %d of about 400 polls", i, n)
			}
			total += n
		}
		// Each pk went to one upstream only: its call counter advanced there and
		// nowhere else, so its value equals that upstream's.
		mfs := s.scrape(t, "/metrics", false)
		tel := s.scrape(t, "/telemetry", false)
		for i, u := range urls {
			if v := gaugeValue(tel, "mockstagram_exporter_upstream_up", "upstream", u); v != 1 {
				t.Fatalf("upstream %d up = %v", i, v)
			}
		}
		matches := 0
		for pk, m := range byPK(t, mfs[exporter.MetricFollowers]) {
			for _, sim := range sims {
				if f, _, _ := sim.Peek(pk); float64(f) == m.GetGauge().GetValue() {
					matches++
				}
			}
		}
		if matches < 590 {
			t.Fatalf("only %d of 600 exposed values match an upstream's current value", matches)
		}
	})
}

// TestFaultsAreCountedAndSurvived runs the exporter against each fault the
// simulator injects: the fault shows in the telemetry under its reason,
// retries keep coverage up, every pk is accounted for, nothing crashes.
func TestFaultsAreCountedAndSurvived(t *testing.T) {
	const max = pkMin + 399
	for _, pipeline := range []int{1, 8} {
		t.Run("pipeline="+strconv.Itoa(pipeline), func(t *testing.T) { testFaults(t, pipeline) })
	}
}

func testFaults(t *testing.T, pipeline int) {
	const max = pkMin + 399
	f := func(name string, faults simulator.Faults, reason string, minCoverage float64) {
		t.Run(name, func(t *testing.T) {
			inBubble(t, func(t *testing.T, n *memnet.Network) {
				cfg := simtest.Config(pkMin, max, false)
				faults.OutageMode = cmp.Or(faults.OutageMode, simulator.OutageReset)
				cfg.Faults = faults
				_, url := simtest.StartMem(t, cfg, n)
				cfg2 := testConfig([]string{url}, max, pkrange.Shard{Count: 1})
				cfg2.Pipeline = pipeline
				cfg2.Concurrency = 16 // 16 connections without pipelining, 8 with
				if pipeline > 1 {
					cfg2.Concurrency = 8 * pipeline
				}
				s := startShardMem(t, n, cfg2)
				r := s.waitCycles(t, 2)
				t.Logf("%s: %+v", name, r)
				if r.Coverage() < minCoverage {
					t.Fatalf("coverage %.4f under %s, want >= %v: %+v", r.Coverage(), name, minCoverage, r)
				}
				tel := s.scrape(t, "/telemetry", false)
				if n := gaugeValue(tel, "mockstagram_exporter_polls_total", "outcome", reason); n <= 0 {
					t.Fatalf("no poll counted with outcome %q", reason)
				}
				if n := gaugeValue(tel, "mockstagram_exporter_poll_retries_total"); n <= 0 {
					t.Fatal("no retry counted")
				}
				// The total the stop logs (and bench-stack counts stored
				// samples against) is the telemetry's successes, faults
				// and retries left out.
				s.StopPolling()
				tel = s.scrape(t, "/telemetry", false)
				if got, want := s.E.Polled(), gaugeValue(tel, "mockstagram_exporter_polls_total", "outcome", "success"); float64(got) != want || (minCoverage > 0 && got < 800) {
					t.Fatalf("Polled() = %d after the stop; /telemetry counts %v successful polls (2 cycles of 400 at least)", got, want)
				}
			})
		})
	}
	// Pipelining trades robustness for CPU: a reset or a stall fails the
	// requests queued behind it on the connection too (retried as aborted).
	robust := 0.99
	if pipeline > 1 {
		robust = 0.95
	}
	f("500s", simulator.Faults{ErrorRatio: 0.2}, "http_5xx", 0.99)
	f("resets", simulator.Faults{ResetRatio: 0.2}, "reset", robust)
	f("bad json", simulator.Faults{BadJSONRatio: 0.2}, "bad_json", 0.99)
	f("wrong pk", simulator.Faults{WrongPKRatio: 0.2}, "pk_mismatch", 0.99)
	if pipeline == 1 {
		f("stalls", simulator.Faults{LatencySpikeRatio: 0.1, LatencySpike: time.Second}, "timeout", 0.99)
	} else {
		// With 10% of answers stalling past the timeout nearly every
		// pipelined batch holds one, and each stall holds a connection for
		// a timeout: the requests behind it are aborted and sent again, but
		// coverage drops. This is why docs/exporter.md says to turn
		// pipelining off for upstreams whose answers stall independently;
		// what must hold is progress.
		f("stalls", simulator.Faults{LatencySpikeRatio: 0.1, LatencySpike: time.Second}, "aborted", 0.15)
	}
	f("outage 503", simulator.Faults{OutageAfter: 0, OutageDuration: time.Hour, OutageMode: simulator.Outage503}, "http_5xx", 0)
	// minCoverage 0 above; the outage must also poll nothing.
	t.Run("outage polls nothing", func(t *testing.T) {
		inBubble(t, func(t *testing.T, n *memnet.Network) {
			cfg := simtest.Config(pkMin, max, false)
			cfg.Faults = simulator.Faults{OutageDuration: time.Hour, OutageMode: simulator.Outage503}
			_, url := simtest.StartMem(t, cfg, n)
			cfg2 := testConfig([]string{url}, max, pkrange.Shard{Count: 1})
			cfg2.Pipeline = pipeline
			if r := startShardMem(t, n, cfg2).waitCycles(t, 1); r.Polled != 0 || r.Failed+r.Missed != 400 {
				t.Fatalf("cycle during an outage: %+v", r)
			}
		})
	})
}

// TestOutageKeepsLastGoodSample: when the upstream dies, the samples already
// held are still served with their original poll times, and the upstream is
// reported down.
func TestOutageKeepsLastGoodSample(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 99
		ln := n.ListenUnique("sim")
		// fasthttp's worker-pool cleaner sees the Shutdown below only when
		// its 10 s sleep ends (free on the bubble's clock).
		t.Cleanup(func() { time.Sleep(15 * time.Second) })
		srv, err := simulator.New(simtest.Config(pkMin, max, false))
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		url := "http://" + ln.Addr().String()
		s := startShardMem(t, n, testConfig([]string{url}, max, pkrange.Shard{Count: 1}))
		first := s.waitCycles(t, 1)
		srv.Shutdown()
		var r exporter.CycleReport
		for n := first.Cycle + 2; r.Polled != 0 || r.Failed != 100; n++ {
			if n > first.Cycle+5 {
				t.Fatalf("no cycle entirely against the dead upstream: %+v", r)
			}
			r = s.waitCycles(t, n+1)
		}
		before := s.scrape(t, "/metrics", false)
		s.waitCycles(t, r.Cycle+2)
		after := s.scrape(t, "/metrics", false)
		b, a := byPK(t, before[exporter.MetricFollowers]), byPK(t, after[exporter.MetricFollowers])
		if len(b) != 100 || len(a) != 100 {
			t.Fatalf("during the outage %d, then %d influencers exposed; the last good samples must stay", len(b), len(a))
		}
		for pk, m := range b {
			if a[pk].GetGauge().GetValue() != m.GetGauge().GetValue() || a[pk].GetTimestampMs() != m.GetTimestampMs() {
				t.Fatalf("pk %d changed without a successful poll", pk)
			}
		}
		tel := s.scrape(t, "/telemetry", false)
		if v := gaugeValue(tel, "mockstagram_exporter_upstream_up", "upstream", url); v != 0 {
			t.Fatalf("dead upstream reported up=%v", v)
		}
		if v := gaugeValue(tel, "mockstagram_exporter_polls_total", "outcome", "connect"); v <= 0 {
			t.Fatal("refused connections not counted as connect errors")
		}
	})
}

// TestNotFoundIsNotRetried: pks beyond the upstream's range answer
// InfluencerNotFoundError; they are counted, and not retried.
func TestNotFoundIsNotRetried(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		for _, status := range []int{500, 400} {
			cfg := simtest.Config(pkMin, pkMin+49, false)
			cfg.NotFoundStatus = status
			sim, url := simtest.StartMem(t, cfg, n)
			s := startShardMem(t, n, testConfig([]string{url}, pkMin+99, pkrange.Shard{Count: 1}))
			r := s.waitCycles(t, 1)
			if r.Polled != 50 || r.Failed != 50 {
				t.Fatalf("status %d: %+v, want 50 polled, 50 failed", status, r)
			}
			tel := s.scrape(t, "/telemetry", false)
			if v := gaugeValue(tel, "mockstagram_exporter_polls_total", "outcome", "not_found"); v < 50 {
				t.Fatalf("status %d: not_found counted %v times", status, v)
			}
			if v := gaugeValue(tel, "mockstagram_exporter_poll_retries_total"); v != 0 {
				t.Fatalf("status %d: %v retries of not-found pks", status, v)
			}
			_ = sim
		}
	})
}

// TestTelemetryAndPages checks the telemetry a user alerts on, lints it,
// and the health endpoints and landing page.
func TestTelemetryAndPages(t *testing.T) {
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		const max = pkMin + 99
		_, url := simtest.StartMem(t, simtest.Config(pkMin, max, false), n)
		s := startShardMem(t, n, testConfig([]string{url}, max, pkrange.Shard{Index: 0, Count: 2}))
		s.waitCycles(t, 1)
		s.scrape(t, "/metrics", true)
		tel := s.scrape(t, "/telemetry", false)
		for name, want := range map[string]float64{
			"mockstagram_exporter_owned_influencers":             50,
			"mockstagram_exporter_polled_influencers":            50,
			"mockstagram_exporter_fresh_influencers":             50,
			"mockstagram_exporter_coverage_ratio":                1,
			"mockstagram_exporter_last_cycle_coverage_ratio":     1,
			"mockstagram_exporter_poll_interval_seconds":         1,
			"mockstagram_exporter_last_cycle_missed_influencers": 0,
		} {
			if got := gaugeValue(tel, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		for _, name := range []string{"mockstagram_exporter_poll_duration_seconds", "mockstagram_exporter_render_duration_seconds",
			"mockstagram_exporter_polls_in_flight", "mockstagram_exporter_oldest_sample_age_seconds", "mockstagram_exporter_cycle_progress_ratio",
			"mockstagram_exporter_schedule_lag_seconds", "process_cpu_seconds_total"} {
			if tel[name] == nil {
				t.Errorf("telemetry lacks %s", name)
			}
		}
		resp, err := s.Client.Get(s.URL + "/telemetry")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		problems, err := promlint.New(bytes.NewReader(body)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("telemetry lint: %s: %s", p.Metric, p.Text)
		}
		get := func(path string, wantStatus int, wantBody string) {
			t.Helper()
			resp, err := s.Client.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantStatus || !strings.Contains(string(b), wantBody) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", path, resp.StatusCode, b, wantStatus, wantBody)
			}
		}
		get("/-/healthy", 200, "OK")
		get("/-/ready", 200, "OK")
		get("/", 200, "Shard 0 of 2")
		get("/", 200, "50 of 50 influencers have a sample younger than")
		get("/metrics?slice=1&slices=2", 200, "mockstagram_influencer_followers")
		get("/metrics?slice=2&slices=2", 400, "bad slice")
		get("/metrics?slice=x", 400, "bad slice")
		get("/nope", 404, "")
	})
}
