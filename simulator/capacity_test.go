package simulator

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/valyala/fasthttp"
)

// fasthttp's Date-header goroutine starts on first use and never ends;
// started here it stays outside the synctest bubbles below.
func init() {
	var h fasthttp.ResponseHeader
	h.AppendBytes(nil)
}

// TestFIFOReserve: slots go out in arrival order, one service time apart;
// an idle server serves at once; a new rate applies from the next request.
func TestFIFOReserve(t *testing.T) {
	var f fifo
	t0 := time.Unix(1000, 0)
	if d := f.reserve(t0); d != 0 {
		t.Fatalf("unlimited: wait %v", d)
	}
	f.set(100) // 10 ms a request
	for k := 1; k <= 5; k++ {
		if d, want := f.reserve(t0), time.Duration(k)*10*time.Millisecond; d != want {
			t.Fatalf("request %d at once: wait %v, want %v", k, d, want)
		}
	}
	// 30 ms later the queue holds 20 ms of work.
	if d := f.reserve(t0.Add(30 * time.Millisecond)); d != 30*time.Millisecond {
		t.Fatalf("behind a queue: wait %v, want 30ms", d)
	}
	// Long idle: served in one service time.
	if d := f.reserve(t0.Add(time.Second)); d != 10*time.Millisecond {
		t.Fatalf("idle: wait %v, want 10ms", d)
	}
	f.set(1000)
	if d := f.reserve(t0.Add(time.Second)); d != 11*time.Millisecond {
		t.Fatalf("after the change: wait %v, want 11ms (10 ms queued + 1 ms)", d)
	}
	if c := f.capacity(); c != 1000 {
		t.Fatalf("capacity %v", c)
	}
	f.set(0)
	if d := f.reserve(t0); d != 0 || f.capacity() != 0 {
		t.Fatalf("unlimited again: wait %v, capacity %v", d, f.capacity())
	}
}

// TestCapacityQueues: at --capacity=100, 40 requests sent at once are
// answered one every 10 ms in arrival order, none refused; the admin route
// lifts the limit at run time. On synctest's fake clock the timing is exact.
func TestCapacityQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Capacity = 100
		n, base := serveInBubble(t, cfg)
		tr := &http.Transport{DialContext: n.Dial, MaxConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		do := func(method, path string) (int, string) {
			req, _ := http.NewRequestWithContext(context.Background(), method, base+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return 0, ""
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		start := time.Now()
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				code, _ := do("GET", "/api/v1/influencers/"+itoa(1_000_000+int64(i)))
				mu.Lock()
				defer mu.Unlock()
				if code != 200 {
					t.Errorf("GET: %d", code)
				}
				lat = append(lat, time.Since(start))
			})
		}
		wg.Wait()
		if got := time.Since(start); got != 400*time.Millisecond {
			t.Fatalf("40 requests at 100/s took %v, want 400ms", got)
		}
		seen := map[time.Duration]bool{}
		for _, d := range lat {
			if d%(10*time.Millisecond) != 0 || seen[d] {
				t.Fatalf("answers at %v: want one every 10 ms", lat)
			}
			seen[d] = true
		}
		if code, body := do("GET", "/admin/capacity"); code != 200 || body != `{"rps":100}` {
			t.Fatalf("GET /admin/capacity = %d %s", code, body)
		}
		for _, bad := range []string{"", "?rps=-1", "?rps=x", "?rps=NaN", "?rps=Inf"} {
			if code, _ := do("POST", "/admin/capacity"+bad); code != 400 {
				t.Fatalf("POST /admin/capacity%s = %d, want 400", bad, code)
			}
		}
		if code, body := do("POST", "/admin/capacity?rps=0"); code != 200 || body != `{"rps":0}` {
			t.Fatalf("POST /admin/capacity?rps=0 = %d %s", code, body)
		}
		start = time.Now()
		for i := range 10 {
			do("GET", "/api/v1/influencers/"+itoa(1_000_000+int64(i)))
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("unlimited again, yet 10 requests took %v", d)
		}
		if code, _ := do("PUT", "/admin/capacity?rps=5"); code != 404 {
			t.Fatalf("PUT /admin/capacity = %d, want 404", code)
		}
		_, metrics := do("GET", "/metrics")
		if !strings.Contains(metrics, "mockstagram_sim_capacity_requests_per_second 0") ||
			!strings.Contains(metrics, "mockstagram_sim_queue_seconds_total 8.2") {
			t.Fatalf("metrics lack the capacity or the queue time (sum of 10..400 ms = 8.2 s)")
		}
	})
}

func TestCapacityValidate(t *testing.T) {
	cfg := testConfig()
	cfg.Capacity = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "capacity=-1") {
		t.Fatalf("Validate(capacity=-1) = %v", err)
	}
}
