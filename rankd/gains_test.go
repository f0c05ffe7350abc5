package rankd

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// randomBaseline gives about 80% of span pks starting at lo a baseline
// near their current count in s (many gains tie: small steps, a few equal
// to the count itself, a few extremes), or anywhere when wide.
func randomBaseline(r *rand.Rand, s *Snapshot, lo int64, span int, wide bool) *baseline {
	b := &baseline{PKMin: lo, f: make([]uint32, span), gt: make([]baseRest, span),
		origin: 1_763_700_000_000, Start: time.UnixMilli(1_763_700_120_000)}
	for j := range span {
		if r.IntN(5) == 0 {
			continue
		}
		i := lo + int64(j) - s.PKMin
		cur := uint32(r.IntN(300000))
		if i >= 0 && i < int64(len(s.f)) {
			cur = s.f[i]
		}
		switch {
		case wide:
			b.f[j] = []uint32{0, math.MaxUint32, r.Uint32(), cur}[r.IntN(4)]
		case r.IntN(10) == 0:
			b.f[j] = cur // no gain
		default:
			b.f[j] = uint32(max(0, int64(cur)+int64(r.IntN(7)-3)*int64(r.IntN(3)*50)))
		}
		b.gt[j].G = uint32(r.IntN(3000))
		b.gt[j].T = uint32(1 + r.IntN(120_000))
	}
	b.index()
	return b
}

type bruteGain struct {
	i    int
	gain int64
}

// TestGainsAgainstBruteForce compares every influencer's gains and gain
// rank, the movers lists and the gain quantiles with a direct computation,
// on random populations with ties, gaps on both sides, baselines laid out
// over another pk range than the snapshot, and more influencers than the
// movers lists hold.
func TestGainsAgainstBruteForce(t *testing.T) {
	for seed := range uint64(24) {
		r := rand.New(rand.NewPCG(seed, 13))
		n := []int{1, 2, 10, 333, 3000, 14_000}[seed%6] // 14,000: more gains than the movers lists hold
		s := randomSnapshot(r, n, int(seed/6)%shapeCount)
		lo, span := s.PKMin+int64(r.IntN(3))-1, n+r.IntN(3)-1
		bases := []*baseline{randomBaseline(r, s, lo, max(span, 0), seed%4 == 3), nil}
		var sc buildScratch
		s.buildGains(bases, nil, &sc)
		checkGains(t, seed, s, bases[0], lo, span, n)
		// The next refresh: a twentieth of the influencers polled again, a
		// few appearing or gone; its gains are merged into the sorted gains
		// of this one, and must be the same as computed afresh.
		s2 := &Snapshot{PKMin: s.PKMin, f: slices.Clone(s.f), m: slices.Clone(s.m)}
		for i := range s2.f {
			switch r.IntN(40) {
			case 0, 1:
				s2.f[i] = uint32(max(0, int64(s2.f[i])+int64(r.IntN(201)-100)))
			case 2:
				s2.m[i].Polled = 0
			case 3:
				s2.m[i].Polled, s2.f[i] = 1, uint32(r.IntN(1000))
			}
		}
		s2.build(nil)
		s2.buildGains(bases, s, &sc)
		checkGains(t, seed+1000, s2, bases[0], lo, span, n)
	}
}

