package rankd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// Config is what rankd needs; the command line maps onto it.
type Config struct {
	Sources []string      // exporter base URLs (their /api/v1/snapshot)
	Refresh time.Duration // how often the snapshot is rebuilt
	Timeout time.Duration // per source fetch
	Logger  *slog.Logger
}

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

// source is one exporter's latest good snapshot, kept while it fails.
type source struct {
	url    string
	h      snapwire.Header
	recs   []snapwire.Record
	spare  []snapwire.Record // decoded into, swapped with recs on success
	status SourceStatus
}

// Server keeps the snapshot and answers from it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	snap    atomic.Pointer[Snapshot]
	status  atomic.Pointer[[]SourceStatus] // published at the end of each refresh
	mu      sync.Mutex                     // guards sources (the refresher's own state)
	sources []*source
	// The refresher reuses the arrays of the snapshot before the current
	// one and its sort buffers, so a refresh of 1M influencers allocates
	// nothing and leaves no garbage to slow the readers down.
	spare   *Snapshot
	scratch buildScratch
	tel     *telemetry
}

// New validates cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, client: &http.Client{Timeout: cfg.Timeout}}
	for _, u := range cfg.Sources {
		u = strings.TrimRight(u, "/")
		s.sources = append(s.sources, &source{url: u, status: SourceStatus{URL: u}})
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

// Run refreshes the snapshot every interval until ctx ends.
func (s *Server) Run(ctx context.Context) {
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

// Refresh fetches every source in parallel and swaps in a new snapshot.
// A source that fails keeps its last good data; the snapshot is complete
// once every source has answered at least once.
func (s *Server) Refresh(ctx context.Context) {
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var wg sync.WaitGroup
	for _, src := range s.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.fetch(ctx, src)
		}()
	}
	wg.Wait()
	snap := s.merge()
	snap.build(&s.scratch)
	snap.Built = time.Now()
	old := s.snap.Swap(snap)
	s.spare = old // rebuilt into next time, once its readers are gone
	st := make([]SourceStatus, len(s.sources))
	for i, src := range s.sources {
		st[i] = src.status
	}
	s.status.Store(&st)
	s.tel.refreshes.Inc()
	s.tel.refreshSeconds.Observe(time.Since(start).Seconds())
}

func (s *Server) fetch(ctx context.Context, src *source) {
	t0 := time.Now()
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, "GET", src.url+"/api/v1/snapshot", nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		recs := src.spare
		h, err := snapwire.Read(resp.Body, func(h snapwire.Header, i int, x snapwire.Record) {
			if i == 0 {
				recs = resize(recs, int(h.N))
			}
			recs[i] = x
		})
		if err != nil {
			src.spare = recs
			return err // recs keeps the last good data
		}
		src.h, src.recs, src.spare = h, recs[:h.N], src.recs
		return nil
	}()
	st := &src.status
	st.FetchMs = float64(time.Since(t0).Microseconds()) / 1000
	if err != nil {
		st.Healthy, st.LastError = false, err.Error()
		s.tel.fetchErrors.WithLabelValues(src.url).Inc()
		s.log.Warn("cannot read exporter snapshot; keeping its last data", "exporter", src.url, "err", err)
		return
	}
	st.Healthy, st.LastError, st.LastSuccess, st.Influencers = true, "", time.Now(), len(src.recs)
}

// merge lays every source's records into one pk-indexed snapshot.
func (s *Server) merge() *Snapshot {
	lo, hi := int64(-1), int64(-1)
	complete := true
	for _, src := range s.sources {
		if src.recs == nil {
			complete = false
			continue
		}
		first, last := src.h.First, src.h.First+int64(src.h.N-1)*src.h.Step
		if src.h.N == 0 {
			continue
		}
		if lo < 0 || first < lo {
			lo = first
		}
		if last > hi {
			hi = last
		}
	}
	snap := s.spare
	s.spare = nil
	if snap == nil {
		snap = &Snapshot{}
	}
	// Wait for the last readers of the spare (requests take microseconds).
	for snap.readers.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	snap.Complete = complete
	if lo < 0 {
		*snap = Snapshot{Complete: complete}
		return snap
	}
	n := int(hi - lo + 1)
	snap.PKMin = lo
	snap.followers = resize(snap.followers, n)
	snap.following = resize(snap.following, n)
	snap.timeMs = resize(snap.timeMs, n)
	for _, src := range s.sources {
		for i, r := range src.recs {
			j := src.h.First + int64(i)*src.h.Step - lo
			// Two sources claiming a pk: the newer sample wins.
			if r.TimeMs > snap.timeMs[j] {
				snap.followers[j], snap.following[j], snap.timeMs[j] = r.Followers, r.Following, r.TimeMs
			}
		}
	}
	return snap
}

// resize returns a zeroed slice of length n, reusing b's array when it can.
func resize[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	b = b[:n]
	clear(b)
	return b
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
