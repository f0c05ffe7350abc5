package rankd

import (
	"math"
	"math/bits"
	"slices"
)

// Gains: at every snapshot refresh, each window's follower gains (the
// snapshot's followerCount minus the window's baseline) are sorted once,
// so that a gain's competition rank is a search and the movers lists are
// ready-made pages. Per window and snapshot it costs 4 bytes an influencer
// with a baseline (the sorted gains) plus the two movers lists; the
// baselines themselves are 12 bytes (baseline.go).

// maxMovers is how far /api/v1/movers pages: the first 10,000 gainers and
// the first 10,000 losers of each window.
const maxMovers = 10_000

// gainIndex is one window's gains over one snapshot.
type gainIndex struct {
	base *baseline // nil until the window's first baselines are read
	off  int64     // snapshot index + off = baseline index
	// sorted holds the follower gain of every influencer with data and a
	// baseline, descending (clamped to int32: a gain beyond ±2.1 billion
	// ranks as that). coarse[b] is sorted[b*coarseStep].
	sorted, coarse []int32
	// top and bottom are snapshot indexes of the first maxMovers gainers
	// (gain descending, then pk ascending) and losers (gain ascending,
	// then pk ascending).
	top, bottom []int32
	Sum         int64 // of the follower gains
}

// Count is the number of influencers with a gain in the window.
func (x *gainIndex) Count() int { return len(x.sorted) }

// gain is the follower gain of snapshot index i, which must have data and
// a baseline.
func (x *gainIndex) gain(s *Snapshot, i int) int64 {
	return int64(s.f[i]) - int64(x.base.f[int64(i)+x.off])
}

func clamp32(g int64) int32 { return int32(min(max(g, math.MinInt32), math.MaxInt32)) }

// above is the number of influencers with a gain strictly greater than g:
// a binary search of the coarse fences (in cache), then of at most 64
// sorted gains (four cache lines).
func (x *gainIndex) above(g int32) int {
	lo, hi := 0, len(x.coarse)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.coarse[m] > g {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return 0
	}
	a, b := (lo-1)*coarseStep+1, min(lo*coarseStep, len(x.sorted))
	for a < b {
		m := int(uint(a+b) >> 1)
		if x.sorted[m] > g {
			a = m + 1
		} else {
			b = m
		}
	}
	return a
}

// Rank is the competition rank of a follower gain: 1 + the influencers
// with a strictly greater one.
func (x *gainIndex) Rank(g int64) int { return x.above(clamp32(g)) + 1 }

// Quantile is the gain at or below which a share q of the influencers lie
// (nearest rank, as the follower quantiles).
func (x *gainIndex) Quantile(q float64) int32 {
	n := len(x.sorted)
	if n == 0 {
		return 0
	}
	k := int(q*float64(n)+0.999999) - 1
	k = min(max(k, 0), n-1)
	return x.sorted[n-1-k]
}

// build computes the window's gains over s (ordered already) against b.
func (x *gainIndex) build(s *Snapshot, b *baseline, sc *buildScratch) {
	x.base, x.Sum = b, 0
	x.sorted, x.coarse, x.top, x.bottom = x.sorted[:0], x.coarse[:0], x.top[:0], x.bottom[:0]
	if b == nil {
		return
	}
	x.off = s.PKMin - b.PKMin
	x.sorted = resizeNoClear(x.sorted, s.Count)
	n := 0
	lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
	for i := range s.m {
		if s.m[i].Polled == 0 || !b.has(int64(i)+x.off) {
			continue
		}
		g := x.gain(s, i)
		x.Sum += g
		c := clamp32(g)
		lo, hi = min(lo, c), max(hi, c)
		x.sorted[n] = c
		n++
	}
	x.sorted = x.sorted[:n]
	if n == 0 {
		return
	}
	sc.gains = resizeNoClear(sc.gains, n)
	sortDescending(x.sorted, sc.gains, lo, hi)
	for k := 0; k < n; k += coarseStep {
		x.coarse = append(x.coarse, x.sorted[k])
	}
	x.top = x.movers(s, sc, true)
	x.bottom = x.movers(s, sc, false)
}

