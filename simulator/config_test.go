package simulator

import (
	"math"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	f := func(edit func(*Config), want string) {
		t.Helper()
		cfg := DefaultConfig()
		edit(&cfg)
		err := cfg.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("Validate() = %q, want %q", got, want)
		}
		if _, err := New(cfg); (err == nil) != (want == "") {
			t.Errorf("New() error %v disagrees with Validate", err)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) { c.PKs.Max = c.PKs.Min - 1 }, "pk.max=999999 is below pk.min=1000000; set --pk.max >= --pk.min")
	f(func(c *Config) { c.PKs.Min = -1 }, "pk.min=-1 is negative; pks are non-negative integers")
	f(func(c *Config) { c.NotFoundStatus = 404 }, "not-found.status=404 must be 500 or 400")
	f(func(c *Config) { c.NotFoundStatus = 0 }, "not-found.status=0 must be 500 or 400")
	f(func(c *Config) { c.SuspiciousDelayMean = -time.Second }, "suspicious.delay.mean=-1s must not be negative")
	f(func(c *Config) { c.SuspiciousDelayStddev = -time.Second }, "suspicious.delay.stddev=-1s must not be negative")
	f(func(c *Config) { c.SuspiciousDelayMax = -time.Millisecond }, "suspicious.delay.max=-1ms must not be negative")
	f(func(c *Config) { c.IdleTimeout = -time.Second }, "web.idle-timeout=-1s must not be negative")
	f(func(c *Config) { c.Faults.LatencyMean = -time.Second }, "fault.latency.mean=-1s must not be negative")
	f(func(c *Config) { c.Faults.LatencyStddev = -time.Second }, "fault.latency.stddev=-1s must not be negative")
	f(func(c *Config) { c.Faults.LatencySpike = -time.Second }, "fault.latency.spike=-1s must not be negative")
	f(func(c *Config) { c.Faults.OutageAfter = -time.Second }, "fault.outage.after=-1s must not be negative")
	f(func(c *Config) { c.Faults.OutageDuration = -time.Second }, "fault.outage.duration=-1s must not be negative")
	f(func(c *Config) { c.Faults.ErrorRatio = 1.5 }, "fault.error-ratio=1.5 must be in [0,1]")
	f(func(c *Config) { c.Faults.ErrorRatio = math.NaN() }, "fault.error-ratio=NaN must be in [0,1]")
	f(func(c *Config) { c.Faults.ResetRatio = -0.1 }, "fault.reset-ratio=-0.1 must be in [0,1]")
	f(func(c *Config) { c.Faults.BadJSONRatio = 2 }, "fault.bad-json-ratio=2 must be in [0,1]")
	f(func(c *Config) { c.Faults.WrongPKRatio = 2 }, "fault.wrong-pk-ratio=2 must be in [0,1]")
	f(func(c *Config) { c.Faults.LatencySpikeRatio = 2 }, "fault.latency.spike-ratio=2 must be in [0,1]")
	f(func(c *Config) { c.Faults.SuspiciousErrorRatio = 2 }, "fault.suspicious.error-ratio=2 must be in [0,1]")
	f(func(c *Config) { c.Faults.LatencySpikeRatio = 0.1 }, "fault.latency.spike-ratio=0.1 has no effect without --fault.latency.spike")
	f(func(c *Config) { c.Faults.OutageMode = "drop" }, `fault.outage.mode="drop" must be "reset" or "503"`)
	f(func(c *Config) { c.Faults = Faults{ErrorRatio: 0.5} }, "") // "" is reset
	f(func(c *Config) { c.Faults.ErrorRatio, c.Faults.ResetRatio = 1, 1 }, "")
}

func TestFaultsString(t *testing.T) {
	f := func(faults Faults, want string) {
		t.Helper()
		if got := faults.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	f(Faults{}, "none")
	f(Faults{OutageMode: OutageReset}, "none")
	f(Faults{OutageDuration: time.Second}, "fault.outage.duration=1s fault.outage.mode=reset")
	f(Faults{ErrorRatio: 0.1, ResetRatio: 0.01, OutageMode: OutageReset}, "fault.error-ratio=0.1 fault.reset-ratio=0.01")
	f(Faults{LatencySpikeRatio: 0.001, LatencySpike: 5 * time.Second, OutageAfter: time.Minute, OutageDuration: 30 * time.Second, OutageMode: Outage503},
		"fault.latency.spike-ratio=0.001 fault.latency.spike=5s fault.outage.after=1m0s fault.outage.duration=30s fault.outage.mode=503")
}
