// Package rankd answers rank, average and the latest values of every
// influencer from an immutable in-memory snapshot, rebuilt from the
// exporters every few seconds and swapped atomically: a read never scans,
// sorts or waits.
package rankd

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// rec is one influencer's latest data, 16 bytes. Times are kept to the
// second, which is what the API reports. A snapshot keeps the follower
// counts in an array of their own (the sort and the rank search read only
// them, so they stay dense in cache) and the rest in a meta array.
type rec struct {
	F uint32 // followerCount
	meta
}

type meta struct {
	G      uint32 // followingCount
	Polled uint32 // Unix seconds of the poll; 0 = no data
	// Verdict is 0 without a verdict, else (1 + seconds since
	// verdictEpoch) << 1 | suspicious.
	Verdict uint32
}

// verdictEpoch is 2020-01-01T00:00:00Z: 31 bits of seconds after it last
// until 2088, and the suspicious bit shares the word.
const verdictEpoch = 1_577_836_800

// pollSeconds converts an exporter's poll time (Unix ms, 0 = never) to the
// stored form; any poll, however early, stays distinct from "no data".
func pollSeconds(ms int64) uint32 {
	if ms <= 0 {
		return 0
	}
	return uint32(min(max(ms/1000, 1), math.MaxUint32))
}

// packVerdict converts an exporter's verdict to the stored form. A verdict
// before verdictEpoch (a wrong clock) is kept, dated at the epoch.
func compactVerdict(ms int64, suspicious bool) uint32 {
	if ms <= 0 {
		return 0
	}
	s := min(max(ms/1000-verdictEpoch, 0), math.MaxInt32-1)
	v := uint32(s+1) << 1
	if suspicious {
		v |= 1
	}
	return v
}

func (r meta) hasVerdict() bool { return r.Verdict != 0 }
func (r meta) suspicious() bool { return r.Verdict&1 == 1 }

// checkedAt is the verdict's time in Unix seconds; 0 without a verdict.
func (r meta) checkedAt() int64 {
	if r.Verdict == 0 {
		return 0
	}
	return int64(r.Verdict>>1) - 1 + verdictEpoch
}

// A rank lookup finds the first order position with at most f followers
// in three steps, each touching about one cache line: a binary search of
// the coarse fences (the count at every 64th position, 62 KB for 1M, so
// in cache), a scan of at most 7 fine fences (every 8th position), then a
// count over at most 7 positions whose loads are independent, so their
// cache misses overlap. A binary search straight over the order would
// chain about 20 pairs of dependent misses (order, then followers).
const (
	fineStep   = 8
	coarseStep = 8 * fineStep
)

// Snapshot is one immutable view of the population, indexed by pk - PKMin.
// Per influencer it holds 16 bytes of data, 4 of order and about 0.75 of
// rank index (plus 4 per flagged influencer): about 21 bytes.
type Snapshot struct {
	PKMin int64
	f     []uint32 // followerCount
	m     []meta   // the rest; Polled 0 = no data

	// order holds the indexes of influencers with data by followers
	// descending, then pk ascending.
	order []int32
	// fine[j] is the follower count at order[j*fineStep], coarse[b] at
	// order[b*coarseStep].
	fine, coarse []uint32
	// starts has bit k set when order position k holds a follower count
	// different from position k-1: the count of set bits before a position
	// is the number of distinct counts above it (the dense rank - 1).
	starts bitRank
	// flagged holds the indexes of influencers judged suspicious, in
	// order's order: the /api/v1/suspicious list.
	flagged []int32
	// gains holds each gains window's sorted gains and movers (gains.go),
	// in the order of Config.Windows.
	gains []gainIndex

	Count    int    // influencers with data
	Sum      uint64 // of their followers
	Verdicts int    // influencers with data and a verdict
	Built    time.Time
	Complete bool // every source answered at least once

	readers atomic.Int64 // requests using it now; see Server.acquire
}

// Span is the number of pk slots the snapshot covers.
func (s *Snapshot) Span() int { return len(s.f) }

// rec returns the data of index i.
func (s *Snapshot) rec(i int) rec { return rec{F: s.f[i], meta: s.m[i]} }

// set stores the data of index i.
func (s *Snapshot) set(i int, r rec) { s.f[i], s.m[i] = r.F, r.meta }

// Suspicious is the number of influencers with data judged suspicious.
func (s *Snapshot) Suspicious() int { return len(s.flagged) }

// Influencer is everything rankd knows about one pk.
type Influencer struct {
	PK         int64
	Followers  uint32
	Following  uint32
	PolledAt   int64   // Unix seconds
	Rank       int     // 1 + influencers with strictly more followers
	DenseRank  int     // 1 + distinct follower counts above this one
	Percentile float64 // share of influencers with at most as many followers, in percent
	HasVerdict bool
	Suspicious bool  // the verdict; false without one
	CheckedAt  int64 // Unix seconds of the verdict; 0 without one
}

