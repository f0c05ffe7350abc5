package rankd

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Handler serves the JSON API, /metrics, health endpoints and a landing page.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/influencers/{pk}", s.withSnapshot(s.influencer))
	mux.HandleFunc("GET /api/v1/average", s.withSnapshot(s.average))
	mux.HandleFunc("GET /api/v1/top", s.withSnapshot(s.top))
	mux.HandleFunc("GET /api/v1/suspicious", s.withSnapshot(s.suspicious))
	mux.HandleFunc("GET /api/v1/movers", s.withSnapshot(s.movers))
	mux.HandleFunc("GET /api/v1/status", s.statusHandler)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+"; see /")
	})
	mux.Handle("GET /metrics", s.tel.handler(s))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK\n") })
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if snap := s.snap.Load(); snap == nil || !snap.Complete { // reads only the flag
			http.Error(w, "no complete snapshot yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "OK\n")
	})
	mux.HandleFunc("GET /{$}", s.landing)
	return mux
}

type apiError struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(apiError{Status: "error", Error: msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// withSnapshot answers 503 until a snapshot holds every source's data.
func (s *Server) withSnapshot(h func(http.ResponseWriter, *http.Request, *Snapshot)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		snap := s.acquire()
		defer release(snap)
		if snap == nil || !snap.Complete {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.Refresh.Seconds()))))
			writeError(w, http.StatusServiceUnavailable, "no complete snapshot yet: waiting for every exporter to answer once (see /api/v1/status)")
			return
		}
		h(w, r, snap)
	}
}

// InfluencerJSON is the answer of /api/v1/influencers/{pk}, and an entry
// of /top and /suspicious. The server encodes it by hand (appendInfluencer).
type InfluencerJSON struct {
	PK             int64    `json:"pk"`
	Username       string   `json:"username"`
	FollowerCount  uint32   `json:"followerCount"`
	FollowingCount uint32   `json:"followingCount"`
	FollowerRatio  *float64 `json:"followerRatio"` // null when followingCount is 0
	Rank           int      `json:"rank"`
	DenseRank      int      `json:"denseRank"`
	Percentile     float64  `json:"percentile"`
	Total          int      `json:"total"`
	PolledAt       string   `json:"polledAt"`
	Suspicious     *bool    `json:"suspicious,omitempty"` // absent until the classifier has judged the influencer
	CheckedAt      string   `json:"checkedAt,omitempty"`  // when it did; absent with suspicious
	// Gains by window, in /api/v1/influencers/{pk} only: a window whose
	// baselines are read and that holds one for the influencer.
	Gains map[string]GainJSON `json:"gains,omitempty"`
	// AvailableFrom says, for each window read that holds no baseline for
	// the influencer (no history that old yet), from when it will.
	AvailableFrom map[string]string `json:"availableFrom,omitempty"`
}

// GainJSON is one window's gains of one influencer.
type GainJSON struct {
	Followers         int64    `json:"followers"`         // followerCount gained since the baseline (negative: lost)
	Following         int64    `json:"following"`         // followingCount gained
	FollowersRelative *float64 `json:"followersRelative"` // followers / the baseline's followerCount; null when that is 0
	FollowingRelative *float64 `json:"followingRelative"` // likewise for followingCount
	Rank              int      `json:"rank"`              // competition rank of the follower gain
	Total             int      `json:"total"`             // influencers ranked in the window
	From              string   `json:"from"`              // time of the baseline sample in VictoriaMetrics, RFC 3339 with ms
}

// MoversJSON is a page of /api/v1/movers.
type MoversJSON struct {
	Items  []MoverJSON `json:"items"`
	Limit  int         `json:"limit"`
	Offset int         `json:"offset"`
	Order  string      `json:"order"` // gainers or losers
	Start  string      `json:"start"` // the window start of the baselines
	Total  int         `json:"total"` // influencers with a gain in the window
	Window string      `json:"window"`
}

// MoverJSON is one influencer of a movers page.
type MoverJSON struct {
	PK   int64 `json:"pk"`
	Gain int64 `json:"gain"` // followerCount gained over the window
	Rank int   `json:"rank"` // competition rank of the gain (1: the largest)
}

