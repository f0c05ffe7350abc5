package rankd

import (
	"math"
	"math/bits"
	"slices"
)

// Gains: at every snapshot refresh, each window's follower gains (the
// snapshot's followerCount minus the window's baseline) are kept sorted,
// so that a gain's competition rank is a search and the movers lists are
// ready-made pages. Per window and snapshot it costs 4 bytes an influencer
// with a baseline (the sorted gains) plus the two movers lists; the
// baselines themselves are 12 bytes (baseline.go). docs/rankd.md, "Gains
// and movers", says what the numbers mean.

// maxMovers is how far /api/v1/movers pages: the first 10,000 gainers and
// the first 10,000 losers of each window.
const maxMovers = 10_000

// gainIndex is one window's gains over one snapshot.
type gainIndex struct {
	base *baseline // nil until the window's first baselines are read
	off  int64     // snapshot index + off = baseline index
	// sorted holds the follower gain of every influencer with data and a
	// baseline, descending (clamped to ±(2^31-1): a gain beyond 2.1
	// billion ranks as that). coarse[b] is sorted[b*gainStep].
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

// gainStep spaces the fences of the sorted gains: 16 KB of fences for 1M
// influencers, which stay in the CPU's first-level cache.
const gainStep = 256

// above is the number of influencers with a gain strictly greater than g:
// a binary search of the fences (in cache), then of at most 256 sorted
// gains (16 cache lines, the last steps within one or two).
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
	a, b := (lo-1)*gainStep+1, min(lo*gainStep, len(x.sorted))
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
func (x *gainIndex) Rank(g int64) int { return x.above(clampGain(g)) + 1 }

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

// noGain stands for "no gain" where a gain is an int32; gains are clamped
// above it.
const noGain = math.MinInt32

func clampGain(g int64) int32 { return int32(min(max(g, math.MinInt32+1), math.MaxInt32)) }

// build computes the window's gains over s (ordered already) against b:
// the gains are ordered, then one pass over every influencer picks both
// movers lists.
//
// Ordering: when prev (the same window in old, the snapshot before, nil
// if none) was built against the same baselines over the same pk layout,
// only the influencers whose data changed since (a twelfth of them at a
// 5 s refresh of 1-minute polls) can have another gain: their old gains
// are taken out of prev's sorted gains and their new ones merged in, in
// one sequential pass. Otherwise (new baselines, a new layout, or more
// than a quarter changed) a pass collects every gain and a radix sort
// orders them.
func (x *gainIndex) build(s *Snapshot, b *baseline, prev *gainIndex, old *Snapshot, sc *buildScratch) {
	x.base, x.Sum = b, 0
	x.sorted, x.coarse, x.top, x.bottom = x.sorted[:0], x.coarse[:0], x.top[:0], x.bottom[:0]
	if b == nil {
		return
	}
	x.off = s.PKMin - b.PKMin
	// The baseline's range in snapshot indexes; outside it nobody has one.
	from, to := max(0, -x.off), min(int64(len(s.f)), int64(len(b.gt))-x.off)
	has := func(t *Snapshot, i int) bool {
		return int64(i) >= from && int64(i) < to && t.m[i].Polled != 0 && b.gt[int64(i)+x.off].T != 0
	}
	merged := false
	if prev != nil && sc.sameLayout && prev.base == b && prev.off == x.off {
		removed, added := sc.removed[:0], sc.added[:0]
		rlo, rhi := int32(math.MaxInt32), int32(math.MinInt32+1)
		alo, ahi := rlo, rhi
		sum := prev.Sum
		for w, word := range sc.changed {
			for word != 0 {
				i := w<<6 | bits.TrailingZeros64(word)
				word &= word - 1
				j := int64(i) + x.off
				if has(old, i) {
					g := int64(old.f[i]) - int64(b.f[j])
					sum -= g
					c := clampGain(g)
					removed = append(removed, c)
					rlo, rhi = min(rlo, c), max(rhi, c)
				}
				if has(s, i) {
					g := int64(s.f[i]) - int64(b.f[j])
					sum += g
					c := clampGain(g)
					added = append(added, c)
					alo, ahi = min(alo, c), max(ahi, c)
				}
			}
		}
		sc.removed, sc.added = removed, added
		if n := len(prev.sorted) - len(removed) + len(added); len(removed)+len(added) <= len(prev.sorted)/4 && n > 0 {
			sc.gains = resizeNoClear(sc.gains, max(len(removed), len(added)))
			sortDescending(removed, sc.gains, rlo, rhi, &sc.counts)
			sortDescending(added, sc.gains, alo, ahi, &sc.counts)
			x.sorted = resizeNoClear(x.sorted, n)
			mergeGains(x.sorted, prev.sorted, removed, added)
			x.Sum, merged = sum, true
		}
	}
	if !merged {
		x.sorted = resizeNoClear(x.sorted, s.Count)
		n := 0
		lo, hi := int32(math.MaxInt32), int32(math.MinInt32+1)
		var sum int64
		aligned := x.off == 0 && len(b.gt) == len(s.f)
		for i := range s.f {
			var ok bool
			if aligned { // the usual case: one word of each bitmap per 64
				ok = (sc.present[i>>6]&b.set[i>>6])>>(i&63)&1 != 0
			} else {
				ok = has(s, i)
			}
			if ok {
				g := int64(s.f[i]) - int64(b.f[int64(i)+x.off])
				sum += g
				c := clampGain(g)
				lo, hi = min(lo, c), max(hi, c)
				x.sorted[n] = c
				n++
			}
		}
		x.sorted, x.Sum = x.sorted[:n], sum
		if n == 0 {
			return
		}
		sc.gains = resizeNoClear(sc.gains, n)
		sortDescending(x.sorted, sc.gains, lo, hi, &sc.counts)
	}
	for k := 0; k < len(x.sorted); k += gainStep {
		x.coarse = append(x.coarse, x.sorted[k])
	}
	x.movers(s, has, sc)
}

// mergeGains writes into dst (descending) the gains of prev (descending)
// without one occurrence of each of removed and with added (both
// descending). removed must be a sub-multiset of prev.
func mergeGains(dst, prev, removed, added []int32) {
	k, r, a := 0, 0, 0
	for _, g := range prev {
		if r < len(removed) && removed[r] == g {
			r++
			continue
		}
		for a < len(added) && added[a] > g {
			dst[k] = added[a]
			k, a = k+1, a+1
		}
		dst[k] = g
		k++
	}
	k += copy(dst[k:], added[a:])
}

// movers selects the first maxMovers gainers and losers and orders them
// by gain, then pk. The sorted gains give the gain of the last one of
// each list; one pass in pk order takes every gain beyond it and, of the
// ties at it, the lowest pks.
func (x *gainIndex) movers(s *Snapshot, has func(*Snapshot, int) bool, sc *buildScratch) {
	n := len(x.sorted)
	k := min(n, maxMovers)
	topEdge, botEdge := x.sorted[k-1], x.sorted[n-k]
	topTies := k - x.above(topEdge)         // k minus those strictly greater
	botTies := k - (n - x.above(botEdge-1)) // k minus those strictly less (botEdge > noGain)
	top, bot := sc.pairs[:0], sc.pairs2[:0]
	b := x.base
	aligned := x.off == 0 && len(b.gt) == len(s.f)
	for i, f := range s.f {
		var ok bool
		if aligned {
			ok = (sc.present[i>>6]&b.set[i>>6])>>(i&63)&1 != 0
		} else {
			ok = has(s, i)
		}
		if !ok {
			continue
		}
		g := clampGain(int64(f) - int64(b.f[int64(i)+x.off]))
		if g > topEdge || g == topEdge && topTies > 0 {
			if g == topEdge {
				topTies--
			}
			top = append(top, uint64(^(uint32(g)^1<<31))<<32|uint64(uint32(i))) // gain descending, then pk
		}
		if g < botEdge || g == botEdge && botTies > 0 {
			if g == botEdge {
				botTies--
			}
			bot = append(bot, uint64(uint32(g)^1<<31)<<32|uint64(uint32(i))) // gain ascending, then pk
		}
	}
	slices.Sort(top)
	slices.Sort(bot)
	sc.pairs, sc.pairs2 = top, bot
	for _, p := range top {
		x.top = append(x.top, int32(uint32(p)))
	}
	for _, p := range bot {
		x.bottom = append(x.bottom, int32(uint32(p)))
	}
}

// sortDescending sorts gains, all in lo..hi, in descending order, using
// tmp (at least as long as a): an LSD
// radix sort on hi - gain with as few passes of at most 16 bits as the
// spread needs (one for a spread below 65,536, two up to 4 billion).
func sortDescending(a, tmp []int32, lo, hi int32, counts *[2][1<<16 + 1]int32) {
	width := bits.Len32(uint32(hi) - uint32(lo))
	if width == 0 {
		return
	}
	passes := (width + 15) / 16
	digit := uint((width + passes - 1) / passes)
	mask := uint32(1)<<digit - 1
	for p := range passes {
		clear(counts[p][:mask+2])
	}
	tmp = tmp[:len(a)]
	h := uint32(hi)
	if passes == 1 {
		c := &counts[0]
		for _, g := range a {
			c[(h-uint32(g))+1]++
		}
	} else {
		c0, c1 := &counts[0], &counts[1]
		for _, g := range a {
			key := h - uint32(g)
			c0[key&mask+1]++
			c1[key>>digit+1]++
		}
	}
	src, dst := a, tmp
	for p := range passes {
		c := &counts[p]
		for d := uint32(1); d <= mask+1; d++ {
			c[d] += c[d-1]
		}
		shift := uint(p) * digit
		for _, g := range src {
			d := ((h - uint32(g)) >> shift) & mask
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
// a window not read yet). old is the snapshot before (nil if none), whose
// gains are reused where they can be.
func (s *Snapshot) buildGains(bases []*baseline, old *Snapshot, sc *buildScratch) {
	if cap(s.gains) < len(bases) {
		s.gains = make([]gainIndex, len(bases))
	}
	s.gains = s.gains[:len(bases)]
	// Once for every window: which influencers have data, and which
	// changed since old (when it has the same layout).
	words := len(s.f)/64 + 1
	sc.present = resize(sc.present, words)
	sc.sameLayout = old != nil && old.PKMin == s.PKMin && len(old.f) == len(s.f)
	if sc.sameLayout {
		sc.changed = resize(sc.changed, words)
	}
	for i := range s.m {
		p := s.m[i].Polled != 0
		if p {
			sc.present[i>>6] |= 1 << (i & 63)
		}
		if sc.sameLayout && (p != (old.m[i].Polled != 0) || p && s.f[i] != old.f[i]) {
			sc.changed[i>>6] |= 1 << (i & 63)
		}
	}
	for k, b := range bases {
		var prev *gainIndex
		if old != nil && k < len(old.gains) {
			prev = &old.gains[k]
		}
		s.gains[k].build(s, b, prev, old, sc)
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
		bf, bg := x.base.f[j], x.base.gt[j].G
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