// movers selects the first maxMovers gainers (or losers) and orders them
// by gain, then pk. The sorted gains give the gain of the last one; a scan
// in pk order takes every gain beyond it and, of the ties at it, the
// lowest pks.
func (x *gainIndex) movers(s *Snapshot, sc *buildScratch, gainers bool) []int32 {
	n := len(x.sorted)
	k := min(n, maxMovers)
	edge := x.sorted[k-1]
	beyond := x.above(edge) // gainers: strictly greater than edge
	if !gainers {           // strictly less than edge: n - at least edge
		edge, beyond = x.sorted[n-k], 0
		if edge > math.MinInt32 {
			beyond = n - x.above(edge-1)
		}
	}
	ties := k - beyond
	sc.pairs = sc.pairs[:0]
	for i := range s.m {
		if s.m[i].Polled == 0 || !x.base.has(int64(i)+x.off) {
			continue
		}
		g := clamp32(x.gain(s, i))
		take := false
		switch {
		case gainers && g > edge, !gainers && g < edge:
			take = true
		case g == edge && ties > 0:
			take, ties = true, ties-1
		}
		if take {
			key := uint32(g) ^ 1<<31 // ascending gains
			if gainers {
				key = ^key
			}
			sc.pairs = append(sc.pairs, uint64(key)<<32|uint64(uint32(i)))
		}
	}
	slices.Sort(sc.pairs)
	var out []int32
	if gainers {
		out = x.top
	} else {
		out = x.bottom
	}
	out = out[:0]
	for _, p := range sc.pairs {
		out = append(out, int32(uint32(p)))
	}
	return out
}

// sortDescending sorts gains, all in lo..hi, in descending order: an LSD
// radix sort on hi - gain with as few passes of at most 11 bits as the
// spread needs (one or two for an hour's gains).
func sortDescending(a, tmp []int32, lo, hi int32) {
	width := bits.Len32(uint32(hi) - uint32(lo))
	if width == 0 {
		return
	}
	passes := (width + 10) / 11
	digit := uint((width + passes - 1) / passes)
	mask := uint32(1)<<digit - 1
	var counts [3][2049]int
	for _, g := range a {
		key := uint32(hi) - uint32(g)
		for p := range passes {
			counts[p][(key>>(uint(p)*digit))&mask+1]++
		}
	}
	src, dst := a, tmp
	for p := range passes {
		c := &counts[p]
		for d := 1; d <= int(mask)+1; d++ {
			c[d] += c[d-1]
		}
		shift := uint(p) * digit
		for _, g := range src {
			d := ((uint32(hi) - uint32(g)) >> shift) & mask
			dst[c[d]] = g
			c[d]++
		}
		src, dst = dst, src
	}
	if passes%2 == 1 {
		copy(a, tmp)
	}
}

// buildGains computes every window's gains over s against bases (nil for
// a window not read yet).
func (s *Snapshot) buildGains(bases []*baseline, sc *buildScratch) {
	if cap(s.gains) < len(bases) {
		s.gains = make([]gainIndex, len(bases))
	}
	s.gains = s.gains[:len(bases)]
	for k, b := range bases {
		s.gains[k].build(s, b, sc)
	}
}

// Gain is one window's gains of one influencer.
type Gain struct {
	Loaded                       bool  // false: the window's baselines are not read yet
	Has                          bool  // false: no baseline that old for the influencer
	Followers, Following         int64 // gained since the baseline
	BaseFollowers, BaseFollowing uint32
	Rank, Total                  int   // competition rank of the follower gain among Total
	From                         int64 // Unix ms of the baseline sample
}

// Gains appends the gains of pk, which must have data, in every window
// window, in window order.
func (s *Snapshot) Gains(pk int64, dst []Gain) []Gain {
	i := pk - s.PKMin
	for k := range s.gains {
		x := &s.gains[k]
		if x.base == nil {
			dst = append(dst, Gain{})
			continue
		}
		j := i + x.off
		if !x.base.has(j) || i < 0 || i >= int64(len(s.f)) || s.m[i].Polled == 0 {
			dst = append(dst, Gain{Loaded: true, Total: x.Count()})
			continue
		}
		bf, bg := x.base.f[j], x.base.g[j]
		g := int64(s.f[i]) - int64(bf)
		dst = append(dst, Gain{Loaded: true, Has: true, Followers: g, Following: int64(s.m[i].G) - int64(bg), BaseFollowers: bf, BaseFollowing: bg,
			Rank: x.Rank(g), Total: x.Count(), From: x.base.from(j)})
	}
	return dst
}

// Mover is one entry of a movers page.
type Mover struct {
	PK   int64
	Gain int64
	Rank int
}

// Movers returns up to limit of window k's gainers (or losers) from
// position offset of its list, and the number of influencers with a gain
// in the window.
func (s *Snapshot) Movers(k int, gainers bool, limit, offset int) ([]Mover, int) {
	x := &s.gains[k]
	list := x.top
	if !gainers {
		list = x.bottom
	}
	if offset < 0 || offset >= len(list) || limit <= 0 {
		return nil, x.Count()
	}
	end := min(len(list), offset+limit)
	out := make([]Mover, 0, end-offset)
	for _, i := range list[offset:end] {
		g := x.gain(s, int(i))
		out = append(out, Mover{PK: s.PKMin + int64(i), Gain: g, Rank: x.Rank(g)})
	}
	return out, x.Count()
}
