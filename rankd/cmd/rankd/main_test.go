package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter/exportertest"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

func TestParseDefaults(t *testing.T) {
	c, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	urls, err := c.sources()
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 0 || c.RefreshInterval != 5*time.Second || c.refreshTimeout() != 4*time.Second ||
		strings.Join(c.Web.ListenAddress, " ") != ":9867" || c.Web.ConfigFile != "" || c.Log.Level != "info" || c.Log.Format != "logfmt" || c.ExposeRanks {
		t.Fatalf("defaults: %+v, sources %v", c, urls)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	f := func(env map[string]string, args []string, wantURLs string, wantRefresh time.Duration, wantRanks bool) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		c, err := parse(args, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", env, args, err)
		}
		urls, err := c.sources()
		if err != nil {
			t.Fatalf("%v %v: %v", env, args, err)
		}
		if strings.Join(urls, " ") != wantURLs || c.RefreshInterval != wantRefresh || c.ExposeRanks != wantRanks {
			t.Fatalf("%v %v: sources %q, refresh %s, expose.ranks %v; want %q, %s, %v", env, args, urls, c.RefreshInterval, c.ExposeRanks, wantURLs, wantRefresh, wantRanks)
		}
	}
	f(nil, []string{"--exporter.url=http://a:1", "--exporter.url=http://b:2,http://c:3", "--refresh.interval=2s"},
		"http://a:1 http://b:2 http://c:3", 2*time.Second, false)
	f(map[string]string{"RANKD_EXPORTER_URL": "http://e0:9866,http://e1:9866", "RANKD_REFRESH_INTERVAL": "30s"}, nil,
		"http://e0:9866 http://e1:9866", 30*time.Second, false)
	// A flag beats its environment variable.
	f(map[string]string{"RANKD_EXPORTER_URL": "http://env:1", "RANKD_REFRESH_INTERVAL": "30s"}, []string{"--exporter.url=http://flag:1", "--refresh.interval=1s"},
		"http://flag:1", time.Second, false)
	f(nil, []string{"--exporter.url=http://a:1", "--refresh.interval=1s", "--expose.ranks"}, "http://a:1", time.Second, true)
	f(map[string]string{"RANKD_EXPOSE_RANKS": "true"}, []string{"--exporter.url=http://a:1", "--refresh.interval=1s"}, "http://a:1", time.Second, true)
}

