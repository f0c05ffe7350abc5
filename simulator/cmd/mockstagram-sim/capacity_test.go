package main

import "testing"

func TestCapacityFlag(t *testing.T) {
	if c := mustParse(t); c.config(nil).Capacity != 0 {
		t.Fatalf("default capacity %v, want 0 (unlimited)", c.config(nil).Capacity)
	}
	if c := mustParse(t, "--capacity=5000"); c.config(nil).Capacity != 5000 {
		t.Fatalf("--capacity=5000 gives %v", c.config(nil).Capacity)
	}
	t.Setenv("MOCKSTAGRAM_SIM_CAPACITY", "2500.5")
	if c := mustParse(t); c.config(nil).Capacity != 2500.5 {
		t.Fatalf("MOCKSTAGRAM_SIM_CAPACITY=2500.5 gives %v", c.config(nil).Capacity)
	}
}
