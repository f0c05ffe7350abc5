package rankd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter/exportertest"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

const pkMin = 1_000_000

// startExporters runs n exporter shards against the simulator at url and
// returns their URLs once each has polled every pk.
func startExporters(t *testing.T, url string, max int64, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		s := exportertest.Start(t, exportertest.Config([]string{url}, pkMin, max, pkrange.Shard{Index: i, Count: n}))
		s.WaitComplete(t)
		out = append(out, s.URL)
	}
	return out
}

func get(t *testing.T, url string, wantStatus int, into any) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s = %d %s, want %d", url, resp.StatusCode, body, wantStatus)
	}
	if strings.HasPrefix(url, "http") && strings.Contains(url, "/api/") && resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: content type %q", url, resp.Header.Get("Content-Type"))
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return string(body)
}

// TestAgainstSimulator: three exporter shards poll a fixed simulator; every
// answer of rankd is checked against the simulator's own data.
func TestAgainstSimulator(t *testing.T) {
	const max = pkMin + 2999
	sim, url := simtest.Start(t, simtest.Config(pkMin, max, false))
	// Give a few influencers the same count as the floor group and one a
	// unique top, so that ties are exercised beyond the floor.
	for _, pk := range []int64{pkMin + 5, pkMin + 6, pkMin + 7} {
		sim.Set(pk, 5000, 100)
	}
	sim.Set(pkMin+9, 9_999_999, 0) // following 0: ratio null
	exps := startExporters(t, url, max, 3)
	srv, err := rankd.New(rankd.Config{Sources: exps, Refresh: time.Second, Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Three refreshes: the third rebuilds into the first one's arrays.
	for range 3 {
		srv.Refresh(context.Background())
	}
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)

	type entry struct {
		pk   int64
		f, g int64
	}
	var all []entry
	var sum int64
	for pk := int64(pkMin); pk <= max; pk++ {
		f, g, _ := sim.Peek(pk)
		all = append(all, entry{pk, f, g})
		sum += f
	}
	// Verdicts, when the exporters have any yet, must be upstream's rule
	// applied to the values they posted (fixed: no drift).
	flagged := map[int64]bool{}
	verdicts := 0
	seen := map[int64]bool{}
	var values []int64 // distinct follower counts
	for _, e := range all {
		if !seen[e.f] {
			seen[e.f] = true
			values = append(values, e.f)
		}
	}
	for _, e := range all {
		more, denseAbove := 0, 0
		for _, o := range all {
			if o.f > e.f {
				more++
			}
		}
		for _, v := range values {
			if v > e.f {
				denseAbove++
			}
		}
		var got rankd.InfluencerJSON
		get(t, fmt.Sprintf("%s/api/v1/influencers/%d", web.URL, e.pk), 200, &got)
		if got.FollowerCount != uint32(e.f) || got.FollowingCount != uint32(e.g) || got.Rank != more+1 ||
			got.DenseRank != denseAbove+1 || got.Total != 3000 || got.Username != fmt.Sprintf("influencer-%d", e.pk) {
			t.Fatalf("pk %d: %+v; simulator has %d/%d, rank %d, dense %d", e.pk, got, e.f, e.g, more+1, denseAbove+1)
		}
		if (e.g == 0) != (got.FollowerRatio == nil) || (e.g > 0 && *got.FollowerRatio != float64(e.f)/float64(e.g)) {
			t.Fatalf("pk %d: ratio %v for %d/%d", e.pk, got.FollowerRatio, e.f, e.g)
		}
		if (got.Suspicious == nil) != (got.CheckedAt == "") {
			t.Fatalf("pk %d: suspicious %v checked at %q", e.pk, got.Suspicious, got.CheckedAt)
		}
		if got.Suspicious != nil {
			verdicts++
			if want := float64(e.f)/float64(e.g) <= 5.64; *got.Suspicious != want {
				t.Fatalf("pk %d: suspicious %v for %d/%d", e.pk, *got.Suspicious, e.f, e.g)
			}
			flagged[e.pk] = *got.Suspicious
		}
	}
	var avg struct {
		Average    float64 `json:"averageFollowerCount"`
		Count      int     `json:"count"`
		Max        uint32  `json:"max"`
		Suspicious int     `json:"suspicious"`
		Verdicts   int     `json:"verdicts"`
	}
	get(t, web.URL+"/api/v1/average", 200, &avg)
	if avg.Count != 3000 || avg.Average != float64(sum)/3000 || avg.Max != 9_999_999 || avg.Verdicts != verdicts {
		t.Fatalf("average %+v, want %v over 3000 with %d verdicts", avg, float64(sum)/3000, verdicts)
	}
	sort.Slice(all, func(a, b int) bool { return all[a].f > all[b].f || all[a].f == all[b].f && all[a].pk < all[b].pk })
	var top struct {
		Total       int                    `json:"total"`
		Influencers []rankd.InfluencerJSON `json:"influencers"`
	}
	get(t, web.URL+"/api/v1/top?n=50&offset=10", 200, &top)
	for k, inf := range top.Influencers {
		if inf.PK != all[10+k].pk {
			t.Fatalf("top[%d] = pk %d, want %d", 10+k, inf.PK, all[10+k].pk)
		}
	}
	if len(top.Influencers) != 50 || top.Total != 3000 {
		t.Fatalf("top page of %d, total %d", len(top.Influencers), top.Total)
	}
	// The suspicious list, page by page, is the flagged influencers in
	// leaderboard order, and its total is the average's count.
	var wantList []int64
	for _, e := range all {
		if flagged[e.pk] {
			wantList = append(wantList, e.pk)
		}
	}
	var list []int64
	for offset := 0; ; offset += 7 {
		var page struct {
			Total       int                    `json:"total"`
			Influencers []rankd.InfluencerJSON `json:"influencers"`
		}
		get(t, fmt.Sprintf("%s/api/v1/suspicious?limit=7&offset=%d", web.URL, offset), 200, &page)
		if page.Total != avg.Suspicious || page.Total != len(wantList) {
			t.Fatalf("suspicious total %d, average says %d, verdicts flag %d", page.Total, avg.Suspicious, len(wantList))
		}
		if len(page.Influencers) == 0 {
			break
		}
		for _, inf := range page.Influencers {
			list = append(list, inf.PK)
		}
	}
	if fmt.Sprint(list) != fmt.Sprint(wantList) {
		t.Fatalf("suspicious list %v, want %v", list, wantList)
	}
	t.Logf("%d verdicts, %d suspicious", verdicts, len(wantList))
	body := get(t, web.URL+"/metrics", 200, nil)
	for _, want := range []string{"mockstagram_population_influencers 3000\n", "mockstagram_population_followers_average ",
		fmt.Sprintf("mockstagram_population_suspicious %d\n", len(wantList)), fmt.Sprintf("mockstagram_population_verdicts %d\n", verdicts),
		`mockstagram_population_followers{quantile="1"} 9.999999e+06`, "rankd_snapshot_complete 1\n"} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// TestErrors: every bad request gets a JSON error with the right status,
// never a 500; before the first complete snapshot, 503.
func TestErrors(t *testing.T) {
	const max = pkMin + 99
	_, url := simtest.Start(t, simtest.Config(pkMin, max, false))
	exps := startExporters(t, url, max, 1)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	srv, err := rankd.New(rankd.Config{Sources: []string{exps[0], dead.URL}, Refresh: time.Second, Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	get(t, web.URL+"/api/v1/influencers/1000001", 503, nil) // nothing yet
	get(t, web.URL+"/-/ready", 503, nil)
	srv.Refresh(context.Background())
	get(t, web.URL+"/api/v1/average", 503, nil) // one source never answered
	var st struct {
		Complete bool
		Sources  []rankd.SourceStatus
	}
	get(t, web.URL+"/api/v1/status", 200, &st)
	if st.Complete || len(st.Sources) != 2 || !st.Sources[0].Healthy || st.Sources[1].Healthy || st.Sources[1].LastError == "" {
		t.Fatalf("status %+v", st)
	}

	srv2, _ := rankd.New(rankd.Config{Sources: exps, Refresh: time.Second, Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	srv2.Refresh(context.Background())
	web2 := httptest.NewServer(srv2.Handler())
	t.Cleanup(web2.Close)
	f := func(path string, status int, msg string) {
		t.Helper()
		body := get(t, web2.URL+path, status, nil)
		if !strings.Contains(body, msg) || !strings.Contains(body, `"status":"error"`) {
			t.Fatalf("GET %s: body %s, want it to mention %q", path, body, msg)
		}
	}
	f("/api/v1/influencers/abc", 400, "not a non-negative integer")
	f("/api/v1/influencers/-5", 400, "not a non-negative integer")
	f("/api/v1/influencers/1e6", 400, "not a non-negative integer")
	f("/api/v1/influencers/99999999999999999999", 400, "not a non-negative integer")
	f("/api/v1/influencers/999999", 404, "no data for pk 999999")
	f("/api/v1/influencers/1000100", 404, "no data for pk 1000100")
	f("/api/v1/top?n=0", 400, "must be an integer in 1..1000")
	f("/api/v1/top?n=1001", 400, "must be an integer in 1..1000")
	f("/api/v1/top?n=x", 400, "must be an integer")
	f("/api/v1/top?offset=-1", 400, "offset")
	f("/api/v1/nope", 404, "no such endpoint")
	get(t, web2.URL+"/api/v1/top?n=10&offset=5000", 200, nil) // past the end: an empty page
	get(t, web2.URL+"/-/ready", 200, nil)
	get(t, web2.URL+"/-/healthy", 200, nil)
}

// TestRefreshKeepsServingWhileASourceFails: a source that fails after it
// answered keeps its last data, and its failure shows in the status.
func TestRefreshKeepsServingWhileASourceFails(t *testing.T) {
	const max = pkMin + 99
	_, url := simtest.Start(t, simtest.Config(pkMin, max, false))
	exps := startExporters(t, url, max, 1)
	var fail atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", 503)
			return
		}
		resp, err := http.Get(exps[0] + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	srv, _ := rankd.New(rankd.Config{Sources: []string{proxy.URL}, Refresh: time.Second, Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	srv.Refresh(context.Background())
	fail.Store(true)
	srv.Refresh(context.Background())
	if s := srv.Snapshot(); !s.Complete || s.Count != 100 {
		t.Fatalf("after a failed read: complete %v, %d influencers", s.Complete, s.Count)
	}
	if st := srv.Status(); st[0].Healthy || !strings.Contains(st[0].LastError, "503") {
		t.Fatalf("status %+v", st)
	}
}
