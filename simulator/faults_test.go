package simulator

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const influencerPath = "/api/v1/influencers/1000001"

// influencerIndex is 1000001's index in smallRange.
const influencerIndex = 1

func TestFaultErrorRatioOne(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.ErrorRatio = 1
	ts := startServer(t, cfg, nil)
	f0, g0, _ := ts.Peek(1_000_001)
	for range 20 {
		r := ts.get(influencerPath)
		if r.code != 500 || r.body != "Internal Server Error" || json.Valid([]byte(r.body)) {
			t.Fatalf("got %d %q", r.code, r.body)
		}
	}
	if f, g, _ := ts.Peek(1_000_001); f != f0 || g != g0 || ts.st.calls[influencerIndex].Load() != 0 {
		t.Error("an injected error stepped the influencer")
	}
	if ts.Requests() != 20 {
		t.Errorf("Requests() = %d, want 20", ts.Requests())
	}
}

func TestFaultResetRatioOne(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.ResetRatio = 1
	ts := startServer(t, cfg, nil)
	for range 5 {
		if r, err := ts.do("GET", influencerPath, ""); err == nil {
			t.Fatalf("got a response (%d %s), want a connection error", r.code, r.body)
		}
	}
	if ts.st.calls[influencerIndex].Load() != 0 {
		t.Error("a reset stepped the influencer")
	}
	// Other routes are not affected.
	if r := ts.get("/-/healthy"); r.code != 200 {
		t.Errorf("/-/healthy: %d", r.code)
	}
	if m := ts.get("/metrics").body; !strings.Contains(m, `mockstagram_sim_requests_total{code="0",route="influencer"} 5`) ||
		!strings.Contains(m, `mockstagram_sim_faults_injected_total{kind="reset"} 5`) {
		t.Errorf("resets not counted:\n%s", m)
	}
}

func TestFaultBadJSONRatioOne(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.BadJSONRatio = 1
	ts := startServer(t, cfg, nil)
	for i := range 50 {
		r := ts.get(influencerPath)
		if r.code != 200 || json.Valid([]byte(r.body)) || !strings.HasPrefix(r.body, "{") {
			t.Fatalf("got %d %q, want 200 with broken JSON", r.code, r.body)
		}
		if n := ts.st.calls[influencerIndex].Load(); n != uint32(i+1) {
			t.Fatalf("%d steps after %d calls; bad JSON still steps", n, i+1)
		}
	}
}

func TestFaultWrongPKRatioOne(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.WrongPKRatio = 1
	ts := startServer(t, cfg, nil)
	for range 50 {
		r := ts.get(influencerPath)
		var inf influencer
		if err := json.Unmarshal([]byte(r.body), &inf); err != nil || r.code != 200 {
			t.Fatalf("got %d %q: %v", r.code, r.body, err)
		}
		f, g, ok := ts.Peek(inf.PK)
		if inf.PK == 1_000_001 || !ok || inf.Username != "influencer-"+itoa(inf.PK) ||
			inf.FollowerCount != f || inf.FollowingCount != g {
			t.Fatalf("got %s, want another pk's current values", r.body)
		}
	}
}

func TestFaultWrongPKSinglePKRange(t *testing.T) {
	cfg := testConfig()
	cfg.PKs.Max = cfg.PKs.Min
	cfg.Faults.WrongPKRatio = 1
	ts := startServer(t, cfg, nil)
	var inf influencer
	if err := json.Unmarshal([]byte(ts.get("/api/v1/influencers/1000000").body), &inf); err != nil || inf.PK != 1_000_001 {
		t.Errorf("got pk %d (%v), want 1000001", inf.PK, err)
	}
}

func TestFaultRatiosInBetween(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.ErrorRatio = 0.3
	cfg.Faults.ResetRatio = 0.2
	ts := startServer(t, cfg, nil)
	const n = 2000
	resets, errors, ok := 0, 0, 0
	for range n {
		r, err := ts.do("GET", influencerPath, "")
		switch {
		case err != nil:
			resets++
		case r.code == 500:
			errors++
		case r.code == 200:
			ok++
		default:
			t.Fatalf("unexpected %d %s", r.code, r.body)
		}
	}
	// Resets are drawn first (0.2), errors from the rest (0.8*0.3 = 0.24).
	// The bounds are over ten standard deviations wide.
	within := func(name string, got int, want float64) {
		t.Helper()
		if f := float64(got) / n; f < want-0.1 || f > want+0.1 {
			t.Errorf("%s: %d of %d, want about %.0f%%", name, got, n, want*100)
		}
	}
	within("resets", resets, 0.2)
	within("errors", errors, 0.24)
	within("ok", ok, 0.56)
	if got := ts.st.calls[influencerIndex].Load(); got != uint32(ok) {
		t.Errorf("%d steps for %d successful calls", got, ok)
	}
}

func TestFaultOutageWindow(t *testing.T) {
	for _, mode := range []string{Outage503, OutageReset} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig()
			cfg.Faults.OutageAfter = time.Minute
			cfg.Faults.OutageDuration = time.Minute
			cfg.Faults.OutageMode = mode
			var elapsed atomic.Int64 // the fake clock, as time since start
			ts := startServer(t, cfg, func(s *Server) {
				start := s.start
				s.now = func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
			})
			f := func(at time.Duration, wantOutage bool) {
				t.Helper()
				elapsed.Store(int64(at))
				r, err := ts.do("GET", influencerPath, "")
				switch {
				case !wantOutage:
					if err != nil || r.code != 200 {
						t.Errorf("at %s: %d %v, want 200", at, r.code, err)
					}
				case mode == Outage503:
					if err != nil || r.code != 503 {
						t.Errorf("at %s: %d %v, want 503", at, r.code, err)
					}
				default:
					if err == nil {
						t.Errorf("at %s: %d, want a reset", at, r.code)
					}
				}
			}
			f(0, false)
			f(59*time.Second, false)
			f(time.Minute, true)
			f(90*time.Second, true)
			f(2*time.Minute, false)
			// The classifier keeps working during an outage.
			elapsed.Store(int64(90 * time.Second))
			if r := ts.mustDo("POST", "/api/v1/influencers/is_suspicious", ""); r.code != 200 {
				t.Errorf("classifier during outage: %d", r.code)
			}
		})
	}
}

func TestFaultLatency(t *testing.T) {
	f := func(name string, faults Faults) {
		t.Helper()
		cfg := testConfig()
		cfg.Faults = faults
		ts := startServer(t, cfg, nil)
		began := time.Now()
		if r := ts.get(influencerPath); r.code != 200 {
			t.Errorf("%s: %d", name, r.code)
		}
		if took := time.Since(began); took < 100*time.Millisecond {
			t.Errorf("%s: answered after %s, want at least 100ms", name, took)
		}
	}
	f("latency", Faults{LatencyMean: 100 * time.Millisecond})
	f("spike", Faults{LatencySpikeRatio: 1, LatencySpike: 100 * time.Millisecond})
}

func TestFaultSuspiciousError(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.SuspiciousErrorRatio = 1
	ts := startServer(t, cfg, nil)
	r := ts.mustDo("POST", "/api/v1/influencers/is_suspicious", `{"pk":1,"followerCount":1,"followingCount":1}`)
	if r.code != 500 {
		t.Errorf("got %d %s, want 500", r.code, r.body)
	}
	// The influencer route is not affected.
	if r := ts.get(influencerPath); r.code != 200 {
		t.Errorf("influencer: %d", r.code)
	}
}

func itoa(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
