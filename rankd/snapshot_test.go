package rankd

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"sort"
	"strconv"
	"testing"
	"time"
)

// population shapes of the random snapshots: the sort takes a different
// number of radix passes for each.
const (
	shapeTies  = iota // a floor holding about a tenth, a few shared values, the rest below 300k: 2 passes
	shapeWide         // anything in uint32, with 0 and MaxUint32 present: 3 passes
	shapeEqual        // one value: no pass
	shapeCount
)

// randomSnapshot builds a population with gaps (pks without data) and
// verdicts: about a third without one, the rest flagged at random.
func randomSnapshot(r *rand.Rand, n, shape int) *Snapshot {
	s := &Snapshot{PKMin: 1_000_000, f: make([]uint32, n), m: make([]meta, n)}
	for i := range n {
		if r.IntN(20) == 0 {
			continue // never polled
		}
		var f uint32
		switch shape {
		case shapeTies:
			switch r.IntN(10) {
			case 0:
				f = 5000 // the floor
			case 1:
				f = uint32(5000 + 1000*r.IntN(5))
			default:
				f = uint32(r.IntN(300000))
			}
		case shapeWide:
			f = []uint32{0, math.MaxUint32, r.Uint32(), r.Uint32(), 7}[r.IntN(5)]
		case shapeEqual:
			f = 42
		}
		var verdictMs int64
		if r.IntN(3) > 0 {
			verdictMs = 1_763_700_000_000 + r.Int64N(86_400_000)
		}
		s.set(i, rec{F: f, meta: meta{G: uint32(50 + r.IntN(2000)), Polled: pollSeconds(1_763_780_000_000 + int64(i)*17),
			Verdict: compactVerdict(verdictMs, r.IntN(4) == 0)}})
	}
	s.build(nil)
	return s
}

