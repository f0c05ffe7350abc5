package exporter

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// writing marks a slot whose values are being replaced. Poll times are Unix
// milliseconds, so they are always positive; 0 means never polled.
const writing = -1

// Store holds the latest sample of every owned influencer in dense arrays
// indexed by the pk's position in the shard's slice: 41 bytes per influencer
// (values, poll time, verdict, two delivery sequence numbers, a step flag)
// and no pointer for the garbage collector to chase.
//
// Each slot is a tiny seqlock keyed on the poll time, which only grows: a
// writer swaps the time for the writing mark, stores the values, then stores
// the new time; a reader retries when the time changed under it. Readers never
// block writers for longer than two atomic stores, and the scrape writer never
// takes a lock.
type Store struct {
	pks  pkrange.Slice
	vals []atomic.Uint64 // followers<<32 | following
	ts   []atomic.Int64  // poll time, Unix ms; 0 = never; writing = being replaced

	// The classifier's verdicts as snapwire verdict words (time of the
	// verdict in Unix ms << 1 | suspicious; 0 = no verdict yet).
	verdicts []atomic.Int64

	// Delivery sequence numbers (delivery.go): every stored sample and
	// verdict takes the next number of seqNext, so that a scrape can serve
	// only what its scraper has not had yet. seq is written inside the
	// sample's seqlock; vseq is the verdict's own seqlock word (writing
	// while it is replaced). 16 bytes per influencer.
	seqNext atomic.Uint64
	seq     []atomic.Uint64
	vseq    []atomic.Uint64

	// The sparse step series (steps.go): pks whose last poll moved a count
	// by at least the thresholds. hasStep mirrors membership so that the
	// common small step costs no lock.
	stepMin StepThresholds
	stepMu  sync.Mutex
	steps   map[int32]step
	hasStep []atomic.Bool

	// Mockstagram's usernames are always "influencer-<pk>"; anything else is
	// kept here so that the common case costs no string per influencer.
	mu           sync.RWMutex
	oddUsernames map[int32]string

	// infoGen changes whenever an influencer's identity could change: it
	// was polled for the first time, or its username changed.
	infoGen atomic.Uint64
}

// NewStore returns an empty store for the given pks.
func NewStore(pks pkrange.Slice) *Store {
	return &Store{
		pks:          pks,
		vals:         make([]atomic.Uint64, pks.Len),
		ts:           make([]atomic.Int64, pks.Len),
		verdicts:     make([]atomic.Int64, pks.Len),
		seq:          make([]atomic.Uint64, pks.Len),
		vseq:         make([]atomic.Uint64, pks.Len),
		hasStep:      make([]atomic.Bool, pks.Len),
		steps:        map[int32]step{},
		oddUsernames: map[int32]string{},
	}
}

// Len is the number of influencers the store holds slots for.
func (s *Store) Len() int { return s.pks.Len }

// PKs describes the pks the store holds.
func (s *Store) PKs() pkrange.Slice { return s.pks }

// Sample is one influencer's values at one poll.
type Sample struct {
	Followers, Following uint32
	TimeMs               int64 // poll time, Unix milliseconds
}

// Set stores a sample for the influencer at index i unless the slot already
// holds a sample at least as new. It reports whether the sample was stored.
func (s *Store) Set(i int, smp Sample) bool {
	if smp.TimeMs <= 0 {
		return false
	}
	slot := &s.ts[i]
	first := false
	for {
		old := slot.Load()
		if old == writing {
			runtime.Gosched()
			continue
		}
		if smp.TimeMs <= old {
			return false
		}
		if slot.CompareAndSwap(old, writing) {
			first = old == 0
			break
		}
	}
	// The sequence number is taken inside the seqlock: a scrape that
	// visits this slot before the swap above started before this number
	// existed, so the sample falls into the next scrape (delivery.go).
	k := s.seqNext.Add(1)
	prev := s.vals[i].Swap(uint64(smp.Followers)<<32 | uint64(smp.Following))
	s.seq[i].Store(k)
	if !first {
		s.noteStep(i, prev, smp, k)
	}
	slot.Store(smp.TimeMs)
	if first {
		s.infoGen.Add(1)
	}
	return true
}

