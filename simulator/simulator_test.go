package simulator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// smallRange keeps most tests light; the distribution test uses the full one.
var smallRange = pkrange.Range{Min: 1_000_000, Max: 1_000_999}

// testConfig is DefaultConfig over smallRange with a fixed seed and an
// instant classifier.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.PKs = smallRange
	cfg.Seed = 1
	cfg.SuspiciousDelayMean = 0
	cfg.SuspiciousDelayStddev = 0
	return cfg
}

// testServer is a Server on 127.0.0.1:0 with its own HTTP client.
type testServer struct {
	*Server
	t      *testing.T
	url    string
	client *http.Client
}

// startServer serves cfg until the test ends. before, if not nil, runs
// before Serve (for fields tests replace, like the clock).
func startServer(t *testing.T, cfg Config, before func(*Server)) *testServer {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if before != nil {
		before(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Keep-alive off: a reset then always hits a fresh connection, which
	// net/http reports instead of silently retrying.
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections) // runs before the Shutdown above
	return &testServer{Server: s, t: t, url: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
}

type response struct {
	code        int
	contentType string
	body        string
}

func (ts *testServer) do(method, path, body string) (response, error) {
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatalf("cannot build request: %v", err)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}, nil
}

func (ts *testServer) mustDo(method, path, body string) response {
	ts.t.Helper()
	r, err := ts.do(method, path, body)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (ts *testServer) get(path string) response { ts.t.Helper(); return ts.mustDo("GET", path, "") }

func influencerBody(pk, followers, following int64) string {
	return fmt.Sprintf(`{"pk":%d,"username":"influencer-%d","followerCount":%d,"followingCount":%d}`, pk, pk, followers, following)
}

type influencer struct {
	PK             int64  `json:"pk"`
	Username       string `json:"username"`
	FollowerCount  int64  `json:"followerCount"`
	FollowingCount int64  `json:"followingCount"`
}

func TestInfluencerResponse(t *testing.T) {
	cfg := testConfig()
	cfg.Drift = false
	ts := startServer(t, cfg, nil)
	if err := ts.Set(1_000_001, 57166, 1328); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ts.url+"/api/v1/influencers/1000001", nil)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := resp.Header.Get("Server"); got != "" {
		t.Errorf("Server header %q; Express sends none", got)
	}
	// Byte for byte, so field order is checked too.
	if want := `{"pk":1000001,"username":"influencer-1000001","followerCount":57166,"followingCount":1328}`; string(body) != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
}

func TestDriftOffKeepsValues(t *testing.T) {
	cfg := testConfig()
	cfg.Drift = false
	ts := startServer(t, cfg, nil)
	f0, g0, _ := ts.Peek(1_000_500)
	want := influencerBody(1_000_500, f0, g0)
	for range 20 {
		if r := ts.get("/api/v1/influencers/1000500"); r.body != want {
			t.Fatalf("got %s, want %s", r.body, want)
		}
	}
	if f, g, _ := ts.Peek(1_000_500); f != f0 || g != g0 {
		t.Errorf("Peek %d/%d after GETs, want %d/%d", f, g, f0, g0)
	}
	if n := ts.Requests(); n != 20 {
		t.Errorf("Requests() = %d, want 20", n)
	}
}

func TestDriftStepsEveryCall(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	prev := ""
	for range 50 {
		r := ts.get("/api/v1/influencers/1000007")
		var inf influencer
		if err := json.Unmarshal([]byte(r.body), &inf); err != nil {
			t.Fatalf("cannot parse %q: %v", r.body, err)
		}
		if r.body == prev {
			t.Errorf("two calls in a row answered %s", r.body)
		}
		prev = r.body
		// The answer is the stored state after this call's step.
		if f, g, _ := ts.Peek(1_000_007); f != inf.FollowerCount || g != inf.FollowingCount {
			t.Errorf("answered %d/%d but stored %d/%d", inf.FollowerCount, inf.FollowingCount, f, g)
		}
	}
}

func TestDriftRespectsFloors(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	const pk = 1_000_003
	if err := ts.Set(pk, followersFloor, followingFloor); err != nil {
		t.Fatal(err)
	}
	// Concurrent callers also exercise the CAS loop under -race.
	const workers, calls = 8, 40
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				r, err := ts.do("GET", "/api/v1/influencers/1000003", "")
				if err != nil {
					t.Error(err)
					return
				}
				var inf influencer
				if err := json.Unmarshal([]byte(r.body), &inf); err != nil {
					t.Errorf("cannot parse %q: %v", r.body, err)
					return
				}
				if inf.FollowerCount < followersFloor || inf.FollowingCount < followingFloor {
					t.Errorf("below the floors: %s", r.body)
				}
			}
		})
	}
	wg.Wait()
	atFloor := 0
	if n := ts.st.calls[pk-smallRange.Min].Load(); n != workers*calls {
		t.Errorf("%d steps counted, want %d", n, workers*calls)
	}

	// From the floor, half of all steps go below it and must stop there.
	for range 100 {
		if err := ts.Set(pk, followersFloor, followingFloor); err != nil {
			t.Fatal(err)
		}
		var inf influencer
		if err := json.Unmarshal([]byte(ts.get("/api/v1/influencers/1000003").body), &inf); err != nil {
			t.Fatal(err)
		}
		if inf.FollowerCount == followersFloor {
			atFloor++
		}
	}
	if atFloor < 25 {
		t.Errorf("%d of 100 steps from the floor stayed at %d, want about 50", atFloor, followersFloor)
	}
}