// checkGains compares every lookup, movers page and quantile of window 0
// of s with a direct computation from b.
func checkGains(t *testing.T, seed uint64, s *Snapshot, b *baseline, lo int64, span, n int) {
	t.Helper()
	var all []bruteGain
	for i := range s.f {
		j := int64(i) + s.PKMin - lo
		if s.m[i].Polled != 0 && j >= 0 && j < int64(span) && b.gt[j].T != 0 {
			all = append(all, bruteGain{i, int64(s.f[i]) - int64(b.f[j])})
		}
	}
	x := &s.gains[0]
	if x.Count() != len(all) {
		t.Fatalf("seed %d: %d gains, want %d", seed, x.Count(), len(all))
	}
	if n >= 14_000 && len(all) <= maxMovers {
		t.Fatalf("seed %d: %d gains, not more than the movers lists hold: the test does not check their cut", seed, len(all))
	}
	memo := map[int32]int{}
	rank := func(g int64) int {
		if k, ok := memo[clampGain(g)]; ok {
			return k
		}
		k := 1
		for _, o := range all {
			if clampGain(o.gain) > clampGain(g) {
				k++
			}
		}
		memo[clampGain(g)] = k
		return k
	}
	byPK := map[int]bruteGain{}
	for _, o := range all {
		byPK[o.i] = o
	}
	for i := -2; i < n+2; i++ {
		pk := s.PKMin + int64(i)
		got := s.Gains(pk, nil)
		if len(got) != 2 || got[1].Loaded {
			t.Fatalf("seed %d pk %d: %+v, want two windows, the second not loaded", seed, pk, got)
		}
		o, ok := byPK[i]
		if g := got[0]; !ok {
			if g.Has || !g.Loaded {
				t.Fatalf("seed %d pk %d: %+v, want no gain", seed, pk, g)
			}
			continue
		}
		j := int64(i) + s.PKMin - lo
		want := Gain{Loaded: true, Has: true, Followers: o.gain, Following: int64(s.m[i].G) - int64(b.gt[j].G), BaseFollowers: b.f[j], BaseFollowing: b.gt[j].G,
			Rank: rank(o.gain), Total: len(all), From: b.origin + int64(b.gt[j].T)}
		if got[0] != want {
			t.Fatalf("seed %d pk %d: %+v, want %+v", seed, pk, got[0], want)
		}
	}
	for _, gainers := range []bool{true, false} {
		want := slices.Clone(all)
		slices.SortStableFunc(want, func(a, c bruteGain) int { // all is in pk order; ties stay so
			ga, gc := clampGain(a.gain), clampGain(c.gain)
			if gainers {
				ga, gc = gc, ga
			}
			return cmp.Compare(ga, gc)
		})
		want = want[:min(len(want), maxMovers)]
		for _, pg := range [][2]int{{100, 0}, {1000, 0}, {7, 3}, {1000, max(0, len(want)-5)}, {10, len(want)}, {maxTop, maxMovers - 10}} {
			got, total := s.Movers(0, gainers, pg[0], pg[1])
			if total != len(all) {
				t.Fatalf("seed %d: movers total %d, want %d", seed, total, len(all))
			}
			var exp []Mover
			for k := max(pg[1], 0); k < min(len(want), pg[1]+pg[0]); k++ {
				exp = append(exp, Mover{PK: s.PKMin + int64(want[k].i), Gain: want[k].gain, Rank: rank(want[k].gain)})
			}
			if !slices.Equal(got, exp) {
				t.Fatalf("seed %d gainers=%v page %v:\n got %v\nwant %v", seed, gainers, pg, got, exp)
			}
		}
	}
	if len(all) > 0 {
		asc := make([]int32, len(all))
		var sum int64
		for k, o := range all {
			asc[k], sum = clampGain(o.gain), sum+o.gain
		}
		slices.Sort(asc)
		for _, q := range []float64{0, 0.01, 0.1, 0.5, 0.9, 0.99, 1} {
			k := min(max(int(math.Ceil(q*float64(len(asc))))-1, 0), len(asc)-1)
			if got := x.Quantile(q); got != asc[k] {
				t.Fatalf("seed %d: quantile %v = %d, want %d", seed, q, got, asc[k])
			}
		}
		if x.Sum != sum {
			t.Fatalf("seed %d: sum %d, want %d", seed, x.Sum, sum)
		}
	}
}

// TestSortDescending covers every number of radix passes and both ends of
// int32.
func TestSortDescending(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, spread := range []int64{0, 1, 2000, 5000, 1<<16 - 1, 1 << 16, 1 << 22, 1 << 32} {
		a := make([]int32, 5000)
		for k := range a {
			a[k] = int32(int64(math.MinInt32) + r.Int64N(spread+1))
		}
		lo, hi := slices.Min(a), slices.Max(a)
		want := slices.Clone(a)
		slices.Sort(want)
		slices.Reverse(want)
		var counts [2][1<<16 + 1]int32
		sortDescending(a, make([]int32, len(a)), lo, hi, &counts)
		if !slices.Equal(a, want) {
			t.Fatalf("spread %d: not sorted descending", spread)
		}
	}
}

