package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fault is one thing done to the pipeline. inject returns when the fault
// has ended: the component restarted, the disk freed, the network back.
type fault struct {
	name   string
	inject func(ctx context.Context, ch *chaos, r *result) error
}

var faults = []fault{
	killFault(nameSim),
	killFault("exporter-0"),
	killFault("exporter-1"),
	killFault(nameRankd),
	killFault(nameAgent),
	killFault(nameVM),
	killFault(nameVMAlert),
	{"disk-full", diskFull},
	{"stall-upstream", stallUpstream},
	{"network-drop", networkDrop},
}

// clockStepWhy is why the run does not step the wall clock.
const clockStepWhy = "not injected: no way to step the wall clock of one Go process. Go reads CLOCK_REALTIME through the vDSO, " +
	"so LD_PRELOAD tools (faketime) never see the call; time namespaces (Linux 5.6) offset only CLOCK_MONOTONIC and " +
	"CLOCK_BOOTTIME; stepping the host's clock would step every process on the machine. A step is covered by unit tests instead"

func faultByName(name string) *fault {
	for i := range faults {
		if faults[i].name == name {
			return &faults[i]
		}
	}
	return nil
}

func faultNames() string {
	var n []string
	for _, f := range faults {
		n = append(n, f.name)
	}
	return strings.Join(n, ", ")
}

// result is what one fault cost.
type result struct {
	Fault           string   `json:"fault"`
	What            string   `json:"what"`
	StartSeconds    float64  `json:"start_seconds"`    // since the run began
	DurationSeconds float64  `json:"duration_seconds"` // injection to the fault's end (restart done, disk freed, ...)
	RecoverSeconds  float64  `json:"recover_seconds"`  // from the fault's end to healthy; -1: not recovered
	Polls           float64  `json:"polls"`            // successful polls counted in the window
	Stored          float64  `json:"stored"`           // follower samples stored with a time in the window
	Lost            float64  `json:"lost"`             // Polls - Stored
	Precision       float64  `json:"precision"`        // polls made while the window's boundaries were read
	Inherent        float64  `json:"inherent"`         // of Lost, the loss the fault cannot avoid (measured where it can be)
	InherentBound   float64  `json:"inherent_bound"`
	InherentWhy     string   `json:"inherent_why"`
	Pending         []string `json:"alerts_pending"`
	Fired           []string `json:"alerts_fired"`
	Resolved        []string `json:"alerts_resolved"`
	StillFiring     []string `json:"alerts_still_firing"`
	Crashes         []string `json:"crashes"`
	NotRecovered    string   `json:"not_recovered,omitempty"`

	// An exporter kill: what it served, and when its polls were read.
	exposed map[string]int64
	readAt  time.Time
	killAt  time.Time
}

// killFault SIGKILLs a component and restarts it a second later.
func killFault(name string) fault {
	return fault{name: "kill " + name, inject: func(ctx context.Context, ch *chaos, r *result) error {
		r.What = "SIGKILL, restarted 1 s later"
		ch.mu.Lock()
		ch.handling[name] = true
		p := ch.st.Get(name)
		ch.mu.Unlock()
		defer func() {
			ch.mu.Lock()
			delete(ch.handling, name)
			ch.mu.Unlock()
		}()
		if i := slices.Index(exporterNames, name); i >= 0 {
			// Its count of successful polls dies with it: read it, and
			// what it serves, just before the kill.
			t := ch.telemetry(i)
			r.readAt = time.Now()
			r.exposed, _ = ch.exposed(i)
			ch.mu.Lock()
			if t.ok {
				ch.polls[name].cur = t.success
			}
			ch.endProcessLocked(name)
			ch.mu.Unlock()
		}
		p.Cmd.Process.Signal(syscall.SIGKILL)
		<-p.Done()
		r.killAt = time.Now()
		time.Sleep(time.Second)
		ch.mu.Lock()
		_, err := ch.st.Restart(ctx, name)
		ch.mu.Unlock()
		if err != nil {
			return fmt.Errorf("restart of %s: %w", name, err)
		}
		return nil
	}}
}

// diskFull fills VictoriaMetrics' disk to the last byte, holds it full,
// then frees it.
func diskFull(ctx context.Context, ch *chaos, r *result) error {
	r.killAt = time.Now() // the disk fills from here
	path := filepath.Join(ch.diskDir, "filler")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				f.Close()
				return err
			}
			break
		}
	}
	// The last partial write may leave a few bytes; fill them.
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
		n++
	}
	f.Close()
	r.What = fmt.Sprintf("tmpfs filled to the last byte (%d MiB written), held %s, then freed", n>>20, ch.c.FaultFor)
	sleep(ctx, ch.c.FaultFor)
	return os.Remove(path)
}

