package exporter

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The adaptive concurrency limit's constants; docs/exporter.md explains
// each.
const (
	// limitFloor is the fewest polls in flight to an upstream the limit
	// allows, and what the probe holds while it measures the no-load
	// latency.
	limitFloor = 4
	// limitInitial is where the search starts: low enough that an upstream
	// below the schedule's need never sees a start-up burst, high enough
	// that a fast one is reached within a window or two.
	limitInitial = 32
	// limitTargetDelay is the queueing delay the limit holds at an upstream
	// that cannot keep up: its queue holds this much work, enough that it
	// never runs dry between answers, and no more.
	limitTargetDelay = 20 * time.Millisecond
	// limitGain is how far each window moves the limit toward the in-flight
	// count that would make the queueing delay limitTargetDelay.
	limitGain = 0.5
	// A window ends once it has limitWindowAnswers answers and lasted
	// limitWindowMin and twice its mean latency, or after limitWindowMax.
	limitWindowMin     = 100 * time.Millisecond
	limitWindowMax     = 2 * time.Second
	limitWindowAnswers = 16
	// limitProbeEvery is how often, while the limit binds, it drops to
	// limitFloor until limitProbeAnswers answers have measured the
	// no-load latency again.
	limitProbeEvery   = 10 * time.Second
	limitProbeAnswers = 8
	// limitSaturatedShare: an upstream is reported saturated while the
	// share of recent windows that were saturated (an exponential average
	// with weight limitScoreWeight per window) is above it.
	limitSaturatedShare = 0.5
	limitScoreWeight    = 0.25
	// limitCapacityWeight is the weight of a window's answer rate in the
	// capacity estimate (an exponential average): at the knee while the
	// upstream is saturated, what it was asked for otherwise.
	limitCapacityWeight = 0.2
	// limitMinConns is the fewest connections an upstream's requests are
	// spread over (if --poll.concurrency / --poll.pipeline allows as many):
	// the default's 512 / 32.
	limitMinConns = 16
	// limitGrantBatch is how many tokens must be free before a writer
	// waiting for one is woken; it then takes them all for one write.
	limitGrantBatch = 4
)

// limiter bounds the polls in flight to one upstream, and finds the bound
// at run time: the in-flight count where the upstream's throughput stops
// rising and only its queue would grow.
//
// It measures windows of answers. In a window where the limit bound (a
// poll waited for a token), the upstream's queueing delay is its mean
// latency minus its no-load latency, and the number of polls waiting in its
// queue is about throughput x queueing delay (Little's law). The limit moves
// by limitGain of the difference between that queue and the one that would
// hold limitTargetDelay of work:
//
//	limit += limitGain x throughput x (limitTargetDelay - queueing delay)
//
// at most doubling or halving per window, between limitFloor and the
// ceiling (--poll.concurrency). A window where the limit did not bind
// changes nothing: against an upstream faster than the schedule the limit
// only grows until it stops binding. The no-load latency is the mean
// latency of a probe, limitProbeAnswers answers with limitFloor in flight,
// taken when the limit first binds and every limitProbeEvery while it binds
// (the lower of the last two probes, or of any window that was faster).
// Only answers to polls sent since the last change of the limit count
// towards a window, so a change is judged by its own effect.
//
// A pk's retries take tokens like first attempts, so retries never add load
// to an upstream that is already saturated.
type limiter struct {
	now     func() time.Time
	ceiling int
	fixed   bool    // the limit is the ceiling, never adapted
	demand  float64 // polls/s the schedule needs from this upstream

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []chan struct{} // FIFO of blocked acquirers
	epoch    uint64          // bumped whenever the limit changes
	changedC chan struct{}   // closed and replaced whenever the limit changes
	steady   atomic.Int64    // int(limit), for the lock-free readers (room, writers, perConn)

	winStart   time.Time
	winN       int           // answers of this epoch in the window
	winSum     time.Duration // their latencies
	winAll     int           // every answer in the window, for throughput
	winBound   bool          // an acquirer waited in this window
	probing    bool
	savedLimit float64
	lastProbe  time.Time
	probes     [2]time.Duration // latest two probe latencies
	base       time.Duration    // no-load latency estimate; 0 = none yet

	// What the telemetry and the status messages read.
	score      float64       // share of recent windows that were saturated
	capacity   float64       // answers/s at the knee
	throughput float64       // answers/s of the last window
	delay      time.Duration // queueing delay of the last window
}

