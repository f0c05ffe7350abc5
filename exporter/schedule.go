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
}

// maxTick bounds how long the dispatcher sleeps, so that due retries go out
// promptly even when the pks are sparse (a few pks over a long interval).
const maxTick = 20 * time.Millisecond

// minTick batches dispatching; see dispatchCycle.
const minTick = 10 * time.Millisecond

// cycleStats counts one cycle's fate. A cycle is final when every pk it
// dispatched has either succeeded or run out of retries.
type cycleStats struct {
	used       atomic.Bool
	cycle      atomic.Int64
	sent       atomic.Int64
	dispatched atomic.Bool // the dispatcher is done with this cycle
	done       atomic.Int64
	ok         atomic.Int64
	lastDoneNs atomic.Int64
	finalized  atomic.Bool
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

// scheduler spreads the polls of n influencers evenly over each interval,
// retries failures with backoff within the pk's own interval, and never
// builds a backlog: what it cannot dispatch before the next cycle starts is
// counted as missed, and the next cycle starts with those pks.
type scheduler struct {
	n        int
	interval time.Duration
	timeout  time.Duration
	retries  int
	backoff  time.Duration
	jobs     []chan job          // one per upstream
	route    func(idx int32) int // upstream of a pk index
	onCycle  func(CycleReport)   // called once per finished cycle
	onMissed func(n int)
	now      func() time.Time

	t0      time.Time
	ring    [4]cycleStats
	cur     atomic.Int64 // current cycle
	curSent atomic.Int64
	offset  int // where the current cycle starts in the pk order

	rmu    sync.Mutex
	retryQ retryHeap
}

// newScheduler dispatches n pks to `upstreams` job channels, each buffered
// like the number of polls in flight it feeds.
func newScheduler(n int, interval, timeout time.Duration, upstreams, concurrency, retries int, backoff time.Duration) *scheduler {
	s := &scheduler{
		n: n, interval: interval, timeout: timeout, retries: retries, backoff: backoff,
		route: func(int32) int { return 0 },
		now:   time.Now,
	}
	for range upstreams {
		s.jobs = append(s.jobs, make(chan job, concurrency))
	}
	return s
}

// slotTime is when the k-th pk of cycle c is due.
func (s *scheduler) slotTime(c int64, k int) time.Time {
	return s.t0.Add(time.Duration(c)*s.interval + time.Duration(int64(k)*int64(s.interval)/int64(s.n)))
}

// run dispatches jobs until ctx ends, then closes the job channels.
func (s *scheduler) run(ctx context.Context) {
	defer func() {
		for _, ch := range s.jobs {
			close(ch)
		}
	}()
	s.t0 = s.now()
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
			s.ring[c%int64(len(s.ring))].finalized.Store(true)
			return
		}
		s.endDispatch(c, sent)
		// Normally the next cycle is c+1. After a stall longer than a whole
		// interval (a paused process, a suspended host) skip to the cycle of
		// the present, counting the skipped cycles' pks as missed.
		next := c + 1
		if now := s.now(); now.Sub(s.t0) >= time.Duration(next+1)*s.interval {
			behind := int64(now.Sub(s.t0)/s.interval) - next
			if s.onMissed != nil {
				s.onMissed(int(behind) * s.n)
			}
			next += behind
		}
		c = next
	}
}

