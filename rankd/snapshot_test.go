package rankd

import (
	"encoding/json"
	"math/rand/v2"
	"sort"
	"testing"
)

// randomSnapshot builds a population with heavy ties: a floor that holds
// about a tenth of the influencers, a few repeated values, and gaps (pks
// without data).
func randomSnapshot(r *rand.Rand, n int) *Snapshot {
	s := &Snapshot{PKMin: 1_000_000, followers: make([]uint32, n), following: make([]uint32, n), timeMs: make([]int64, n)}
	for i := range n {
		if r.IntN(20) == 0 {
			continue // never polled
		}
		var f uint32
		switch r.IntN(10) {
		case 0:
			f = 5000 // the floor
		case 1:
			f = uint32(5000 + 1000*r.IntN(5)) // a few shared values
		default:
			f = uint32(r.IntN(300000))
		}
		s.followers[i], s.following[i], s.timeMs[i] = f, uint32(50+r.IntN(2000)), int64(1+i)
	}
	s.build(nil)
	return s
}

// TestRanksAgainstBruteForce compares rank, dense rank, percentile, top-N
// and the statistics with a direct computation on random populations.
func TestRanksAgainstBruteForce(t *testing.T) {
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 7))
		n := []int{1, 2, 10, 1000, 5000}[seed%5]
		s := randomSnapshot(r, n)
		var vals []uint32
		var sum uint64
		for i := range n {
			if s.timeMs[i] != 0 {
				vals = append(vals, s.followers[i])
				sum += uint64(s.followers[i])
			}
		}
		distinct := map[uint32]bool{}
		for _, v := range vals {
			distinct[v] = true
		}
		if s.Count != len(vals) || s.Sum != sum || !s.isSorted() {
			t.Fatalf("seed %d: count %d sum %d sorted %v; want %d %d", seed, s.Count, s.Sum, s.isSorted(), len(vals), sum)
		}
		for i := range n {
			pk := s.PKMin + int64(i)
			inf, ok := s.Lookup(pk)
			if s.timeMs[i] == 0 {
				if ok {
					t.Fatalf("seed %d: pk %d has no data but was found", seed, pk)
				}
				continue
			}
			f := s.followers[i]
			more, atMost, denseAbove := 0, 0, 0
			for _, v := range vals {
				if v > f {
					more++
				}
				if v <= f {
					atMost++
				}
			}
			for v := range distinct {
				if v > f {
					denseAbove++
				}
			}
			want := Influencer{PK: pk, Followers: f, Following: s.following[i], PolledAtMs: s.timeMs[i],
				Rank: more + 1, DenseRank: denseAbove + 1, Percentile: 100 * float64(atMost) / float64(len(vals))}
			if !ok || inf != want {
				t.Fatalf("seed %d pk %d: got %+v, want %+v", seed, pk, inf, want)
			}
		}
		sorted := append([]uint32(nil), vals...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] > sorted[b] })
		top := s.Top(10, 0)
		for k, inf := range top {
			if inf.Followers != sorted[k] {
				t.Fatalf("seed %d: top[%d] has %d followers, want %d", seed, k, inf.Followers, sorted[k])
			}
			if k > 0 && inf.Followers == top[k-1].Followers && inf.PK < top[k-1].PK {
				t.Fatalf("seed %d: ties in the top list not ordered by pk", seed)
			}
		}
		st := s.PopulationStats()
		if len(vals) > 0 && (st.Max != sorted[0] || st.Min != sorted[len(sorted)-1] || st.Average != float64(sum)/float64(len(vals))) {
			t.Fatalf("seed %d: stats %+v", seed, st)
		}
		if len(vals) > 0 {
			asc := append([]uint32(nil), vals...)
			sort.Slice(asc, func(a, b int) bool { return asc[a] < asc[b] })
			for _, q := range []float64{0.5, 0.9, 0.99} {
				k := int(q*float64(len(asc))+0.999999) - 1
				if got := s.Quantile(q); got != asc[max(k, 0)] {
					t.Fatalf("seed %d: quantile %v = %d, want %d", seed, q, got, asc[max(k, 0)])
				}
			}
		}
	}
}

func TestEmptySnapshot(t *testing.T) {
	s := &Snapshot{PKMin: 5}
	s.build(nil)
	if _, ok := s.Lookup(5); ok || s.Count != 0 || len(s.Top(10, 0)) != 0 {
		t.Fatal("an empty snapshot must find nothing")
	}
	if st := s.PopulationStats(); st.Count != 0 || st.Average != 0 {
		t.Fatalf("stats of nothing: %+v", st)
	}
}

// TestInfluencerEncoding: the hand encoder writes what encoding/json would.
func TestInfluencerEncoding(t *testing.T) {
	ratio := 57166.0 / 1328
	tiny := 1e-9
	for _, j := range []InfluencerJSON{
		{PK: 1000001, Username: "influencer-1000001", FollowerCount: 57166, FollowingCount: 1328, FollowerRatio: &ratio,
			Rank: 12, DenseRank: 10, Percentile: 99.9988, Total: 1000000, PolledAt: "2026-11-22T02:56:50.898Z"},
		{PK: 5, Username: `we"ird`, FollowerCount: 5000, Percentile: 100, Total: 1, PolledAt: "x"},
		{PK: 7, FollowerRatio: &tiny, Percentile: 1e-7},
	} {
		want, _ := json.Marshal(j)
		if got := appendInfluencer(nil, j); string(got) != string(want)+"\n" {
			t.Fatalf("hand encoding\n%s\nencoding/json\n%s", got, want)
		}
	}
}

// isSorted checks the order build promises.
func (s *Snapshot) isSorted() bool {
	return sort.SliceIsSorted(s.order, func(a, b int) bool {
		fa, fb := s.followers[s.order[a]], s.followers[s.order[b]]
		return fa > fb || fa == fb && s.order[a] < s.order[b]
	})
}
