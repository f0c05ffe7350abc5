package rankd_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

// TestGainsFromVictoria: a real VictoriaMetrics holds 30 days of synthetic
// history, imported through its import API: around each window's start,
// samples inside the lookback, just outside it, exactly on its edges,
// after the start, and influencers with no sample there or with followers
// but no following. rankd's gains, gain ranks, movers and "from" times
// must equal what the samples VictoriaMetrics returns give, exactly; a
// restarted rankd answers the same.
func TestGainsFromVictoria(t *testing.T) {
	const n = 240
	vm := vmtest.Run(t, stack.Victoria{DataDir: t.TempDir(), QueryFresh: true, LogLevel: "WARN"})
	windows, err := rankd.ParseWindows(rankd.DefaultWindows)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second).Add(-time.Minute)
	lookback := 2 * time.Minute
	r := rand.New(rand.NewPCG(11, 12))

	// Current counts: ties on purpose, and some influencers never polled.
	recs := make([]snapwire.Record, n)
	for i := range recs {
		if i%41 == 40 {
			continue
		}
		recs[i] = snapwire.Record{Followers: uint32(50_000 + 1000*(i%9)), Following: uint32(300 + i%5), TimeMs: now.UnixMilli() - int64(i)*100}
	}
	exp := startFake(t, pkMin, 1, recs)

	var body bytes.Buffer
	sample := func(metric string, pk int64, v int64, ts time.Time) {
		fmt.Fprintf(&body, "%s{pk=\"%d\"} %d %d\n", metric, pk, v, ts.UnixMilli())
	}
	for _, w := range windows {
		t0 := now.Add(-w.D)
		for i := range n {
			pk := int64(pkMin + i)
			both := func(v int64, ts time.Time) {
				sample("mockstagram_influencer_followers", pk, v, ts)
				sample("mockstagram_influencer_following", pk, 200+v%97, ts)
			}
			gainSteps := []int64{-1500, -20, 0, 0, 20, 20, 300, 4000}
			base := int64(recs[i].Followers) - gainSteps[r.IntN(len(gainSteps))]
			switch r.IntN(8) {
			case 0: // nothing near the window start
				both(base+1, t0.Add(-lookback-time.Minute))
			case 1: // followers in the lookback, following not
				sample("mockstagram_influencer_followers", pk, base, t0.Add(-time.Second))
				sample("mockstagram_influencer_following", pk, 10, t0.Add(-lookback-time.Second))
			case 2: // exactly on the exclusive lower edge, and exactly on the start
				both(base+7, t0.Add(-lookback))
				both(base, t0)
			case 3: // only on the lower edge: outside
				both(base, t0.Add(-lookback))
			default: // one to three samples in the lookback, one after the start
				k := 1 + r.IntN(3)
				for j := range k {
					ts := t0.Add(-lookback + time.Duration(j+1)*lookback/time.Duration(k+1) + time.Duration(r.IntN(999))*time.Millisecond)
					v := base + int64(k-1-j)*13 // the last one is base
					both(v, ts)
				}
				both(base+999, t0.Add(time.Duration(1+r.IntN(30_000))*time.Millisecond))
			}
		}
	}
	vm.Import(t, "/api/v1/import/prometheus", &body)

	// What the stored samples give: the last sample of each metric in
	// (t0 - lookback, t0], for every pk with both.
	type want struct {
		f, g  int64
		from  int64
		has   bool
		gainF int64
	}
	expect := make([]map[int64]want, len(windows))
	for k, w := range windows {
		t0 := now.Add(-w.D)
		last := map[string]map[int64]vmtest.Point{}
		for _, m := range []string{"mockstagram_influencer_followers", "mockstagram_influencer_following"} {
			last[m] = map[int64]vmtest.Point{}
			for _, s := range vm.Export(t, m, t0.Add(-lookback+time.Millisecond), t0) {
				var pk int64
				fmt.Sscan(s.Metric["pk"], &pk)
				for _, p := range s.Values {
					if p.T > t0.Add(-lookback).UnixMilli() && p.T <= t0.UnixMilli() && p.T >= last[m][pk].T {
						last[m][pk] = p
					}
				}
			}
		}
		expect[k] = map[int64]want{}
		for i := range n {
			pk := int64(pkMin + i)
			pf, okF := last["mockstagram_influencer_followers"][pk]
			pg, okG := last["mockstagram_influencer_following"][pk]
			if okF && okG && recs[i].TimeMs != 0 {
				expect[k][pk] = want{f: int64(pf.V), g: int64(pg.V), from: pf.T, has: true, gainF: int64(recs[i].Followers) - int64(pf.V)}
			}
		}
		if len(expect[k]) < n/2 || len(expect[k]) == n {
			t.Fatalf("window %s: %d of %d influencers with a baseline; the history is not what the test means", w.Name, len(expect[k]), n)
		}
	}

	newRankd := func() string {
		srv, err := rankd.New(rankd.Config{Sources: []string{exp.URL}, Refresh: time.Second, Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler),
			Victoria: vm.URL, Windows: windows, GainsLookback: lookback, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		srv.Refresh(context.Background())
		srv.ReadBaselines(context.Background(), true)
		for _, st := range srv.GainsStatus() {
			if st.LastError != "" || st.LastRead.IsZero() {
				t.Fatalf("baselines of %s: %+v", st.Window, st)
			}
		}
		srv.Refresh(context.Background())
		web := httptest.NewServer(srv.Handler())
		t.Cleanup(web.Close)
		return web.URL
	}
	url := newRankd()
	answers := map[int64]string{}
	for i := range n {
		pk := int64(pkMin + i)
		if recs[i].TimeMs == 0 {
			continue
		}
		var got rankd.InfluencerJSON
		answers[pk] = get(t, fmt.Sprintf("%s/api/v1/influencers/%d", url, pk), 200, &got)
		oldest := (recs[i].TimeMs / 1000) * 1000
		for k := range windows {
			if e, ok := expect[k][pk]; ok {
				oldest = min(oldest, e.from)
			}
		}
		for k, w := range windows {
			e, ok := expect[k][pk]
			g, has := got.Gains[w.Name]
			if ok != has {
				t.Fatalf("pk %d window %s: gains %+v, want present=%v (%+v)", pk, w.Name, g, ok, e)
			}
			if !ok {
				wantFrom := time.UnixMilli(oldest + w.D.Milliseconds()).UTC().Format(time.RFC3339Nano)
				if got.AvailableFrom[w.Name] != wantFrom {
					t.Fatalf("pk %d window %s: availableFrom %q, want %q: %s", pk, w.Name, got.AvailableFrom[w.Name], wantFrom, answers[pk])
				}
				continue
			}
			rank := 1
			for _, o := range expect[k] {
				if o.gainF > e.gainF {
					rank++
				}
			}
			from := time.UnixMilli(e.from).UTC().Format(time.RFC3339Nano)
			if g.Followers != e.gainF || g.Following != int64(recs[i].Following)-e.g || g.Rank != rank || g.Total != len(expect[k]) || g.From != from {
				t.Fatalf("pk %d window %s: %+v, want followers %d following %d rank %d of %d from %s", pk, w.Name, g,
					e.gainF, int64(recs[i].Following)-e.g, rank, len(expect[k]), from)
			}
			if _, dup := got.AvailableFrom[w.Name]; dup {
				t.Fatalf("pk %d window %s: availableFrom beside gains: %+v", pk, w.Name, got.AvailableFrom)
			}
		}
	}

	// Movers: every gainer and loser in order, paged.
	for k, w := range windows {
		var all []rankd.MoverJSON
		for pk, e := range expect[k] {
			rank := 1
			for _, o := range expect[k] {
				if o.gainF > e.gainF {
					rank++
				}
			}
			all = append(all, rankd.MoverJSON{PK: pk, Gain: e.gainF, Rank: rank})
		}
		for _, order := range []string{"gainers", "losers"} {
			slices.SortFunc(all, func(a, b rankd.MoverJSON) int {
				c := cmp.Compare(b.Gain, a.Gain)
				if order == "losers" {
					c = -c
				}
				return cmp.Or(c, cmp.Compare(a.PK, b.PK))
			})
			var got []rankd.MoverJSON
			for offset := 0; offset < len(all)+7; offset += 7 {
				var page rankd.MoversJSON
				get(t, fmt.Sprintf("%s/api/v1/movers?window=%s&order=%s&limit=7&offset=%d", url, w.Name, order, offset), 200, &page)
				if page.Total != len(all) || page.Window != w.Name || page.Order != order || page.Offset != offset || page.Limit != 7 {
					t.Fatalf("movers %s %s offset %d: %+v", w.Name, order, offset, page)
				}
				got = append(got, page.Items...)
			}
			if !slices.Equal(got, all) {
				t.Fatalf("movers %s %s:\n got %v\nwant %v", w.Name, order, got, all)
			}
		}
	}

	// Population gain statistics, on the API and as gauges.
	var avg rankd.AverageJSON
	get(t, url+"/api/v1/average", 200, &avg)
	metrics := get(t, url+"/metrics", 200, nil)
	for k, w := range windows {
		st, ok := avg.Gains[w.Name]
		if !ok || st.Count != len(expect[k]) {
			t.Fatalf("average gains %s: %+v, want count %d", w.Name, st, len(expect[k]))
		}
		var sum int64
		for _, e := range expect[k] {
			sum += e.gainF
		}
		if st.Average != float64(sum)/float64(len(expect[k])) {
			t.Fatalf("average gain %s = %v, want %v", w.Name, st.Average, float64(sum)/float64(len(expect[k])))
		}
		for _, line := range []string{
			fmt.Sprintf("mockstagram_population_gain_influencers{window=%q} %d", w.Name, len(expect[k])),
			fmt.Sprintf("mockstagram_population_followers_gain{quantile=\"1\",window=%q} %d", w.Name, st.Max),
		} {
			if !strings.Contains(metrics, line+"\n") {
				t.Fatalf("/metrics lacks %q", line)
			}
		}
	}

	// Bad parameters name the valid values.
	for q, msg := range map[string]string{
		"window=2h":            `window=\"2h\" must be one of 1h, 24h, 7d, 30d (--gains.windows)`,
		"order=up":             `window=\"\" must be one of 1h, 24h, 7d, 30d (--gains.windows)`,
		"window=24h&order=up":  `order=\"up\" must be gainers or losers`,
		"window=24h&limit=0":   `limit=\"0\" must be an integer in 1..1000`,
		"window=24h&offset=-1": `offset=\"-1\" must be an integer in 0..2147483647`,
	} {
		ans := get(t, url+"/api/v1/movers?"+q, 400, nil)
		if !strings.Contains(ans, msg) {
			t.Fatalf("movers?%s: %s, want %s", q, ans, msg)
		}
	}

	// A restarted rankd reads the same baselines back: the same answers.
	url2 := newRankd()
	for pk, want := range answers {
		if got := get(t, fmt.Sprintf("%s/api/v1/influencers/%d", url2, pk), 200, nil); got != want {
			t.Fatalf("after a restart pk %d:\n%s\nbefore:\n%s", pk, got, want)
		}
	}
}
