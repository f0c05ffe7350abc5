package main

import (
	"io"
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
		c, err := parse(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := c.config()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.FixedConcurrency != wantFixed {
			t.Fatalf("%v %q: FixedConcurrency %v, want %v", args, env, cfg.FixedConcurrency, wantFixed)
		}
	}
	f(nil, "", false)
	f([]string{"--no-poll.adaptive-concurrency"}, "", true)
	f(nil, "false", true)
}