// Lookup returns the influencer at pk; ok is false when the snapshot holds
// no data for it.
func (s *Snapshot) Lookup(pk int64) (Influencer, bool) {
	i := pk - s.PKMin
	if i < 0 || i >= int64(len(s.f)) || s.m[i].Polled == 0 {
		return Influencer{}, false
	}
	r := s.rec(int(i))
	above := s.firstAtMost(r.F)
	return s.influencer(pk, r, above, s.starts.rank(above)+1), true
}

func (s *Snapshot) influencer(pk int64, r rec, above, dense int) Influencer {
	return Influencer{
		PK: pk, Followers: r.F, Following: r.G, PolledAt: int64(r.Polled),
		Rank: above + 1, DenseRank: dense,
		Percentile: 100 * float64(s.Count-above) / float64(s.Count),
		HasVerdict: r.hasVerdict(), Suspicious: r.suspicious(), CheckedAt: r.checkedAt(),
	}
}

// followersAt is the follower count at order position k.
func (s *Snapshot) followersAt(k int) uint32 { return s.f[s.order[k]] }

// firstAtMost is the first order position whose follower count is at most
// f: the number of influencers with strictly more followers than f.
func (s *Snapshot) firstAtMost(f uint32) int {
	lo, hi := 0, len(s.coarse)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.coarse[m] > f {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return 0
	}
	// The answer is after coarse fence lo-1 and at most at fence lo.
	j := (lo-1)*(coarseStep/fineStep) + 1
	for end := min(lo*(coarseStep/fineStep), len(s.fine)); j < end && s.fine[j] > f; j++ {
	}
	// Likewise between fine fences j-1 and j.
	a := (j-1)*fineStep + 1
	for _, i := range s.order[a:min(j*fineStep, len(s.order))] {
		if s.f[i] > f {
			a++
		}
	}
	return a
}

// Top returns up to n influencers from order position offset on: the
// leaderboard. One search for the first; the rest follow from the order.
func (s *Snapshot) Top(n, offset int) []Influencer {
	if offset < 0 || offset >= len(s.order) || n <= 0 {
		return nil
	}
	end := min(len(s.order), offset+n)
	out := make([]Influencer, 0, end-offset)
	above := s.firstAtMost(s.followersAt(offset))
	dense := s.starts.rank(above) + 1
	for k := offset; k < end; k++ {
		i := s.order[k]
		r := s.rec(int(i))
		if k > offset && r.F != out[len(out)-1].Followers {
			above, dense = k, dense+1
		}
		out = append(out, s.influencer(s.PKMin+int64(i), r, above, dense))
	}
	return out
}

// SuspiciousPage returns up to limit flagged influencers from position
// offset of the suspicious list (followers descending, then pk ascending).
func (s *Snapshot) SuspiciousPage(limit, offset int) []Influencer {
	if offset < 0 || offset >= len(s.flagged) || limit <= 0 {
		return nil
	}
	end := min(len(s.flagged), offset+limit)
	out := make([]Influencer, 0, end-offset)
	for _, i := range s.flagged[offset:end] {
		inf, _ := s.Lookup(s.PKMin + int64(i))
		out = append(out, inf)
	}
	return out
}

// Stats summarises the population.
type Stats struct {
	Count       int
	Sum         uint64
	Average     float64
	Min, Max    uint32
	Percentiles map[string]uint32 // "p50", "p90", "p99", "p999"
	Suspicious  int               // judged suspicious
	Verdicts    int               // with a verdict
}

// PopulationStats is free: the snapshot is ordered.
func (s *Snapshot) PopulationStats() Stats {
	st := Stats{Count: s.Count, Sum: s.Sum, Percentiles: map[string]uint32{}, Suspicious: len(s.flagged), Verdicts: s.Verdicts}
	if s.Count == 0 {
		return st
	}
	st.Average = float64(s.Sum) / float64(s.Count)
	st.Max = s.followersAt(0)
	st.Min = s.followersAt(s.Count - 1)
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}} {
		st.Percentiles[p.name] = s.Quantile(p.q)
	}
	return st
}

// Quantile is the follower count at or below which a share q of the
// influencers lie (nearest rank).
func (s *Snapshot) Quantile(q float64) uint32 {
	if s.Count == 0 {
		return 0
	}
	k := int(q*float64(s.Count)+0.999999) - 1 // nearest-rank, ascending position
	k = min(max(k, 0), s.Count-1)
	return s.followersAt(s.Count - 1 - k)
}

// bitRank is a bit set that counts the set bits before any position in
// constant time: a running count per 512 bits, then at most eight
// popcounts. It costs 0.19 bytes per bit.
type bitRank struct {
	words  []uint64
	blocks []uint32 // set bits before word 8*j
}

// reset makes room for bits 0..n-1 (and a rank query at n), all clear.
func (b *bitRank) reset(n int) {
	b.words = resize(b.words, n/64+1)
}

func (b *bitRank) set(k int) { b.words[k>>6] |= 1 << (k & 63) }

// index computes the running counts once every bit is set.
func (b *bitRank) index() {
	b.blocks = b.blocks[:0]
	c := 0
	for j, w := range b.words {
		if j%8 == 0 {
			b.blocks = append(b.blocks, uint32(c))
		}
		c += bits.OnesCount64(w)
	}
}