func TestSeedDeterminism(t *testing.T) {
	a := startServer(t, testConfig(), nil)
	b := startServer(t, testConfig(), nil)
	cfg := testConfig()
	cfg.Seed = 2
	c := startServer(t, cfg, nil)

	same, differ := 0, 0
	for i := range a.st.vals {
		if a.st.vals[i].Load() != b.st.vals[i].Load() {
			t.Fatalf("seed 1 gave two different start values for index %d", i)
		}
		if a.st.vals[i].Load() == c.st.vals[i].Load() {
			same++
		} else {
			differ++
		}
	}
	if same > differ/100 {
		t.Errorf("seeds 1 and 2 agree on %d of %d start values", same, same+differ)
	}

	// Serial calls in the same interleaving give the same series.
	for i := range 60 {
		path := fmt.Sprintf("/api/v1/influencers/%d", 1_000_000+i%3)
		ra, rb, rc := a.get(path), b.get(path), c.get(path)
		if ra.body != rb.body {
			t.Fatalf("call %d: seed 1 answered %s and %s", i, ra.body, rb.body)
		}
		if ra.body == rc.body {
			t.Errorf("call %d: seeds 1 and 2 both answered %s", i, ra.body)
		}
	}
	if a.Seed() != 1 {
		t.Errorf("Seed() = %d, want 1", a.Seed())
	}
}

func TestRandomSeedIsReported(t *testing.T) {
	cfg := testConfig()
	cfg.Seed = 0
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Seed() == 0 {
		t.Fatal("Seed() = 0 with a random seed")
	}
	cfg.Seed = s.Seed()
	again, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pk := range []int64{1_000_000, 1_000_500, 1_000_999} {
		f1, g1, _ := s.Peek(pk)
		f2, g2, _ := again.Peek(pk)
		if f1 != f2 || g1 != g2 {
			t.Errorf("pk %d: %d/%d with the drawn seed, %d/%d with it passed back", pk, f1, g1, f2, g2)
		}
	}
}

// TestStartDistribution checks the whole default population against the
// upstream formula. The seed is fixed, so it cannot flake.
func TestStartDistribution(t *testing.T) {
	r := pkrange.Range{Min: pkrange.DefaultMin, Max: pkrange.DefaultMax}
	st := newState(r, 12345, true)
	n := r.Len()
	var sumF, sumG float64
	floorF, floorG := 0, 0
	ratios := make([]float64, n)
	for i := range n {
		f, g := st.peek(i)
		sumF += float64(f)
		sumG += float64(g)
		if f == followersFloor {
			floorF++
		}
		if g == followingFloor {
			floorG++
		}
		ratios[i] = float64(f) / float64(g)
	}
	slices.Sort(ratios)
	check := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi || math.IsNaN(got) {
			t.Errorf("%s = %v, want in [%v, %v]", name, got, lo, hi)
		}
	}
	// E[max(N(1e5, 1e5), 5000)] = 109,155; E[max(N(1e3, 1e3), 50)] = 1091.6;
	// P(z < -0.95) = 17.1%.
	check("mean followers", sumF/float64(n), 108_500, 109_800)
	check("mean following", sumG/float64(n), 1085, 1098)
	check("fraction at 5000 followers", float64(floorF)/float64(n), 0.165, 0.177)
	check("fraction at 50 following", float64(floorG)/float64(n), 0.165, 0.177)
	check("10th percentile of followers/following", ratios[n/10], 5.5, 5.8)
}