// TestDerivedRefreshTimeout: an unset --refresh.timeout follows
// --refresh.interval, so a short interval does not get a timeout longer
// than itself; a timeout the user gives is kept.
func TestDerivedRefreshTimeout(t *testing.T) {
	f := func(args []string, want time.Duration) {
		t.Helper()
		c, err := parse(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.refreshTimeout(); got != want {
			t.Fatalf("%q: refresh.timeout %s, want %s", args, got, want)
		}
	}
	f(nil, 4*time.Second)
	f([]string{"--refresh.interval=1s"}, 800*time.Millisecond)
	f([]string{"--refresh.interval=100ms"}, 80*time.Millisecond)
	f([]string{"--refresh.interval=1m"}, 48*time.Second)
	f([]string{"--refresh.interval=1s", "--refresh.timeout=3s"}, 3*time.Second)
	t.Setenv("RANKD_REFRESH_TIMEOUT", "2s")
	f([]string{"--refresh.interval=1s"}, 2*time.Second)
}

func TestURLsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporters.txt")
	content := "# exporter shards\nhttp://e0:9866\n\n   http://e1:9866  \n  # http://retired:9866\n\t\nhttp://e2:9866"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := parse([]string{"--exporter.url=http://flag:9866", "--exporter.urls-file=" + path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	urls, err := c.sources()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(urls, " "); got != "http://flag:9866 http://e0:9866 http://e1:9866 http://e2:9866" {
		t.Fatalf("sources %q", got)
	}
	if _, err := parse([]string{"--exporter.urls-file=/does/not/exist"}, io.Discard); err == nil {
		t.Fatal("a missing --exporter.urls-file parsed")
	}
}

func TestRunExitCodes(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	f := func(args []string, wantCode int, wantStderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		if code != wantCode || !strings.Contains(errb.String(), wantStderr) {
			t.Fatalf("%v: exit %d, stderr %q; want %d and %q", args, code, errb.String(), wantCode, wantStderr)
		}
	}
	f([]string{"--help"}, 0, "")
	f(nil, 2, "no exporter to read; set --exporter.url (repeatable) or --exporter.urls-file")
	f([]string{"--exporter.url=ftp://x:21"}, 2, `exporter.url=\"ftp://x:21\" is not an http(s) URL`)
	f([]string{"--exporter.url=exporter-0:9866"}, 2, "is not an http(s) URL")
	f([]string{"--exporter.url=http://a:1,http://a:1"}, 2, `exporter.url=\"http://a:1\" is given twice`)
	f([]string{"--exporter.url=http://a:1", "--refresh.interval=10ms"}, 2, "refresh.interval=10ms is below 100ms")
	f([]string{"--exporter.url=http://a:1", "--refresh.timeout=-1s"}, 2, "refresh.timeout=-1s must be positive")
	f([]string{"--exporter.url=http://a:1", "--victoria.url=http://vm:8428", "--gains.windows=1h,2x"}, 2, `gains.windows: \"2x\" is not a positive duration such as 1h, 24h, 7d or 30d`)
	f([]string{"--exporter.url=http://a:1", "--victoria.url=vm:8428"}, 2, `victoria.url=\"vm:8428\" is not an http(s) URL such as http://victoria-metrics:8428`)
	f([]string{"--exporter.url=http://a:1", "--victoria.url=http://vm:8428", "--gains.refresh=10ms"}, 2, "gains.refresh=10ms is below 1s")
	f([]string{"--exporter.url=http://a:1", "--victoria.url=http://vm:8428", "--gains.windows= , "}, 2, "no gains window; set --gains.windows")
	f([]string{"--refresh.interval=soon"}, 2, "--refresh.interval")
	f([]string{"--log.level=loud"}, 2, "--log.level")
	f([]string{"--exporter.url=http://a:1", "--web.listen-address=" + taken.Addr().String(), "--log.level=warn"}, 1, "cannot listen on --web.listen-address")

	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, io.Discard); code != 0 ||
		!strings.Contains(out.String(), "--exporter.url") || !strings.Contains(out.String(), "--refresh.interval") {
		t.Fatalf("--help: exit %d, output %q", code, out.String())
	}
}

// TestRunServesAndStops runs the binary's run function against a real
// exporter, waits for the average over all 100 influencers, then stops it as
// SIGTERM would and checks that the port is released.
func TestRunServesAndStops(t *testing.T) {
	_, simURL := simtest.Start(t, simtest.Config(1000000, 1000099, false))
	shard := exportertest.Start(t, exportertest.Config([]string{simURL}, 1000000, 1000099, pkrange.Shard{Count: 1}))
	shard.WaitComplete(t)
	exp := shard.URL
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer // written by run's goroutine; read only after it returned
	go func() {
		done <- run(ctx, []string{"--exporter.url=" + exp, "--refresh.interval=200ms", "--refresh.timeout=5s",
			"--web.listen-address=" + addr, "--log.level=warn"}, io.Discard, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	last := "no answer"
	for {
		resp, err := http.Get("http://" + addr + "/api/v1/average")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"count":100`)) {
				break
			}
			last = resp.Status + " " + string(body)
		} else {
			last = err.Error()
		}
		select {
		case code := <-done:
			t.Fatalf("rankd exited %d before serving; stderr:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("rankd never served the average over 100 influencers; last answer: %s; stderr:\n%s", last, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("rankd did not stop within 15s of SIGTERM")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after rankd stopped", addr)
	}
	// A timeout of 5s against a 200ms interval is allowed, with a warning
	// that says what it costs.
	if !strings.Contains(stderr.String(), "--refresh.timeout is not below --refresh.interval") {
		t.Fatalf("no warning about --refresh.timeout=5s with --refresh.interval=200ms; stderr:\n%s", stderr.String())
	}
}
