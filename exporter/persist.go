package exporter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// SaveState writes the shard's state file (see state.go and statefile.go)
// and returns the bytes written.
func (e *Exporter) SaveState() (int64, error) {
	if e.state == nil {
		return 0, errors.New("no state.dir")
	}
	h := StateHeader{WrittenMs: time.Now().UnixMilli(), Range: e.cfg.Range, Shard: e.cfg.Shard, Schedule: e.schedule()}
	return e.state.write(func(w io.Writer) (int64, error) { return encodeState(w, h, e.store) })
}

// schedule is the classifier's walk to save. With the classifier off, the
// schedule loaded at start is written back unchanged, so that turning it on
// again resumes it.
func (e *Exporter) schedule() Schedule {
	if e.classifier != nil {
		return e.classifier.schedule()
	}
	return e.loadedSchedule
}

// saveLoop writes the state every StateInterval until ctx ends.
func (e *Exporter) saveLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.StateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.saveAndReport("periodic")
		}
	}
}

// saveAndReport saves the state and accounts for it in logs and telemetry.
func (e *Exporter) saveAndReport(why string) {
	start := time.Now()
	n, err := e.SaveState()
	d := time.Since(start)
	if err != nil {
		e.tel.stateErrors.Inc()
		e.log.Error("state not saved; a restart now would lose verdicts", "why", why, "err", err)
		return
	}
	e.tel.stateBytes.Set(float64(n))
	e.tel.stateSeconds.Set(d.Seconds())
	e.tel.stateLast.SetToCurrentTime()
	lvl := slog.LevelDebug
	if why != "periodic" {
		lvl = slog.LevelInfo
	}
	e.log.Log(context.Background(), lvl, "state saved", "why", why, "path", e.state.path,
		"bytes", n, "duration", d.Round(time.Millisecond))
}

// StateLoad describes what LoadState found. Unless Loaded, the exporter
// starts cold (empty).
type StateLoad struct {
	Path        string
	Loaded      bool          // the file was read and applied
	SetAside    string        // where a rejected file was moved
	Reason      error         // why the file was not used (nil when loaded or absent)
	Age         time.Duration // how old the file was
	Influencers int           // pks with a sample
	Verdicts    int           // pks with a verdict
}

// LoadState reads the shard's state file into the exporter before Run. A
// missing file is a cold start. A file that cannot be used (corrupt,
// truncated, another shard's or range's, another version) is renamed aside
// with a .rejected-<time> suffix and the exporter starts cold: it reports
// the reason but never fails on it, so a bad file cannot crash-loop a pod.
// A file that cannot be read (permissions, I/O) is not the file's fault: it
// stays where it is for the next start, and this one starts cold.
func (e *Exporter) LoadState() StateLoad {
	if e.state == nil {
		return StateLoad{}
	}
	res := StateLoad{Path: e.state.path}
	data, found, err := e.state.read()
	if !found || err != nil {
		res.Reason = err
		return res
	}
	now := time.Now()
	st, err := decodeState(data)
	if err == nil {
		res.Age = now.Sub(time.UnixMilli(st.WrittenMs))
		err = e.checkState(st, res.Age)
	}
	if err != nil {
		res.Reason = err
		res.SetAside = e.state.setAside(now)
		return res
	}
	res.Influencers, res.Verdicts = e.applyState(st)
	res.Loaded = true
	e.tel.stateResumed.Set(float64(res.Influencers))
	return res
}

// checkState refuses a state that is not this shard's, or from the future.
func (e *Exporter) checkState(st *State, age time.Duration) error {
	if st.Range != e.cfg.Range || st.Shard != e.cfg.Shard || len(st.Samples) != e.store.Len() {
		return stateErr("state file belongs to shard %d of %d over pks %d..%d (%d pks); this exporter is shard %d of %d over pks %d..%d",
			st.Shard.Index, st.Shard.Count, st.Range.Min, st.Range.Max, len(st.Samples), e.cfg.Shard.Index, e.cfg.Shard.Count, e.cfg.Range.Min, e.cfg.Range.Max)
	}
	if age < -time.Minute {
		// Its poll and verdict times would be in this clock's future: every
		// new poll would be refused as older until the clock caught up.
		return stateErr("state file was written %s in the future of this clock (at %s); one of the clocks is wrong",
			(-age).Round(time.Second), time.UnixMilli(st.WrittenMs).UTC().Format(time.RFC3339))
	}
	return nil
}

// applyState puts a checked state into the store and hands its schedule to
// the classifier. It returns the pks that got a sample and a verdict.
func (e *Exporter) applyState(st *State) (influencers, verdicts int) {
	for i, smp := range st.Samples {
		if e.store.Set(i, smp) {
			influencers++
		}
		if e.store.SetVerdict(i, st.Verdicts[i]) {
			verdicts++
		}
	}
	for i, name := range st.Usernames {
		e.store.SetUsername(int(i), []byte(name))
	}
	e.loadedSchedule = st.Schedule
	if e.classifier != nil {
		e.classifier.resumeFrom(st.Schedule)
	}
	return influencers, verdicts
}
