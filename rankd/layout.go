package rankd

import (
	"fmt"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// A snapshot's arrays cover one contiguous pk range, PKMin upwards, one slot
// per pk, whichever exporters the pks come from. This file sizes that range
// as exporters appear or change (layout, fit) and carries a failed
// exporter's pks over from the previous snapshot (keep).

// maxSpan bounds the pk range of one snapshot (16 bytes a slot): a
// misconfigured exporter must not make rankd allocate without limit.
const maxSpan = 1 << 26

// layout makes the snapshot cover pks lo..hi with no data (nothing when lo
// is negative), reusing its arrays.
func (s *Snapshot) layout(lo, hi int64) {
	n := 0
	if lo >= 0 {
		n = int(hi - lo + 1)
	}
	s.PKMin = max(lo, 0)
	s.f = resizeNoClear(s.f, n) // read only where m says there is data
	s.m = resize(s.m, n)
}

// fit widens the snapshot, keeping its data, so that it covers the first
// n of h's pks. The whole header is checked; only n are allocated, so that
// a header's claim costs nothing until its records arrive.
func (s *Snapshot) fit(h snapwire.Header, n uint32) error {
	if h.N == 0 || n == 0 {
		return nil
	}
	if h.Step > maxSpan {
		return fmt.Errorf("snapshot pk step %d is implausible; check the exporter's --shard.count", h.Step)
	}
	first, last := h.First, h.First+int64(h.N-1)*h.Step
	if last < first {
		return fmt.Errorf("snapshot pks from %d in steps of %d overflow; check the exporter's --pk.min", h.First, h.Step)
	}
	lo, hi, whole := first, first+int64(min(n, h.N)-1)*h.Step, last
	if len(s.f) > 0 {
		end := s.PKMin + int64(len(s.f)) - 1
		lo, hi, whole = min(lo, s.PKMin), max(hi, end), max(whole, end)
	}
	if whole-lo+1 > maxSpan {
		return fmt.Errorf("pks %d..%d with the other exporters' span %d slots, more than %d; check --pk.min and --pk.max of the exporters", first, last, whole-lo+1, maxSpan)
	}
	if lo == s.PKMin && int(hi-lo+1) == len(s.f) {
		return nil
	}
	if len(s.f) == 0 {
		s.layout(lo, hi)
		return nil
	}
	// Rare: a new or reconfigured exporter. The old arrays go to the GC.
	f, m := make([]uint32, hi-lo+1), make([]meta, hi-lo+1)
	copy(f[s.PKMin-lo:], s.f)
	copy(m[s.PKMin-lo:], s.m)
	s.PKMin, s.f, s.m = lo, f, m
	return nil
}

// keep copies the pks of h from cur where they are newer than what s holds.
func (s *Snapshot) keep(cur *Snapshot, h snapwire.Header) {
	for i := range int64(h.N) {
		pk := h.First + i*h.Step
		ci, si := pk-cur.PKMin, pk-s.PKMin
		if ci < 0 || ci >= int64(len(cur.f)) || si < 0 || si >= int64(len(s.f)) {
			continue
		}
		if cur.m[ci].Polled > s.m[si].Polled {
			s.f[si], s.m[si] = cur.f[ci], cur.m[ci]
		}
	}
}
