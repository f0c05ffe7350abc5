package exporter

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeUpstream answers one request at a time in arrival order, 1/capacity
// seconds each (0 = at once), after a network round trip of rtt: a one-thread
// server like the reference Mockstagram, on the bubble's clock.
type fakeUpstream struct {
	rtt      time.Duration
	per      atomic.Int64 // ns per request
	mu       sync.Mutex
	next     time.Time
	answered atomic.Int64
}

func newFakeUpstream(capacity float64, rtt time.Duration) *fakeUpstream {
	u := &fakeUpstream{rtt: rtt}
	u.setCapacity(capacity)
	return u
}

func (u *fakeUpstream) setCapacity(c float64) {
	if c == 0 {
		u.per.Store(0)
		return
	}
	u.per.Store(int64(float64(time.Second) / c))
}

// serve blocks like one request and returns its latency.
func (u *fakeUpstream) serve() time.Duration {
	start := time.Now()
	time.Sleep(u.rtt / 2)
	if per := time.Duration(u.per.Load()); per > 0 {
		u.mu.Lock()
		now := time.Now()
		s := u.next
		if s.Before(now) {
			s = now
		}
		u.next = s.Add(per)
		end := u.next
		u.mu.Unlock()
		time.Sleep(end.Sub(now))
	}
	time.Sleep(u.rtt / 2)
	u.answered.Add(1)
	return time.Since(start)
}

// load offers rate polls/s to u through l, as the dispatcher does: every
// 10 ms the due polls queue for a token (at most `queue` waiting, like the
// job channel; beyond that the dispatcher waits and falls behind). It
// runs until ctx ends.
func load(ctx context.Context, l *limiter, u *fakeUpstream, rate float64, queue int) {
	waiting := make(chan struct{}, queue)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var owed float64
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.tick()
		owed += rate / 100
		for ; owed >= 1; owed-- {
			select {
			case waiting <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				epoch, _ := l.acquire(nil)
				<-waiting
				d := u.serve()
				l.release(epoch, d, true)
			})
		}
	}
}

// startLoad runs load until the returned stop is called; the test calls it
// before its function returns, since a bubble's clock stops with its main
// goroutine and the load could not drain.
func startLoad(l *limiter, u *fakeUpstream, rate float64, queue int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { load(ctx, l, u, rate, queue); close(done) }()
	return func() { cancel(); <-done }
}

// meanOver is the answers/s of u over d.
func meanOver(u *fakeUpstream, d time.Duration) float64 {
	n0 := u.answered.Load()
	time.Sleep(d)
	return float64(u.answered.Load()-n0) / d.Seconds()
}

// TestLimiterFindsTheKnee: against an upstream answering 500/s with a 2 ms
// round trip, while the schedule asks 2,000/s, the limit settles where the
// upstream's queue holds about limitTargetDelay of work: throughput at the
// upstream's capacity, latency near rtt + 20 ms, the upstream reported
// saturated with its capacity. Then the capacity halves at run time, and
// later returns: the limit follows within seconds.
func TestLimiterFindsTheKnee(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newFakeUpstream(500, 2*time.Millisecond)
		l := newLimiter(1024, false, 2000, time.Now)
		defer startLoad(l, u, 2000, 1024)()
		check := func(capacity float64, settle time.Duration) {
			t.Helper()
			// The knee is found when the capacity estimate is within 10%
			// and the upstream is reported saturated: under 30 s.
			start := time.Now()
			for st := l.status(); math.Abs(st.Capacity-capacity) > 0.1*capacity || !st.Saturated; st = l.status() {
				if time.Since(start) > 30*time.Second {
					t.Fatalf("capacity %v: knee not found within 30 s: %+v", capacity, st)
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("capacity %v: knee found in %v", capacity, time.Since(start))
			time.Sleep(settle)
			x := meanOver(u, 5*time.Second)
			st := l.status()
			// The knee: capacity x (no-load latency + target delay).
			knee := capacity * (0.002 + 1/capacity + limitTargetDelay.Seconds())
			t.Logf("capacity %v: limit %d (knee %.0f), throughput %.0f, estimate %.0f, delay %v, base %v, saturated %v",
				capacity, st.Limit, knee, x, st.Capacity, st.Delay, st.Base, st.Saturated)
			if x < 0.95*capacity {
				t.Errorf("throughput %.0f/s, want >= 95%% of %v", x, capacity)
			}
			if math.Abs(float64(st.Limit)-knee) > 0.35*knee+limitFloor {
				t.Errorf("limit %d, want about %.0f", st.Limit, knee)
			}
			if math.Abs(st.Capacity-capacity) > 0.1*capacity {
				t.Errorf("capacity estimate %.0f, want about %v", st.Capacity, capacity)
			}
			if !st.Saturated {
				t.Errorf("not reported saturated at %v/s against a demand of 2000/s", capacity)
			}
		}
		check(500, 5*time.Second)
		u.setCapacity(250)
		check(250, 5*time.Second)
		u.setCapacity(1000)
		check(1000, 5*time.Second)
	})
}

