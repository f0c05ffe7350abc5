package main

import (
	"testing"
)

// TestAdaptiveConcurrencyFlag: the limit adapts by default; the negated
// flag and its environment variable fix it at --poll.concurrency.
func TestAdaptiveConcurrencyFlag(t *testing.T) {
	f := func(args []string, env string, wantFixed bool) {
		t.Helper()
		if env != "" {
			t.Setenv("MOCKSTAGRAM_EXPORTER_POLL_ADAPTIVE_CONCURRENCY", env)
		}
		_, cfg := mustConfig(t, args)
		if cfg.FixedConcurrency != wantFixed {
			t.Fatalf("%v %q: FixedConcurrency %v, want %v", args, env, cfg.FixedConcurrency, wantFixed)
		}
	}
	f(nil, "", false)
	f([]string{"--no-poll.adaptive-concurrency"}, "", true)
	f(nil, "false", true)
}