// GainStatsJSON is the population's follower gains over one window, in
// /api/v1/average.
type GainStatsJSON struct {
	Average     float64             `json:"average"`
	Count       int                 `json:"count"` // influencers with a gain in the window
	Max         int32               `json:"max"`
	Min         int32               `json:"min"`
	Percentiles GainPercentilesJSON `json:"percentiles"`
	Start       string              `json:"start"` // the window start of the baselines
}

// GainPercentilesJSON is the gain at or below which a share of the
// influencers lie (nearest rank).
type GainPercentilesJSON struct {
	P01 int32 `json:"p01"`
	P10 int32 `json:"p10"`
	P50 int32 `json:"p50"`
	P90 int32 `json:"p90"`
	P99 int32 `json:"p99"`
}

// The answers below are rankd's JSON API as the Grafana plugin reads it.
// The plugin is a module of its own and cannot import these types, so the
// contract is a set of golden answers, testdata/api/*.json: TestAPIGolden
// writes them from these types and the real encoders, and the plugin's
// TestRankdContract decodes them strictly into its own types and requires
// every field of both sides to be set by some answer. A field added,
// renamed, retyped or dropped on one side only fails one of the two tests
// (see docs/grafana-plugin.md). Fields are in alphabetical order, the order
// encoding/json wrote the maps these types replaced, so the bytes did not
// change.

// ListJSON is a page of /api/v1/top or /api/v1/suspicious. The server
// encodes it by hand (writeList).
type ListJSON struct {
	Influencers []InfluencerJSON `json:"influencers"`
	Limit       int              `json:"limit,omitempty"` // the page size asked for; /suspicious only
	Offset      int              `json:"offset"`
	Total       int              `json:"total"` // of the whole list: the population for /top, the flagged for /suspicious
}

// AverageJSON is the answer of /api/v1/average.
type AverageJSON struct {
	AverageFollowerCount float64                  `json:"averageFollowerCount"`
	Count                int                      `json:"count"`           // influencers with data
	Gains                map[string]GainStatsJSON `json:"gains,omitempty"` // by window, once its baselines are read
	Max                  uint32                   `json:"max"`
	Min                  uint32                   `json:"min"`
	Percentiles          PercentilesJSON          `json:"percentiles"`
	SnapshotAt           string                   `json:"snapshotAt"` // RFC 3339 with fractional seconds
	Sum                  uint64                   `json:"sum"`
	Suspicious           int                      `json:"suspicious"` // judged suspicious
	Verdicts             int                      `json:"verdicts"`   // with a verdict
}

// PercentilesJSON is the follower count at or below which a share of the
// influencers lie (nearest rank), in /api/v1/average.
type PercentilesJSON struct {
	P50  uint32 `json:"p50"`
	P90  uint32 `json:"p90"`
	P99  uint32 `json:"p99"`
	P999 uint32 `json:"p999"`
}

// StatusJSON is the answer of /api/v1/status.
type StatusJSON struct {
	Complete           bool           `json:"complete"`
	Gains              []WindowStatus `json:"gains,omitempty"`       // each window's baselines; absent when gains are off
	Influencers        *int           `json:"influencers,omitempty"` // absent before the first snapshot
	RefreshInterval    string         `json:"refreshInterval"`       // a Go duration, "5s"
	SnapshotAgeSeconds *float64       `json:"snapshotAgeSeconds,omitempty"`
	Sources            []SourceStatus `json:"sources"`
}

func (s *Server) influencer(w http.ResponseWriter, r *http.Request, snap *Snapshot) {
	raw := r.PathValue("pk")
	pk, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || pk < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("pk %q is not a non-negative integer", raw))
		return
	}
	inf, ok := snap.Lookup(pk)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no data for pk %d (tracked: %d..%d)", pk, snap.PKMin, snap.PKMin+int64(snap.Span())-1))
		return
	}
	// The hot endpoint: encoded by hand into a pooled buffer, the same
	// bytes encoding/json writes for toJSON (TestInfluencerEncoding checks
	// they agree). net/http adds the Content-Length of so small a body.
	bp := bufPool.Get().(*[]byte)
	b := appendInfluencerFields((*bp)[:0], inf, snap.Count)
	if s.gains != nil {
		gp := gainPool.Get().(*[]Gain)
		*gp = snap.Gains(pk, (*gp)[:0])
		b = appendGains(b, s.gains.windows, *gp, inf.PolledAt)
		gainPool.Put(gp)
	}
	b = append(b, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.Write(b)
	*bp = b
	bufPool.Put(bp)
}

