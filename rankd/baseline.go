package rankd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
)

// This file reads the gains' baselines: for every window, each
// influencer's followerCount and followingCount at the window's start,
// taken from the samples VictoriaMetrics already stores (its CSV export
// API), so that no window starts empty again when rankd restarts. gains.go
// turns them into gains and ranks at every snapshot refresh.

// Metric names the baselines are read from: the exporter's gauges.
const (
	metricFollowers = "mockstagram_influencer_followers"
	metricFollowing = "mockstagram_influencer_following"
)

// Window is one gains window: its name as the user wrote it ("24h", "7d"),
// which keys it in the API, and its length.
type Window struct {
	Name string
	D    time.Duration
}

// DefaultWindows is the default of --gains.windows.
const DefaultWindows = "1h,24h,7d,30d"

// ParseWindows reads a comma-separated list of durations in the Prometheus
// form (1m, 1h, 24h, 7d, 1w, 30d). The result is sorted by name, the order
// in which the API writes its maps.
func ParseWindows(s string) ([]Window, error) {
	var out []Window
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		d, err := model.ParseDuration(name)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("gains.windows: %q is not a positive duration such as 1h, 24h, 7d or 30d", name)
		}
		for _, w := range out {
			if w.D == time.Duration(d) {
				return nil, fmt.Errorf("gains.windows: %q and %q are the same window", w.Name, name)
			}
		}
		out = append(out, Window{Name: name, D: time.Duration(d)})
	}
	slices.SortFunc(out, func(a, b Window) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// WindowNames lists the windows' names, shortest first, for messages.
func WindowNames(ws []Window) string {
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b Window) int { return int(a.D - b.D) })
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.Name
	}
	return strings.Join(names, ", ")
}

// baseline is one window's start values of every influencer, read from
// VictoriaMetrics at one time and immutable after. It is indexed like the
// snapshot it was read for (pk - PKMin); a snapshot with another layout
// maps its pks over. 12 bytes an influencer, and a bit.
type baseline struct {
	PKMin  int64
	f      []uint32   // followerCount, alone: the gains' passes read only it
	gt     []baseRest // the rest, together: a lookup reads one cache line
	set    []uint64   // bit j: gt[j].T != 0, for the gains' passes over every influencer
	origin int64      // Unix ms: the start of the lookback, exclusive
	Start  time.Time
	Count  int // influencers with a baseline
}

// index fills set and Count from t.
func (b *baseline) index() {
	b.set, b.Count = make([]uint64, len(b.gt)/64+1), 0
	for j := range b.gt {
		if b.gt[j].T != 0 {
			b.set[j>>6] |= 1 << (j & 63)
			b.Count++
		}
	}
}

// baseRest is a baseline's followingCount and the time of its followers
// sample in ms after origin; T 0 = no baseline.
type baseRest struct{ G, T uint32 }

// has reports whether index j holds a baseline.
func (b *baseline) has(j int64) bool { return j >= 0 && j < int64(len(b.gt)) && b.gt[j].T != 0 }

// from is the Unix ms of index j's baseline sample.
func (b *baseline) from(j int64) int64 { return b.origin + int64(b.gt[j].T) }

// WindowStatus is the state of one window's baselines, in /api/v1/status.
type WindowStatus struct {
	Window      string    `json:"window"`
	Start       time.Time `json:"start,omitzero"`      // the window start of the baselines in use
	Influencers int       `json:"influencers"`         // with a baseline
	LastRead    time.Time `json:"lastRead,omitzero"`   // when they were read
	LastError   string    `json:"lastError,omitempty"` // of the last read, when it failed
	ReadMs      float64   `json:"readMs"`              // duration of the last read
}

// gainsState is the server's part for gains: the configured windows, the
// latest baseline of each and when to read it again.
type gainsState struct {
	windows []Window
	base    []atomic.Pointer[baseline]
	mu      sync.Mutex // guards next and status
	next    []time.Time
	status  []WindowStatus
	client  *http.Client
}

