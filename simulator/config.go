package simulator

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// Config configures a Server. Start from DefaultConfig: the zero value has
// drift off and no valid not-found status. Each field names the
// mockstagram-sim flag that sets it, and Validate's errors use those names.
type Config struct {
	// PKs is the range of influencers, all present from start-up
	// (--pk.min, --pk.max).
	PKs pkrange.Range
	// Seed makes the data deterministic; 0 draws a random seed, which
	// Server.Seed reports so that a run can be reproduced (--seed).
	Seed int64
	// Drift makes every influencer GET step the counts like upstream; false
	// freezes them for exact tests (--drift).
	Drift bool
	// NotFoundStatus is 500 like the reference server or 400 like its later
	// variant (--not-found.status).
	NotFoundStatus int
	// SuspiciousDelayMean, SuspiciousDelayStddev and SuspiciousDelayMax shape
	// the classifier's wait, max(0, mean + stddev*z), capped at Max unless 0
	// (--suspicious.delay.mean, --suspicious.delay.stddev,
	// --suspicious.delay.max).
	SuspiciousDelayMean   time.Duration
	SuspiciousDelayStddev time.Duration
	SuspiciousDelayMax    time.Duration
	// IdleTimeout closes idle keep-alive connections; 5s is Node's
	// keepAliveTimeout, so clients meet the same close races as upstream
	// (--web.idle-timeout).
	IdleTimeout time.Duration
	// Capacity is the API requests/s served, like the reference server's
	// one Node thread: requests take turns in arrival order, 1/Capacity
	// seconds each, so beyond it the queue and the latency grow and nothing
	// is refused. 0 is unlimited (--capacity; Server.SetCapacity and POST
	// /admin/capacity?rps=N change it while running).
	Capacity float64
	// Faults are off in the zero value.
	Faults Faults
	// Logger receives the HTTP server's own errors at debug level; nil
	// discards them.
	Logger *slog.Logger
}

// Faults injects failures upstream shows (stalls) or that a real fleet would
// (errors, resets, garbage, outages). Ratios are per-request probabilities
// drawn independently, in this order: outage window, latency, spike, reset,
// error, then (on the answer) wrong pk and bad JSON. So reset-ratio 0.2 with
// error-ratio 0.3 resets 20% and fails 24% of requests.
type Faults struct {
	// LatencyMean and LatencyStddev add max(0, mean + stddev*z) to every
	// influencer request (--fault.latency.mean, --fault.latency.stddev).
	LatencyMean   time.Duration
	LatencyStddev time.Duration
	// LatencySpikeRatio of influencer requests stall a further LatencySpike,
	// like the reference server's multi-second stalls under load
	// (--fault.latency.spike-ratio, --fault.latency.spike).
	LatencySpikeRatio float64
	LatencySpike      time.Duration
	// ErrorRatio of influencer requests answer 500 with a non-JSON body and
	// do not step the influencer (--fault.error-ratio).
	ErrorRatio float64
	// ResetRatio of influencer requests get their TCP connection reset
	// without a response and do not step the influencer (--fault.reset-ratio).
	ResetRatio float64
	// BadJSONRatio of influencer requests answer 200 with a truncated body;
	// the influencer is stepped (--fault.bad-json-ratio).
	BadJSONRatio float64
	// WrongPKRatio of influencer requests answer 200 with another pk's
	// current values; the requested pk is stepped, the other is not
	// (--fault.wrong-pk-ratio).
	WrongPKRatio float64
	// From OutageAfter to OutageAfter+OutageDuration since New, every
	// influencer request is reset or answered 503 as OutageMode says; ""
	// means reset (--fault.outage.after, --fault.outage.duration,
	// --fault.outage.mode).
	OutageAfter    time.Duration
	OutageDuration time.Duration
	OutageMode     string
	// SuspiciousErrorRatio of classifier calls answer 500 after their usual
	// delay (--fault.suspicious.error-ratio).
	SuspiciousErrorRatio float64
}

// Outage modes.
const (
	OutageReset = "reset"
	Outage503   = "503"
)

// DefaultConfig is the reference server's behaviour: pks 1,000,000..1,999,999,
// drift on, random seed, 500 for unknown pks, classifier delay 1s ± 1s, no
// faults.
func DefaultConfig() Config {
	return Config{
		PKs:                   pkrange.Range{Min: pkrange.DefaultMin, Max: pkrange.DefaultMax},
		Drift:                 true,
		NotFoundStatus:        500,
		SuspiciousDelayMean:   time.Second,
		SuspiciousDelayStddev: time.Second,
		IdleTimeout:           5 * time.Second,
		Faults:                Faults{OutageMode: OutageReset},
	}
}

