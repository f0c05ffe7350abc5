package main

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

// TestMain lets a test run this binary as a child process: the test binary
// re-executed with EXPORTER_TEST_MAIN=1 is the exporter, so that the tests
// can send it real signals, SIGKILL included.
func TestMain(m *testing.M) {
	if os.Getenv("EXPORTER_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type child struct {
	cmd  *exec.Cmd
	addr string
	log  *proc.Buffer
	done chan struct{}
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &child{addr: addr, log: &proc.Buffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], append(args, "--web.listen-address="+addr)...)
	c.cmd.Env = append(os.Environ(), "EXPORTER_TEST_MAIN=1")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.cmd.Process.Kill(); <-c.done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatalf("exporter exited before it was ready:\n%s", c.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not ready within 20s:\n%s", c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and waits for the exit.
func (c *child) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("exporter did not exit within 30s of %v:\n%s", sig, c.log)
	}
}

// series scrapes the influencer exposition: name{pk} -> value and timestamp.
func (c *child) series(t *testing.T) map[string][2]float64 {
	t.Helper()
	out := map[string][2]float64{}
	for _, path := range []string{"/metrics", "/metrics/info"} {
		resp, err := http.Get("http://" + c.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for name, mf := range mfs {
			for _, m := range mf.Metric {
				key := name
				for _, l := range m.Label {
					key += "," + l.GetName() + "=" + l.GetValue()
				}
				out[key] = [2]float64{m.GetGauge().GetValue(), float64(m.GetTimestampMs())}
			}
		}
	}
	return out
}

func verdicts(s map[string][2]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		if strings.HasPrefix(k, "mockstagram_influencer_suspicious,") {
			out[k] = v[1]
		}
	}
	return out
}

// TestRestartResumes: after SIGTERM, a restart serves the same gauges with
// their original timestamps at once, and redoes no verdict before its
// period ends.
func TestRestartResumes(t *testing.T) {
	sim, url := simtest.Start(t, simtest.Config(1000000, 1000299, false))
	dir := t.TempDir()
	args := []string{"--mockstagram.url=" + url, "--pk.max=1000299", "--poll.interval=1s", "--poll.timeout=500ms",
		"--suspicious.period=20s", "--suspicious.retry-backoff=100ms", "--state.dir=" + dir,
		"--shutdown.scrape-wait=0"} // these tests are about the state file
	a := startChild(t, args...)
	time.Sleep(5 * time.Second) // about 60 verdicts: one every 67 ms after the first second
	a.stop(t, syscall.SIGTERM)
	if !strings.Contains(a.log.String(), `msg="state saved" why=shutdown`) {
		t.Fatalf("no state saved at SIGTERM:\n%s", a.log)
	}

	// The same gauges at once: the restart cannot poll (nothing answers).
	b := startChild(t, append(args[1:], "--mockstagram.url=http://127.0.0.1:1")...)
	before := verdicts(b.series(t))
	if len(before) < 30 {
		t.Fatalf("only %d verdicts after 5 s; log:\n%s", len(before), a.log)
	}
	all := b.series(t)
	if n := len(all); n < 3*300 {
		t.Fatalf("the restarted exporter serves %d series at once, want the 900 counts and info series and the verdicts", n)
	}
	b.stop(t, syscall.SIGTERM)

	// A restart that can poll and check: a verdict is redone only when
	// its pk's slot comes around again, 20 s after the last.
	calls := sim.Requests()
	c := startChild(t, args...)
	time.Sleep(3 * time.Second)
	after := verdicts(c.series(t))
	redone := 0
	for k, ts := range before {
		if after[k] != ts {
			redone++
		}
	}
	if redone != 0 {
		t.Fatalf("%d of %d verdicts redone within 3 s of a restart, want 0; log:\n%s", redone, len(before), c.log)
	}
	if len(after) <= len(before) {
		t.Fatalf("no new verdicts after the restart (%d before, %d after); log:\n%s", len(before), len(after), c.log)
	}
	if !strings.Contains(c.log.String(), "state loaded; resuming") || sim.Requests() == calls {
		t.Fatalf("the restart did not resume:\n%s", c.log)
	}
}

// TestKillNineLeavesLoadableState kills the exporter with SIGKILL at random
// moments, several times, while it saves its state every second; every
// restart must find a loadable state.
func TestKillNineLeavesLoadableState(t *testing.T) {
	_, url := simtest.Start(t, simtest.Config(1000000, 1049999, false))
	dir := t.TempDir()
	args := []string{"--mockstagram.url=" + url, "--pk.max=1049999", "--poll.interval=2s", "--poll.timeout=1s",
		"--suspicious.period=10s", "--state.dir=" + dir, "--state.interval=1s", "--log.level=debug",
		"--shutdown.scrape-wait=0"}
	c := startChild(t, args...)
	time.Sleep(2500 * time.Millisecond)
	for i := range 5 {
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		c.stop(t, syscall.SIGKILL)
		saves := strings.Count(c.log.String(), `msg="state saved"`)
		c = startChild(t, args...)
		log := c.log.String()
		if i > 0 || saves > 0 {
			if !strings.Contains(log, "state loaded; resuming") {
				t.Fatalf("restart %d after SIGKILL (%d saves before it) did not load the state:\n%s", i, saves, log)
			}
		}
		if strings.Contains(log, "unusable") {
			t.Fatalf("restart %d found an unusable state:\n%s", i, log)
		}
	}
	c.stop(t, syscall.SIGTERM)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".rejected-") {
			t.Fatalf("left in the state dir: %s", e.Name())
		}
	}
	st, err := os.Stat(filepath.Join(dir, "exporter-1000000-1049999-shard-0-of-1.state"))
	if err != nil || st.Size() < 50000*4 {
		t.Fatalf("state file after the runs: %v, %v", st, err)
	}
}