// Get returns the latest sample of the influencer at index i; ok is false
// when it was never polled successfully.
func (s *Store) Get(i int) (smp Sample, ok bool) {
	smp, _, ok = s.getSeq(i)
	return smp, ok
}

// getSeq is Get with the sample's delivery sequence number.
func (s *Store) getSeq(i int) (smp Sample, seq uint64, ok bool) {
	slot := &s.ts[i]
	for {
		t := slot.Load()
		if t == 0 {
			return Sample{}, 0, false
		}
		if t == writing {
			runtime.Gosched()
			continue
		}
		v := s.vals[i].Load()
		k := s.seq[i].Load()
		if slot.Load() == t {
			return Sample{Followers: uint32(v >> 32), Following: uint32(v), TimeMs: t}, k, true
		}
	}
}

// Seq is the latest delivery sequence number handed out: every sample
// and verdict stored so far has one at most this.
func (s *Store) Seq() uint64 { return s.seqNext.Load() }

// TimeMs returns the poll time of the influencer at index i (0 when never polled).
func (s *Store) TimeMs(i int) int64 {
	for {
		t := s.ts[i].Load()
		if t != writing {
			return t
		}
		runtime.Gosched()
	}
}

// SetUsername records the username Mockstagram reported for index i. Only a
// username that differs from the canonical "influencer-<pk>" costs memory.
func (s *Store) SetUsername(i int, name []byte) {
	var buf [32]byte
	canonical := strconv.AppendInt(append(buf[:0], "influencer-"...), s.pks.PK(i), 10)
	if string(name) == string(canonical) {
		s.mu.RLock()
		_, odd := s.oddUsernames[int32(i)]
		s.mu.RUnlock()
		if !odd {
			return
		}
		s.mu.Lock()
		delete(s.oddUsernames, int32(i))
		s.mu.Unlock()
		s.infoGen.Add(1)
		return
	}
	clean := strings.ToValidUTF8(string(name), "\uFFFD") // label values must be UTF-8
	s.mu.RLock()
	cur, odd := s.oddUsernames[int32(i)]
	s.mu.RUnlock()
	if odd && cur == clean {
		return
	}
	s.mu.Lock()
	s.oddUsernames[int32(i)] = clean
	s.mu.Unlock()
	s.infoGen.Add(1)
}

// Username returns the username of the influencer at index i: the one
// Mockstagram reported, or the canonical "influencer-<pk>".
func (s *Store) Username(i int) string {
	s.mu.RLock()
	name, odd := s.oddUsernames[int32(i)]
	s.mu.RUnlock()
	if odd {
		return name
	}
	return "influencer-" + strconv.FormatInt(s.pks.PK(i), 10)
}

// OddUsernames copies the usernames that differ from the canonical
// "influencer-<pk>", by store index (nil when there are none).
func (s *Store) OddUsernames() map[int32]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.oddUsernames) == 0 {
		return nil
	}
	m := make(map[int32]string, len(s.oddUsernames))
	for k, v := range s.oddUsernames {
		m[k] = v
	}
	return m
}

// Sample ages are counted in 10 ms buckets below a minute and 10 s buckets
// up to a day (58 KB of counters per call), so quantiles are exact to that
// resolution.
const (
	ageFineMs    = 10
	ageFineEnd   = 60_000
	ageCoarseMs  = 10_000
	ageCoarseEnd = 86_400_000
	ageBuckets   = ageFineEnd/ageFineMs + (ageCoarseEnd-ageFineEnd)/ageCoarseMs + 1 // + overflow
)

// Ages is one scan of the poll times: how current the shard's data is.
type Ages struct {
	Fresh, Polled int   // influencers polled at or after sinceMs; at all
	OldestMs      int64 // the oldest poll time held; 0 when none
	// The median and 99th-percentile sample age at nowMs, and the sum of
	// all ages, over the influencers polled: the resolution achieved.
	P50, P99, Sum time.Duration
}