func (s *scheduler) startCycle(c int64) {
	st := &s.ring[c%int64(len(s.ring))]
	// The cycle that used this slot four cycles ago must be final by now:
	// every attempt of a cycle ends before the next cycle ends.
	s.finalize(st, true)
	st.cycle.Store(c)
	st.sent.Store(0)
	st.done.Store(0)
	st.ok.Store(0)
	st.lastDoneNs.Store(0)
	st.dispatched.Store(false)
	st.finalized.Store(false)
	st.used.Store(true)
	s.cur.Store(c)
	s.curSent.Store(0)
	// A cycle that finished two cycles back may still lack its report when
	// some attempt hung; force it out so reports never stop.
	if c >= 2 {
		s.finalize(&s.ring[(c-2)%int64(len(s.ring))], true)
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
			j := job{idx: int32((s.offset + sent) % s.n), cycle: c, slot: slot}
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

// trySend hands j to its upstream's connections if one can take it now.
func (s *scheduler) trySend(j job) bool {
	select {
	case s.jobs[s.route(j.idx)] <- j:
		return true
	default:
		return false
	}
}

// send blocks until a connection takes j or ctx (the cycle) ends.
func (s *scheduler) send(ctx context.Context, j job) bool {
	if s.trySend(j) {
		return true // a free connection always wins, even at the cycle's end
	}
	ch := s.jobs[s.route(j.idx)]
	select {
	case ch <- j:
		return true
	case <-ctx.Done():
		return false
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

// endDispatch records how many pks cycle c dispatched and moves the start
// of the next cycle to the first pk not dispatched, so that a shard that is
// behind polls its least recently polled pks first.
func (s *scheduler) endDispatch(c int64, sent int) {
	st := &s.ring[c%int64(len(s.ring))]
	st.sent.Store(int64(sent))
	st.dispatched.Store(true)
	if missed := s.n - sent; missed > 0 && s.onMissed != nil {
		s.onMissed(missed)
	}
	s.offset = (s.offset + sent) % s.n
	s.finalize(st, false)
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
	if at.Add(s.timeout).After(j.slot.Add(s.interval)) {
		return false // it would collide with the pk's next scheduled poll
	}
	j.attempt++
	s.rmu.Lock()
	heap.Push(&s.retryQ, retryItem{at: at, job: j})
	s.rmu.Unlock()
	return true
}

func (s *scheduler) dropExpiredRetries(now time.Time) {
	s.rmu.Lock()
	var dropped []job
	kept := s.retryQ[:0]
	for _, r := range s.retryQ {
		if now.Add(s.timeout).After(r.job.slot.Add(s.interval)) {
			dropped = append(dropped, r.job)
			continue
		}
		kept = append(kept, r)
	}
	s.retryQ = kept
	heap.Init(&s.retryQ)
	s.rmu.Unlock()
	for _, j := range dropped {
		s.complete(j, false, now)
	}
}

// complete records the final fate of a job's pk in its cycle.
func (s *scheduler) complete(j job, ok bool, now time.Time) {
	st := &s.ring[j.cycle%int64(len(s.ring))]
	if st.cycle.Load() != j.cycle {
		return // reported long ago
	}
	if ok {
		st.ok.Add(1)
	}
	st.lastDoneNs.Store(now.UnixNano())
	st.done.Add(1)
	s.finalize(st, false)
}

// finalize reports a cycle once: when all its dispatched jobs are done, or
// at once when force is set.
func (s *scheduler) finalize(st *cycleStats, force bool) {
	if !st.used.Load() || st.finalized.Load() {
		return
	}
	if !force && (!st.dispatched.Load() || st.done.Load() < st.sent.Load()) {
		return
	}
	if !st.finalized.CompareAndSwap(false, true) {
		return
	}
	c := st.cycle.Load()
	start := s.slotTime(c, 0)
	sent := int(st.sent.Load())
	rep := CycleReport{
		Cycle:  c,
		Start:  start,
		Owned:  s.n,
		Polled: int(st.ok.Load()),
		Missed: s.n - sent,
	}
	rep.Failed = sent - rep.Polled
	if last := st.lastDoneNs.Load(); last > 0 {
		rep.Duration = time.Unix(0, last).Sub(start)
	}
	if s.onCycle != nil {
		s.onCycle(rep)
	}
}

// progress returns the current cycle, how many of its pks were dispatched,
// and when it started.
func (s *scheduler) progress() (cycle int64, sent int, start time.Time) {
	c := s.cur.Load()
	return c, int(s.curSent.Load()), s.slotTime(c, 0)
}

// lag is how far the dispatcher is behind its schedule.
func (s *scheduler) lag() time.Duration {
	c, sent, _ := s.progress()
	if sent >= s.n {
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
