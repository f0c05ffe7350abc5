package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/promtext"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
)

// observe reads every exporter's successful polls once a second, so that
// a process that dies on its own (not killed by a fault, which reads them
// just before) loses at most a second of its count.
func (ch *chaos) observe(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		ch.readPolls()
	}
}

// telemetry is one reading of an exporter.
type telemetry struct {
	ok                bool
	success, owned    float64
	fresh, pollsTotal float64
}

func (ch *chaos) telemetry(i int) telemetry {
	f, err := promtext.Fetch(ch.client, ch.expURLs[i]+"/telemetry")
	if err != nil {
		return telemetry{}
	}
	return telemetry{ok: true, success: f.Sum("mockstagram_exporter_polls_total", "outcome", "success"),
		owned: f.Sum("mockstagram_exporter_owned_influencers"), fresh: f.Sum("mockstagram_exporter_fresh_influencers"),
		pollsTotal: f.Sum("mockstagram_exporter_polls_total")}
}

// readPolls reads both exporters at once and books their successful polls;
// it returns the readings and when they were taken (the middle of the
// reads, and how long they took).
func (ch *chaos) readPolls() ([]telemetry, time.Time, time.Duration) {
	ch.mu.Lock()
	gens := make([]int, len(exporterNames))
	for i, n := range exporterNames {
		gens[i] = ch.polls[n].gen
	}
	ch.mu.Unlock()
	ts := make([]telemetry, len(exporterNames))
	start := time.Now()
	var wg sync.WaitGroup
	for i := range exporterNames {
		wg.Go(func() { ts[i] = ch.telemetry(i) })
	}
	wg.Wait()
	took := time.Since(start)
	ch.mu.Lock()
	for i, n := range exporterNames {
		if pc := ch.polls[n]; ts[i].ok && pc.gen == gens[i] {
			pc.cur = ts[i].success
		}
	}
	ch.mu.Unlock()
	return ts, start.Add(took / 2), took
}

// countedPolls is every successful poll so far, of every exporter process.
func (ch *chaos) countedPolls() float64 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var n float64
	for _, pc := range ch.polls {
		n += pc.ended + pc.cur
	}
	return n
}

// boundary is a reading of the counted polls at a moment.
type boundary struct {
	at     time.Time
	polls  float64
	spread float64 // polls made while the reading was taken: its precision
}

func (ch *chaos) boundary() boundary {
	ts, at, took := ch.readPolls()
	var owned float64
	for _, t := range ts {
		owned += t.owned
	}
	rate := owned / ch.c.PollInterval.Seconds()
	return boundary{at: at, polls: ch.countedPolls(), spread: rate * took.Seconds()}
}

// healthy reports whether coverage is 1.0 on every exporter and rankd
// answers exact data, and if not, why.
func (ch *chaos) healthy(ctx context.Context) (bool, string) {
	ts, _, _ := ch.readPolls()
	for i, t := range ts {
		if !t.ok {
			return false, exporterNames[i] + " not answering"
		}
		if t.owned == 0 || t.fresh < t.owned {
			return false, fmt.Sprintf("%s coverage %.4f", exporterNames[i], t.fresh/max(t.owned, 1))
		}
	}
	if ok, why := ch.delivered(); !ok {
		return false, why
	}
	return ch.rankdExact(ctx)
}

// delivered reports whether VictoriaMetrics answers and vmagent has
// nothing waiting for it.
func (ch *chaos) delivered() (bool, string) {
	resp, err := ch.client.Get(ch.vmURL + "/health")
	if err != nil {
		return false, "VictoriaMetrics not answering"
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, "VictoriaMetrics: " + resp.Status
	}
	f, err := promtext.Fetch(ch.client, ch.agentURL+"/metrics")
	if err != nil {
		return false, "vmagent not answering"
	}
	if b := f.Sum("vmagent_remotewrite_pending_data_bytes"); b > 0 {
		return false, fmt.Sprintf("vmagent holds %.0f bytes for VictoriaMetrics", b)
	}
	return true, ""
}

