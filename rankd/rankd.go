package rankd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// Config is what rankd needs; the command line maps onto it.
type Config struct {
	Sources []string      // exporter base URLs (rankd reads their snapwire.Path)
	Refresh time.Duration // how often the snapshot is rebuilt
	Timeout time.Duration // deadline of one refresh, shared by the sources in turn
	// ExposeRanks adds every influencer's rank to /metrics.
	ExposeRanks bool
	Logger      *slog.Logger

	// Gains, off when Victoria is empty (gains.go, baseline.go).
	Victoria      string        // VictoriaMetrics base URL that stores the exporters' samples
	Windows       []Window      // the gains windows, sorted by name (ParseWindows)
	GainsRefresh  time.Duration // how often the baselines that are due are read; zero: 5m
	GainsLookback time.Duration // a baseline is the last sample this long before the window start or less; zero: 2m
	GainsTimeout  time.Duration // of one metric's export from VictoriaMetrics; zero: 2m
	// Now is the clock of the window starts; nil is time.Now (tests fix it).
	Now func() time.Time
}

// Defaults of the gains settings.
const (
	// A population export costs VictoriaMetrics about 20 CPU-seconds at
	// 1M (docs/rankd.md): every 5 minutes for the 1h window, not every
	// minute.
	DefaultGainsRefresh  = 5 * time.Minute
	DefaultGainsLookback = 2 * time.Minute
	DefaultGainsTimeout  = 2 * time.Minute
)

// Validate reports a configuration that cannot work, naming the flag.
func (c *Config) Validate() error {
	if len(c.Sources) == 0 {
		return errors.New("no exporter to read; set --exporter.url (repeatable) or --exporter.urls-file")
	}
	seen := map[string]bool{}
	for _, s := range c.Sources {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("exporter.url=%q is not an http(s) URL such as http://exporter-0:9866", s)
		}
		if seen[s] {
			return fmt.Errorf("exporter.url=%q is given twice", s)
		}
		seen[s] = true
	}
	if c.Refresh < 100*time.Millisecond {
		return fmt.Errorf("refresh.interval=%s is below 100ms", c.Refresh)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("refresh.timeout=%s must be positive", c.Timeout)
	}
	if c.Victoria == "" {
		return nil
	}
	if u, err := url.Parse(c.Victoria); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("victoria.url=%q is not an http(s) URL such as http://victoria-metrics:8428", c.Victoria)
	}
	if len(c.Windows) == 0 {
		return errors.New("no gains window; set --gains.windows (such as 1h,24h,7d,30d) or leave --victoria.url empty to turn gains off")
	}
	if c.GainsRefresh < time.Second {
		return fmt.Errorf("gains.refresh=%s is below 1s", c.GainsRefresh)
	}
	if c.GainsLookback <= 0 || c.GainsLookback > 1000*time.Hour {
		return fmt.Errorf("gains.lookback=%s must be positive and at most 1000h", c.GainsLookback)
	}
	if c.GainsTimeout <= 0 {
		return fmt.Errorf("gains.timeout=%s must be positive", c.GainsTimeout)
	}
	return nil
}

