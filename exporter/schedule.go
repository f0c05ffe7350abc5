package exporter

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// job is one poll of one influencer.
type job struct {
	idx     int32
	attempt uint8
	cycle   int64
	slot    time.Time // when the schedule wanted the first attempt
	// deferred: held back so as not to replace a young sample (deferTo).
	deferred bool
}

// maxTick bounds how long the dispatcher sleeps, so that due retries go out
// promptly even when the pks are sparse (a few pks over a long interval).
const maxTick = 20 * time.Millisecond

// minTick batches dispatching; see dispatchCycle.
const minTick = 10 * time.Millisecond

// cycleStats counts one cycle's fate. A cycle is final when every pk it
// dispatched has either succeeded or run out of retries.
type cycleStats struct {
	used       bool
	cycle      int64
	sent       int
	dispatched bool // the dispatcher is done with this cycle
	done, ok   int
	lastDone   time.Time
	finalized  bool
}

// CycleReport describes a finished cycle.
type CycleReport struct {
	Cycle    int64
	Start    time.Time
	Owned    int
	Polled   int           // succeeded, possibly after retries
	Failed   int           // dispatched but every attempt failed
	Missed   int           // never dispatched: the shard fell behind
	Duration time.Duration // from cycle start to the last poll's end
}

// Coverage is the fraction of owned influencers polled in the cycle.
func (r CycleReport) Coverage() float64 {
	if r.Owned == 0 {
		return 1
	}
	return float64(r.Polled) / float64(r.Owned)
}

// scheduler spreads the polls of its influencers evenly over each interval,
// retries failures with backoff within the pk's own interval, and never
// builds a backlog: what it cannot dispatch before the next cycle starts is
// counted as missed, and the next cycle starts with those pks. The exporter
// runs one per upstream, so that a stalled upstream holds up only its own
// pks.
type scheduler struct {
	idx      []int32 // the store indexes it dispatches, in order; nil = 0..n-1
	n        int
	interval time.Duration
	timeout  time.Duration
	retries  int
	backoff  time.Duration
	jobs     chan job
	onCycle  func(CycleReport) // called once per finished cycle
	onMissed func(n int)
	onExpire func(n int)   // dispatched jobs dropped because they could no longer end in time
	onTick   func()        // called on every wake-up of the dispatcher
	room     func() int    // how many jobs may wait in the channel now; nil = its capacity
	done     chan struct{} // closed when run returns, with jobs
	now      func() time.Time

	t0ns    atomic.Int64 // schedule origin, Unix ns; 0 until run starts
	cur     atomic.Int64 // current cycle
	curSent atomic.Int64
	offset  int // where the current cycle starts in the pk order

	mu   sync.Mutex // guards ring
	ring [8]cycleStats

	rmu    sync.Mutex
	retryQ retryHeap
}

// newScheduler dispatches the pks at idx (all n when idx is nil) to a job
// channel buffered like the number of polls in flight it feeds.
func newScheduler(idx []int32, n int, interval, timeout time.Duration, concurrency, retries int, backoff time.Duration) *scheduler {
	if idx != nil {
		n = len(idx)
	}
	return &scheduler{
		idx: idx, n: n, interval: interval, timeout: timeout, retries: retries, backoff: backoff,
		jobs: make(chan job, concurrency),
		done: make(chan struct{}),
		now:  time.Now,
	}
}

func (s *scheduler) pkIndex(k int) int32 {
	if s.idx == nil {
		return int32(k)
	}
	return s.idx[k]
}

// started reports whether run has set the schedule's origin.
func (s *scheduler) started() bool { return s.t0ns.Load() != 0 }

// slotTime is when the k-th pk of cycle c is due.
func (s *scheduler) slotTime(c int64, k int) time.Time {
	n := max(s.n, 1)
	return time.Unix(0, s.t0ns.Load()).Add(time.Duration(c)*s.interval + time.Duration(int64(k)*int64(s.interval)/int64(n)))
}

// deadline is when a job must have ended: the pk's next slot.
func (s *scheduler) deadline(j job) time.Time { return j.slot.Add(s.interval) }

// expired reports whether an attempt starting now could still run into the
// pk's next scheduled poll.
func (s *scheduler) expired(j job, now time.Time) bool {
	return now.Add(s.timeout).After(s.deadline(j))
}

// run dispatches jobs until ctx ends, then closes the job channel.
func (s *scheduler) run(ctx context.Context) {
	defer close(s.done)
	defer close(s.jobs)
	s.t0ns.Store(s.now().UnixNano())
	if s.n == 0 {
		<-ctx.Done()
		return
	}
	for c := int64(0); ; {
		s.startCycle(c)
		sent, ok := s.dispatchCycle(ctx, c)
		if !ok {
			// Shutting down: the cycle was cut short, not missed; it gets
			// no report.
			s.mu.Lock()
			s.ring[c%int64(len(s.ring))].finalized = true
			s.mu.Unlock()
			return
		}
		s.endDispatch(c, sent)
		// Normally the next cycle is c+1. After a stall longer than a whole
		// interval (a paused process, a suspended host) skip to the cycle of
		// the present, counting the skipped cycles' pks as missed.
		next := c + 1
		if now := s.now(); now.Sub(time.Unix(0, s.t0ns.Load())) >= time.Duration(next+1)*s.interval {
			behind := int64(now.Sub(time.Unix(0, s.t0ns.Load()))/s.interval) - next
			if s.onMissed != nil {
				s.onMissed(int(behind) * s.n)
			}
			next += behind
		}
		c = next
	}
}