// TestRanksAgainstBruteForce compares every lookup, the top list, the
// suspicious list and the statistics with a direct computation on random
// populations.
func TestRanksAgainstBruteForce(t *testing.T) {
	for seed := range uint64(45) {
		r := rand.New(rand.NewPCG(seed, 7))
		n := []int{1, 2, 10, 33, 1000, 3000}[seed%6]
		shape := int(seed/6) % shapeCount
		s := randomSnapshot(r, n, shape)
		type entry struct {
			pk   int64
			f    uint32
			r    rec
			want Influencer
		}
		var all []entry
		var sum uint64
		verdicts := 0
		for i := range n {
			if r := s.rec(i); r.Polled != 0 {
				all = append(all, entry{pk: s.PKMin + int64(i), f: r.F, r: r})
				sum += uint64(r.F)
				if r.Verdict != 0 {
					verdicts++
				}
			}
		}
		seen := map[uint32]bool{}
		var distinct []uint32
		for _, e := range all {
			if !seen[e.f] {
				seen[e.f] = true
				distinct = append(distinct, e.f)
			}
		}
		if s.Count != len(all) || s.Sum != sum || s.Verdicts != verdicts || !s.isSorted() {
			t.Fatalf("seed %d: count %d sum %d verdicts %d sorted %v; want %d %d %d", seed, s.Count, s.Sum, s.Verdicts, s.isSorted(), len(all), sum, verdicts)
		}
		for k := range all {
			e := &all[k]
			more, atMost, denseAbove := 0, 0, 0
			for _, o := range all {
				if o.f > e.f {
					more++
				} else {
					atMost++
				}
			}
			for _, v := range distinct {
				if v > e.f {
					denseAbove++
				}
			}
			// Times as the exporter sent them, to the second.
			i := e.pk - s.PKMin
			polledMs := 1_763_780_000_000 + i*17
			e.want = Influencer{PK: e.pk, Followers: e.f, Following: e.r.G, PolledAt: polledMs / 1000,
				Rank: more + 1, DenseRank: denseAbove + 1, Percentile: 100 * float64(atMost) / float64(len(all))}
			if e.r.Verdict != 0 {
				e.want.HasVerdict, e.want.Suspicious, e.want.CheckedAt = true, e.r.Verdict&1 == 1, e.r.checkedAt()
			}
			if got, ok := s.Lookup(e.pk); !ok || got != e.want {
				t.Fatalf("seed %d pk %d: got %+v, want %+v", seed, e.pk, got, e.want)
			}
		}
		for i := range n {
			if _, ok := s.Lookup(s.PKMin + int64(i)); ok != (s.m[i].Polled != 0) {
				t.Fatalf("seed %d: pk %d found %v with poll time %d", seed, s.PKMin+int64(i), ok, s.m[i].Polled)
			}
		}
		for _, pk := range []int64{s.PKMin - 1, s.PKMin + int64(n), -5} {
			if _, ok := s.Lookup(pk); ok {
				t.Fatalf("seed %d: pk %d outside the snapshot was found", seed, pk)
			}
		}

		sort.Slice(all, func(a, b int) bool { return all[a].f > all[b].f || all[a].f == all[b].f && all[a].pk < all[b].pk })
		var flagged []entry
		for _, e := range all {
			if e.want.Suspicious {
				flagged = append(flagged, e)
			}
		}
		if s.Suspicious() != len(flagged) {
			t.Fatalf("seed %d: %d suspicious, want %d", seed, s.Suspicious(), len(flagged))
		}
		// Pages of both lists, including ones that cross the ends.
		for _, pg := range [][2]int{{10, 0}, {7, 3}, {1000, 0}, {5, max(len(all)-2, 0)}, {5, len(all)}, {3, max(len(flagged)-1, 0)}, {1, 1 << 30}} {
			page := s.Top(pg[0], pg[1])
			wantLen := max(0, min(pg[0], len(all)-pg[1]))
			if len(page) != wantLen {
				t.Fatalf("seed %d: Top(%d, %d) has %d entries, want %d", seed, pg[0], pg[1], len(page), wantLen)
			}
			for k, got := range page {
				if want := all[pg[1]+k].want; got != want {
					t.Fatalf("seed %d: Top(%d, %d)[%d] = %+v, want %+v", seed, pg[0], pg[1], k, got, want)
				}
			}
			page = s.SuspiciousPage(pg[0], pg[1])
			wantLen = max(0, min(pg[0], len(flagged)-pg[1]))
			if len(page) != wantLen {
				t.Fatalf("seed %d: SuspiciousPage(%d, %d) has %d entries, want %d", seed, pg[0], pg[1], len(page), wantLen)
			}
			for k, got := range page {
				if want := flagged[pg[1]+k].want; got != want {
					t.Fatalf("seed %d: SuspiciousPage(%d, %d)[%d] = %+v, want %+v", seed, pg[0], pg[1], k, got, want)
				}
			}
		}

		st := s.PopulationStats()
		if st.Suspicious != len(flagged) || st.Verdicts != verdicts {
			t.Fatalf("seed %d: stats count %d suspicious, %d verdicts; want %d, %d", seed, st.Suspicious, st.Verdicts, len(flagged), verdicts)
		}
		if len(all) > 0 && (st.Max != all[0].f || st.Min != all[len(all)-1].f || st.Average != float64(sum)/float64(len(all))) {
			t.Fatalf("seed %d: stats %+v", seed, st)
		}
		for _, q := range []float64{0.5, 0.9, 0.99} {
			if len(all) == 0 {
				break
			}
			k := int(q*float64(len(all))+0.999999) - 1 // ascending position
			if got, want := s.Quantile(q), all[len(all)-1-max(k, 0)].f; got != want {
				t.Fatalf("seed %d: quantile %v = %d, want %d", seed, q, got, want)
			}
		}
	}
}