// stallUpstream holds every influencer request the simulator receives.
func stallUpstream(ctx context.Context, ch *chaos, r *result) error {
	r.What = fmt.Sprintf("every upstream request held unanswered for %s (POST /admin/stall)", ch.c.FaultFor)
	resp, err := ch.client.Post(fmt.Sprintf("%s/admin/stall?for=%s", ch.simURL, ch.c.FaultFor), "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /admin/stall: %s", resp.Status)
	}
	sleep(ctx, ch.c.FaultFor)
	return nil
}

// networkDrop takes the veth to the simulator's namespace down: packets
// vanish, connections hang until their timeouts.
func networkDrop(ctx context.Context, ch *chaos, r *result) error {
	r.What = fmt.Sprintf("the link between the exporters and the upstream down for %s (ip link set down)", ch.c.FaultFor)
	if err := ch.ns.link(false); err != nil {
		return err
	}
	sleep(ctx, ch.c.FaultFor)
	return ch.ns.link(true)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// waitHealthy waits until the pipeline is healthy, at most limit; it
// returns when, or the last reason it was not.
func (ch *chaos) waitHealthy(ctx context.Context, limit time.Duration) (time.Time, string) {
	deadline := time.Now().Add(limit)
	why := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, w := ch.healthy(ctx)
		if ok {
			return time.Now(), ""
		}
		why = w
		sleep(ctx, time.Second)
	}
	if why == "" {
		why = "interrupted"
	}
	return time.Time{}, why
}

// runFaults runs every fault in turn, each from a healthy pipeline, and
// prints the table.
func (ch *chaos) runFaults(ctx context.Context) error {
	c := ch.c
	fmt.Fprintf(ch.out, "pipeline up: %d influencers every %s, scraped every %s by vmagent; waiting for steady state...\n",
		c.PKCount, c.PollInterval, ch.scrapeInterval)
	if _, why := ch.waitHealthy(ctx, 3*time.Minute); why != "" {
		ch.keep = true
		return fmt.Errorf("the pipeline never became healthy: %s", why)
	}
	settle := 2*ch.scrapeInterval + 3*time.Second
	var results []*result
	runStart := ch.boundary()
	// The windows are contiguous: each fault's starts where the last one's
	// ended, so that a loss between faults is not missed, and they add up
	// to the whole run.
	a := runStart
	for _, f := range faults {
		if ctx.Err() != nil {
			break
		}
		if len(c.Only) > 0 && !slices.Contains(c.Only, f.name) {
			continue
		}
		r := &result{Fault: f.name}
		results = append(results, r)
		// Steady before: healthy, no alert firing.
		if _, why := ch.waitHealthy(ctx, c.Recover); why != "" {
			r.NotRecovered = "not healthy before the fault: " + why
		}
		ch.waitAlertsResolved(ctx, c.Recover)
		crashesBefore := ch.crashCount()
		ch.mu.Lock()
		delay := time.Duration(ch.rng.Int64N(int64(c.PollInterval)))
		ch.mu.Unlock()
		sleep(ctx, delay)
		start := time.Now()
		r.StartSeconds = start.Sub(ch.began).Seconds()
		fmt.Fprintf(ch.out, "%s: %s ", start.Format(time.TimeOnly), f.name)
		if err := f.inject(ctx, ch, r); err != nil {
			r.NotRecovered = err.Error()
		}
		ended := time.Now()
		r.DurationSeconds = ended.Sub(start).Seconds()
		at, why := ch.waitHealthy(ctx, c.Recover)
		if why != "" {
			r.RecoverSeconds = -1
			r.NotRecovered = strings.TrimPrefix(r.NotRecovered+"; ", "; ") + "still " + why
			ch.keep = true
		} else {
			r.RecoverSeconds = at.Sub(ended).Seconds()
		}
		b := ch.boundary()
		sleep(ctx, settle)
		ch.account(r, a, b)
		r.Pending, r.Fired, r.Resolved, r.StillFiring = ch.alerts.between(a.at, time.Now())
		a = b
		r.Crashes = ch.crashesSince(crashesBefore)
		fmt.Fprintf(ch.out, "-> recovered in %s, lost %.0f of %.0f polls (inherent %.0f, bound %.0f)%s\n",
			fmtRecover(r.RecoverSeconds), r.Lost, r.Polls, r.Inherent, r.InherentBound, notRecovered(r))
	}
	whole := &result{Fault: "whole run", What: "from steady state to the end"}
	ch.account(whole, runStart, a)
	ch.printShortfalls(runStart.at, a.at)
	whole.Crashes = ch.crashesSince(0)
	ch.printTable(results, whole)
	if c.JSON != "" {
		b, _ := json.MarshalIndent(map[string]any{"pks": c.PKCount, "poll_interval": c.PollInterval.String(), "seed": c.Seed,
			"short": c.Short, "faults": results, "whole_run": whole, "clock_step": clockStepWhy}, "", "  ")
		if err := os.WriteFile(c.JSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.NotRecovered != "" || r.Lost-r.Inherent > r.Precision+0.5 {
			ch.keep = true
			return fmt.Errorf("%s: %s", r.Fault, defect(r))
		}
	}
	return nil
}

func defect(r *result) string {
	if r.NotRecovered != "" {
		return "did not recover: " + r.NotRecovered
	}
	return fmt.Sprintf("lost %.0f samples, %.0f more than the inherent %.0f", r.Lost, r.Lost-r.Inherent, r.Inherent)
}

// printShortfalls lists the poll intervals of the run in which
// VictoriaMetrics holds fewer follower samples than there are influencers
// (each is polled once an interval), to show where a loss happened.
func (ch *chaos) printShortfalls(from, to time.Time) {
	step := ch.c.PollInterval
	fmt.Fprintf(ch.out, "\nstored follower samples per %s (%d influencers), where short by more than 0.5%%:\n", step, ch.c.PKCount)
	short := 0
	for t := from.Add(step); !t.After(to); t = t.Add(step) {
		r, err := ch.vmQuery(fmt.Sprintf("sum(count_over_time(mockstagram_influencer_followers[%dms]))", step.Milliseconds()), t)
		if err != nil || len(r) == 0 {
			continue
		}
		if n := r[0].v; n < 0.995*float64(ch.c.PKCount) {
			short++
			fmt.Fprintf(ch.out, "  +%4.0fs (%s): %.0f\n", t.Sub(ch.began).Seconds(), t.Format(time.TimeOnly), n)
		}
	}
	if short == 0 {
		fmt.Fprintln(ch.out, "  none")
	}
}

// waitAlertsResolved waits until no pipeline alert fires, at most limit.
// The data alerts (Influencer*) are not waited for: they fire on the data,
// and a restarted simulator starts every influencer over from its seed, a
// jump they report truthfully for their whole 5-minute window.
func (ch *chaos) waitAlertsResolved(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	firing := func() bool {
		for _, a := range ch.alerts.firingNow() {
			if !strings.HasPrefix(a, "Influencer") {
				return true
			}
		}
		return false
	}
	for firing() && time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, 2*time.Second)
	}
}