var (
	bufPool         = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
	gainPool        = sync.Pool{New: func() any { g := make([]Gain, 0, 8); return &g }}
	jsonContentType = []string{"application/json"} // shared: net/http only reads it
)

// appendInfluencer appends the JSON object encoding/json writes for
// toJSON(inf, total), without building the strings in between.
func appendInfluencer(b []byte, inf Influencer, total int) []byte {
	return append(appendInfluencerFields(b, inf, total), '}')
}

// appendInfluencerFields is appendInfluencer without the closing brace.
func appendInfluencerFields(b []byte, inf Influencer, total int) []byte {
	b = append(b, `{"pk":`...)
	b = strconv.AppendInt(b, inf.PK, 10)
	b = append(b, `,"username":"influencer-`...)
	b = strconv.AppendInt(b, inf.PK, 10)
	b = append(b, `","followerCount":`...)
	b = strconv.AppendUint(b, uint64(inf.Followers), 10)
	b = append(b, `,"followingCount":`...)
	b = strconv.AppendUint(b, uint64(inf.Following), 10)
	b = append(b, `,"followerRatio":`...)
	if inf.Following == 0 {
		b = append(b, "null"...)
	} else {
		b = appendJSONFloat(b, float64(inf.Followers)/float64(inf.Following))
	}
	b = append(b, `,"rank":`...)
	b = strconv.AppendInt(b, int64(inf.Rank), 10)
	b = append(b, `,"denseRank":`...)
	b = strconv.AppendInt(b, int64(inf.DenseRank), 10)
	b = append(b, `,"percentile":`...)
	b = appendJSONFloat(b, roundPercentile(inf.Percentile))
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"polledAt":"`...)
	b = time.Unix(inf.PolledAt, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, '"')
	if inf.HasVerdict {
		b = append(b, `,"suspicious":`...)
		b = strconv.AppendBool(b, inf.Suspicious)
		b = append(b, `,"checkedAt":"`...)
		b = time.Unix(inf.CheckedAt, 0).UTC().AppendFormat(b, time.RFC3339)
		b = append(b, '"')
	}
	return b
}

