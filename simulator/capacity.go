package simulator

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// fifo models the reference server's one Node thread: every API request
// takes one service slot of 1/capacity seconds, slots are handed out in
// arrival order, and a request is answered when its slot ends. Beyond
// capacity the queue grows and latency with it; nothing is refused.
//
// It is a virtual clock, not a worker goroutine: a request reserves the
// slot after the last one reserved and sleeps until its end, so a queue of
// thousands costs parked goroutines and timers, not CPU.
type fifo struct {
	per  atomic.Int64 // service time per request, ns; 0 = unlimited
	mu   sync.Mutex
	next time.Time // when the last reserved slot ends
}

// set changes the capacity (requests/s; 0 = unlimited). Slots already
// reserved keep their times; the next request is served at the new rate.
func (f *fifo) set(rps float64) {
	if rps <= 0 {
		f.per.Store(0)
		return
	}
	f.per.Store(max(int64(float64(time.Second)/rps), 1))
}

// capacity is the current rate in requests/s, 0 when unlimited.
func (f *fifo) capacity() float64 {
	per := f.per.Load()
	if per == 0 {
		return 0
	}
	return float64(time.Second) / float64(per)
}

// reserve takes the next slot and returns how long the request must wait
// from now until it has been served.
func (f *fifo) reserve(now time.Time) time.Duration {
	per := f.per.Load()
	if per == 0 {
		return 0
	}
	f.mu.Lock()
	start := f.next
	if start.Before(now) {
		start = now // idle: served at once
	}
	end := start.Add(time.Duration(per))
	f.next = end
	f.mu.Unlock()
	return end.Sub(now)
}

// Capacity is the requests/s the simulator serves (0 = unlimited).
func (s *Server) Capacity() float64 { return s.fifo.capacity() }

// SetCapacity changes the requests/s the simulator serves while it runs;
// 0 is unlimited.
func (s *Server) SetCapacity(rps float64) error {
	if !(rps >= 0) || math.IsInf(rps, 0) {
		return fmt.Errorf("capacity=%g must be a finite number >= 0 (requests/s; 0 = unlimited)", rps)
	}
	s.fifo.set(rps)
	s.tel.capacity.Set(rps)
	return nil
}

// queue waits for the request's turn at the capacity, like a request in
// the one Node thread's queue.
func (s *Server) queue() {
	if s.fifo.per.Load() == 0 {
		return
	}
	d := s.fifo.reserve(s.now())
	s.tel.queueSeconds.Add(d.Seconds())
	s.sleep(d)
}

// adminCapacity serves the test-only /admin/capacity: GET reads the
// capacity, POST ?rps=N sets it (0 = unlimited).
func (s *Server) adminCapacity(ctx *fasthttp.RequestCtx, get bool) {
	if !get {
		if !ctx.IsPost() {
			notFound(ctx, ctx.Method(), rawPath(ctx.Request.Header.RequestURI()))
			return
		}
		v := ctx.QueryArgs().Peek("rps")
		rps, err := strconv.ParseFloat(string(v), 64)
		if err == nil {
			err = s.SetCapacity(rps)
		}
		if err != nil || len(v) == 0 {
			adminError(ctx, fasthttp.StatusBadRequest, "want POST /admin/capacity?rps=N with N >= 0 requests/s (0 = unlimited)")
			return
		}
	}
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(strconv.AppendFloat([]byte(`{"rps":`), s.Capacity(), 'f', -1, 64))
	ctx.Response.AppendBodyString("}")
}