func TestNotFound(t *testing.T) {
	for _, status := range []int{500, 400} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			cfg := testConfig()
			cfg.NotFoundStatus = status
			cfg.Drift = false
			ts := startServer(t, cfg, nil)
			f := func(seg string) {
				t.Helper()
				r := ts.get("/api/v1/influencers/" + seg)
				if r.code != status || r.contentType != "application/json; charset=utf-8" ||
					r.body != `{"error":{"name":"InfluencerNotFoundError"}}` {
					t.Errorf("%q: %d %q %s", seg, r.code, r.contentType, r.body)
				}
			}
			f("999999")
			f("1001000") // just above smallRange
			f("2000000")
			f("1000001.5")
			f("abc")
			f("NaN")
			f("Infinity")
			f("-1000001")
			f("%20") // " " is Number 0
			f("1_000_001")
			f("is_suspicious") // a GET of the POST route's path
		})
	}
}

func TestLooseButValidPKs(t *testing.T) {
	cfg := testConfig()
	cfg.Drift = false
	ts := startServer(t, cfg, nil)
	f := func(path string, pk int64) {
		t.Helper()
		fc, gc, _ := ts.Peek(pk)
		r := ts.get(path)
		if want := influencerBody(pk, fc, gc); r.code != 200 || r.body != want {
			t.Errorf("%s: %d %s, want 200 %s", path, r.code, r.body, want)
		}
	}
	f("/api/v1/influencers/01000001", 1_000_001)
	f("/api/v1/influencers/1e6", 1_000_000)
	f("/api/v1/influencers/1000001.0", 1_000_001)
	f("/api/v1/influencers/+1000001", 1_000_001)
	f("/api/v1/influencers/0xF4241", 1_000_001)
	f("/api/v1/influencers/%201000001%09", 1_000_001)
	f("/api/v1/influencers/%31000001", 1_000_001)
	f("/api/v1/influencers/1000001/", 1_000_001)
	f("/api/v1/influencers/1000001?x=1", 1_000_001)
	f("/API/V1/Influencers/1000001", 1_000_001)
}

// rawGet sends a request line net/http would refuse to build.
func (ts *testServer) rawGet(target string) response {
	ts.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		ts.t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target); err != nil {
		ts.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		ts.t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

func TestBadPercentEncodingIs400(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	for _, seg := range []string{"%zz", "%FF", "1000001%"} {
		if r := ts.rawGet("/api/v1/influencers/" + seg); r.code != 400 {
			t.Errorf("%s: %d %s, want 400", seg, r.code, r.body)
		}
	}
	// Absolute-form request targets route like origin-form ones.
	if r := ts.rawGet("http://test/api/v1/influencers/1000001"); r.code != 200 {
		t.Errorf("absolute-form target: %d %s", r.code, r.body)
	}
}

func TestUnknownRoutes(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	f := func(method, path string) {
		t.Helper()
		r := ts.mustDo(method, path, "")
		if want := "Cannot " + method + " " + path; r.code != 404 || r.body != want ||
			!strings.HasPrefix(r.contentType, "text/plain") {
			t.Errorf("%s %s: %d %q %q, want 404 %q", method, path, r.code, r.contentType, r.body, want)
		}
	}
	f("GET", "/api/v1/influencers/")
	f("GET", "/api/v1/influencers")
	f("GET", "/api/v1/influencers//")
	f("GET", "/api/v1/influencers/1000001/x")
	f("GET", "/api/v1/influencersx/1000001")
	f("GET", "/api/v2/influencers/1000001")
	f("GET", "/nope")
	f("POST", "/api/v1/influencers/1000001")
	f("PUT", "/api/v1/influencers/1000001")
	f("DELETE", "/")
	if n := ts.Requests(); n != 0 {
		t.Errorf("Requests() = %d after only unknown routes", n)
	}
}

func TestSuspicious(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	f := func(body string, wantCode int, wantBody string) {
		t.Helper()
		r := ts.mustDo("POST", "/api/v1/influencers/is_suspicious", body)
		if r.code != wantCode || r.body != wantBody {
			t.Errorf("%s: %d %s, want %d %s", body, r.code, r.body, wantCode, wantBody)
		}
		if wantCode == 200 && r.contentType != "application/json; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", body, r.contentType)
		}
	}
	// The rule at its edge: 564/100 is exactly the double nearest 5.64.
	f(`{"pk":1000001,"username":"influencer-1000001","followerCount":564,"followingCount":100}`, 200, `{"pk":1000001,"suspicious":true}`)
	f(`{"pk":1000001,"username":"influencer-1000001","followerCount":565,"followingCount":100}`, 200, `{"pk":1000001,"suspicious":false}`)
	f(`{"pk":1000002,"followerCount":5000,"followingCount":50}`, 200, `{"pk":1000002,"suspicious":false}`)
	f(`{"pk":1000002,"followerCount":5000,"followingCount":1000}`, 200, `{"pk":1000002,"suspicious":true}`)
	// Division by zero: +Inf and NaN are not <= 5.64, -Inf is.
	f(`{"pk":1,"followerCount":5000,"followingCount":0}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"pk":1,"followerCount":0,"followingCount":0}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"pk":1,"followerCount":-5,"followingCount":0}`, 200, `{"pk":1,"suspicious":true}`)
	// Missing fields are undefined, so NaN.
	f(`{"pk":1,"followingCount":100}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"pk":1,"followerCount":100}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"pk":1}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"followerCount":100,"followingCount":100}`, 200, `{"suspicious":true}`)
	// JavaScript coercion of other JSON types.
	f(`{"pk":1,"followerCount":"100","followingCount":" 50 "}`, 200, `{"pk":1,"suspicious":true}`)
	f(`{"pk":1,"followerCount":"abc","followingCount":50}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"pk":1,"followerCount":null,"followingCount":50}`, 200, `{"pk":1,"suspicious":true}`)
	f(`{"pk":1,"followerCount":[100],"followingCount":[["50"]]}`, 200, `{"pk":1,"suspicious":true}`)
	f(`{"pk":1,"followerCount":{},"followingCount":50}`, 200, `{"pk":1,"suspicious":false}`)
	f(`{"pk":1,"followerCount":true,"followingCount":50}`, 200, `{"pk":1,"suspicious":true}`)
	// pk is echoed as sent.
	f(`{"pk":"abc","followerCount":1,"followingCount":1}`, 200, `{"pk":"abc","suspicious":true}`)
	f(`{"pk":1e6,"followerCount":1,"followingCount":1}`, 200, `{"pk":1e6,"suspicious":true}`)
	f(`{"pk":null,"followerCount":1,"followingCount":1}`, 200, `{"pk":null,"suspicious":true}`)
	// No body, or no object.
	f(``, 200, `{"suspicious":false}`)
	f("  \n", 200, `{"suspicious":false}`)
	f(`[]`, 200, `{"suspicious":false}`)
	// Malformed JSON fails.
	f(`{"pk":`, 500, `Internal Server Error`)
	f(`not json`, 500, `Internal Server Error`)
	f(`{"pk":1}}`, 500, `Internal Server Error`)
}

