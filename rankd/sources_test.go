package rankd_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
)

// fakeExporter serves a snapshot the test controls, like an exporter's
// /api/v1/snapshot: whole, cut off after some records, or an error.
type fakeExporter struct {
	URL      string
	mu       sync.Mutex
	h        snapwire.Header
	recs     []snapwire.Record
	fail     bool
	truncate int           // records to send before breaking off; -1 sends all
	hang     bool          // with truncate: send that much, then stall until the reader gives up
	delay    time.Duration // wait this long before answering
}

func startFake(t *testing.T, first, step int64, recs []snapwire.Record) *fakeExporter {
	t.Helper()
	f := &fakeExporter{truncate: -1}
	f.set(first, step, recs)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/snapshot" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		if f.fail {
			f.mu.Unlock()
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var b bytes.Buffer
		snapwire.Write(&b, f.h, func(i int) snapwire.Record { return f.recs[i] })
		data := b.Bytes()
		if f.truncate >= 0 {
			data = data[:len(data)-(len(f.recs)-f.truncate)*snapwire.RecordSize]
		}
		hang, delay := f.hang, f.delay
		f.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Write(data)
		if hang {
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeExporter) set(first, step int64, recs []snapwire.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h, f.recs = snapwire.Header{First: first, Step: step, N: uint32(len(recs))}, recs
}

func (f *fakeExporter) setDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

func (f *fakeExporter) setHang(hang bool, truncate int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang, f.truncate = hang, truncate
}

func (f *fakeExporter) setFail(fail bool, truncate int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.truncate = fail, truncate
}

func newServer(t *testing.T, exposeRanks bool, urls ...string) (*rankd.Server, string) {
	t.Helper()
	srv, err := rankd.New(rankd.Config{Sources: urls, Refresh: time.Second, Timeout: 5 * time.Second, ExposeRanks: exposeRanks,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	return srv, web.URL
}

const (
	tPoll    = 1_763_780_000_123 // 2025-11-22T02:53:20.123Z
	tVerdict = 1_763_700_000_789 // 2025-11-21T04:40:00.789Z
)

// TestVerdicts: two shards send influencers with and without verdicts;
// every endpoint reports them exactly.
func TestVerdicts(t *testing.T) {
	// pk:        1000000  1000001  1000002  1000003  1000004  1000005
	// followers: 9000     5000     12000    5000     7000     (never polled)
	// verdict:   flagged  cleared  none     flagged  none
	a := startFake(t, pkMin, 2, []snapwire.Record{
		{Followers: 9000, Following: 3000, TimeMs: tPoll, VerdictMs: tVerdict, Suspicious: true},
		{Followers: 12000, Following: 1000, TimeMs: tPoll},
		{Followers: 7000, Following: 2000, TimeMs: tPoll},
	})
	b := startFake(t, pkMin+1, 2, []snapwire.Record{
		{Followers: 5000, Following: 100, TimeMs: tPoll + 1333, VerdictMs: tVerdict - 50_000_000, Suspicious: false},
		{Followers: 5000, Following: 1000, TimeMs: tPoll, VerdictMs: tVerdict, Suspicious: true},
		{VerdictMs: tVerdict, Suspicious: true}, // a verdict without data does not count
	})
	srv, web := newServer(t, false, a.URL, b.URL)
	srv.Refresh(context.Background())

	f := func(pk int64, want string) {
		t.Helper()
		if got := get(t, fmt.Sprintf("%s/api/v1/influencers/%d", web, pk), 200, nil); got != want+"\n" {
			t.Fatalf("pk %d:\n%s\nwant\n%s", pk, got, want)
		}
	}
	f(1000000, `{"pk":1000000,"username":"influencer-1000000","followerCount":9000,"followingCount":3000,"followerRatio":3,"rank":2,"denseRank":2,"percentile":80,"total":5,"polledAt":"2025-11-22T02:53:20Z","suspicious":true,"checkedAt":"2025-11-21T04:40:00Z"}`)
	f(1000001, `{"pk":1000001,"username":"influencer-1000001","followerCount":5000,"followingCount":100,"followerRatio":50,"rank":4,"denseRank":4,"percentile":40,"total":5,"polledAt":"2025-11-22T02:53:21Z","suspicious":false,"checkedAt":"2025-11-20T14:46:40Z"}`)
	f(1000002, `{"pk":1000002,"username":"influencer-1000002","followerCount":12000,"followingCount":1000,"followerRatio":12,"rank":1,"denseRank":1,"percentile":100,"total":5,"polledAt":"2025-11-22T02:53:20Z"}`)
	get(t, web+"/api/v1/influencers/1000005", 404, nil)

	var avg struct {
		Count, Suspicious, Verdicts int
	}
	get(t, web+"/api/v1/average", 200, &avg)
	if avg.Count != 5 || avg.Suspicious != 2 || avg.Verdicts != 3 {
		t.Fatalf("average: %+v, want 5 influencers, 2 suspicious, 3 verdicts", avg)
	}

	page := func(query string, wantTotal, wantOffset, wantLimit int, wantPKs ...int64) {
		t.Helper()
		var p struct {
			Total, Offset, Limit int
			Influencers          []rankd.InfluencerJSON
		}
		get(t, web+"/api/v1/suspicious"+query, 200, &p)
		var pks []int64
		for _, inf := range p.Influencers {
			if inf.Suspicious == nil || !*inf.Suspicious || inf.CheckedAt == "" {
				t.Fatalf("%s: listed %+v", query, inf)
			}
			pks = append(pks, inf.PK)
		}
		if p.Total != wantTotal || p.Offset != wantOffset || p.Limit != wantLimit || fmt.Sprint(pks) != fmt.Sprint(wantPKs) {
			t.Fatalf("%s: total %d offset %d limit %d pks %v; want %d %d %d %v", query, p.Total, p.Offset, p.Limit, pks, wantTotal, wantOffset, wantLimit, wantPKs)
		}
	}
	page("", 2, 0, 100, 1000000, 1000003)
	page("?limit=1", 2, 0, 1, 1000000)
	page("?limit=1&offset=1", 2, 1, 1, 1000003)
	page("?offset=2", 2, 2, 100)
	if body := get(t, web+"/api/v1/suspicious?offset=5", 200, nil); !strings.Contains(body, `"influencers":[]`) {
		t.Fatalf("a page past the end is an empty list, not null: %s", body)
	}

	metrics := get(t, web+"/metrics", 200, nil)
	for _, want := range []string{"mockstagram_population_suspicious 2\n", "mockstagram_population_verdicts 3\n"} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "mockstagram_influencer_rank") {
		t.Fatal("ranks exposed without --expose.ranks")
	}
	if landing := get(t, web+"/", 200, nil); !strings.Contains(landing, "/api/v1/suspicious") {
		t.Fatal("the landing page does not list /api/v1/suspicious")
	}
}

// TestHangingSource: an exporter that stops sending mid-snapshot is cut
// off at the end of its share of --refresh.timeout; the others are read
// whole in the same refresh, it keeps its last data, and once it has
// failed it is read after the healthy ones.
func TestHangingSource(t *testing.T) {
	rec := func(f uint32) snapwire.Record { return snapwire.Record{Followers: f, Following: 1, TimeMs: tPoll} }
	hang := startFake(t, pkMin, 3, []snapwire.Record{rec(10), rec(13), rec(16)})
	a := startFake(t, pkMin+1, 3, []snapwire.Record{rec(11), rec(14), rec(17)})
	b := startFake(t, pkMin+2, 3, []snapwire.Record{rec(12), rec(15), rec(18)})
	const timeout = 900 * time.Millisecond // a share of 300 ms each
	srv, err := rankd.New(rankd.Config{Sources: []string{hang.URL, a.URL, b.URL}, Refresh: time.Second, Timeout: timeout,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	followers := func() (out []uint32) {
		snap := srv.Snapshot()
		for pk := int64(pkMin); pk < pkMin+9; pk++ {
			inf, _ := snap.Lookup(pk)
			out = append(out, inf.Followers)
		}
		return out
	}
	refresh := func() time.Duration {
		t0 := time.Now()
		srv.Refresh(context.Background())
		return time.Since(t0)
	}

	// Never answered whole: its first record counts, the snapshot is not
	// complete, and the others are read in full although it comes first.
	hang.setHang(true, 1)
	if d := refresh(); d > 10*timeout {
		t.Fatalf("the refresh took %s, waiting for the hanging exporter", d)
	}
	if got, want := fmt.Sprint(followers()), "[10 11 12 0 14 15 0 17 18]"; got != want {
		t.Fatalf("followers %s, want %s", got, want)
	}
	st := srv.Status()
	if srv.Snapshot().Complete || st[0].Healthy || !st[1].Healthy || !st[2].Healthy ||
		!strings.Contains(st[0].LastError, "not read whole by the end of its share of --refresh.timeout=900ms") {
		t.Fatalf("complete %v, status %+v", srv.Snapshot().Complete, st)
	}

	// Whole once, then hanging from the start: its data stays, the others
	// are new.
	hang.setHang(false, -1)
	refresh()
	if !srv.Snapshot().Complete {
		t.Fatalf("status %+v", srv.Status())
	}
	a.set(pkMin+1, 3, []snapwire.Record{rec(21), rec(24), rec(27)})
	hang.setHang(true, 0)
	refresh()
	if got, want := fmt.Sprint(followers()), "[10 21 12 13 24 15 16 27 18]"; got != want {
		t.Fatalf("followers %s, want %s", got, want)
	}
	if st := srv.Status(); st[0].Healthy || !srv.Snapshot().Complete {
		t.Fatalf("status %+v", st)
	}

	// Now read last, it has the time the others left: merely slow (longer
	// than the 300 ms share it had when read first), it is read whole.
	hang.setHang(false, -1)
	hang.setDelay(timeout / 2)
	hang.set(pkMin, 3, []snapwire.Record{rec(30), rec(33), rec(36)})
	refresh()
	if got, want := fmt.Sprint(followers()), "[30 21 12 33 24 15 36 27 18]"; got != want {
		t.Fatalf("followers %s, want %s", got, want)
	}
	if st := srv.Status(); !st[0].Healthy || !st[1].Healthy || !st[2].Healthy {
		t.Fatalf("status %+v", st)
	}
	// Healthy again, it stays at the back: it keeps being read whole
	// instead of going back to a 300 ms share and failing every other time.
	for i := range 3 {
		f := uint32(40 + i)
		hang.set(pkMin, 3, []snapwire.Record{rec(f), rec(f), rec(f)})
		refresh()
		if got, want := fmt.Sprint(followers()), fmt.Sprintf("[%d 21 12 %d 24 15 %d 27 18]", f, f, f); got != want {
			t.Fatalf("refresh %d after recovering: followers %s, want %s; status %+v", i, got, want, srv.Status())
		}
	}
}

// TestSuspiciousErrors: bad paging is a 400 naming the parameter; nothing
// answers before the first complete snapshot.
func TestSuspiciousErrors(t *testing.T) {
	a := startFake(t, pkMin, 1, []snapwire.Record{{Followers: 1, Following: 1, TimeMs: tPoll, VerdictMs: tVerdict, Suspicious: true}})
	srv, web := newServer(t, false, a.URL)
	body := get(t, web+"/api/v1/suspicious", 503, nil)
	if !strings.Contains(body, "no complete snapshot yet") {
		t.Fatalf("before the first refresh: %s", body)
	}
	srv.Refresh(context.Background())
	f := func(query, msg string) {
		t.Helper()
		body := get(t, web+"/api/v1/suspicious"+query, 400, nil)
		if !strings.Contains(body, msg) || !strings.Contains(body, `"status":"error"`) {
			t.Fatalf("%s: %s, want it to mention %q", query, body, msg)
		}
	}
	f("?limit=0", `limit=\"0\" must be an integer in 1..1000`)
	f("?limit=1001", `limit=\"1001\" must be an integer in 1..1000`)
	f("?limit=ten", `limit=\"ten\" must be an integer`)
	f("?offset=-1", `offset=\"-1\" must be an integer in 0..2147483647`)
	f("?offset=1e3", `offset=\"1e3\" must be an integer`)
	f("?offset=99999999999", "offset")
	get(t, web+"/api/v1/suspicious?limit=&offset=", 200, nil) // empty is the default
}

// TestExposeRanks: with --expose.ranks, /metrics carries one rank gauge per
// influencer; parsed back with the Prometheus text parser, every one agrees
// with the API's rank, plain and gzipped.
func TestExposeRanks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var shards [][]snapwire.Record
	for range 3 {
		var recs []snapwire.Record
		for range 1000 {
			f := uint32(5000)
			if r.IntN(10) > 0 {
				f = uint32(r.IntN(20000))
			}
			var ms int64 = tPoll
			if r.IntN(50) == 0 {
				ms = 0 // never polled: no rank
			}
			recs = append(recs, snapwire.Record{Followers: f, Following: 100, TimeMs: ms})
		}
		shards = append(shards, recs)
	}
	a := startFake(t, pkMin, 3, shards[0])
	b := startFake(t, pkMin+1, 3, shards[1])
	c := startFake(t, pkMin+2, 3, shards[2])
	srv, web := newServer(t, true, a.URL, b.URL, c.URL)

	parse := func(body io.Reader) map[string]int {
		t.Helper()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(body)
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		if fams["go_goroutines"] == nil || fams["rankd_snapshot_complete"] == nil {
			t.Fatal("the registry's metrics are missing")
		}
		ranks := map[string]int{}
		if fam := fams[rankd.MetricRank]; fam != nil {
			if fam.GetType().String() != "GAUGE" {
				t.Fatalf("%s is a %s", rankd.MetricRank, fam.GetType())
			}
			for _, m := range fam.GetMetric() {
				if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "pk" {
					t.Fatalf("labels %v", m.GetLabel())
				}
				pk := m.GetLabel()[0].GetValue()
				if _, dup := ranks[pk]; dup {
					t.Fatalf("pk %s twice", pk)
				}
				ranks[pk] = int(m.GetGauge().GetValue())
			}
		}
		return ranks
	}
	scrape := func(gz bool) map[string]int {
		t.Helper()
		req, _ := http.NewRequest("GET", web+"/metrics", nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		} else {
			req.Header.Set("Accept-Encoding", "identity")
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if (resp.Header.Get("Content-Encoding") == "gzip") != gz {
			t.Fatalf("gzip asked %v, Content-Encoding %q", gz, resp.Header.Get("Content-Encoding"))
		}
		var body io.Reader = resp.Body
		if gz {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		return parse(body)
	}
	if got := scrape(false); len(got) != 0 {
		t.Fatalf("%d ranks before the first snapshot", len(got))
	}
	srv.Refresh(context.Background())
	snap := srv.Snapshot()
	for _, gz := range []bool{false, true} {
		got := scrape(gz)
		if len(got) != snap.Count || snap.Count < 2900 {
			t.Fatalf("gzip %v: %d ranks for %d influencers", gz, len(got), snap.Count)
		}
		for pkText, rank := range got {
			pk, err := strconv.ParseInt(pkText, 10, 64)
			if err != nil {
				t.Fatalf("pk label %q", pkText)
			}
			inf, ok := snap.Lookup(pk)
			if !ok || inf.Rank != rank {
				t.Fatalf("gzip %v: pk %d has rank %d on /metrics, %d (found %v) from Lookup", gz, pk, rank, inf.Rank, ok)
			}
		}
	}
	body := get(t, web+"/metrics", 200, nil)
	if !strings.Contains(body, "rankd_rank_exposition_bytes_total{encoding=\"gzip\"}") {
		t.Fatal("the exposition's own cost is not reported")
	}
}