// gainsJSON is what appendGains writes, as the documented types.
func gainsJSON(windows []Window, gains []Gain, polledAt int64) (map[string]GainJSON, map[string]string) {
	var out map[string]GainJSON
	var avail map[string]string
	oldest := polledAt * 1000
	for _, g := range gains {
		if g.Has {
			oldest = min(oldest, g.From)
		}
	}
	rel := func(gain int64, base uint32) *float64 {
		if base == 0 {
			return nil
		}
		v := relative(gain, base)
		return &v
	}
	for k, g := range gains {
		switch {
		case g.Has:
			if out == nil {
				out = map[string]GainJSON{}
			}
			out[windows[k].Name] = GainJSON{Followers: g.Followers, Following: g.Following, FollowersRelative: rel(g.Followers, g.BaseFollowers),
				FollowingRelative: rel(g.Following, g.BaseFollowing), Rank: g.Rank, Total: g.Total, From: time.UnixMilli(g.From).UTC().Format(time.RFC3339Nano)}
		case g.Loaded:
			if avail == nil {
				avail = map[string]string{}
			}
			avail[windows[k].Name] = time.UnixMilli(oldest + windows[k].D.Milliseconds()).UTC().Format(time.RFC3339Nano)
		}
	}
	return out, avail
}

// TestGainsEncoding: the hand-written gains are the bytes encoding/json
// writes for InfluencerJSON with its Gains and AvailableFrom maps.
func TestGainsEncoding(t *testing.T) {
	windows, err := ParseWindows("30d,1h,1m,24h,7d")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, inf := range influencerCases() {
		gains := make([]Gain, len(windows))
		for k := range gains {
			switch r.IntN(3) {
			case 0:
			case 1:
				gains[k] = Gain{Loaded: true, Total: r.IntN(10)}
			default:
				gains[k] = Gain{Loaded: true, Has: true, Followers: r.Int64N(2e9) - 1e9, Following: r.Int64N(2000) - 1000,
					BaseFollowers: []uint32{0, 1, 3, 5000, math.MaxUint32}[r.IntN(5)], BaseFollowing: uint32(r.IntN(3)),
					Rank: 1 + r.IntN(1e6), Total: r.IntN(1e6), From: 1_763_700_000_000 + r.Int64N(1e9)}
			}
		}
		got := append(appendGains(appendInfluencerFields(nil, inf, 1000), windows, gains, inf.PolledAt), '}')
		j := toJSON(inf, 1000)
		j.Gains, j.AvailableFrom = gainsJSON(windows, gains, inf.PolledAt)
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendGains wrote\n%s\nencoding/json writes\n%s", got, want)
		}
	}
}

func TestParseWindows(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		ws, err := ParseWindows(in)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Fatalf("ParseWindows(%q) error %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseWindows(%q): %v", in, err)
		}
		var got []string
		for _, w := range ws {
			got = append(got, w.Name+"="+strconv.FormatInt(int64(w.D/time.Second), 10))
		}
		if s := WindowNames(ws) + " " + joinStrings(got); s != want {
			t.Fatalf("ParseWindows(%q) = %s, want %s", in, s, want)
		}
	}
	f("1h,24h,7d,30d", "1h, 24h, 7d, 30d 1h=3600,24h=86400,30d=2592000,7d=604800", "")
	f(" 1m , 90s", "1m, 90s 1m=60,90s=90", "")
	f("1w", "1w 1w=604800", "")
	f("1h,60m", "", `gains.windows: "1h" and "60m" are the same window`)
	f("1h,x", "", `gains.windows: "x" is not a positive duration such as 1h, 24h, 7d or 30d`)
	f("0s", "", `gains.windows: "0s" is not a positive duration such as 1h, 24h, 7d or 30d`)
}

func joinStrings(s []string) string { return strings.Join(s, ",") }

func TestParseExportLine(t *testing.T) {
	f := func(in string, pk int64, v float64, ts int64, ok bool) {
		t.Helper()
		gpk, gv, gts, gok := parseExportLine([]byte(in))
		if gok != ok || (ok && (gpk != pk || gv != v || gts != ts)) {
			t.Fatalf("parseExportLine(%q) = %d, %v, %d, %v; want %d, %v, %d, %v", in, gpk, gv, gts, gok, pk, v, ts, ok)
		}
	}
	f("1000001,12345,1763700000123\n", 1000001, 12345, 1763700000123, true)
	f("1000001,12345,1763700000123\r\n", 1000001, 12345, 1763700000123, true)
	f("1000001,1.2345e+06,1763700000123\n", 1000001, 1234500, 1763700000123, true)
	f("1000001,1.5,1763700000123", 1000001, 1.5, 1763700000123, true) // kept out by the caller
	f("abc,5,1763700000123", -1, 5, 1763700000123, true)              // not one of ours: skipped
	f(",5,1763700000123", -1, 5, 1763700000123, true)
	f("\n", -1, 0, 0, true)
	f("1000001,5", 0, 0, 0, false)
	f("1000001,x,1", 0, 0, 0, false)
	f("1000001,5,1.5", 0, 0, 0, false)
}