// Ages scans the poll times once (8 bytes per influencer, sequentially;
// 5-9 ms per million on a busy 2-core machine, BenchmarkAges1M) for the
// freshness counts and the age quantiles that telemetry and the landing
// page show.
func (s *Store) Ages(nowMs, sinceMs int64) Ages {
	counts := make([]uint32, ageBuckets)
	var r Ages
	var sumMs, maxMs int64
	for i := range s.ts {
		t := s.TimeMs(i)
		if t == 0 {
			continue
		}
		r.Polled++
		if t >= sinceMs {
			r.Fresh++
		}
		if r.OldestMs == 0 || t < r.OldestMs {
			r.OldestMs = t
		}
		a := max(nowMs-t, 0)
		sumMs += a
		maxMs = max(maxMs, a)
		switch {
		case a < ageFineEnd:
			counts[a/ageFineMs]++
		case a < ageCoarseEnd:
			counts[ageFineEnd/ageFineMs+(a-ageFineEnd)/ageCoarseMs]++
		default:
			counts[ageBuckets-1]++
		}
	}
	n := r.Polled
	if n == 0 {
		return r
	}
	upper := func(b int) int64 {
		switch {
		case b < ageFineEnd/ageFineMs:
			return int64(b+1) * ageFineMs
		case b < ageBuckets-1:
			return ageFineEnd + int64(b-ageFineEnd/ageFineMs+1)*ageCoarseMs
		}
		return maxMs
	}
	q := func(phi float64) time.Duration {
		want := uint32(math.Ceil(phi * float64(n)))
		var c uint32
		for b, k := range counts {
			if c += k; c >= want {
				return time.Duration(min(upper(b), maxMs)) * time.Millisecond
			}
		}
		return time.Duration(maxMs) * time.Millisecond
	}
	r.P50, r.P99, r.Sum = q(0.5), q(0.99), time.Duration(sumMs)*time.Millisecond
	return r
}

// Verdict is the classifier's latest judgement of one influencer.
type Verdict struct {
	TimeMs     int64 // when the answer arrived, Unix ms; 0 = no verdict yet
	Suspicious bool
}

// The verdict word is snapwire's, so the snapshot carries it unchanged.
func packVerdict(v Verdict) int64 { return snapwire.PackVerdict(v.TimeMs, v.Suspicious) }

func unpackVerdict(p int64) Verdict {
	ms, susp := snapwire.UnpackVerdict(p)
	return Verdict{TimeMs: ms, Suspicious: susp}
}

// SetVerdict stores a verdict for the influencer at index i unless the slot
// holds a newer one. It reports whether the verdict was stored.
func (s *Store) SetVerdict(i int, v Verdict) bool {
	p := packVerdict(v)
	if p == 0 {
		return false
	}
	// vseq is the slot's seqlock, as the poll time is the sample's.
	lock := &s.vseq[i]
	var old uint64
	for {
		old = lock.Load()
		if old == seqWriting {
			runtime.Gosched()
			continue
		}
		if lock.CompareAndSwap(old, seqWriting) {
			break
		}
	}
	if s.verdicts[i].Load()>>1 >= v.TimeMs {
		lock.Store(old)
		return false
	}
	k := s.seqNext.Add(1)
	s.verdicts[i].Store(p)
	lock.Store(k)
	return true
}

// seqWriting marks a verdict slot being replaced.
const seqWriting = ^uint64(0)

// Verdict returns the latest verdict of the influencer at index i.
func (s *Store) Verdict(i int) Verdict { return unpackVerdict(s.verdicts[i].Load()) }

// verdictSeq is Verdict with its delivery sequence number.
func (s *Store) verdictSeq(i int) (Verdict, uint64) {
	lock := &s.vseq[i]
	for {
		k := lock.Load()
		if k == seqWriting {
			runtime.Gosched()
			continue
		}
		p := s.verdicts[i].Load()
		if lock.Load() == k {
			return unpackVerdict(p), k
		}
	}
}

// VerdictStats counts the influencers with a verdict, those with one made
// at or after sinceMs, and those judged suspicious. Like Freshness, it scans
// one 8-byte word per influencer.
func (s *Store) VerdictStats(sinceMs int64) (judged, fresh, suspicious int) {
	for i := range s.verdicts {
		v := unpackVerdict(s.verdicts[i].Load())
		if v.TimeMs == 0 {
			continue
		}
		judged++
		if v.TimeMs >= sinceMs {
			fresh++
		}
		if v.Suspicious {
			suspicious++
		}
	}
	return judged, fresh, suspicious
}