// TestVerdictPacking: the stored verdict keeps the flag and the second.
func TestVerdictPacking(t *testing.T) {
	f := func(ms int64, susp bool, wantAt int64) {
		t.Helper()
		r := meta{Verdict: compactVerdict(ms, susp)}
		if r.hasVerdict() != (wantAt != 0) || r.suspicious() != (susp && wantAt != 0) || r.checkedAt() != wantAt {
			t.Fatalf("verdict %d ms %v: has %v suspicious %v at %d; want at %d", ms, susp, r.hasVerdict(), r.suspicious(), r.checkedAt(), wantAt)
		}
	}
	f(0, true, 0)
	f(-1, false, 0)
	f(1_763_780_123_999, true, 1_763_780_123)
	f(1_763_780_123_000, false, 1_763_780_123)
	f(verdictEpoch*1000, false, verdictEpoch)            // the epoch itself is a verdict
	f(5, true, verdictEpoch)                             // a clock before 2020: dated at the epoch
	f(math.MaxInt64, true, verdictEpoch+math.MaxInt32-1) // 2088: clamped
	if pollSeconds(0) != 0 || pollSeconds(999) != 1 || pollSeconds(1_763_780_123_456) != 1_763_780_123 || pollSeconds(math.MaxInt64) != math.MaxUint32 {
		t.Fatal("poll times: 0 stays no data, any poll is at least 1 s, seconds are truncated, far futures clamp")
	}
}

func TestEmptySnapshot(t *testing.T) {
	s := &Snapshot{PKMin: 5}
	s.build(nil)
	if _, ok := s.Lookup(5); ok || s.Count != 0 || len(s.Top(10, 0)) != 0 || len(s.SuspiciousPage(10, 0)) != 0 {
		t.Fatal("an empty snapshot must find nothing")
	}
	if st := s.PopulationStats(); st.Count != 0 || st.Average != 0 || st.Suspicious != 0 {
		t.Fatalf("stats of nothing: %+v", st)
	}
}

// toJSON is the answer for inf as a struct: what encoding/json must agree
// with the hand encoder on.
func toJSON(inf Influencer, total int) InfluencerJSON {
	j := InfluencerJSON{PK: inf.PK, Username: "influencer-" + strconv.FormatInt(inf.PK, 10),
		FollowerCount: inf.Followers, FollowingCount: inf.Following,
		Rank: inf.Rank, DenseRank: inf.DenseRank, Percentile: roundPercentile(inf.Percentile), Total: total,
		PolledAt: time.Unix(inf.PolledAt, 0).UTC().Format(time.RFC3339)}
	if inf.Following > 0 {
		r := float64(inf.Followers) / float64(inf.Following)
		j.FollowerRatio = &r
	}
	if inf.HasVerdict {
		v := inf.Suspicious
		j.Suspicious = &v
		j.CheckedAt = time.Unix(inf.CheckedAt, 0).UTC().Format(time.RFC3339)
	}
	return j
}

// influencerCases are hand-picked edge cases and random influencers.
func influencerCases() []Influencer {
	infs := []Influencer{
		{PK: 1000001, Followers: 57166, Following: 1328, PolledAt: 1763780210, Rank: 12, DenseRank: 10, Percentile: 99.99883},
		{PK: 1000002, Followers: 5000, Following: 1328, PolledAt: 1763780210, Rank: 904001, DenseRank: 250000, Percentile: 9.5,
			HasVerdict: true, Suspicious: true, CheckedAt: 1763730001},
		{PK: 1000003, HasVerdict: true, CheckedAt: 1763730001},                                               // not suspicious, following 0: ratio null
		{PK: 7, Followers: 1, Following: math.MaxUint32, Percentile: 1e-7},                                   // a ratio in exponent form, a percentile rounded to 0
		{PK: math.MaxInt64, Followers: math.MaxUint32, Following: 1, Rank: 1, DenseRank: 1, Percentile: 100}, // the largest numbers
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		infs = append(infs, Influencer{PK: r.Int64N(1 << 40), Followers: r.Uint32(), Following: r.Uint32N(3000),
			PolledAt: r.Int64N(1 << 33), Rank: r.IntN(1e6), DenseRank: r.IntN(1e6), Percentile: 100 * r.Float64(),
			HasVerdict: r.IntN(2) == 0, Suspicious: r.IntN(2) == 0, CheckedAt: r.Int64N(1 << 33)})
	}
	for i := range infs {
		if !infs[i].HasVerdict {
			infs[i].Suspicious, infs[i].CheckedAt = false, 0
		}
	}
	return infs
}