// appendGains appends the "gains" and "availableFrom" members that
// encoding/json writes for gainsJSON(windows, gains, polledAt): windows are
// sorted by name, the order encoding/json writes map keys in.
func appendGains(b []byte, windows []Window, gains []Gain, polledAt int64) []byte {
	has, missing := false, false
	oldest := polledAt * 1000 // the oldest sample known of the influencer, Unix ms
	for _, g := range gains {
		has = has || g.Has
		missing = missing || (g.Loaded && !g.Has)
		if g.Has {
			oldest = min(oldest, g.From)
		}
	}
	if has {
		b = append(b, `,"gains":{`...)
		first := true
		for k, g := range gains {
			if !g.Has {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, windows[k].Name...)
			b = append(b, `":{"followers":`...)
			b = strconv.AppendInt(b, g.Followers, 10)
			b = append(b, `,"following":`...)
			b = strconv.AppendInt(b, g.Following, 10)
			b = append(b, `,"followersRelative":`...)
			b = appendRelative(b, g.Followers, g.BaseFollowers)
			b = append(b, `,"followingRelative":`...)
			b = appendRelative(b, g.Following, g.BaseFollowing)
			b = append(b, `,"rank":`...)
			b = strconv.AppendInt(b, int64(g.Rank), 10)
			b = append(b, `,"total":`...)
			b = strconv.AppendInt(b, int64(g.Total), 10)
			b = append(b, `,"from":"`...)
			b = time.UnixMilli(g.From).UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `"}`...)
		}
		b = append(b, '}')
	}
	if missing {
		b = append(b, `,"availableFrom":{`...)
		first := true
		for k, g := range gains {
			if !g.Loaded || g.Has {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, windows[k].Name...)
			b = append(b, `":"`...)
			b = time.UnixMilli(availableFrom(oldest, windows[k])).UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return b
}

// availableFrom is when a window will hold a baseline for an influencer
// whose oldest known sample is at oldest (Unix ms): once the window's
// start has passed it, give or take the window's re-read period.
func availableFrom(oldest int64, w Window) int64 { return oldest + w.D.Milliseconds() }

func appendRelative(b []byte, gain int64, base uint32) []byte {
	if base == 0 {
		return append(b, "null"...)
	}
	return appendJSONFloat(b, relative(gain, base))
}

// relative is a gain as a share of its baseline, rounded to 6 decimals.
func relative(gain int64, base uint32) float64 {
	return math.Round(float64(gain)/float64(base)*1e6) / 1e6
}

// roundPercentile keeps four decimals, as the API documents.
func roundPercentile(p float64) float64 { return math.Round(p*1e4) / 1e4 }

// appendJSONFloat formats like encoding/json: shortest repr, 'f' between
// 1e-6 and 1e21, else 'e' with a two-digit exponent cleanup.
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		n := len(b)
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// clean up e-09 to e-9
		if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
		return b
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

func (s *Server) average(w http.ResponseWriter, _ *http.Request, snap *Snapshot) {
	writeJSON(w, s.averageJSON(snap))
}

func (s *Server) averageJSON(snap *Snapshot) AverageJSON {
	a := averageJSON(snap)
	for k, w := range s.Windows() {
		x := &snap.gains[k]
		if x.base == nil {
			continue
		}
		if a.Gains == nil {
			a.Gains = map[string]GainStatsJSON{}
		}
		st := GainStatsJSON{Count: x.Count(), Start: x.base.Start.UTC().Format(time.RFC3339Nano)}
		if n := x.Count(); n > 0 {
			st.Average = float64(x.Sum) / float64(n)
			st.Min, st.Max = x.Quantile(0), x.Quantile(1)
			st.Percentiles = GainPercentilesJSON{P01: x.Quantile(0.01), P10: x.Quantile(0.1), P50: x.Quantile(0.5), P90: x.Quantile(0.9), P99: x.Quantile(0.99)}
		}
		a.Gains[w.Name] = st
	}
	return a
}

func averageJSON(snap *Snapshot) AverageJSON {
	st := snap.PopulationStats()
	return AverageJSON{
		AverageFollowerCount: st.Average, Count: st.Count, Sum: st.Sum, Min: st.Min, Max: st.Max,
		Percentiles: PercentilesJSON{P50: st.Percentiles["p50"], P90: st.Percentiles["p90"],
			P99: st.Percentiles["p99"], P999: st.Percentiles["p999"]},
		SnapshotAt: snap.Built.UTC().Format(time.RFC3339Nano),
		Suspicious: st.Suspicious, Verdicts: st.Verdicts,
	}
}

// maxTop bounds one page of the leaderboard.
const maxTop = 1000

// page reads a page size (named sizeParam, default 100, at most maxTop) and
// an offset; on a bad value it answers 400 and reports false.
func page(w http.ResponseWriter, r *http.Request, sizeParam string) (size, offset int, ok bool) {
	size, err := intParam(r, sizeParam, 100, 1, maxTop)
	if err == nil {
		offset, err = intParam(r, "offset", 0, 0, math.MaxInt32)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, 0, false
	}
	return size, offset, true
}

func (s *Server) top(w http.ResponseWriter, r *http.Request, snap *Snapshot) {
	n, offset, ok := page(w, r, "n")
	if !ok {
		return
	}
	writeList(w, snap.Top(n, offset), snap.Count, 0, offset, snap.Count)
}

// suspicious pages through the influencers judged suspicious, by followers
// descending then pk ascending; the list is built once per refresh, so a
// page costs the same whatever its offset.
func (s *Server) suspicious(w http.ResponseWriter, r *http.Request, snap *Snapshot) {
	limit, offset, ok := page(w, r, "limit")
	if !ok {
		return
	}
	writeList(w, snap.SuspiciousPage(limit, offset), snap.Count, limit, offset, snap.Suspicious())
}

// writeList answers a page of influencers (count is the population, for
// their "total") with the bytes encoding/json writes for ListJSON
// (TestListEncoding checks they agree).
func writeList(w http.ResponseWriter, infs []Influencer, count, limit, offset, total int) {
	b := make([]byte, 0, 64+len(infs)*320)
	b = append(b, `{"influencers":[`...)
	for k, inf := range infs {
		if k > 0 {
			b = append(b, ',')
		}
		b = appendInfluencer(b, inf, count)
	}
	b = append(b, ']')
	if limit > 0 {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(limit), 10)
	}
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, int64(offset), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))} // else a page over 2 KB goes out chunked
	w.Write(b)
}

