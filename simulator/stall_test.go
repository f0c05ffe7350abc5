package simulator

import (
	"context"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
)

// serveInBubble starts a simulator of cfg on an in-memory network, inside
// the caller's synctest bubble, and shuts it down at the test's end; base
// is its URL on n.
func serveInBubble(t *testing.T, cfg Config) (n *memnet.Network, base string) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n = memnet.New()
	ln := n.ListenUnique("sim")
	t.Cleanup(func() { time.Sleep(15 * time.Second) }) // fasthttp's pool cleaner, free on the fake clock
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	return n, "http://" + ln.Addr().String()
}

// TestStall: a GET that arrives during a stall is answered when it ends,
// one after it at once; the admin route starts, reads and ends a stall.
func TestStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, base := serveInBubble(t, testConfig())
		tr := &http.Transport{DialContext: n.Dial}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		do := func(method, path string) (int, string) {
			req, _ := http.NewRequestWithContext(context.Background(), method, base+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := do("POST", "/admin/stall?for=3s"); code != 200 || body != `{"remaining_seconds":3.000}` {
			t.Fatalf("POST /admin/stall?for=3s = %d %s", code, body)
		}
		time.Sleep(time.Second)
		start := time.Now()
		if code, _ := do("GET", "/api/v1/influencers/1000000"); code != 200 || time.Since(start) != 2*time.Second {
			t.Fatalf("GET during the stall: %d after %v, want 200 when it ends, 2s later", code, time.Since(start))
		}
		start = time.Now()
		if code, _ := do("GET", "/api/v1/influencers/1000001"); code != 200 || time.Since(start) != 0 {
			t.Fatalf("GET after the stall: %d after %v, want at once", code, time.Since(start))
		}
		do("POST", "/admin/stall?for=1h")
		if code, body := do("POST", "/admin/stall?for=0s"); code != 200 || body != `{"remaining_seconds":0.000}` {
			t.Fatalf("POST /admin/stall?for=0s = %d %s", code, body)
		}
		start = time.Now()
		if do("GET", "/api/v1/influencers/1000002"); time.Since(start) != 0 {
			t.Fatalf("a stall ended early still holds a GET for %v", time.Since(start))
		}
		for _, bad := range []string{"", "?for=-1s", "?for=x"} {
			if code, _ := do("POST", "/admin/stall"+bad); code != 400 {
				t.Fatalf("POST /admin/stall%s = %d, want 400", bad, code)
			}
		}
	})
}