// TestInfluencerEncoding: the hand encoder writes what encoding/json would.
func TestInfluencerEncoding(t *testing.T) {
	for _, inf := range influencerCases() {
		want, _ := json.Marshal(toJSON(inf, 1_000_000))
		if got := appendInfluencer(nil, inf, 1_000_000); string(got) != string(want) {
			t.Fatalf("hand encoding of %+v\n%s\nencoding/json\n%s", inf, got, want)
		}
	}
}

// TestListEncoding: /top and /suspicious pages are what encoding/json
// would write for ListJSON, empty pages included.
func TestListEncoding(t *testing.T) {
	all := influencerCases()
	for _, c := range []struct{ n, limit, offset, total int }{{0, 0, 0, 0}, {0, 10, 5, 3}, {1, 0, 0, 1}, {100, 100, 900, 1005}, {len(all), 0, 0, len(all)}} {
		infs := all[:c.n]
		entries := make([]InfluencerJSON, 0, len(infs))
		for _, inf := range infs {
			entries = append(entries, toJSON(inf, 123))
		}
		want, _ := json.Marshal(ListJSON{Influencers: entries, Limit: c.limit, Offset: c.offset, Total: c.total})
		rec := httptest.NewRecorder()
		writeList(rec, infs, 123, c.limit, c.offset, c.total)
		if got := rec.Body.String(); got != string(want)+"\n" {
			t.Fatalf("%+v: hand encoding\n%.300s\nencoding/json\n%.300s", c, got, want)
		}
		if ct, cl := rec.Header().Get("Content-Type"), rec.Header().Get("Content-Length"); ct != "application/json" || cl != strconv.Itoa(rec.Body.Len()) {
			t.Fatalf("Content-Type %q, Content-Length %q for %d bytes", ct, cl, rec.Body.Len())
		}
	}
}

// isSorted checks the order build promises.
func (s *Snapshot) isSorted() bool {
	return sort.SliceIsSorted(s.order, func(a, b int) bool {
		fa, fb := s.f[s.order[a]], s.f[s.order[b]]
		return fa > fb || fa == fb && s.order[a] < s.order[b]
	})
}

// TestBuildLarge: a population far larger than the brute-force ones keeps
// every invariant; sampled lookups match brute force.
func TestBuildLarge(t *testing.T) {
	for _, shape := range []int{shapeTies, shapeWide} {
		r := rand.New(rand.NewPCG(uint64(shape), 9))
		const n = 80_123
		s := randomSnapshot(r, n, shape)
		s.build(&buildScratch{}) // again, with a fresh scratch
		var count, verdicts int
		var sum uint64
		for i := range n {
			if s.m[i].Polled != 0 {
				count++
				sum += uint64(s.f[i])
				if s.m[i].Verdict != 0 {
					verdicts++
				}
			}
		}
		if s.Count != count || s.Sum != sum || s.Verdicts != verdicts || len(s.order) != count || !s.isSorted() {
			t.Fatalf("shape %d: count %d sum %d verdicts %d sorted %v; want %d %d %d", shape, s.Count, s.Sum, s.Verdicts, s.isSorted(), count, sum, verdicts)
		}
		var flagged []int32
		for _, i := range s.order {
			if s.m[i].suspicious() {
				flagged = append(flagged, i)
			}
		}
		if fmt.Sprint(flagged) != fmt.Sprint(s.flagged) {
			t.Fatalf("shape %d: the suspicious list is not the flagged influencers in order", shape)
		}
		for range 300 {
			i := r.IntN(n)
			if s.m[i].Polled == 0 {
				continue
			}
			f := s.f[i]
			more, distinct := 0, map[uint32]bool{}
			for j := range n {
				if s.m[j].Polled != 0 && s.f[j] > f {
					more++
					distinct[s.f[j]] = true
				}
			}
			if inf, _ := s.Lookup(s.PKMin + int64(i)); inf.Rank != more+1 || inf.DenseRank != len(distinct)+1 {
				t.Fatalf("shape %d pk %d: rank %d dense %d, want %d %d", shape, s.PKMin+int64(i), inf.Rank, inf.DenseRank, more+1, len(distinct)+1)
			}
		}
	}
}
