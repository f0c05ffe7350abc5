package exporter

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type dispatched struct {
	job
	attempt uint8
}

// runScheduler runs s with `workers` goroutines that answer each job with
// handle(job) (true = success) until `cycles` cycle reports arrived. The
// tests call it inside a synctest bubble: the schedule's timers and the
// workers' sleeps run on the bubble's fake clock, so a test of several
// one-second cycles takes milliseconds and no other test can starve it.
func runScheduler(t *testing.T, s *scheduler, workers, cycles int, handle func(job) bool) ([]dispatched, []CycleReport, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var jobs []dispatched
	var reports []CycleReport
	missed := 0
	done := make(chan struct{})
	s.onCycle = func(r CycleReport) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, r)
		if len(reports) == cycles {
			close(done)
		}
	}
	s.onMissed = func(n int) {
		mu.Lock()
		missed += n
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range s.jobs {
				mu.Lock()
				jobs = append(jobs, dispatched{job: j, attempt: j.attempt})
				mu.Unlock()
				ok := handle(j)
				now := time.Now()
				if !ok && s.retryAt(j, now) {
					continue
				}
				s.complete(j, ok, now)
			}
		}()
	}
	go s.run(ctx)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no cycle reports")
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return jobs, reports[:cycles], missed
}

// TestSchedulerEveryPKOncePerCycle: on schedule, each cycle dispatches every
// pk exactly once, each at its own evenly spread slot.
func TestSchedulerEveryPKOncePerCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		s := newScheduler(nil, n, 400*time.Millisecond, 50*time.Millisecond, 8, 0, 0)
		jobs, reports, missed := runScheduler(t, s, 8, 3, func(job) bool { return true })
		if missed != 0 {
			t.Fatalf("missed %d polls with idle workers", missed)
		}
		for c := int64(0); c < 3; c++ {
			var idx []int32
			for _, j := range jobs {
				if j.cycle == c {
					idx = append(idx, j.idx)
					if want := s.slotTime(c, int(j.idx)); !j.slot.Equal(want) {
						t.Fatalf("cycle %d pk %d slot %v, want %v", c, j.idx, j.slot, want)
					}
				}
			}
			seen := map[int32]bool{}
			for _, i := range idx {
				if seen[i] {
					t.Fatalf("cycle %d dispatched pk index %d twice", c, i)
				}
				seen[i] = true
			}
			if len(seen) != n {
				t.Fatalf("cycle %d dispatched %d distinct pks, want %d", c, len(seen), n)
			}
			r := reports[c]
			if r.Cycle != c || r.Polled != n || r.Failed != 0 || r.Missed != 0 || r.Coverage() != 1 {
				t.Fatalf("cycle %d report %+v", c, r)
			}
		}
		// Slots are spread evenly: consecutive slots differ by interval/n.
		if d := s.slotTime(0, 1).Sub(s.slotTime(0, 0)); d != 10*time.Millisecond {
			t.Fatalf("slot spacing %v, want 10ms", d)
		}
	})
}

// TestSchedulerRetries: a pk failing twice is retried with growing attempt
// numbers and counts as polled when the third attempt succeeds; a pk that
// always fails counts as failed after its retries.
func TestSchedulerRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 10
		s := newScheduler(nil, n, 2*time.Second, 20*time.Millisecond, 4, 2, 10*time.Millisecond)
		jobs, reports, _ := runScheduler(t, s, 4, 1, func(j job) bool {
			switch j.idx {
			case 3:
				return j.attempt == 2
			case 7:
				return false
			}
			return true
		})
		attempts := map[int32][]uint8{}
		for _, j := range jobs {
			if j.cycle == 0 {
				attempts[j.idx] = append(attempts[j.idx], j.attempt)
			}
		}
		for _, i := range []int32{3, 7} {
			if a := attempts[i]; len(a) != 3 || a[0] != 0 || a[1] != 1 || a[2] != 2 {
				t.Fatalf("pk index %d attempts %v, want [0 1 2]", i, a)
			}
		}
		if a := attempts[0]; len(a) != 1 {
			t.Fatalf("a succeeding pk was polled %d times", len(a))
		}
		if r := reports[0]; r.Polled != n-1 || r.Failed != 1 || r.Missed != 0 {
			t.Fatalf("report %+v, want %d polled, 1 failed", r, n-1)
		}
	})
}