// rank is the number of set bits at positions below k, for k <= n.
func (b *bitRank) rank(k int) int {
	w := k >> 6
	c := int(b.blocks[w>>3])
	for j := w &^ 7; j < w; j++ {
		c += bits.OnesCount64(b.words[j])
	}
	return c + bits.OnesCount64(b.words[w]&(1<<(k&63)-1))
}

// buildScratch is reused between builds.
type buildScratch struct {
	idx     []int32  // the other half of the radix sort's ping-pong
	flagged []uint64 // bit i: index i is judged suspicious (a dense copy read in sort order)
	gains   []int32  // the other half of the gains' radix sort
	counts  [2][1<<16 + 1]int32
	pairs   []uint64 // the gainers being selected: gain key << 32 | index
	pairs2  []uint64 // and the losers
	removed []int32  // gains gone since the snapshot before
	added   []int32  // and new ones
	present []uint64 // bit i: index i has data
	changed []uint64 // bit i: index i's data changed since the snapshot before
	// sameLayout: the snapshot before covers the same pks.
	sameLayout bool
}

// build orders the snapshot's influencers and indexes them; f and m must be
// filled. sc may be nil.
func (s *Snapshot) build(sc *buildScratch) {
	if sc == nil {
		sc = &buildScratch{}
	}
	s.Sum, s.Count, s.Verdicts = 0, 0, 0
	var lo, hi uint32 = math.MaxUint32, 0
	sc.flagged = resize(sc.flagged, len(s.f)/64+1)
	for i := range s.m {
		m := &s.m[i]
		if m.Polled == 0 {
			continue
		}
		f := s.f[i]
		s.Count++
		s.Sum += uint64(f)
		lo, hi = min(lo, f), max(hi, f)
		if m.Verdict != 0 {
			s.Verdicts++
			sc.flagged[i>>6] |= uint64(m.Verdict&1) << (i & 63)
		}
	}
	s.order = resizeNoClear(s.order, s.Count)
	sc.idx = resizeNoClear(sc.idx, s.Count)
	s.sortOrder(hi, lo, sc.idx)

	s.fine, s.coarse = s.fine[:0], s.coarse[:0]
	s.flagged = s.flagged[:0]
	s.starts.reset(s.Count)
	prev := uint32(0)
	for k, i := range s.order {
		f := s.f[i]
		if k%fineStep == 0 {
			s.fine = append(s.fine, f)
			if k%coarseStep == 0 {
				s.coarse = append(s.coarse, f)
			}
		}
		if k == 0 || f != prev {
			s.starts.set(k)
			prev = f
		}
		if sc.flagged[i>>6]&(1<<(i&63)) != 0 {
			s.flagged = append(s.flagged, i)
		}
	}
	s.starts.index()
}

// sortOrder fills s.order with the indexes of the influencers with data,
// by followers descending and pk ascending. It is an LSD radix sort on
// hi - followers (so ascending keys are descending counts) with as many
// digits as the spread of the counts needs: two 10-bit passes for the
// simulator's population. The first pass reads the counts in pk order,
// which makes the stable sort order ties by pk; later passes gather each
// key from the counts, so the only buffer besides order is tmp.
func (s *Snapshot) sortOrder(hi, lo uint32, tmp []int32) {
	if s.Count == 0 {
		return
	}
	width := bits.Len32(hi - lo)
	if width == 0 { // every count equal: pk order
		k := 0
		for i := range s.m {
			if s.m[i].Polled != 0 {
				s.order[k] = int32(i)
				k++
			}
		}
		return
	}
	passes := (width + 10) / 11
	digit := uint((width + passes - 1) / passes)
	mask := uint32(1)<<digit - 1
	var counts [3][2049]int
	for i, f := range s.f {
		if s.m[i].Polled != 0 {
			key := hi - f
			for p := range passes {
				counts[p][(key>>(uint(p)*digit))&mask+1]++
			}
		}
	}
	for p := range passes {
		c := &counts[p]
		for d := 1; d <= int(mask)+1; d++ {
			c[d] += c[d-1]
		}
	}
	// The last pass must land in s.order.
	dst, other := s.order, tmp
	if passes%2 == 0 {
		dst, other = tmp, s.order
	}
	c := &counts[0]
	for i, f := range s.f {
		if s.m[i].Polled != 0 {
			d := (hi - f) & mask
			dst[c[d]] = int32(i)
			c[d]++
		}
	}
	for p := 1; p < passes; p++ {
		src := dst
		dst, other = other, src
		c := &counts[p]
		shift := uint(p) * digit
		for _, i := range src {
			d := ((hi - s.f[i]) >> shift) & mask
			dst[c[d]] = i
			c[d]++
		}
	}
}

// resize returns a zeroed slice of length n, reusing b's array when it can.
func resize[T any](b []T, n int) []T {
	b = resizeNoClear(b, n)
	clear(b)
	return b
}

// resizeNoClear returns a slice of length n with unspecified contents,
// reusing b's array when it can.
func resizeNoClear[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
