package exporter

import (
	"slices"
	"strconv"
)

// The step series. The follower-jump alert asks "did one poll move this
// influencer's count by more than a threshold?". Asked of the stored count
// series it is a scan of all 1M series per evaluation (3-24 s, and over
// VictoriaMetrics' 30 s query limit at 1M); asked here it is free, since
// the store sees the previous value when it replaces it. So the exporter
// publishes mockstagram_influencer_followers_step and _following_step,
// each poll's change, but only for the pks whose last step is large: a
// few series out of a million, which the alert rules read in
// milliseconds. The alert thresholds stay in the rules; these thresholds
// only decide what is worth publishing and must stay below them.

// StepThresholds are the smallest absolute one-poll changes published as
// step series (--steps.min-followers, --steps.min-following); negative
// turns a series off. A Store's zero value publishes every change.
type StepThresholds struct {
	Followers, Following int64
}

// DefaultStepThresholds are 5 sigma of Mockstagram's steps (followers
// sigma 10,000 per poll, following 100): about 0.3 of a million polls a
// minute pass each, so the series stay sparse, while the alerts (8 sigma)
// see every step that can fire them.
var DefaultStepThresholds = StepThresholds{Followers: 50_000, Following: 500}

// step is the last large change of one influencer, with the poll that
// made it.
type step struct {
	dFollowers, dFollowing int64
	bigFollowers           bool
	bigFollowing           bool
	timeMs                 int64
	seq                    uint64
}

// SetStepThresholds sets what noteStep publishes; call it before the first
// Set.
func (s *Store) SetStepThresholds(t StepThresholds) { s.stepMin = t }

func big(d, min int64) bool { return min >= 0 && (d >= min || -d >= min) }

// noteStep records the change from the packed values prev to smp, made by
// the sample with sequence number k; called inside Set's seqlock.
func (s *Store) noteStep(i int, prev uint64, smp Sample, k uint64) {
	df := int64(smp.Followers) - int64(prev>>32)
	dg := int64(smp.Following) - int64(uint32(prev))
	bf, bg := big(df, s.stepMin.Followers), big(dg, s.stepMin.Following)
	if !bf && !bg {
		if s.hasStep[i].Load() {
			s.stepMu.Lock()
			delete(s.steps, int32(i))
			s.hasStep[i].Store(false)
			s.stepMu.Unlock()
		}
		return
	}
	s.stepMu.Lock()
	s.steps[int32(i)] = step{dFollowers: df, dFollowing: dg, bigFollowers: bf, bigFollowing: bg, timeMs: smp.TimeMs, seq: k}
	s.hasStep[i].Store(true)
	s.stepMu.Unlock()
}

// stepsIn returns the steps of indexes [lo, hi) inside win, by index.
func (s *Store) stepsIn(lo, hi int, win Window) (idx []int32, out []step) {
	s.stepMu.Lock()
	for i, st := range s.steps {
		if int(i) >= lo && int(i) < hi && win.has(st.seq) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		out = append(out, s.steps[i])
	}
	s.stepMu.Unlock()
	return idx, out
}

// StepCount is how many influencers have a large last step now.
func (s *Store) StepCount() int {
	s.stepMu.Lock()
	defer s.stepMu.Unlock()
	return len(s.steps)
}

const (
	helpFollowersStep = "The change of the influencer's followerCount at its latest poll, present only while that change is at least --steps.min-followers in size; the sample timestamp is the poll time."
	helpFollowingStep = "The change of the influencer's followingCount at its latest poll, present only while that change is at least --steps.min-following in size; the sample timestamp is the poll time."
)

func (s *Store) renderSteps(r *renderer, lo, hi int, win Window) {
	idx, st := s.stepsIn(lo, hi, win)
	for _, followers := range []bool{true, false} {
		name, help := MetricFollowingStep, helpFollowingStep
		if followers {
			name, help = MetricFollowersStep, helpFollowersStep
		}
		r.buf = appendHeader(r.buf, name, help)
		for k, i := range idx {
			d := st[k].dFollowing
			if followers {
				if !st[k].bigFollowers {
					continue
				}
				d = st[k].dFollowers
			} else if !st[k].bigFollowing {
				continue
			}
			b := append(r.buf, name...)
			b = append(b, `{pk="`...)
			b = strconv.AppendInt(b, s.pks.PK(int(i)), 10)
			b = append(b, `"} `...)
			b = strconv.AppendInt(b, d, 10)
			b = append(b, ' ')
			b = strconv.AppendInt(b, st[k].timeMs, 10)
			r.buf = append(b, '\n')
			r.maybeFlush()
		}
	}
}
