package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

func TestParseDefaults(t *testing.T) {
	c, cfg := mustConfig(t, nil)
	if cfg.Range != (pkrange.Range{Min: 1000000, Max: 1999999}) || cfg.Shard != (pkrange.Shard{Index: 0, Count: 1}) ||
		cfg.Interval != time.Minute || cfg.URLs[0] != "http://127.0.0.1:3000" || c.Web.ListenAddress[0] != ":9866" {
		t.Fatalf("defaults: %+v %+v", cfg, c)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	t.Setenv("MOCKSTAGRAM_EXPORTER_POLL_INTERVAL", "30s")
	t.Setenv("MOCKSTAGRAM_EXPORTER_SHARD_COUNT", "4")
	_, cfg := mustConfig(t, []string{"--mockstagram.url=http://a:1", "--mockstagram.url=http://b:2,http://c:3", "--shard.index=3", "--poll.concurrency=64"})
	if cfg.Interval != 30*time.Second || cfg.Shard != (pkrange.Shard{Index: 3, Count: 4}) || cfg.Concurrency != 64 ||
		strings.Join(cfg.URLs, " ") != "http://a:1 http://b:2 http://c:3" {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestShardFromHostname(t *testing.T) {
	defer func(h func() (string, error)) { pkrange.Hostname = h }(pkrange.Hostname)
	f := func(host string, want int, wantErr string) {
		t.Helper()
		pkrange.Hostname = func() (string, error) { return host, nil }
		c, err := parse([]string{"--shard.from-hostname", "--shard.count=8"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := c.config()
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Fatalf("host %q: error %v, want %q", host, err, wantErr)
			}
			return
		}
		if err != nil || cfg.Shard.Index != want {
			t.Fatalf("host %q: shard %d, err %v; want %d", host, cfg.Shard.Index, err, want)
		}
	}
	f("mockstagram-exporter-0", 0, "")
	f("mockstagram-exporter-7", 7, "")
	f("mockstagram-exporter-8", 0, "shard.index=8 must be in 0..7 (shard.count-1)")
	f("exporter", 0, `hostname "exporter" does not end in -<ordinal>; set --shard.index explicitly`)
}

func TestConfigErrors(t *testing.T) {
	f := func(args []string, want string) {
		t.Helper()
		c, err := parse(args, io.Discard)
		if err == nil {
			_, err = c.config()
		}
		if err == nil || err.Error() != want {
			t.Fatalf("%v: error %v, want %q", args, err, want)
		}
	}
	f([]string{"--pk.max=5"}, "pk.max=5 is below pk.min=1000000; set --pk.max >= --pk.min")
	f([]string{"--shard.count=0"}, "shard.count=0 must be at least 1")
	f([]string{"--shard.index=2", "--shard.count=2"}, "shard.index=2 must be in 0..1 (shard.count-1)")
	f([]string{"--poll.interval=100ms"}, "poll.interval=100ms is below 1s")
	f([]string{"--poll.timeout=2m"}, "poll.timeout=2m0s is more than half of poll.interval=1m0s; a poll must end well before the pk is due again (lower poll.timeout)")
	f([]string{"--poll.interval=8s", "--poll.timeout=5s"}, "poll.timeout=5s is more than half of poll.interval=8s; a poll must end well before the pk is due again (lower poll.timeout)")
	f([]string{"--poll.concurrency=16", "--poll.pipeline=32"}, "poll.pipeline=32 must be in 1..poll.concurrency (16)")
	f([]string{"--poll.concurrency=0"}, "poll.concurrency=0 must be at least 1")
	f([]string{"--poll.retries=11"}, "poll.retries=11 must be in 0..10")
	f([]string{"--suspicious.period=10ms"}, "suspicious.period=10ms is below 1s")
	f([]string{"--suspicious.concurrency=0"}, "suspicious.concurrency=0 must be at least 1")
	f([]string{"--suspicious.timeout=0s"}, "suspicious.timeout=0s must be positive")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f([]string{"--state.dir=" + file}, fmt.Sprintf("state.dir=%q is a file, not a directory; point the flag at a directory", file))
	f([]string{"--state.dir=" + file + "/sub"}, fmt.Sprintf("cannot create state.dir=%q: mkdir %s: not a directory; point the flag at a directory the exporter can create or write", file+"/sub", file))
	f([]string{"--state.dir=" + t.TempDir(), "--state.interval=10ms"}, "state.interval=10ms is below 1s")
	f([]string{"--poll.interval=soon"}, `--poll.interval: expected duration but got "soon": time: invalid duration "soon"`)
	f([]string{"--log.level=loud"}, `--log.level must be one of "debug","info","warn","error" but got "loud"`)
	f([]string{"--web.config.file=/does/not/exist"}, `--web.config.file: stat /does/not/exist: no such file or directory`)
}

// TestDerivedDefaults: a flag whose default depends on another flag takes
// the default that fits the other flag's value, and a value the user gave
// is kept (and refused only if it does not fit, see TestConfigErrors).
func TestDerivedDefaults(t *testing.T) {
	f := func(args []string, timeout time.Duration, pipeline int) {
		t.Helper()
		_, cfg := mustConfig(t, args)
		if cfg.Timeout != timeout || cfg.Pipeline != pipeline {
			t.Fatalf("%q: poll.timeout %s, poll.pipeline %d; want %s, %d", args, cfg.Timeout, cfg.Pipeline, timeout, pipeline)
		}
	}
	f(nil, 5*time.Second, 32)
	f([]string{"--poll.interval=8s"}, 4*time.Second, 32) // 5s would be more than half
	f([]string{"--poll.interval=1s"}, 500*time.Millisecond, 32)
	f([]string{"--poll.interval=8s", "--poll.timeout=3s"}, 3*time.Second, 32)
	f([]string{"--poll.interval=8s", "--poll.timeout=4s"}, 4*time.Second, 32) // exactly half is allowed
	f([]string{"--poll.concurrency=16"}, 5*time.Second, 16)
	f([]string{"--poll.concurrency=1"}, 5*time.Second, 1)
	f([]string{"--poll.concurrency=16", "--poll.pipeline=4"}, 5*time.Second, 4)
	t.Setenv("MOCKSTAGRAM_EXPORTER_POLL_INTERVAL", "6s")
	f(nil, 3*time.Second, 32)
	t.Setenv("MOCKSTAGRAM_EXPORTER_POLL_TIMEOUT", "2s")
	f(nil, 2*time.Second, 32)
}

// TestSuspiciousDefaults: the classifier flags default to
// exporter.DefaultSuspiciousConfig, their one definition.
func TestSuspiciousDefaults(t *testing.T) {
	_, cfg := mustConfig(t, nil)
	if want := exporter.DefaultSuspiciousConfig(); cfg.Suspicious != want {
		t.Fatalf("flag defaults give %+v, DefaultSuspiciousConfig is %+v", cfg.Suspicious, want)
	}
}

// TestStateDirCreated: a missing --state.dir is created with its parents.
func TestStateDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "state")
	c, err := parse([]string{"--state.dir=" + dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.config(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("state.dir not created: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--poll.interval") {
		t.Fatalf("--help: exit %d, output %q", code, out.String())
	}
	if code := run(context.Background(), []string{"--shard.count=0"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "shard.count=0 must be at least 1") {
		t.Fatalf("bad flag: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"--mockstagram.url=ftp://x"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "scheme must be http or https") {
		t.Fatalf("bad URL: exit %d, stderr %q", code, errb.String())
	}
}

// TestRunServesAndStops runs the binary's run function against a simulator,
// waits for it to be ready, then stops it as SIGTERM would.
func TestRunServesAndStops(t *testing.T) {
	_, url := simtest.Start(t, simtest.Config(1000000, 1000099, false))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--mockstagram.url=" + url, "--pk.max=1000099", "--poll.interval=1s", "--poll.timeout=500ms",
			"--web.listen-address=" + addr, "--log.level=info"}, io.Discard, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := scrape(addr)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(`mockstagram_influencer_followers{pk="1000099"}`)) {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("exporter exited %d before serving; stderr:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter never served pk 1000099: %v; stderr:\n%s", errors.Join(err), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// SIGTERM: it was scraped, so it serves until a scrape after the last
	// poll has taken everything, then exits (--shutdown.scrape-wait).
	cancel()
	stop := time.After(15 * time.Second)
	for scrapes := 0; ; {
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, stderr.String())
			}
			if scrapes == 0 {
				t.Fatal("exited without waiting for a final scrape")
			}
			if !strings.Contains(stderr.String(), "final scrape done") {
				t.Fatalf("no final scrape logged; stderr:\n%s", stderr.String())
			}
			return
		case <-stop:
			t.Fatalf("exporter did not stop within 15s of SIGTERM and %d scrapes; stderr:\n%s", scrapes, stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := scrape(addr)
		if err != nil {
			continue // gone: the exit is on its way
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		scrapes++
	}
}

// scrape GETs /metrics as a scraper does, with Prometheus' scrape-timeout
// header: the exporter waits for such scrapes at shutdown.
func scrape(addr string) (*http.Response, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	return http.DefaultClient.Do(req)
}

// mustConfig parses args and turns them into the exporter's configuration,
// failing the test on any error.
func mustConfig(t *testing.T, args []string) (*cli, exporter.Config) {
	t.Helper()
	c, err := parse(args, io.Discard)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	cfg, err := c.config()
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return c, cfg
}