// movers pages through a window's largest follower gains (order=gainers)
// or losses (order=losers), ready-made at each refresh: a page costs
// limit lookups whatever its offset.
func (s *Server) movers(w http.ResponseWriter, r *http.Request, snap *Snapshot) {
	ws := s.Windows()
	if len(ws) == 0 {
		writeError(w, http.StatusNotFound, "gains are off: rankd runs without --victoria.url")
		return
	}
	q := r.URL.Query()
	name := q.Get("window")
	k := slices.IndexFunc(ws, func(x Window) bool { return x.Name == name })
	if k < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("window=%q must be one of %s (--gains.windows)", name, WindowNames(ws)))
		return
	}
	order := q.Get("order")
	if order == "" {
		order = "gainers"
	}
	if order != "gainers" && order != "losers" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("order=%q must be gainers or losers", order))
		return
	}
	limit, offset, ok := page(w, r, "limit")
	if !ok {
		return
	}
	x := &snap.gains[k]
	if x.base == nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.Refresh.Seconds()))))
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the baselines of window %s are not read from VictoriaMetrics yet (see /api/v1/status)", name))
		return
	}
	ms, total := snap.Movers(k, order == "gainers", limit, offset)
	out := MoversJSON{Items: make([]MoverJSON, len(ms)), Limit: limit, Offset: offset, Order: order, Total: total, Window: name,
		Start: x.base.Start.UTC().Format(time.RFC3339Nano)}
	for i, m := range ms {
		out.Items[i] = MoverJSON{PK: m.PK, Gain: m.Gain, Rank: m.Rank}
	}
	writeJSON(w, out)
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%q must be an integer in %d..%d", name, raw, lo, hi)
	}
	return v, nil
}

func (s *Server) statusHandler(w http.ResponseWriter, _ *http.Request) {
	out := StatusJSON{Sources: s.Status(), RefreshInterval: s.cfg.Refresh.String(), Gains: s.GainsStatus()}
	if snap := s.acquire(); snap != nil {
		defer release(snap)
		age, n := time.Since(snap.Built).Seconds(), snap.Count
		out.SnapshotAgeSeconds, out.Complete, out.Influencers = &age, snap.Complete, &n
	}
	writeJSON(w, out)
}

func (s *Server) landing(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	snap := s.acquire()
	defer release(snap)
	state := "waiting for the first complete snapshot"
	if snap != nil && snap.Complete {
		state = fmt.Sprintf("%d influencers, snapshot %s old", snap.Count, time.Since(snap.Built).Round(time.Millisecond))
	}
	fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>rankd</title></head><body><h1>rankd</h1>
<p>Rank, average and latest values of every influencer, from %d exporter(s), refreshed every %s: %s.</p>
<ul><li><a href="/api/v1/influencers/1000001">/api/v1/influencers/{pk}</a></li><li><a href="/api/v1/average">/api/v1/average</a></li>
<li><a href="/api/v1/top?n=10">/api/v1/top?n=10&amp;offset=0</a></li>
<li><a href="/api/v1/suspicious?limit=10">/api/v1/suspicious?limit=10&amp;offset=0</a></li>
<li>/api/v1/movers?window=24h&amp;order=gainers|losers&amp;limit=100&amp;offset=0</li><li><a href="/api/v1/status">/api/v1/status</a></li>
<li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a></li></ul></body></html>`,
		len(s.cfg.Sources), s.cfg.Refresh, state)
}