// startCycle takes a ring slot for cycle c. Cycles whose every attempt must
// have ended (two intervals and a timeout after their start) are reported
// now if a hung attempt kept them open.
func (s *scheduler) startCycle(c int64) {
	now := s.now()
	var reports []CycleReport
	s.mu.Lock()
	for i := range s.ring {
		st := &s.ring[i]
		if st.used && !st.finalized && st.dispatched && !now.Before(s.slotTime(st.cycle+2, 0).Add(s.timeout)) {
			reports = append(reports, s.finalizeLocked(st))
		}
	}
	st := &s.ring[c%int64(len(s.ring))]
	if st.used && !st.finalized {
		reports = append(reports, s.finalizeLocked(st)) // eight cycles old at least
	}
	*st = cycleStats{used: true, cycle: c}
	s.mu.Unlock()
	s.cur.Store(c)
	s.curSent.Store(0)
	s.report(reports)
}

func (s *scheduler) report(reports []CycleReport) {
	if s.onCycle == nil {
		return
	}
	for _, r := range reports {
		s.onCycle(r)
	}
}

// dispatchCycle sends cycle c's jobs at their slot times. It returns how
// many pks it dispatched and false when ctx ended.
func (s *scheduler) dispatchCycle(ctx context.Context, c int64) (int, bool) {
	end := s.slotTime(c+1, 0)
	// cctx ends with the cycle: a send blocked on busy workers gives up then.
	cctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sent := 0
	for {
		now := s.now()
		if s.onTick != nil {
			s.onTick()
		}
		if !s.sendDueRetries(cctx, now) {
			return sent, ctx.Err() == nil
		}
		// Everything whose slot has come goes out now, in pk order. Once the
		// cycle is over, slots overslept by a late wake-up still go if a
		// connection can take them at once; if not, the shard is behind and
		// they are left to the next cycle.
		over := !now.Before(end)
		for sent < s.n && !s.slotTime(c, sent).After(now) {
			slot := s.slotTime(c, sent)
			j := job{idx: s.pkIndex((s.offset + sent) % s.n), cycle: c, slot: slot}
			if over && !s.trySend(j) {
				break
			}
			if !over && !s.send(cctx, j) {
				return sent, ctx.Err() == nil
			}
			sent++
			s.curSent.Store(int64(sent))
		}
		if over {
			return sent, true
		}
		// After the last pk, retries keep flowing until the cycle ends. The
		// dispatcher wakes at most every minTick and sends every slot that
		// has come: at 16.7k polls/s that is ~170 polls per wake-up instead
		// of a timer per poll, which halves the CPU per poll (measured), and
		// the spread stays even at 10 ms resolution.
		wait := min(maxTick, end.Sub(s.now()))
		if sent < s.n {
			wait = min(wait, max(minTick, s.slotTime(c, sent).Sub(s.now())))
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return sent, false
			case <-timer.C:
			}
		}
	}
}

// trySend hands j to the connections if one can take it now.
func (s *scheduler) trySend(j job) bool {
	if s.full() {
		return false
	}
	select {
	case s.jobs <- j:
		return true
	default:
		return false
	}
}

// full reports whether as many jobs wait as the upstream's limit allows
// in flight: more would only wait longer in the channel.
func (s *scheduler) full() bool {
	return s.room != nil && len(s.jobs) >= s.room()
}

// roomPoll is how often a dispatcher held back by the limit looks again.
const roomPoll = 2 * time.Millisecond

