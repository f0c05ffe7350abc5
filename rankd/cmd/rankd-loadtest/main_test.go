package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseWrk(t *testing.T) {
	b, err := os.ReadFile("testdata/wrk-latency.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseWrk(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := result{Requests: 118299, PerSecond: 118299 / 15.04, P50Ms: 0.155, P90Ms: 1.61, P99Ms: 7.23}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// TestParseWrkRefuses: a run with error answers, or without --latency,
// yields no figures.
func TestParseWrkRefuses(t *testing.T) {
	b, err := os.ReadFile("testdata/wrk-errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseWrk(string(b)); err == nil || !strings.Contains(err.Error(), "Non-2xx or 3xx responses: 8059") {
		t.Fatalf("error answers: %v", err)
	}
	ok, _ := os.ReadFile("testdata/wrk-latency.txt")
	noLatency := strings.Replace(string(ok), "     99%    7.23ms\n", "", 1)
	if _, err := parseWrk(noLatency); err == nil || !strings.Contains(err.Error(), "--latency") {
		t.Fatalf("no p99: %v", err)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Fatal("no report parsed")
	}
}

func TestParseH2loadLog(t *testing.T) {
	f, err := os.Open("testdata/h2load.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseH2loadLog(f)
	if err != nil {
		t.Fatal(err)
	}
	// 4 requests started over 1 s; durations 80, 95, 120, 2500 us.
	want := result{Requests: 4, PerSecond: 4, P50Ms: 0.120, P90Ms: 2.5, P99Ms: 2.5}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{
		"1763800000000000\t404\t120\n1763800000100000\t200\t80\n",
		"1763800000000000\t200\n",
		"1763800000000000\t200\tx\n1763800000100000\t200\t80\n",
		"1763800000000000\t200\t120\n",
	} {
		if _, err := parseH2loadLog(strings.NewReader(bad)); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

func TestMedians(t *testing.T) {
	runs := []result{
		{Target: "api", P99Ms: 3, PerSecond: 10, CPUPerReqUs: 70},
		{Target: "healthy", P99Ms: 100},
		{Target: "api", P99Ms: 9, PerSecond: 30, CPUPerReqUs: 80},
		{Target: "api", P99Ms: 2, PerSecond: 20, CPUPerReqUs: 75},
		{Target: "healthy", P99Ms: 1},
	}
	if got := medians(runs, "api"); got.P99Ms != 3 || got.PerSecond != 20 || got.CPUPerReqUs != 75 {
		t.Fatalf("odd count: %+v", got)
	}
	if got := medians(runs, "healthy"); got.P99Ms != 50.5 {
		t.Fatalf("even count: %+v", got)
	}
}
