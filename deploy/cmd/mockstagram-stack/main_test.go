package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

const victoriaDir = "../../../victoria"

// buildBinaries builds the binaries the launcher starts (and links the
// VictoriaMetrics ones), once for the package, into a directory removed
// when the tests end.
func buildBinaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = build(); binErr != nil {
			return
		}
		for _, name := range []string{"victoria-metrics", "vmalert"} {
			if binErr = os.Symlink(vmtest.Binary(t, name), filepath.Join(binDir, name)); binErr != nil {
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func build() (string, error) {
	dir, err := os.MkdirTemp("", "mockstagram-stack-test-bin-")
	if err != nil {
		return "", err
	}
	for name, pkg := range map[string]string{
		"mockstagram-sim":      "../../../simulator/cmd/mockstagram-sim",
		"mockstagram_exporter": "../../../exporter/cmd/mockstagram_exporter",
		"rankd":                "../../../rankd/cmd/rankd",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// freeBlock finds n consecutive free loopback ports.
func freeBlock(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(30000)
		ok := true
		for i := range n {
			if proc.PortFree(fmt.Sprintf("127.0.0.1:%d", base+i)) != nil {
				ok = false
				break
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no block of free ports")
	return 0
}

// TestStackRunsAndStops is `make run` in small: the launcher starts the
// simulator and two exporter shards, prints where to look, writes
// endpoints.json, reports the first cycle, serves, and stops cleanly.
func TestStackRunsAndStops(t *testing.T) {
	bin := buildBinaries(t)
	data := t.TempDir()
	c := &cli{BinDir: bin, DataDir: data, PKCount: 2000, Shards: 2, PollInterval: 2 * time.Second,
		SuspiciousPeriod: 8 * time.Second, PortsBase: freeBlock(t, 12), StatusEvery: time.Second, VictoriaDir: victoriaDir,
		GainsWindows: "10s"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out proc.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, &out) }()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "first cycle done") {
		select {
		case err := <-done:
			t.Fatalf("launcher stopped early: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("no first cycle within 60s:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	b, err := os.ReadFile(filepath.Join(data, "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ep struct {
		Simulator       string
		Exporters       []string
		VictoriaMetrics string
		VMAlert         string
		Rankd           string
	}
	if err := json.Unmarshal(b, &ep); err != nil || ep.Simulator == "" || len(ep.Exporters) != 2 || ep.VictoriaMetrics == "" || ep.VMAlert == "" || ep.Rankd == "" {
		t.Fatalf("endpoints.json: %s (%v)", b, err)
	}
	total := 0
	for _, u := range ep.Exporters {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		total += strings.Count(string(body), "mockstagram_influencer_followers{")
	}
	if total != 2000 {
		t.Fatalf("the two shards expose %d influencers, want 2000", total)
	}
	// VictoriaMetrics scrapes every influencer, and vmalert evaluates rules.
	deadline2 := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(ep.VictoriaMetrics + "/api/v1/query?query=count(mockstagram_influencer_followers)")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"2000"`) {
				break
			}
		}
		if time.Now().After(deadline2) {
			t.Fatal("VictoriaMetrics never held the 2000 influencers")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Every influencer gets a suspicious verdict within a period (after the
	// first poll cycle), and VictoriaMetrics stores it.
	deadlineV := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(ep.VictoriaMetrics + "/api/v1/query?query=count(last_over_time(mockstagram_influencer_suspicious[1h]))")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"2000"`) {
				break
			}
		}
		if time.Now().After(deadlineV) {
			t.Fatal("VictoriaMetrics never held a verdict for each of the 2000 influencers")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// rankd ranks the same 2000 influencers.
	deadline3 := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ep.Rankd + "/api/v1/average")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"count":2000`) {
				break
			}
		}
		if time.Now().After(deadline3) {
			t.Fatal("rankd never served the average over 2000 influencers")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// rankd reads its gains from the launcher's VictoriaMetrics: the movers
	// of the 10s window come out of the box.
	deadline4 := time.Now().Add(40 * time.Second)
	for {
		resp, err := http.Get(ep.Rankd + "/api/v1/movers?window=10s&limit=3")
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			var m struct {
				Total int
				Items []struct{ Rank int }
			}
			if json.Unmarshal(body, &m) == nil && m.Total == 2000 && len(m.Items) == 3 && m.Items[0].Rank == 1 {
				break
			}
		}
		if time.Now().After(deadline4) {
			t.Fatalf("rankd never served the movers of the 10s window over 2000 influencers: %s %v", body, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	resp, err := http.Get(ep.VMAlert + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(rules), "InfluencerFollowerJump") {
		t.Fatalf("vmalert does not run the jump alert: %.300s", rules)
	}
	for _, want := range []string{ep.Simulator + "/api/v1/influencers/1000001", ep.Exporters[0], ep.Exporters[1], ep.VictoriaMetrics + "/vmui/"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the launcher did not print %s:\n%s", want, out.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("launcher did not stop within 90s")
	}
	for _, u := range append(ep.Exporters, ep.Simulator, ep.VictoriaMetrics, ep.VMAlert, ep.Rankd) {
		if _, err := http.Get(u + "/-/healthy"); err == nil {
			t.Fatalf("%s still answers after the launcher stopped", u)
		}
	}
	// The exporters saved their state at the stop, for the next run.
	for i := range 2 {
		if _, err := os.Stat(filepath.Join(data, "exporters", fmt.Sprintf("exporter-1000000-1001999-shard-%d-of-2.state", i))); err != nil {
			t.Fatalf("no state file of shard %d after the stop: %v", i, err)
		}
	}
}

// runUntil runs the launcher until its output holds every one of want and
// VictoriaMetrics holds a sample of every influencer, then stops it (as
// Ctrl-C does) and waits for the stop; it returns the output.
func runUntil(t *testing.T, c *cli, want ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out proc.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, &out) }()
	deadline := time.After(90 * time.Second)
	stored := func() bool {
		resp, err := http.Get(c.url(portVM) + "/api/v1/query?query=count(mockstagram_influencer_followers)")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), fmt.Sprintf(`"%d"]`, c.PKCount))
	}
	for i := 0; i <= len(want); i++ {
		for (i < len(want) && !strings.Contains(out.String(), want[i])) || (i == len(want) && !stored()) {
			select {
			case err := <-done:
				t.Fatalf("launcher stopped early: %v\n%s", err, out.String())
			case <-deadline:
				t.Fatalf("not ready to stop within 90s (waiting for %v, then every influencer in VictoriaMetrics):\n%s", want, out.String())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v\n%s", err, out.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("launcher did not stop within 90s:\n%s", out.String())
	}
	return out.String()
}

// TestRestartLosesNoSample: the stack is stopped and started again on the
// same data; VictoriaMetrics then holds exactly one sample per request the
// upstream served (every poll, none failed), across both runs: the stop
// waited for the exporters' final scrape, and the restart served the
// resumed samples before polling over them.
func TestRestartLosesNoSample(t *testing.T) {
	bin := buildBinaries(t)
	sim, url := simtest.Start(t, simtest.Config(pkrange.DefaultMin, pkrange.DefaultMin+199, true))
	data := t.TempDir()
	c := &cli{BinDir: bin, DataDir: data, MockstagramURL: []string{url}, PKCount: 200, Shards: 2,
		PollInterval: 4 * time.Second, PortsBase: freeBlock(t, 12), StatusEvery: time.Second, VictoriaDir: victoriaDir}
	runUntil(t, c, "first cycle done")
	first := sim.Requests()
	out := runUntil(t, c, "resumed 200 influencers", "first cycle done")
	if !strings.Contains(out, "first cycle since the restart") {
		t.Fatalf("the restarted launcher did not say it resumed:\n%s", out)
	}
	polls := sim.Requests()
	if first == 0 || polls <= first {
		t.Fatalf("%d requests in the first run, %d in both", first, polls)
	}
	// VictoriaMetrics alone on the data both runs left.
	st := &stack.Stack{BinDir: bin, LogDir: t.TempDir()}
	t.Cleanup(func() { st.Stop() })
	vm, err := st.Start(context.Background(), "victoria-metrics", stack.Victoria{DataDir: filepath.Join(data, "victoria", "data"), QueryFresh: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(vm.URL + "/api/v1/query?query=" + neturl.QueryEscape("sum(count_over_time(mockstagram_influencer_followers[1h]))"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`"%d"]`, polls); !strings.Contains(string(body), want) {
		t.Fatalf("VictoriaMetrics holds %s follower samples; the upstream served %d polls (%d before the restart); the exporters said:\n%s",
			body, polls, first, exporterNotes(t, filepath.Join(data, "logs")))
	}
}

// exporterNotes is what the exporters logged about failed polls and their
// final scrapes, both runs (the earlier run's logs are *.log.1).
func exporterNotes(t *testing.T, dir string) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "exporter*"))
	var b strings.Builder
	for _, l := range logs {
		raw, _ := os.ReadFile(l)
		for _, line := range strings.Split(string(raw), "\n") {
			for _, k := range []string{"poll failed", "final scrape", "not every target", "scrape written too late", "level=ERROR"} {
				if strings.Contains(line, k) {
					fmt.Fprintf(&b, "%s: %s\n", filepath.Base(l), line)
					break
				}
			}
		}
	}
	return b.String()
}

// TestStackReportsADeadComponent: when a component dies, the launcher exits
// with an error naming it and quoting its log.
func TestStackReportsADeadComponent(t *testing.T) {
	bin := buildBinaries(t)
	c := &cli{BinDir: bin, DataDir: t.TempDir(), PKCount: 100, Shards: 1, PollInterval: 2 * time.Second,
		PortsBase: freeBlock(t, 11), StatusEvery: time.Second, VictoriaDir: victoriaDir}
	var out proc.Buffer
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), c, &out) }()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "The pipeline is up") {
		select {
		case err := <-done:
			t.Fatalf("launcher stopped early: %v", err)
		case <-deadline:
			t.Fatalf("not up within 60s:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	exec.Command("pkill", "-KILL", "-f", fmt.Sprintf("mockstagram_exporter --web.listen-address=127.0.0.1:%d", c.PortsBase+portExporter)).Run()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "exporter-0 exited") {
			t.Fatalf("want an error naming exporter-0, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the launcher did not notice the dead exporter")
	}
}

func TestPortsTaken(t *testing.T) {
	base := freeBlock(t, 11)
	// Hold the exporter's port.
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+portExporter))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = run(context.Background(), &cli{BinDir: "nowhere", DataDir: t.TempDir(), PKCount: 10, Shards: 1, PollInterval: time.Minute, PortsBase: base}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is taken") || !strings.Contains(err.Error(), "--ports.base") {
		t.Fatalf("want a port-taken error naming --ports.base, got %v", err)
	}
}