// Validate reports the first setting a Server cannot run with, naming the
// flag to change.
func (c Config) Validate() error {
	if err := c.PKs.Validate(); err != nil {
		return err
	}
	if c.NotFoundStatus != 500 && c.NotFoundStatus != 400 {
		return fmt.Errorf("not-found.status=%d must be 500 or 400", c.NotFoundStatus)
	}
	if !(c.Capacity >= 0) || math.IsInf(c.Capacity, 0) {
		return fmt.Errorf("capacity=%g must be a finite number >= 0 (requests/s; 0 = unlimited)", c.Capacity)
	}
	f := c.Faults
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"suspicious.delay.mean", c.SuspiciousDelayMean},
		{"suspicious.delay.stddev", c.SuspiciousDelayStddev},
		{"suspicious.delay.max", c.SuspiciousDelayMax},
		{"web.idle-timeout", c.IdleTimeout},
		{"fault.latency.mean", f.LatencyMean},
		{"fault.latency.stddev", f.LatencyStddev},
		{"fault.latency.spike", f.LatencySpike},
		{"fault.outage.after", f.OutageAfter},
		{"fault.outage.duration", f.OutageDuration},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s=%s must not be negative", d.flag, d.v)
		}
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{
		{"fault.latency.spike-ratio", f.LatencySpikeRatio},
		{"fault.error-ratio", f.ErrorRatio},
		{"fault.reset-ratio", f.ResetRatio},
		{"fault.bad-json-ratio", f.BadJSONRatio},
		{"fault.wrong-pk-ratio", f.WrongPKRatio},
		{"fault.suspicious.error-ratio", f.SuspiciousErrorRatio},
	} {
		if !(r.v >= 0 && r.v <= 1) { // also rejects NaN
			return fmt.Errorf("%s=%g must be in [0,1]", r.flag, r.v)
		}
	}
	if f.LatencySpikeRatio > 0 && f.LatencySpike == 0 {
		return fmt.Errorf("fault.latency.spike-ratio=%g has no effect without --fault.latency.spike", f.LatencySpikeRatio)
	}
	if f.OutageMode != "" && f.OutageMode != OutageReset && f.OutageMode != Outage503 {
		return fmt.Errorf("fault.outage.mode=%q must be %q or %q", f.OutageMode, OutageReset, Outage503)
	}
	return nil
}

// String lists the active faults as flag=value pairs, or "none", for logs
// and the landing page.
func (f Faults) String() string {
	var parts []string
	dur := func(flag string, v time.Duration) {
		if v > 0 {
			parts = append(parts, flag+"="+v.String())
		}
	}
	ratio := func(flag string, v float64) {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%g", flag, v))
		}
	}
	dur("fault.latency.mean", f.LatencyMean)
	dur("fault.latency.stddev", f.LatencyStddev)
	if f.LatencySpikeRatio > 0 {
		ratio("fault.latency.spike-ratio", f.LatencySpikeRatio)
		dur("fault.latency.spike", f.LatencySpike)
	}
	ratio("fault.error-ratio", f.ErrorRatio)
	ratio("fault.reset-ratio", f.ResetRatio)
	ratio("fault.bad-json-ratio", f.BadJSONRatio)
	ratio("fault.wrong-pk-ratio", f.WrongPKRatio)
	if f.OutageDuration > 0 {
		dur("fault.outage.after", f.OutageAfter)
		dur("fault.outage.duration", f.OutageDuration)
		mode := f.OutageMode
		if mode == "" {
			mode = OutageReset
		}
		parts = append(parts, "fault.outage.mode="+mode)
	}
	ratio("fault.suspicious.error-ratio", f.SuspiciousErrorRatio)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// influencerFaults reports whether any fault touches the influencer route,
// so that the fault-free hot path skips the RNG and the clock.
func (f Faults) influencerFaults() bool {
	return f.LatencyMean > 0 || f.LatencyStddev > 0 || f.LatencySpikeRatio > 0 ||
		f.ErrorRatio > 0 || f.ResetRatio > 0 || f.BadJSONRatio > 0 ||
		f.WrongPKRatio > 0 || f.OutageDuration > 0
}

// normalDelay is max(0, mean + stddev*z), capped at limit unless limit is 0.
func normalDelay(mean, stddev, limit time.Duration, z float64) time.Duration {
	d := float64(mean) + float64(stddev)*z
	if limit > 0 {
		d = math.Min(d, float64(limit))
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(d)
}