// rankdExact asks rankd for a few random influencers and compares them
// with the simulator's current counts. A poll between the two reads can
// differ for up to one rankd refresh, so each pk gets three tries, 1.2 s
// apart, and only a pk that never matches counts.
func (ch *chaos) rankdExact(ctx context.Context) (bool, string) {
	const n = 8
	pks := make([]int64, n)
	for i := range pks {
		// Not ch.rng: the fault schedule must not depend on how many
		// health checks ran.
		pks[i] = 1_000_000 + rand.Int64N(int64(ch.c.PKCount))
	}
	errs := make([]string, n)
	var wg sync.WaitGroup
	for i, pk := range pks {
		wg.Go(func() {
			for try := 0; try < 3; try++ {
				if try > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(1200 * time.Millisecond):
					}
				}
				errs[i] = ch.comparePK(pk)
				if errs[i] == "" {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			return false, e
		}
	}
	return true, ""
}

type counts struct {
	FollowerCount  int64 `json:"followerCount"`
	FollowingCount int64 `json:"followingCount"`
}

func (ch *chaos) comparePK(pk int64) string {
	var want, got counts
	if err := ch.getJSON(fmt.Sprintf("%s/admin/influencers/%d", ch.simURL, pk), &want); err != nil {
		return "simulator: " + err.Error()
	}
	if err := ch.getJSON(fmt.Sprintf("%s/api/v1/influencers/%d", ch.rankdURL, pk), &got); err != nil {
		return "rankd: " + err.Error()
	}
	if got != want {
		return fmt.Sprintf("rankd has pk %d at %d/%d, the simulator at %d/%d", pk, got.FollowerCount, got.FollowingCount,
			want.FollowerCount, want.FollowingCount)
	}
	return ""
}

func (ch *chaos) getJSON(u string, v any) error {
	resp, err := ch.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%s: %s %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// vmQuery runs an instant query at t and returns the result vector.
func (ch *chaos) vmQuery(q string, t time.Time) ([]vmSample, error) {
	u := fmt.Sprintf("%s/api/v1/query?nocache=1&query=%s&time=%.3f", ch.vmURL, url.QueryEscape(q), float64(t.UnixMilli())/1000)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	out := make([]vmSample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, s.Value[1])
		}
		out = append(out, vmSample{labels: s.Metric, v: v})
	}
	return out, nil
}

type vmSample struct {
	labels map[string]string
	v      float64
}

// stored counts the follower samples VictoriaMetrics holds with a
// timestamp in (from, to].
func (ch *chaos) stored(from, to time.Time) (float64, error) {
	ms := to.UnixMilli() - from.UnixMilli()
	r, err := ch.vmQuery(fmt.Sprintf("sum(count_over_time(mockstagram_influencer_followers[%dms]))", ms), to)
	if err != nil || len(r) == 0 {
		return 0, err
	}
	return r[0].v, nil
}

// storedLast is each pk's latest stored follower sample time (ms) at t.
func (ch *chaos) storedLast(t time.Time) (map[string]int64, error) {
	r, err := ch.vmQuery("tlast_over_time(mockstagram_influencer_followers[5m])", t)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(r))
	for _, s := range r {
		out[s.labels["pk"]] = int64(math.Round(s.v * 1000))
	}
	return out, nil
}

// exposed reads an exporter's follower samples as it serves them now:
// pk -> timestamp (ms).
func (ch *chaos) exposed(i int) (map[string]int64, error) {
	resp, err := ch.client.Get(ch.expURLs[i] + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	const prefix = `mockstagram_influencer_followers{`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		j := strings.Index(line, `pk="`)
		if j < 0 {
			continue
		}
		pk := line[j+4:]
		pk = pk[:strings.IndexByte(pk, '"')]
		f := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
		if len(f) < 2 {
			continue
		}
		ts, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		out[pk] = ts
	}
	return out, sc.Err()
}

// alertWatch follows vmalert's alerts: pending (the rule matched, its
// for: not yet reached) and firing.
type alertWatch struct {
	client *http.Client
	url    string
	mu     sync.Mutex
	state  map[string]string // alert name -> pending or firing
	events []alertEvent
}

type alertEvent struct {
	at    time.Time
	name  string
	state string // pending, firing, or inactive (resolved)
}

func newAlertWatch(c *http.Client, u string) *alertWatch {
	return &alertWatch{client: c, url: u, state: map[string]string{}}
}

func (a *alertWatch) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		alerts, err := victoria.Alerts(a.client, a.url)
		if err != nil {
			continue // vmalert down (a fault): keep the last states
		}
		now := time.Now()
		seen := map[string]string{}
		for _, al := range alerts {
			if al.State == "firing" || seen[al.Name] == "" {
				seen[al.Name] = al.State
			}
		}
		a.mu.Lock()
		for name, st := range seen {
			if a.state[name] != st {
				a.state[name] = st
				a.events = append(a.events, alertEvent{at: now, name: name, state: st})
			}
		}
		for name := range a.state {
			if seen[name] == "" {
				delete(a.state, name)
				a.events = append(a.events, alertEvent{at: now, name: name, state: "inactive"})
			}
		}
		a.mu.Unlock()
	}
}

// between returns the alerts that went pending, fired and resolved in
// [from, to), and those firing at to.
func (a *alertWatch) between(from, to time.Time) (pending, fired, resolved, still []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if e.at.Before(from) || !e.at.Before(to) {
			continue
		}
		switch e.state {
		case "pending":
			pending = append(pending, e.name)
		case "firing":
			fired = append(fired, e.name)
		default:
			resolved = append(resolved, e.name)
		}
	}
	for name, st := range a.state {
		if st == "firing" {
			still = append(still, name)
		}
	}
	return uniq(pending), uniq(fired), uniq(resolved), uniq(still)
}

// firingNow lists the alerts firing now.
func (a *alertWatch) firingNow() []string {
	_, _, _, still := a.between(time.Time{}, time.Time{})
	return still
}

func uniq(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
