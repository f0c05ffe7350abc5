package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator"
)

func mustParse(t *testing.T, args ...string) cli {
	t.Helper()
	c, err := parse(args, io.Discard)
	if err != nil {
		t.Fatalf("parse(%q): %v", args, err)
	}
	return c
}

// The flag defaults and simulator.DefaultConfig describe the same server.
func TestDefaultsMatchDefaultConfig(t *testing.T) {
	c := mustParse(t)
	if c.ListenAddress != ":3000" {
		t.Errorf("listen address %q", c.ListenAddress)
	}
	got, want := c.config(nil), simulator.DefaultConfig()
	if got != want {
		t.Errorf("flag defaults give\n%+v\nDefaultConfig is\n%+v", got, want)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	t.Setenv("MOCKSTAGRAM_SIM_PK_MIN", "5")
	t.Setenv("MOCKSTAGRAM_SIM_FAULT_RESET_RATIO", "0.25")
	c := mustParse(t,
		"--pk.max=10",
		"--drift=false",
		"--seed=42",
		"--not-found.status=400",
		"--suspicious.delay.mean=250ms",
		"--suspicious.delay.max=10s",
		"--fault.error-ratio=0.5",
		"--fault.outage.after=1m",
		"--fault.outage.duration=30s",
		"--fault.outage.mode=503",
		"--web.listen-address=127.0.0.1:0",
	)
	cfg := c.config(nil)
	want := simulator.DefaultConfig()
	want.PKs = pkrange.Range{Min: 5, Max: 10}
	want.Drift = false
	want.Seed = 42
	want.NotFoundStatus = 400
	want.SuspiciousDelayMean = 250 * time.Millisecond
	want.SuspiciousDelayMax = 10 * time.Second
	want.Faults.ErrorRatio = 0.5
	want.Faults.ResetRatio = 0.25
	want.Faults.OutageAfter = time.Minute
	want.Faults.OutageDuration = 30 * time.Second
	want.Faults.OutageMode = "503"
	if cfg != want {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
	if c := mustParse(t, "--no-drift"); c.Drift {
		t.Error("--no-drift left drift on")
	}
	t.Setenv("MOCKSTAGRAM_SIM_DRIFT", "false")
	if c := mustParse(t); c.Drift {
		t.Error("MOCKSTAGRAM_SIM_DRIFT=false left drift on")
	}
}

func TestParseErrors(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("run(%q) = exit %d, stderr %s; want exit 2 and an error containing %q", args, code, stderr.String(), want)
		}
	}
	f(`--not-found.status must be one of "500","400" but got "404"`, "--not-found.status=404")
	f(`--fault.outage.mode must be one of "reset","503" but got "drop"`, "--fault.outage.mode=drop")
	f("unknown flag --nope", "--nope")
	f("--seed", "--seed=abc")
	f("--fault.latency.mean", "--fault.latency.mean=5")
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Errorf("--help exited %d", code)
	}
	for _, want := range []string{"--web.listen-address", "MOCKSTAGRAM_SIM_PK_MIN", "--fault.outage.mode"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--fault.error-ratio=1.5", "--web.listen-address=127.0.0.1:0"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "fault.error-ratio=1.5 must be in [0,1]") {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
	code = run(context.Background(), []string{"--web.listen-address=256.0.0.1:x"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "cannot listen on --web.listen-address") {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
}

// TestRunServes starts the binary's run on a free port, reads the URL it
// logs, makes a request and stops it through the context.
func TestRunServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logR, logW := io.Pipe()
	urls := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`url=(\S+)`)
		sc := bufio.NewScanner(logR)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--web.listen-address=127.0.0.1:0", "--pk.max=1000009", "--seed=3", "--drift=false"}, io.Discard, logW)
		logW.Close()
	}()

	var url string
	select {
	case url = <-urls:
	case code := <-exited:
		t.Fatalf("run exited %d before listening", code)
	}
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get(url + "/api/v1/influencers/1000009")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), `{"pk":1000009,"username":"influencer-1000009","followerCount":`) {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("run exited %d after cancel", code)
	}
}
