package rankd

import "time"

// pacer spreads a refresh's CPU work over time: after each slice of work it
// sleeps long enough that the refresh uses at most share of one core. A
// refresh of 1M influencers is about 100 ms of CPU in rankd plus the
// exporters' serving and the loopback copy; run in one burst it takes a
// core away from the requests for that long, and on a small machine their
// tail latency shows it. Sleeping while decoding also paces the exporter,
// whose writes wait for rankd to read.
type pacer struct {
	share float64 // of one core; 0 or >= 1 never sleeps
	start time.Time
	slept time.Duration
}

// paceSlice is the work between pauses: short against a request's latency
// budget, long against the cost of a timer.
const paceSlice = 2 * time.Millisecond

// paceEvery is the number of items (records, array elements) between two
// looks at the clock.
const paceEvery = 1 << 14

func newPacer(share float64) *pacer { return &pacer{share: share, start: time.Now()} }

// step pauses when a slice of work is done; nil never pauses.
func (p *pacer) step() {
	if p == nil || p.share <= 0 || p.share >= 1 {
		return
	}
	if ran := time.Since(p.start); ran >= paceSlice {
		pause := time.Duration(float64(ran) * (1/p.share - 1))
		time.Sleep(pause)
		p.slept += pause
		p.start = time.Now()
	}
}