func TestSuspiciousWaits(t *testing.T) {
	cfg := testConfig()
	cfg.SuspiciousDelayMean = 200 * time.Millisecond
	ts := startServer(t, cfg, nil)
	began := time.Now()
	r := ts.mustDo("POST", "/api/v1/influencers/is_suspicious", `{"pk":1,"followerCount":1,"followingCount":1}`)
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("answered after %s, want at least 200ms", took)
	}
	if r.body != `{"pk":1,"suspicious":true}` {
		t.Errorf("body %s", r.body)
	}
}

// TestSuspiciousManyInFlight checks that a thousand sleeping classifier calls
// fit in the server at once (fasthttp refuses connections past Concurrency).
func TestSuspiciousManyInFlight(t *testing.T) {
	cfg := testConfig()
	cfg.SuspiciousDelayMean = 300 * time.Millisecond
	ts := startServer(t, cfg, nil)
	const calls = 1000
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			r, err := ts.do("POST", "/api/v1/influencers/is_suspicious", `{"pk":1,"followerCount":1,"followingCount":1}`)
			if err != nil || r.code != 200 {
				t.Errorf("%d %s %v", r.code, r.body, err)
			}
		})
	}
	wg.Wait()
}

func TestNormalDelay(t *testing.T) {
	f := func(mean, stddev, limit time.Duration, z float64, want time.Duration) {
		t.Helper()
		if got := normalDelay(mean, stddev, limit, z); got != want {
			t.Errorf("normalDelay(%s, %s, %s, %v) = %s, want %s", mean, stddev, limit, z, got, want)
		}
	}
	f(time.Second, time.Second, 0, 0, time.Second)
	f(time.Second, time.Second, 0, 2.5, 3500*time.Millisecond)
	f(time.Second, time.Second, 0, -1, 0)
	f(time.Second, time.Second, 0, -3, 0)
	f(time.Second, time.Second, 2*time.Second, 5, 2*time.Second)
	f(0, 0, 0, 3, 0)
}