func newGainsState(ws []Window) *gainsState {
	g := &gainsState{windows: ws, base: make([]atomic.Pointer[baseline], len(ws)), next: make([]time.Time, len(ws)),
		status: make([]WindowStatus, len(ws)), client: &http.Client{}}
	for i, w := range ws {
		g.status[i].Window = w.Name
	}
	return g
}

// period is how often window w's baselines are read again: once per
// --gains.refresh, but a long window no more than 60 times per its length
// (a 24h window every 24 min), so that its start moves by at most 1/60 of
// it (or gains.refresh) between reads while VictoriaMetrics reads the
// population about 15 times an hour for the default windows.
func (s *Server) period(w Window) time.Duration {
	return max(s.cfg.GainsRefresh, w.D/60)
}

// ReadBaselines reads the baselines of every window that is due (all of
// them when force is set) from VictoriaMetrics, one window after another;
// the next snapshot refresh computes the gains against them. It needs a
// snapshot for the pk layout and returns at once without one. A failed
// read keeps the window's previous baselines and is retried on the next
// call.
func (s *Server) ReadBaselines(ctx context.Context, force bool) {
	g := s.gains
	if g == nil {
		return
	}
	snap := s.acquire()
	if snap == nil {
		return
	}
	lo, span := snap.PKMin, snap.Span()
	release(snap)
	for k, w := range g.windows {
		now := s.now()
		g.mu.Lock()
		due := force || !now.Before(g.next[k])
		g.mu.Unlock()
		if !due {
			continue
		}
		t0 := time.Now()
		b, err := s.readBaseline(ctx, now.Add(-w.D), lo, span)
		ms := float64(time.Since(t0).Microseconds()) / 1000
		s.tel.baselineSeconds.WithLabelValues(w.Name).Observe(ms / 1000)
		g.mu.Lock()
		st := &g.status[k]
		st.ReadMs = ms
		if err != nil {
			st.LastError = err.Error()
			g.next[k] = now.Add(s.cfg.GainsRefresh)
			g.mu.Unlock()
			s.tel.baselineErrors.WithLabelValues(w.Name).Inc()
			s.log.Warn("cannot read gain baselines from VictoriaMetrics; keeping the previous ones", "window", w.Name, "err", err)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		g.base[k].Store(b)
		st.LastError, st.LastRead, st.Start, st.Influencers = "", time.Now(), b.Start, b.Count
		g.next[k] = now.Add(s.period(w))
		g.mu.Unlock()
		s.log.Debug("read gain baselines", "window", w.Name, "start", b.Start, "influencers", b.Count, "ms", ms)
	}
}

// runGains reads the baselines that are due every --gains.refresh until
// ctx ends; the first round, as soon as a snapshot exists, reads all.
func (s *Server) runGains(ctx context.Context) {
	tick := time.NewTicker(min(s.cfg.GainsRefresh, time.Second))
	defer tick.Stop()
	for {
		if s.snap.Load() != nil {
			s.ReadBaselines(ctx, false)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// GainsStatus is the state of every window's baselines.
func (s *Server) GainsStatus() []WindowStatus {
	if s.gains == nil {
		return nil
	}
	s.gains.mu.Lock()
	defer s.gains.mu.Unlock()
	return slices.Clone(s.gains.status)
}

// readBaseline reads, for every pk of lo..lo+span-1, the last followers
// and following sample in (start - lookback, start]: two exports of one
// metric each, streamed and parsed as they arrive.
func (s *Server) readBaseline(ctx context.Context, start time.Time, lo int64, span int) (*baseline, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.GainsTimeout)
	defer cancel()
	end := start.UnixMilli()
	b := &baseline{PKMin: lo, f: make([]uint32, span), gt: make([]baseRest, span),
		origin: end - s.cfg.GainsLookback.Milliseconds(), Start: start}
	// following first, remembering which pks have one; then followers,
	// whose sample times become the baselines' times.
	gt := make([]uint32, span)
	if err := s.export(ctx, metricFollowing, b.origin, end, func(j int64, v uint32, off uint32) {
		if off >= gt[j] {
			b.gt[j].G, gt[j] = v, off
		}
	}, lo, span); err != nil {
		return nil, err
	}
	if err := s.export(ctx, metricFollowers, b.origin, end, func(j int64, v uint32, off uint32) {
		if off >= b.gt[j].T {
			b.f[j], b.gt[j].T = v, off
		}
	}, lo, span); err != nil {
		return nil, err
	}
	for j := range b.gt {
		if b.gt[j].T != 0 && gt[j] == 0 {
			b.gt[j].T = 0 // a followers sample without its following: no baseline
		}
	}
	b.index()
	return b, nil
}

// export streams VictoriaMetrics' CSV export of metric's samples in
// (origin, end] (Unix ms) and calls put with each sample of a pk in the
// layout: its index, value and time after origin.
func (s *Server) export(ctx context.Context, metric string, origin, end int64, put func(j int64, v, off uint32), lo int64, span int) error {
	q := url.Values{
		"match[]": {metric},
		"format":  {"pk,__value__,__timestamp__:unix_ms"},
		"start":   {strconv.FormatFloat(float64(origin+1)/1000, 'f', 3, 64)},
		"end":     {strconv.FormatFloat(float64(end)/1000, 'f', 3, 64)},
	}
	u := strings.TrimRight(s.cfg.Victoria, "/") + "/api/v1/export/csv?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := s.gains.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot export %s from VictoriaMetrics (--victoria.url=%s): %w", metric, s.cfg.Victoria, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("cannot export %s from VictoriaMetrics: HTTP %d from %s: %s; is --victoria.url a VictoriaMetrics (single-node, or vmselect's /select/0/prometheus)?",
			metric, resp.StatusCode, s.cfg.Victoria, strings.TrimSpace(string(body)))
	}
	br := bufio.NewReaderSize(resp.Body, 256<<10)
	for line := 1; ; line++ {
		l, err := br.ReadSlice('\n')
		if len(l) > 0 {
			pk, v, ts, ok := parseExportLine(l)
			if !ok {
				return fmt.Errorf("export of %s from VictoriaMetrics, line %d: cannot parse %q as pk,value,timestamp", metric, line, strings.TrimSpace(string(l)))
			}
			j := pk - lo
			// Samples outside (origin, end] cannot come back, but a
			// wrong one must not become a baseline.
			if pk >= 0 && j >= 0 && j < int64(span) && ts > origin && ts <= end && v >= 0 && v <= math.MaxUint32 && v == math.Trunc(v) {
				put(j, uint32(v), uint32(ts-origin))
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("export of %s from VictoriaMetrics, line %d: line too long", metric, line)
			}
			return fmt.Errorf("cannot read the export of %s from VictoriaMetrics: %w", metric, err)
		}
	}
}

// parseExportLine reads "pk,value,timestamp\n" without allocating (an
// export of 1M influencers is 1M lines). ok is false for a line that is
// not three fields; pk is -1 for an empty line or a pk label that is not
// an integer (not one of ours: skipped).
func parseExportLine(l []byte) (pk int64, v float64, ts int64, ok bool) {
	for len(l) > 0 && (l[len(l)-1] == '\n' || l[len(l)-1] == '\r') {
		l = l[:len(l)-1]
	}
	if len(l) == 0 {
		return -1, 0, 0, true
	}
	i := bytes.IndexByte(l, ',')
	if i < 0 {
		return 0, 0, 0, false
	}
	a, rest := l[:i], l[i+1:]
	i = bytes.IndexByte(rest, ',')
	if i < 0 {
		return 0, 0, 0, false
	}
	b, c := rest[:i], rest[i+1:]
	ts, okT := atoi(c)
	if !okT {
		return 0, 0, 0, false
	}
	if n, okV := atoi(b); okV {
		v = float64(n)
	} else {
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return 0, 0, 0, false
		}
		v = f
	}
	pk, okP := atoi(a)
	if !okP {
		pk = -1
	}
	return pk, v, ts, true
}

// atoi parses a non-empty decimal integer with an optional minus sign.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