// send blocks until a connection takes j or ctx (the cycle) ends.
func (s *scheduler) send(ctx context.Context, j job) bool {
	for {
		if s.trySend(j) {
			return true // a free connection always wins, even at the cycle's end
		}
		if !s.full() {
			select {
			case s.jobs <- j:
				return true
			case <-ctx.Done():
				return false
			}
		}
		t := time.NewTimer(roomPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

func (s *scheduler) sendDueRetries(ctx context.Context, now time.Time) bool {
	for {
		s.rmu.Lock()
		if len(s.retryQ) == 0 || s.retryQ[0].at.After(now) {
			s.rmu.Unlock()
			return true
		}
		r := heap.Pop(&s.retryQ).(retryItem)
		s.rmu.Unlock()
		if s.expired(r.job, s.now()) {
			s.expire(r.job, now) // held up too long: it would meet the next poll
			continue
		}
		if !s.send(ctx, r.job) {
			// Not placed before the cycle ended: put it back; the end of
			// the cycle gives it up if its own deadline has passed.
			s.rmu.Lock()
			heap.Push(&s.retryQ, r)
			s.rmu.Unlock()
			return false
		}
	}
}

// expire gives up a job that can no longer end before the pk is due again.
// A deferred job (deferTo) that runs out of time loses nothing: its pk has
// a sample from within this interval, the one it waited for, so the pk
// counts as polled and nothing as expired.
func (s *scheduler) expire(j job, now time.Time) {
	if j.deferred {
		s.complete(j, true, now)
		return
	}
	if s.onExpire != nil {
		s.onExpire(1)
	}
	s.complete(j, false, now)
}

// endDispatch records how many pks cycle c dispatched and moves the start
// of the next cycle to the first pk not dispatched, so that a shard that is
// behind polls its least recently polled pks first.
func (s *scheduler) endDispatch(c int64, sent int) {
	if missed := s.n - sent; missed > 0 && s.onMissed != nil {
		s.onMissed(missed)
	}
	s.offset = (s.offset + sent) % s.n
	var reports []CycleReport
	s.mu.Lock()
	st := &s.ring[c%int64(len(s.ring))]
	if st.used && st.cycle == c && !st.finalized {
		st.sent, st.dispatched = sent, true
		if st.done >= st.sent {
			reports = append(reports, s.finalizeLocked(st))
		}
	}
	s.mu.Unlock()
	s.report(reports)
	// Retries whose deadline passed are given up.
	s.dropExpiredRetries(s.now())
}

// retryAt decides whether a failed job gets another attempt, and queues it.
func (s *scheduler) retryAt(j job, now time.Time) bool {
	if int(j.attempt) >= s.retries {
		return false
	}
	// Exponential backoff: backoff, 2*backoff, 4*backoff, ...
	at := now.Add(s.backoff << j.attempt)
	if s.expired(j, at) {
		return false // it would collide with the pk's next scheduled poll
	}
	j.attempt++
	s.rmu.Lock()
	heap.Push(&s.retryQ, retryItem{at: at, job: j})
	s.rmu.Unlock()
	return true
}

// deferTo queues j to go out at at instead of now, without spending an
// attempt, and reports true; when it could then no longer end before the
// pk's next slot it queues nothing and reports false (better sent now
// than not at all).
func (s *scheduler) deferTo(j job, at time.Time) bool {
	if s.expired(j, at) {
		return false
	}
	j.deferred = true
	s.rmu.Lock()
	heap.Push(&s.retryQ, retryItem{at: at, job: j})
	s.rmu.Unlock()
	return true
}

// requeue sends a job that was never answered (its connection failed
// before its turn) out again at once, without spending an attempt.
func (s *scheduler) requeue(j job, now time.Time) bool {
	if s.expired(j, now) {
		return false
	}
	s.rmu.Lock()
	heap.Push(&s.retryQ, retryItem{at: now, job: j})
	s.rmu.Unlock()
	return true
}

func (s *scheduler) dropExpiredRetries(now time.Time) {
	s.rmu.Lock()
	var dropped []job
	kept := s.retryQ[:0]
	for _, r := range s.retryQ {
		if s.expired(r.job, now) {
			dropped = append(dropped, r.job)
			continue
		}
		kept = append(kept, r)
	}
	s.retryQ = kept
	heap.Init(&s.retryQ)
	s.rmu.Unlock()
	for _, j := range dropped {
		s.expire(j, now)
	}
}

// complete records the final fate of a job's pk in its cycle.
func (s *scheduler) complete(j job, ok bool, now time.Time) {
	var reports []CycleReport
	s.mu.Lock()
	st := &s.ring[j.cycle%int64(len(s.ring))]
	if st.used && st.cycle == j.cycle && !st.finalized {
		if ok {
			st.ok++
		}
		st.done++
		st.lastDone = now
		if st.dispatched && st.done >= st.sent {
			reports = append(reports, s.finalizeLocked(st))
		}
	}
	s.mu.Unlock()
	s.report(reports)
}

// finalizeLocked closes a cycle and returns its report. Polls still in
// flight when a cycle is forced closed count as failed.
func (s *scheduler) finalizeLocked(st *cycleStats) CycleReport {
	st.finalized = true
	start := s.slotTime(st.cycle, 0)
	r := CycleReport{Cycle: st.cycle, Start: start, Owned: s.n, Polled: st.ok, Missed: s.n - st.sent}
	r.Failed = st.sent - st.ok
	if !st.lastDone.IsZero() {
		r.Duration = st.lastDone.Sub(start)
	}
	return r
}

// progress returns the current cycle and how many of its pks were
// dispatched.
func (s *scheduler) progress() (cycle int64, sent int) {
	return s.cur.Load(), int(s.curSent.Load())
}

// lag is how far the dispatcher is behind its schedule.
func (s *scheduler) lag() time.Duration {
	c, sent := s.progress()
	if !s.started() || sent >= s.n {
		return 0
	}
	if d := s.now().Sub(s.slotTime(c, sent)); d > 0 {
		return d
	}
	return 0
}

type retryItem struct {
	at  time.Time
	job job
}

type retryHeap []retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retryItem)) }
func (h *retryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