// newLimiter bounds polls in flight at ceiling; unless fixed, the bound
// adapts between limitFloor and ceiling. demand is the polls/s the schedule
// asks of the upstream.
func newLimiter(ceiling int, fixed bool, demand float64, now func() time.Time) *limiter {
	l := &limiter{now: now, ceiling: ceiling, fixed: fixed, demand: demand}
	l.limit = float64(min(ceiling, limitInitial))
	if fixed {
		l.limit = float64(ceiling)
	}
	l.winStart = now()
	l.changedC = make(chan struct{})
	l.steady.Store(int64(max(int(l.limit), 1)))
	return l
}

// changed is closed when the limit next changes.
func (l *limiter) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changedC
}

// notifyLocked publishes a new limit.
func (l *limiter) notifyLocked() {
	l.steady.Store(int64(max(int(l.limit), 1)))
	close(l.changedC)
	l.changedC = make(chan struct{})
}

// steadyLimit is the limit without a probe's temporary drop (a probe
// leaves l.limit as it was).
func (l *limiter) steadyLimit() int { return int(l.steady.Load()) }

// room is how many jobs may wait for this upstream's connections: as many
// as the limit lets be in flight. More would only wait longer; the
// dispatcher keeps the rest for later, least recently polled first.
func (l *limiter) room() int { return l.steadyLimit() }

// writers is how many connections the limit keeps busy: enough for the
// limit at the pipeline depth, plus one, and at least limitMinConns; the
// others close. Fewer connections carrying more requests each cost both
// sides less (one system call per batch, not per request), so a low limit
// must not spread a few requests over many connections, as a high ceiling
// (--poll.concurrency=4096 is 128 connections at depth 32) would; measured
// against a one-thread Node server, 36 connections instead of 16 cost 6%
// of its throughput. Not fewer than limitMinConns: many HTTP/1.1 servers
// (fasthttp, Go's, the simulator) read a connection's pipelined requests
// one after the other, so only requests on different connections queue
// at the upstream at once, and a queue of one or two runs dry at every
// late wake-up.
func (l *limiter) writers(depth int) int {
	return max((l.steadyLimit()+depth-1)/depth+1, limitMinConns)
}

// perConn is how many requests one connection may have queued: its even
// share of the limit over the writers, plus one, at most depth. A server
// that reads a connection's pipelined requests one at a time serves the
// k-th of them only after k rounds over all connections, so an uneven
// spread would give a few polls many times the mean latency.
func (l *limiter) perConn(depth int) int {
	w := l.writers(depth)
	return min(depth, (l.steadyLimit()+w-1)/w+1)
}

func (l *limiter) floor() float64 { return float64(min(limitFloor, l.ceiling)) }

// cur is the number of tokens the limit allows now.
func (l *limiter) curLocked() int {
	if l.probing {
		return int(l.floor())
	}
	return max(int(l.limit), 1)
}

// tryAcquire takes a token if one is free now and nobody waits for one;
// with jump, even if others wait: a writer just handed a batch of tokens
// (see grantLocked) takes the rest of its batch this way.
func (l *limiter) tryAcquire(jump bool) (epoch uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (jump || len(l.waiters) == 0) && l.inflight < l.curLocked() {
		l.inflight++
		return l.epoch, true
	}
	l.winBound = true
	return 0, false
}

// acquire waits for a token, in FIFO order, until stop is closed.
func (l *limiter) acquire(stop <-chan struct{}) (epoch uint64, ok bool) {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inflight < l.curLocked() {
		l.inflight++
		e := l.epoch
		l.mu.Unlock()
		return e, true
	}
	l.winBound = true
	w := make(chan struct{}, 1)
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	select {
	case <-w:
	case <-stop:
		l.mu.Lock()
		for i, x := range l.waiters {
			if x == w {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				l.mu.Unlock()
				return 0, false
			}
		}
		l.mu.Unlock()
		// Granted meanwhile: hand the token on.
		l.release(0, 0, false)
		return 0, false
	}
	l.mu.Lock()
	e := l.epoch
	l.mu.Unlock()
	return e, true
}

// grantBatch is how many tokens a waiter is woken for at once: it takes one
// and may jump the queue for the rest (tryAcquire), so that a bound
// upstream still gets its requests several to a write rather than one
// system call each.
func (l *limiter) grantBatch() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grantBatchLocked()
}

func (l *limiter) grantBatchLocked() int { return max(min(limitGrantBatch, l.curLocked()), 1) }

// grantLocked wakes waiters, first come first served, each once a batch
// of tokens is free.
func (l *limiter) grantLocked() {
	for len(l.waiters) > 0 && l.curLocked()-l.inflight >= l.grantBatchLocked() {
		w := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		l.inflight++
		w <- struct{}{}
	}
}

// release returns a token. answered is false for a poll that got no answer
// of its own (aborted behind another failure): its latency says nothing
// about the upstream.
func (l *limiter) release(epoch uint64, latency time.Duration, answered bool) {
	l.mu.Lock()
	l.inflight--
	if answered {
		l.winAll++
		if epoch == l.epoch {
			l.winN++
			l.winSum += latency
		}
	}
	l.maybeEndWindowLocked(l.now())
	l.grantLocked()
	l.mu.Unlock()
}

