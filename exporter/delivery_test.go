package exporter

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// servedOnceExporter is an exporter that never polls, over 10 pks, whose
// store the test fills by hand, behind its real HTTP handler.
func servedOnceExporter(t *testing.T) (*Exporter, *httptest.Server) {
	t.Helper()
	e, err := New(Config{URLs: []string{"http://127.0.0.1:1"}, Range: pkrange.Range{Min: 1000000, Max: 1000009},
		Shard: pkrange.Shard{Count: 1}, Interval: time.Minute, Timeout: time.Second, Concurrency: 1, Pipeline: 1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler(DefaultMetricsPath, DefaultTelemetryPath))
	t.Cleanup(srv.Close)
	return e, srv
}

// scrapeLines returns the sample lines of one scrape, sorted, after
// checking that the Prometheus parser reads it.
func scrapeLines(t *testing.T, url, timeout string) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if timeout != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
		t.Fatalf("the Prometheus parser rejects %s: %v\n%s", url, err, body)
	}
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func TestServedOnce(t *testing.T) {
	e, srv := servedOnceExporter(t)
	s := e.Store()
	s.Set(0, Sample{Followers: 10, Following: 1, TimeMs: 1000})
	s.Set(1, Sample{Followers: 20, Following: 2, TimeMs: 1001})
	a := srv.URL + "/metrics?scraper=a"
	f := func(url, timeout string, want ...string) {
		t.Helper()
		if got := scrapeLines(t, url, timeout); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s served\n%s\nwant\n%s", url, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	both := []string{
		`mockstagram_influencer_followers{pk="1000000"} 10 1000`, `mockstagram_influencer_followers{pk="1000001"} 20 1001`,
		`mockstagram_influencer_following{pk="1000000"} 1 1000`, `mockstagram_influencer_following{pk="1000001"} 2 1001`,
	}
	f(a, "10", both...)
	f(a, "10") // nothing new
	s.Set(1, Sample{Followers: 80_020, Following: 2, TimeMs: 61001})
	s.SetVerdict(0, Verdict{TimeMs: 5000, Suspicious: true})
	f(a, "10",
		`mockstagram_influencer_followers_step{pk="1000001"} 80000 61001`,
		`mockstagram_influencer_followers{pk="1000001"} 80020 61001`,
		`mockstagram_influencer_following{pk="1000001"} 2 61001`,
		`mockstagram_influencer_suspicious{pk="1000000"} 1 5000`)
	f(a, "10")
	// Another scraper, and a person without a scraper id, get everything.
	all := []string{
		`mockstagram_influencer_followers_step{pk="1000001"} 80000 61001`,
		`mockstagram_influencer_followers{pk="1000000"} 10 1000`, `mockstagram_influencer_followers{pk="1000001"} 80020 61001`,
		`mockstagram_influencer_following{pk="1000000"} 1 1000`, `mockstagram_influencer_following{pk="1000001"} 2 61001`,
		`mockstagram_influencer_suspicious{pk="1000000"} 1 5000`}
	f(srv.URL+"/metrics?scraper=b", "10", all...)
	f(srv.URL+"/metrics", "", all...)
	f(srv.URL+"/metrics", "", all...)
	// Each slice is a target of its own.
	f(a+"&slice=0&slices=2", "10", all...)
	f(a+"&slice=0&slices=2", "10")
	// A body written after half the scraper's timeout may have been
	// thrown away: it is served again.
	s.Set(2, Sample{Followers: 30, Following: 3, TimeMs: 2000})
	late := []string{`mockstagram_influencer_followers{pk="1000002"} 30 2000`, `mockstagram_influencer_following{pk="1000002"} 3 2000`}
	f(a, "0.000000001", late...)
	f(a, "10", late...)
	f(a, "10")
	// A small step removes the step series; the info series have a path
	// of their own and are served whole every time.
	s.Set(1, Sample{Followers: 80_030, Following: 2, TimeMs: 121001})
	f(srv.URL+"/metrics/info", "",
		`mockstagram_influencer_info{pk="1000000",username="influencer-1000000"} 1`,
		`mockstagram_influencer_info{pk="1000001",username="influencer-1000001"} 1`,
		`mockstagram_influencer_info{pk="1000002",username="influencer-1000002"} 1`)
	f(a, "10", `mockstagram_influencer_followers{pk="1000001"} 80030 121001`, `mockstagram_influencer_following{pk="1000001"} 2 121001`)
}

// TestServedOnceLosesNothingUnderConcurrentPolls: while writers store
// samples and verdicts as fast as they can, a scraper that scrapes again
// and again gets every stored sample exactly once.
func TestServedOnceLosesNothingUnderConcurrentPolls(t *testing.T) {
	s := NewStore(pkrange.Owned(pkrange.Range{Min: 1, Max: 1000}, pkrange.Shard{Count: 1}))
	x := NewExposition(s)
	var d deliveries
	const rounds = 200
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 1; r <= rounds; r++ {
				for i := w; i < s.Len(); i += 4 {
					s.Set(i, Sample{Followers: uint32(r), Following: uint32(r), TimeMs: int64(r)})
					if r%50 == 0 {
						s.SetVerdict(i, Verdict{TimeMs: int64(r)})
					}
				}
			}
		}()
	}
	got := map[string]int{}
	scrape := func() {
		win := d.window("a whole", s.Seq())
		var b bytes.Buffer
		x.WriteWindow(&b, 0, s.Len(), win)
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, MetricFollowers+"{") || strings.HasPrefix(l, MetricSuspicious+"{") {
				got[l]++
			}
		}
		d.delivered("a whole", win.Upto)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		scrape()
	}
	scrape()
	for l, n := range got {
		if n != 1 {
			t.Fatalf("%q served %d times", l, n)
		}
	}
	// Every pk's last sample and last verdict were served; samples a
	// writer replaced before any scrape could not be, but none twice.
	for i := range s.Len() {
		pk := s.PKs().PK(i)
		for _, want := range []string{
			MetricFollowers + `{pk="` + itoa(pk) + `"} 200 200`,
			MetricSuspicious + `{pk="` + itoa(pk) + `"} 0 200`,
		} {
			if got[want] != 1 {
				t.Fatalf("%q served %d times, want once", want, got[want])
			}
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