// TestSchedulerRetryDeadline: a retry is only scheduled when it can end
// before the pk is due again, so two attempts of one pk never overlap the
// next cycle.
func TestSchedulerRetryDeadline(t *testing.T) {
	s := newScheduler(nil, 10, time.Minute, 5*time.Second, 4, 3, time.Second)
	slot := time.Unix(1000, 0)
	f := func(attempt uint8, failedAt time.Duration, want bool) {
		t.Helper()
		s.retryQ = nil
		j := job{idx: 1, attempt: attempt, slot: slot}
		if got := s.retryAt(j, slot.Add(failedAt)); got != want {
			t.Fatalf("retryAt(attempt %d, failed at +%v) = %v, want %v", attempt, failedAt, got, want)
		}
		if want {
			r := s.retryQ[0]
			if wantAt := slot.Add(failedAt + time.Second<<attempt); !r.at.Equal(wantAt) || r.job.attempt != attempt+1 {
				t.Fatalf("retry queued at %v attempt %d, want %v attempt %d", r.at, r.job.attempt, wantAt, attempt+1)
			}
		}
	}
	f(0, 0, true)
	f(1, 10*time.Second, true)                   // at +12s
	f(2, 50*time.Second, true)                   // at +54s, ends by +59s
	f(2, 51*time.Second, true)                   // at +55s, ends at +60s exactly
	f(2, 51*time.Second+time.Millisecond, false) // would end after +60s
	f(0, 54*time.Second, true)                   // at +55s, ends at +60s exactly
	f(0, 54*time.Second+time.Millisecond, false) // one ms too late
	f(3, 0, false)                               // out of attempts
}

// TestSchedulerFallsBehindWithoutBacklog: with workers stuck for the
// whole first cycle, most of its pks are never dispatched and are counted as
// missed; the next cycle starts at the first pk not dispatched, so the least
// recently polled go first.
func TestSchedulerFallsBehindWithoutBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		s := newScheduler(nil, n, 300*time.Millisecond, 10*time.Millisecond, 2, 0, 0)
		jobs, reports, missed := runScheduler(t, s, 2, 2, func(j job) bool {
			if j.cycle == 0 {
				// Stuck until after cycle 0 ended (its report is forced only
				// two intervals and a timeout later).
				time.Sleep(time.Until(s.slotTime(1, 0).Add(100 * time.Millisecond)))
			}
			return true
		})
		sent0 := 0
		for _, j := range jobs {
			if j.cycle == 0 {
				sent0++
			}
		}
		// Two workers plus a job buffer of two: at most 4 of 20 go out.
		if sent0 > 4 {
			t.Fatalf("stuck workers took %d jobs; the dispatcher must not queue more than its buffer", sent0)
		}
		if r := reports[0]; r.Missed != n-sent0 || r.Polled != sent0 {
			t.Fatalf("cycle 0 report %+v, want %d polled and %d missed", r, sent0, n-sent0)
		}
		if missed < n-sent0 {
			t.Fatalf("missed counter %d, want at least %d", missed, n-sent0)
		}
		var order []int32
		for _, j := range jobs {
			if j.cycle == 1 {
				order = append(order, j.idx)
			}
		}
		if len(order) == 0 || int(order[0]) != sent0 {
			t.Fatalf("cycle 1 dispatched %v; want it to start at pk index %d, the first not dispatched in cycle 0", order, sent0)
		}
	})
}