// tick ends a window that ran out of time without enough answers (a
// stalled upstream); the dispatcher calls it on every wake-up.
func (l *limiter) tick() {
	l.mu.Lock()
	l.maybeEndWindowLocked(l.now())
	l.grantLocked()
	l.mu.Unlock()
}

func (l *limiter) maybeEndWindowLocked(now time.Time) {
	dur := now.Sub(l.winStart)
	if l.probing {
		if l.winN >= limitProbeAnswers || dur >= limitWindowMax {
			l.endProbeLocked(now)
		}
		return
	}
	if dur >= limitWindowMax || (l.winN >= limitWindowAnswers && dur >= limitWindowMin && dur >= 2*l.winSum/time.Duration(l.winN)) {
		l.endWindowLocked(now, dur)
	}
}

func (l *limiter) resetWindowLocked(now time.Time) {
	l.winStart, l.winN, l.winSum, l.winAll, l.winBound = now, 0, 0, 0, false
}

func (l *limiter) setLimitLocked(v float64) {
	v = math.Max(l.floor(), math.Min(v, float64(l.ceiling)))
	if v != l.limit {
		l.limit = v
		l.epoch++
		l.notifyLocked()
	}
}

func (l *limiter) endProbeLocked(now time.Time) {
	if l.winN > 0 {
		p := l.winSum / time.Duration(l.winN)
		if l.lastProbe.IsZero() {
			l.probes = [2]time.Duration{p, p}
		} else {
			l.probes = [2]time.Duration{l.probes[1], p}
		}
		l.base = min(l.probes[0], l.probes[1])
	}
	l.probing = false
	l.lastProbe = now
	l.limit = l.savedLimit
	l.epoch++
	l.notifyLocked()
	l.resetWindowLocked(now)
}

func (l *limiter) endWindowLocked(now time.Time, dur time.Duration) {
	bound := l.winBound
	l.throughput = float64(l.winAll) / dur.Seconds()
	x := l.throughput
	if l.winN == 0 {
		// No answer to a poll sent since the last change for a whole
		// window: the upstream is stalled or its queue is very long.
		l.delay = 0
		if bound {
			l.scoreLocked(x < 0.98*l.demand)
			if !l.fixed {
				l.setLimitLocked(l.limit / 2)
			}
		} else {
			l.scoreLocked(false)
		}
		l.resetWindowLocked(now)
		return
	}
	rtt := l.winSum / time.Duration(l.winN)
	if l.base == 0 || rtt < l.base {
		l.base = rtt
	}
	qd := rtt - l.base
	l.delay = qd
	sat := bound && qd >= limitTargetDelay/2 && x < 0.98*l.demand
	l.scoreLocked(sat)
	if l.capacity == 0 {
		l.capacity = x
	} else {
		l.capacity = (1-limitCapacityWeight)*l.capacity + limitCapacityWeight*x
	}
	if bound && !l.fixed {
		if l.lastProbe.IsZero() || now.Sub(l.lastProbe) >= limitProbeEvery {
			l.savedLimit = l.limit
			l.probing = true
			l.epoch++
			l.resetWindowLocked(now)
			return
		}
		step := limitGain * x * (limitTargetDelay - qd).Seconds()
		l.setLimitLocked(math.Max(l.limit/2, math.Min(l.limit*2, l.limit+step)))
	}
	l.resetWindowLocked(now)
}

func (l *limiter) scoreLocked(sat bool) {
	v := 0.0
	if sat {
		v = 1
	}
	l.score = (1-limitScoreWeight)*l.score + limitScoreWeight*v
}

// limiterStatus is a snapshot for telemetry and status messages.
type limiterStatus struct {
	Limit      int
	InFlight   int
	Saturated  bool
	Capacity   float64 // polls/s at the knee (or at least answered)
	Demand     float64 // polls/s the schedule needs
	Throughput float64 // polls/s answered in the last window
	Delay      time.Duration
	Base       time.Duration
}

// saturated reports whether the upstream, not the exporter, limits the
// poll rate now (limiterStatus.Saturated).
func (l *limiter) saturated() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.score > limitSaturatedShare
}

func (l *limiter) status() limiterStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := int(l.limit)
	if l.probing {
		lim = int(l.savedLimit)
	}
	return limiterStatus{Limit: lim, InFlight: l.inflight, Saturated: l.score > limitSaturatedShare,
		Capacity: l.capacity, Demand: l.demand, Throughput: l.throughput, Delay: l.delay, Base: l.base}
}
