// Package vmtest runs the real VictoriaMetrics binaries (built from the
// versions pinned in go.mod) for tests, from internal/stack's specs:
// free loopback ports, readiness waits, the Prometheus query API, and a
// stop at the end of the test.
package vmtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

const vmPkg = "github.com/VictoriaMetrics/VictoriaMetrics/app/"

var buildMu sync.Mutex

// RepoRoot is the module root, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Binary returns the path of a VictoriaMetrics binary (victoria-metrics,
// vmagent, vmalert, vmalert-tool): bin/<name> when `make tools` built it,
// otherwise it builds it once into bin/.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	path := filepath.Join(RepoRoot(), "bin", name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	cmd := exec.Command("go", "build", "-o", path, vmPkg+name)
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build %s (run `make tools`): %v\n%s", name, err, out)
	}
	return path
}

// Proc is a running VictoriaMetrics component.
type Proc struct {
	*stack.Proc
}

// Run starts spec (a stack.Victoria, VMAgent or VMAlert; one without an
// address gets a free loopback port), waits until it is ready, and stops
// it when the test ends. Restarting where it was is Run(t, p.Spec).
// Tests usually set the spec's LogLevel to WARN.
func Run(t testing.TB, spec stack.Spec) *Proc {
	t.Helper()
	Binary(t, spec.Binary())
	st := &stack.Stack{BinDir: filepath.Join(RepoRoot(), "bin"), LogDir: t.TempDir(), StopTimeout: 20 * time.Second}
	t.Cleanup(func() { st.Stop() })
	p, err := st.Start(context.Background(), spec.Binary(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return &Proc{Proc: p}
}

// Series is one series of a query result.
type Series struct {
	Metric map[string]string
	Values []Point // range queries and exports
	Value  Point   // instant queries
}

// Point is one sample.
type Point struct {
	T int64 // Unix ms
	V float64
}

// Query runs an instant query at time at (zero = now).
func (p *Proc) Query(t testing.TB, expr string, at time.Time) []Series {
	t.Helper()
	q := url.Values{"query": {expr}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	return p.api(t, "/api/v1/query", q)
}

// QueryRange runs a range query.
func (p *Proc) QueryRange(t testing.TB, expr string, start, end time.Time, step time.Duration) []Series {
	t.Helper()
	q := url.Values{"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)},
		"step": {strconv.FormatInt(int64(step/time.Millisecond), 10) + "ms"}}
	return p.api(t, "/api/v1/query_range", q)
}

func (p *Proc) api(t testing.TB, path string, q url.Values) []Series {
	t.Helper()
	resp, err := http.PostForm(p.URL+path, q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  []any
				Values [][]any
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("%s %v: %s %v", path, q, body, err)
	}
	out := make([]Series, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		s := Series{Metric: res.Metric}
		if len(res.Value) == 2 {
			s.Value = point(t, res.Value)
		}
		for _, v := range res.Values {
			s.Values = append(s.Values, point(t, v))
		}
		out = append(out, s)
	}
	return out
}

func point(t testing.TB, v []any) Point {
	t.Helper()
	ts, _ := v[0].(float64)
	str, _ := v[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("bad sample %v", v)
	}
	return Point{T: int64(ts*1000 + 0.5), V: f}
}

// Export returns every raw sample of the series matching match[] in
// [start, end], exactly as stored (after deduplication).
func (p *Proc) Export(t testing.TB, match string, start, end time.Time) []Series {
	t.Helper()
	q := url.Values{"match[]": {match},
		"start": {strconv.FormatInt(start.UnixMilli(), 10)}, "end": {strconv.FormatInt(end.UnixMilli(), 10)}}
	resp, err := http.PostForm(p.URL+"/api/v1/export", q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("export %s: %d %s", match, resp.StatusCode, body)
	}
	var out []Series
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			Metric     map[string]string
			Values     []float64
			Timestamps []int64
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		s := Series{Metric: l.Metric}
		for i := range l.Values {
			s.Values = append(s.Values, Point{T: l.Timestamps[i], V: l.Values[i]})
		}
		out = append(out, s)
	}
	return out
}

// Import posts body to an import path (/api/v1/import for JSON lines,
// /api/v1/import/prometheus for the text format), fails t unless it is
// taken whole, and flushes it so that it is searchable at once.
func (p *Proc) Import(t testing.TB, path string, body io.Reader) {
	t.Helper()
	ctype := "text/plain"
	if path == "/api/v1/import" {
		ctype = "application/json"
	}
	resp, err := http.Post(p.URL+path, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("import into %s: HTTP %d: %s", path, resp.StatusCode, msg)
	}
	p.Flush(t)
}

// Flush makes recently ingested samples searchable at once.
func (p *Proc) Flush(t testing.TB) {
	t.Helper()
	resp, err := http.Get(p.URL + "/internal/force_flush")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
