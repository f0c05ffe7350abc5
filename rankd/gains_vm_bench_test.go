//go:build vmbench

// The cost of the gains' baselines in VictoriaMetrics at 1M influencers.
// It imports 14M samples first (about a minute), so it is not part of
// `make bench`: run it with `make bench-gains-vm` (docs/rankd.md, "Gains
// performance").

package rankd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

// readsPerHour is how many population reads the default windows cost an
// hour: each window is read every max(--gains.refresh, window/60).
func readsPerHour(b *testing.B) float64 {
	s := &Server{cfg: Config{GainsRefresh: DefaultGainsRefresh}}
	n := 0.0
	for _, w := range benchWindows(b) {
		n += float64(time.Hour) / float64(s.period(w))
	}
	return n
}

// BenchmarkBaselineRead1M reads one window's baselines of 1M influencers
// from a real VictoriaMetrics holding 7 minutes of one-minute polls of
// each (14M samples, imported first), as rankd does: ms/read, rankd's CPU
// and VictoriaMetrics' CPU per read (from /proc), and VictoriaMetrics' CPU
// an hour for the default windows' reads. Then it starts the rankd binary
// with four windows over that history against an exporter-like server of
// the same 1M influencers and reports its RSS once every window is read.
func BenchmarkBaselineRead1M(b *testing.B) {
	vm := vmtest.Run(b, stack.Victoria{DataDir: b.TempDir(), QueryFresh: true, LogLevel: "WARN", MaxUniqueTimeseries: 3_000_000})
	now := time.Now().Truncate(time.Second)
	r := rand.New(rand.NewPCG(7, 8))
	recs := make([]snapwire.Record, vmBenchN)
	for i := range recs {
		recs[i] = simulatorRecord(r, i)
		recs[i].TimeMs = now.UnixMilli() - int64(i%60_000)
	}
	// One sample a minute from 7 minutes ago, each pk at its own second.
	t0 := time.Now()
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<20)
		for i, x := range recs {
			for _, m := range []struct {
				name string
				v    uint32
			}{{metricFollowers, x.Followers}, {metricFollowing, x.Following}} {
				fmt.Fprintf(w, `{"metric":{"__name__":%q,"pk":"%d"},"values":[`, m.name, pkBase+i)
				for k := range 7 {
					if k > 0 {
						w.WriteByte(',')
					}
					fmt.Fprintf(w, "%d", int64(m.v)+int64(k)*int64(i%97))
				}
				w.WriteString(`],"timestamps":[`)
				for k := range 7 {
					if k > 0 {
						w.WriteByte(',')
					}
					fmt.Fprintf(w, "%d", now.UnixMilli()-int64(6-k)*60_000-int64(i%60_000))
				}
				w.WriteString("]}\n")
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	vm.Import(b, "/api/v1/import", pr)
	b.Logf("imported %d samples of %d series in %s", 14*vmBenchN, 2*vmBenchN, time.Since(t0).Round(time.Second))

	s, err := New(Config{Sources: []string{"http://127.0.0.1:1"}, Refresh: time.Second, Timeout: time.Second, Logger: slog.New(slog.DiscardHandler),
		Victoria: vm.URL, Windows: benchWindows(b)})
	if err != nil {
		b.Fatal(err)
	}
	start := now.Add(-3 * time.Minute)
	var vmCPU, selfCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		v0, _ := vm.CPU()
		c0 := cpuTime()
		base, err := s.readBaseline(context.Background(), start, pkBase, vmBenchN)
		selfCPU += cpuTime() - c0
		v1, _ := vm.CPU()
		vmCPU += v1 - v0
		if err != nil || base.Count != vmBenchN {
			b.Fatalf("baselines of %d influencers: %v", base.Count, err)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/n, "ms/read")
	b.ReportMetric(vmCPU.Seconds()/n, "vm-cpu-s/read")
	b.ReportMetric(float64(selfCPU.Milliseconds())/n, "rankd-cpu-ms/read")
	b.ReportMetric(vmCPU.Seconds()/n*readsPerHour(b), "vm-cpu-s/hour")
	b.ReportMetric(readsPerHour(b), "reads/hour")

	// The rankd binary with four windows over this history.
	var body bytes.Buffer
	if err := snapwire.Write(&body, snapwire.Header{First: pkBase, Step: 1, N: vmBenchN}, func(i int) snapwire.Record { return recs[i] }); err != nil {
		b.Fatal(err)
	}
	exp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body.Bytes()) }))
	defer exp.Close()
	dir := b.TempDir()
	bin := filepath.Join(dir, "rankd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rankd")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	ports, err := proc.FreePorts(1)
	if err != nil {
		b.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(bin, "--exporter.url="+exp.URL, "--web.listen-address="+addr, "--victoria.url="+vm.URL,
		"--gains.windows=1m,2m,3m,4m", "--gains.refresh=1h", "--gains.lookback=10m", "--log.level=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var st struct {
		Gains []WindowStatus `json:"gains"`
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			b.Fatalf("rankd did not read four windows of 1M baselines within 3 minutes: %+v", st)
		}
		resp, err := http.Get("http://" + addr + "/api/v1/status")
		if err != nil {
			continue
		}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		read := 0
		for _, w := range st.Gains {
			if w.Influencers == vmBenchN {
				read++
			}
		}
		if read == 4 {
			break
		}
	}
	time.Sleep(3 * time.Second) // a few refreshes with gains: both snapshots hold them
	rss, err := proc.RSSOf(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	cpu, _ := proc.CPUOf(cmd.Process.Pid)
	b.ReportMetric(float64(rss)/(1<<20), "rankd-rss-MiB")
	b.Logf("rankd with 4 windows of 1M: RSS %.0f MiB, CPU %.1f s since its start; windows %s", float64(rss)/(1<<20), cpu.Seconds(),
		strings.TrimSpace(fmt.Sprint(st.Gains)))
}

const pkBase = 1_000_000

// vmBenchN is the number of influencers (lower it to try the benchmark out).
const vmBenchN = benchN