// account fills the loss of window (a, b]: polls the exporters counted
// against samples VictoriaMetrics stored, and what of the loss is inherent.
func (ch *chaos) account(r *result, a, b boundary) {
	r.Polls = b.polls - a.polls
	r.Precision = a.spread + b.spread
	// vmagent re-sends with a growing backoff after VictoriaMetrics was
	// away: count again until the figure holds still (or is whole).
	var stored float64
	var err error
	deadline := time.Now().Add(2 * time.Minute)
	for prev := -1.0; ; prev = stored {
		stored, err = ch.stored(a.at, b.at)
		if err == nil && (stored == prev || math.Abs(r.Polls-stored) <= r.Precision || time.Now().After(deadline)) {
			break
		}
		if err != nil && time.Now().After(deadline) {
			r.NotRecovered = strings.TrimPrefix(r.NotRecovered+"; ", "; ") + "cannot count stored samples: " + err.Error()
			break
		}
		time.Sleep(10 * time.Second)
	}
	r.Stored = stored
	r.Lost = r.Polls - r.Stored
	rate := float64(ch.c.PKCount) / ch.c.PollInterval.Seconds()
	switch {
	case r.exposed != nil:
		// The samples it served at the kill that no scrape had taken: each
		// pk's sample newer than the latest stored for it. Samples polled
		// after the reading of its count are in neither figure.
		last, err := ch.storedLast(r.killAt)
		if err == nil {
			readMs := r.readAt.UnixMilli()
			for pk, ts := range r.exposed {
				if ts <= readMs && ts > last[pk] {
					r.Inherent++
				}
			}
		}
		// Polls between the reading of its count and the kill are in
		// neither figure if lost, in Stored alone if scraped.
		r.Precision += rate / 2 * r.killAt.Sub(r.readAt).Seconds()
		r.InherentBound = rate / 2 * ch.scrapeInterval.Seconds()
		r.InherentWhy = "polled by the killed shard since vmagent's last scrape of it: at most one scrape interval of its polls"
	case r.Fault == "disk-full":
		r.Inherent = max(r.Lost, 0)
		// As a kill of VictoriaMetrics, plus what it took in from the
		// disk filling to its panic (its writes failed meanwhile).
		r.InherentBound = rate*7 + rate/2*ch.scrapeInterval.Seconds()
		if at := ch.firstCrash(nameVM, r.killAt); !at.IsZero() {
			r.InherentBound += rate * at.Sub(r.killAt).Seconds()
		}
		r.InherentWhy = "VictoriaMetrics panics when a write finds the disk full (upstream behaviour: below -storage.minFreeDiskSpaceBytes it turns read-only and vmagent keeps the data, but a disk filled faster than its check reaches ENOSPC first); what it had acknowledged and not yet written is gone"
	case r.Fault == "kill "+nameVM:
		r.Inherent = max(r.Lost, 0)
		// Ingestion comes in batches: each scrape of a shard brings half
		// an interval of its polls at once.
		r.InherentBound = rate*7 + rate/2*ch.scrapeInterval.Seconds()
		r.InherentWhy = "acknowledged to vmagent but still in VictoriaMetrics' memory: rows become an in-memory part within 2 s and reach the disk every 5 s (-inmemoryDataFlushInterval), so up to 7 s of ingestion, which arrives a shard's scrape (half an interval of its polls) at a time (upstream behaviour on an unclean stop)"
	case r.Fault == "kill "+nameAgent:
		r.Inherent = max(r.Lost, 0)
		r.InherentBound = rate * ch.scrapeInterval.Seconds()
		r.InherentWhy = "scraped by vmagent (so delivered: the exporters serve each sample once) but still in its memory, not yet sent (-remoteWrite.flushInterval=1s): at most a scrape interval of samples"
	default:
		r.InherentWhy = "none: nothing polled is held only in a process that dies"
	}
}