// SourceStatus is the health of one exporter as rankd sees it.
type SourceStatus struct {
	URL         string    `json:"url"`
	Healthy     bool      `json:"healthy"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	Influencers int       `json:"influencers"`
	FetchMs     float64   `json:"fetchMs"`
}

// source is one exporter as the refresher knows it. Its data lives only in
// the snapshots: a failed read keeps it by copying its pks from the
// current snapshot into the next.
type source struct {
	url    string
	known  bool            // a read has succeeded once
	h      snapwire.Header // of the last good read: the pks kept while it fails
	status SourceStatus
}

// Server keeps the snapshot and answers from it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	snap    atomic.Pointer[Snapshot]
	status  atomic.Pointer[[]SourceStatus] // published at the end of each refresh
	mu      sync.Mutex                     // guards sources, order, spare and scratch (the refresher's own state)
	sources []*source
	order   []*source // read order: a source that fails moves behind the others and stays there
	// The refresher builds into the arrays of the snapshot before the
	// current one, and reuses its sort buffer, so a refresh of 1M
	// influencers allocates nothing and leaves no garbage to slow the
	// readers down.
	spare   *Snapshot
	scratch buildScratch
	tel     *telemetry
	gains   *gainsState // nil when gains are off
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// Windows are the gains windows; none when gains are off.
func (s *Server) Windows() []Window {
	if s.gains == nil {
		return nil
	}
	return s.gains.windows
}

// New validates cfg.
func New(cfg Config) (*Server, error) {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.GainsRefresh, DefaultGainsRefresh}, {&cfg.GainsLookback, DefaultGainsLookback}, {&cfg.GainsTimeout, DefaultGainsTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Windows = slices.Clone(cfg.Windows) // the API writes them in name order
	slices.SortFunc(cfg.Windows, func(a, b Window) int { return strings.Compare(a.Name, b.Name) })
	s := &Server{cfg: cfg, log: cfg.Logger, client: &http.Client{}} // deadlines come from Refresh
	for _, u := range cfg.Sources {
		u = strings.TrimRight(u, "/")
		s.sources = append(s.sources, &source{url: u, status: SourceStatus{URL: u}})
	}
	s.order = slices.Clone(s.sources)
	if cfg.Victoria != "" {
		s.gains = newGainsState(cfg.Windows)
	}
	s.tel = newTelemetry(s)
	return s, nil
}

// Snapshot returns the current snapshot, nil before the first refresh.
// Hold it only briefly; long readers use acquire and release.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// acquire returns the current snapshot, counted as in use so that the
// refresher does not rebuild into its arrays; release it when done.
func (s *Server) acquire() *Snapshot {
	for {
		snap := s.snap.Load()
		if snap == nil {
			return nil
		}
		snap.readers.Add(1)
		if s.snap.Load() == snap {
			return snap
		}
		snap.readers.Add(-1) // swapped meanwhile: take the new one
	}
}

func release(snap *Snapshot) {
	if snap != nil {
		snap.readers.Add(-1)
	}
}

// Run refreshes the snapshot every interval, and reads the gains'
// baselines as they fall due, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	if s.gains != nil {
		done := make(chan struct{})
		go func() { defer close(done); s.runGains(ctx) }()
		defer func() { <-done }()
	}
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	for {
		s.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reads every source into a new snapshot and swaps it in. A
// source that fails keeps its last good data; the snapshot is complete
// once every source has answered at least once.
//
// Sources are read one after another, each decoded straight into the
// snapshot being built: no per-source copy is kept, and the refresh uses
// one core, leaving the other to the readers. The reads end within
// Config.Timeout: source k of n must be read by (k+1)/n of it from the
// start, so time a source leaves unused goes to the next, and one that
// hangs is cut off at the end of its share instead of holding up the
// rest. A source that fails is read after the others from then on.
func (s *Server) Refresh(ctx context.Context) {
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snap.Load()
	next := s.takeSpare()
	next.layout(s.knownSpan())
	reads, n := time.Now(), float64(len(s.order))
	for k, src := range s.order {
		deadline := reads.Add(time.Duration(float64(s.cfg.Timeout) * float64(k+1) / n))
		fctx, cancel := context.WithDeadline(ctx, deadline)
		s.fetch(fctx, src, next, cur)
		cancel()
	}
	// Failed sources go behind the others, in the same order among
	// themselves, and stay there once they recover: one that needs more
	// than its share is read whole from the back, with the time the
	// others leave, without flapping between healthy and failed.
	failed := slices.DeleteFunc(slices.Clone(s.order), func(src *source) bool { return src.status.Healthy })
	s.order = append(slices.DeleteFunc(s.order, func(src *source) bool { return !src.status.Healthy }), failed...)
	complete := true
	for _, src := range s.sources {
		complete = complete && src.known
	}
	next.Complete = complete
	next.build(&s.scratch)
	if s.gains != nil {
		bases := make([]*baseline, len(s.gains.base))
		for k := range bases {
			bases[k] = s.gains.base[k].Load()
		}
		next.buildGains(bases, cur, &s.scratch)
	}
	next.Built = time.Now()
	s.spare = s.snap.Swap(next) // rebuilt into next time, once its readers are gone
	st := make([]SourceStatus, len(s.sources))
	for i, src := range s.sources {
		st[i] = src.status
	}
	s.status.Store(&st)
	s.tel.refreshes.Inc()
	s.tel.refreshSeconds.Observe(time.Since(start).Seconds())
}

// spareWait bounds how long a refresh waits for the last reader of the
// snapshot it rebuilds into (an API request takes microseconds, a /metrics
// scrape with --expose.ranks tens of milliseconds) before it allocates
// fresh arrays instead.
const spareWait = time.Second

func (s *Server) takeSpare() *Snapshot {
	snap := s.spare
	s.spare = nil
	if snap == nil {
		return &Snapshot{}
	}
	deadline := time.Now().Add(spareWait)
	for snap.readers.Load() != 0 {
		if time.Now().After(deadline) {
			s.log.Debug("the previous snapshot is still being read; building into new arrays")
			return &Snapshot{}
		}
		time.Sleep(time.Millisecond)
	}
	return snap
}

// knownSpan is the smallest pk range holding every known source's pks;
// lo is -1 when no source is known.
func (s *Server) knownSpan() (lo, hi int64) {
	lo, hi = -1, -1
	for _, src := range s.sources {
		if !src.known || src.h.N == 0 {
			continue
		}
		first, last := src.h.First, src.h.First+int64(src.h.N-1)*src.h.Step
		if lo < 0 || first < lo {
			lo = first
		}
		hi = max(hi, last)
	}
	return lo, hi
}

// abortReader stops a snapshot read once the records are found unusable.
type abortReader struct {
	r   io.Reader
	err error
}

func (a *abortReader) Read(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	return a.r.Read(p)
}

// fetch reads src's snapshot into next. Each record replaces what next
// holds for its pk when it is newer, so two sources claiming a pk leave the
// newer sample. On failure, src's pks of its last good read are filled
// from cur, again newer-wins: records that arrived whole before a read
// broke off are kept.
func (s *Server) fetch(ctx context.Context, src *source, next, cur *Snapshot) {
	t0 := time.Now()
	var h snapwire.Header
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, "GET", src.url+snapwire.Path, nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d from %s; is it an exporter?", resp.StatusCode, req.URL)
		}
		body := &abortReader{r: resp.Body}
		var base int64  // h.First - next.PKMin
		var covered int // records next has room for
		h, err = snapwire.Read(body, func(h snapwire.Header, i int, x snapwire.Record) {
			if body.err != nil {
				return
			}
			if i == covered {
				// Room for twice what arrived (at least 64k): a header
				// claiming 2^26 records with few behind it costs what
				// arrived, and the first read of a large shard copies
				// its arrays a few times. Later reads fit at once.
				covered = int(min(max(2*uint64(i), 1<<16), uint64(h.N)))
				if body.err = next.fit(h, uint32(covered)); body.err != nil {
					return
				}
				base = h.First - next.PKMin
			}
			p := pollSeconds(x.TimeMs)
			j := base + int64(i)*h.Step
			if m := &next.m[j]; p > m.Polled {
				*m = meta{G: x.Following, Polled: p, Verdict: compactVerdict(x.VerdictMs, x.Suspicious)}
				next.f[j] = x.Followers
			}
		})
		if body.err != nil {
			return body.err
		}
		return err
	}()
	st := &src.status
	st.FetchMs = float64(time.Since(t0).Microseconds()) / 1000
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("not read whole by the end of its share of --refresh.timeout=%s (%.0f ms); the exporter is slow or hanging: %w",
			s.cfg.Timeout, st.FetchMs, err)
	}
	if err != nil {
		st.Healthy, st.LastError = false, err.Error()
		s.tel.fetchErrors.WithLabelValues(src.url).Inc()
		s.log.Warn("cannot read exporter snapshot; keeping its last data", "exporter", src.url, "err", err)
		if src.known && cur != nil {
			next.keep(cur, src.h)
		}
		return
	}
	src.known, src.h = true, h
	st.Healthy, st.LastError, st.LastSuccess, st.Influencers = true, "", time.Now(), int(h.N)
}

// Status is rankd's view of its sources as of the last refresh; it never
// waits for a refresh in progress.
func (s *Server) Status() []SourceStatus {
	if st := s.status.Load(); st != nil {
		return *st
	}
	out := make([]SourceStatus, len(s.sources))
	for i, src := range s.sources {
		out[i] = SourceStatus{URL: src.url}
	}
	return out
}