// TestLimiterFastUpstreamChangesNothing: an upstream faster than the
// schedule never makes the limit bind for long: it grows past the bursts
// and stays, nothing waits, and the upstream is not reported saturated.
func TestLimiterFastUpstreamChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newFakeUpstream(20000, time.Millisecond)
		l := newLimiter(512, false, 5000, time.Now)
		defer startLoad(l, u, 5000, 512)()
		time.Sleep(5 * time.Second)
		x := meanOver(u, 10*time.Second)
		st := l.status()
		t.Logf("limit %d, throughput %.0f, estimate %.0f, saturated %v", st.Limit, x, st.Capacity, st.Saturated)
		if x < 4990 || st.Saturated {
			t.Fatalf("fast upstream: throughput %.0f/s of 5000, saturated %v", x, st.Saturated)
		}
		// A tick's 50 polls go out at once; the limit stays above them.
		if st.Limit < 60 {
			t.Fatalf("limit %d binds a burst of 50", st.Limit)
		}
		l.mu.Lock()
		bound := l.winBound
		l.mu.Unlock()
		if bound {
			t.Fatal("the limit still binds against a fast upstream")
		}
	})
}

// TestLimiterStalledUpstream: an upstream that stops answering drives the
// limit down to the floor; once it answers again the limit recovers.
func TestLimiterStalledUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newFakeUpstream(500, 2*time.Millisecond)
		l := newLimiter(1024, false, 2000, time.Now)
		defer startLoad(l, u, 2000, 1024)()
		time.Sleep(5 * time.Second)
		u.setCapacity(1) // one answer a second: as good as stalled
		time.Sleep(30 * time.Second)
		if st := l.status(); st.Limit > 2*limitFloor {
			t.Fatalf("limit %d against a stalled upstream, want near the floor %d", st.Limit, limitFloor)
		}
		u.setCapacity(500)
		time.Sleep(30 * time.Second) // the stalled queue drains first
		if x := meanOver(u, 5*time.Second); x < 475 {
			t.Fatalf("after the stall: %.0f/s of 500", x)
		}
	})
}

// TestLimiterFixed: with adaptation off the limit is the ceiling, and
// saturation is still reported.
func TestLimiterFixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newFakeUpstream(500, 2*time.Millisecond)
		l := newLimiter(64, true, 2000, time.Now)
		defer startLoad(l, u, 2000, 1024)()
		time.Sleep(10 * time.Second)
		if st := l.status(); st.Limit != 64 || !st.Saturated || st.InFlight < 64-limitGrantBatch {
			t.Fatalf("fixed limiter: %+v", st)
		}
	})
}

// TestLimiterAcquireFIFOAndStop: waiters get tokens in arrival order; a
// waiter that gives up takes no token, and one granted as it gave up hands
// its token on.
func TestLimiterAcquireFIFOAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(1, true, 0, time.Now)
		e1, ok1 := l.tryAcquire(false)
		if _, ok2 := l.tryAcquire(false); !ok1 || ok2 {
			t.Fatalf("tryAcquire at limit 1: %v %v", ok1, ok2)
		}
		var order []int
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, ok := l.acquire(stop); ok {
				t.Error("the stopped waiter got a token")
			}
		})
		synctest.Wait()
		for i := range 3 {
			wg.Go(func() {
				if _, ok := l.acquire(nil); ok {
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
				}
			})
			synctest.Wait()
		}
		close(stop)
		synctest.Wait()
		for range 3 {
			l.release(e1, time.Millisecond, true)
			synctest.Wait()
		}
		wg.Wait()
		if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
			t.Fatalf("tokens went to %v, want [0 1 2]", order)
		}
		if st := l.status(); st.InFlight != 1 {
			t.Fatalf("in flight %d, want 1", st.InFlight)
		}
	})
}

// TestLimiterGrantsBatches: a waiter is woken once limitGrantBatch tokens
// are free, and takes the rest of its batch ahead of later waiters.
func TestLimiterGrantsBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(8, true, 0, time.Now)
		for range 8 {
			if _, ok := l.tryAcquire(false); !ok {
				t.Fatal("a free token refused")
			}
		}
		woken := make(chan int, 2)
		for i := range 2 {
			go func() {
				l.acquire(nil)
				woken <- i
			}()
			synctest.Wait()
		}
		for k := 1; k < limitGrantBatch; k++ {
			l.release(0, 0, false)
			synctest.Wait()
			if len(woken) != 0 {
				t.Fatalf("a waiter woken with %d tokens free, want %d", k, limitGrantBatch)
			}
		}
		l.release(0, 0, false)
		if first := <-woken; first != 0 {
			t.Fatalf("waiter %d woken first", first)
		}
		for k := 1; k < limitGrantBatch; k++ {
			if _, ok := l.tryAcquire(false); ok {
				t.Fatal("a token taken ahead of a waiter")
			}
			if _, ok := l.tryAcquire(true); !ok {
				t.Fatalf("the woken writer could not take token %d of its batch", k+1)
			}
		}
		for range limitGrantBatch {
			l.release(0, 0, false)
		}
		<-woken
	})
}