// firstCrash is when the supervisor first found name dead after t.
func (ch *chaos) firstCrash(name string, t time.Time) time.Time {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, c := range ch.crashes {
		if c.name == name && c.at.After(t) {
			return c.at
		}
	}
	return time.Time{}
}

func (ch *chaos) crashCount() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.crashes)
}

func (ch *chaos) crashesSince(n int) []string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var out []string
	for _, c := range ch.crashes[n:] {
		out = append(out, fmt.Sprintf("%s at +%.0fs: %s", c.name, c.at.Sub(ch.began).Seconds(), c.why))
	}
	return out
}

func fmtRecover(s float64) string {
	if s < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1fs", s)
}

func notRecovered(r *result) string {
	if r.NotRecovered == "" {
		return ""
	}
	return "; NOT RECOVERED: " + r.NotRecovered
}

// printTable prints the results as the Markdown table docs/operations.md
// quotes.
func (ch *chaos) printTable(rs []*result, whole *result) {
	w := ch.out
	fmt.Fprintf(w, "\n%d influencers polled every %s, 2 shards, scraped every %s by vmagent, seed %d\n\n",
		ch.c.PKCount, ch.c.PollInterval, ch.scrapeInterval, ch.c.Seed)
	fmt.Fprintln(w, "| fault | what was done | recovered after | polls | stored | lost | inherent (bound) | alerts pending / fired / resolved | crashes, not recovered |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range append(rs, whole) {
		rec := fmtRecover(r.RecoverSeconds)
		if r == whole {
			rec = ""
		}
		alerts := fmt.Sprintf("%s / %s / %s", list(r.Pending), list(r.Fired), list(r.Resolved))
		if len(r.StillFiring) > 0 {
			alerts += "; still firing: " + list(r.StillFiring)
		}
		other := list(r.Crashes)
		if r.NotRecovered != "" {
			other += "; NOT RECOVERED: " + r.NotRecovered
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | %.0f (±%.0f) | %.0f (%.0f) | %s | %s |\n", r.Fault, r.What, rec,
			r.Polls, r.Stored, r.Lost, r.Precision, r.Inherent, r.InherentBound, alerts, other)
	}
	fmt.Fprintf(w, "| clock step | %s | | | | | | | |\n", clockStepWhy)
	fmt.Fprintln(w, "\nInherent losses:")
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.InherentWhy] && r.InherentBound > 0 {
			seen[r.InherentWhy] = true
			fmt.Fprintf(w, "- %s: %s\n", r.Fault, r.InherentWhy)
		}
	}
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