func TestShutdownEndsSleeps(t *testing.T) {
	s, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	s.sleep(time.Hour) // returns at once: the test would time out otherwise
	// Serve after Shutdown returns instead of accepting forever.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestAdmin(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	f0, g0, _ := ts.Peek(1_000_010)
	for range 3 {
		if r := ts.get("/admin/influencers/1000010"); r.code != 200 || r.body != influencerBody(1_000_010, f0, g0) {
			t.Errorf("admin GET: %d %s", r.code, r.body)
		}
	}
	if ts.st.calls[10].Load() != 0 || ts.Requests() != 0 {
		t.Error("admin GET stepped the influencer")
	}

	r := ts.mustDo("POST", "/admin/influencers/1000010", `{"followerCount":250000}`)
	if want := influencerBody(1_000_010, 250000, g0); r.code != 200 || r.body != want {
		t.Errorf("admin POST: %d %s, want %s", r.code, r.body, want)
	}
	r = ts.mustDo("POST", "/admin/influencers/1000010", `{"followingCount":0}`)
	if want := influencerBody(1_000_010, 250000, 0); r.body != want {
		t.Errorf("admin POST: %d %s, want %s", r.code, r.body, want)
	}
	if f, g, _ := ts.Peek(1_000_010); f != 250000 || g != 0 {
		t.Errorf("Peek after admin POST: %d/%d", f, g)
	}

	bad := func(method, path, body string, code int) {
		t.Helper()
		if r := ts.mustDo(method, path, body); r.code != code {
			t.Errorf("%s %s %s: %d %s, want %d", method, path, body, r.code, r.body, code)
		}
	}
	bad("GET", "/admin/influencers/999999", "", 404)
	bad("GET", "/admin/influencers/1e6", "", 404)
	bad("POST", "/admin/influencers/1000010", `{"followerCount":-1}`, 400)
	bad("POST", "/admin/influencers/1000010", `{"followerCount":1.5}`, 400)
	bad("POST", "/admin/influencers/1000010", `{"followerCount":4294967296}`, 400)
	bad("POST", "/admin/influencers/1000010", `[]`, 400)
	bad("POST", "/admin/influencers/1000010", `{`, 400)
	bad("PUT", "/admin/influencers/1000010", `{}`, 404)
}

func TestPeekAndSet(t *testing.T) {
	s, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.Peek(999_999); ok {
		t.Error("Peek outside the range reported ok")
	}
	if err := s.Set(1_000_000, 1, 2); err != nil {
		t.Fatal(err)
	}
	if f, g, ok := s.Peek(1_000_000); !ok || f != 1 || g != 2 {
		t.Errorf("Peek = %d, %d, %t", f, g, ok)
	}
	f := func(pk, followers, following int64, want string) {
		t.Helper()
		err := s.Set(pk, followers, following)
		if err == nil || err.Error() != want {
			t.Errorf("Set(%d, %d, %d) = %v, want %q", pk, followers, following, err, want)
		}
	}
	f(2_000_000, 1, 1, "cannot set pk 2000000: outside pk range 1000000..1000999")
	f(1_000_000, -1, 1, "cannot set pk 1000000 to -1 followers, 1 following: counts must be in 0..4294967295")
	f(1_000_000, 1, 1<<32, "cannot set pk 1000000 to 1 followers, 4294967296 following: counts must be in 0..4294967295")
}

func TestMetaEndpoints(t *testing.T) {
	cfg := testConfig()
	cfg.Faults.ErrorRatio = 0.5
	ts := startServer(t, cfg, nil)
	for _, p := range []string{"/-/healthy", "/-/ready"} {
		if r := ts.get(p); r.code != 200 || r.body != "OK" {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
	r := ts.get("/")
	for _, want := range []string{"1000000..1000999", "seed 1", "drift true", "fault.error-ratio=0.5", "/admin/influencers/"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("landing page lacks %q:\n%s", want, r.body)
		}
	}
	cfg.Faults.ErrorRatio = 0
	ts = startServer(t, cfg, nil)
	for range 3 {
		ts.get("/api/v1/influencers/1000001")
	}
	ts.get("/api/v1/influencers/5")
	ts.get("/nope")
	m := ts.get("/metrics").body
	for _, want := range []string{
		`mockstagram_sim_requests_total{code="200",route="influencer"} 3`,
		`mockstagram_sim_requests_total{code="500",route="influencer"} 1`,
		`mockstagram_sim_requests_total{code="404",route="unknown"} 1`,
		`mockstagram_sim_faults_injected_total{kind="reset"} 0`,
		`mockstagram_sim_suspicious_in_flight 0`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
