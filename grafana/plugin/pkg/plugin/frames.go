package plugin

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// field makes a field with a display name (and a unit when not empty).
func field(name, display, unit string, values any) *data.Field {
	f := data.NewField(name, nil, values)
	f.Config = &data.FieldConfig{DisplayNameFromDS: display, Unit: unit}
	return f
}

// numericWide marks a one-row frame as Grafana's numeric-wide kind, so
// that alert rules and server-side expressions read each number or bool
// field as a value (string and time fields are carried along).
var numericWide = &data.FrameMeta{Type: data.FrameTypeNumericWide, TypeVersion: data.FrameTypeVersion{0, 1}}

// InfluencerFrame is one influencer in one row.
func InfluencerFrame(inf Influencer, executed string) *data.Frame {
	labels := data.Labels{"pk": strconv.FormatInt(inf.PK, 10), "username": inf.Username}
	fr := data.NewFrame(inf.Username,
		field("pk", "pk", "", []int64{inf.PK}),
		field("username", "Username", "", []string{inf.Username}),
		field("followerCount", "Followers", "short", []uint32{inf.FollowerCount}),
		field("followingCount", "Following", "short", []uint32{inf.FollowingCount}),
		field("followerRatio", "Follower ratio", "", []*float64{inf.FollowerRatio}),
		field("rank", "Rank", "", []int64{inf.Rank}),
		field("denseRank", "Dense rank", "", []int64{inf.DenseRank}),
		field("percentile", "Percentile", "percent", []float64{inf.Percentile}),
		field("total", "Influencers", "short", []int64{inf.Total}),
		field("suspicious", "Suspicious", "bool_yes_no", []*bool{inf.Suspicious}),
		field("checkedAt", "Checked at", "", []*time.Time{inf.CheckedAt}),
		field("polledAt", "Polled at", "", []time.Time{inf.PolledAt}),
	)
	for _, f := range fr.Fields {
		if f.Type().Numeric() || f.Type() == data.FieldTypeNullableBool {
			f.Labels = labels
		}
	}
	meta := *numericWide
	meta.ExecutedQueryString = executed
	fr.Meta = &meta
	return fr
}

// AverageFrame is the population in one row.
func AverageFrame(a Average, executed string) *data.Frame {
	fr := data.NewFrame("population",
		field("averageFollowerCount", "Average followers", "short", []float64{a.AverageFollowerCount}),
		field("count", "Influencers", "short", []int64{a.Count}),
		field("sum", "Followers, all influencers", "short", []uint64{a.Sum}),
		field("min", "Fewest followers", "short", []uint32{a.Min}),
		field("max", "Most followers", "short", []uint32{a.Max}),
		field("p50", "Median followers", "short", []uint32{a.Percentiles.P50}),
		field("p90", "90th percentile", "short", []uint32{a.Percentiles.P90}),
		field("p99", "99th percentile", "short", []uint32{a.Percentiles.P99}),
		field("p999", "99.9th percentile", "short", []uint32{a.Percentiles.P999}),
		field("suspicious", "Suspicious", "short", []*int64{a.Suspicious}),
		field("verdicts", "With a verdict", "short", []*int64{a.Verdicts}),
		field("snapshotAt", "Snapshot at", "", []time.Time{a.SnapshotAt}),
	)
	meta := *numericWide
	meta.ExecutedQueryString = executed
	fr.Meta = &meta
	return fr
}

// PageMeta is the Custom meta of the top and suspicious frames.
type PageMeta struct {
	Total  int64 `json:"total"`
	Offset int64 `json:"offset"`
	Limit  int64 `json:"limit"`
}

// ListFrame is a page of influencers, one a row: the top N by followers,
// or (withChecked) the flagged ones with their verdict time.
func ListFrame(name string, p Page, limit int, withChecked bool, executed string) *data.Frame {
	n := len(p.Influencers)
	var (
		rank, pk         = make([]int64, n), make([]int64, n)
		username         = make([]string, n)
		followers, follg = make([]uint32, n), make([]uint32, n)
		ratio            = make([]*float64, n)
		pct              = make([]float64, n)
		susp             = make([]*bool, n)
		checked          = make([]*time.Time, n)
	)
	for i, inf := range p.Influencers {
		rank[i], pk[i], username[i] = inf.Rank, inf.PK, inf.Username
		followers[i], follg[i], ratio[i] = inf.FollowerCount, inf.FollowingCount, inf.FollowerRatio
		pct[i], susp[i], checked[i] = inf.Percentile, inf.Suspicious, inf.CheckedAt
	}
	fr := data.NewFrame(name,
		field("rank", "Rank", "", rank),
		field("pk", "pk", "", pk),
		field("username", "Username", "", username),
		field("followerCount", "Followers", "short", followers),
		field("followingCount", "Following", "short", follg),
		field("followerRatio", "Follower ratio", "", ratio),
		field("percentile", "Percentile", "percent", pct),
		field("suspicious", "Suspicious", "bool_yes_no", susp),
	)
	if withChecked {
		fr.Fields = append(fr.Fields, field("checkedAt", "Checked at", "", checked))
	}
	meta := &data.FrameMeta{
		PreferredVisualization: data.VisTypeTable,
		ExecutedQueryString:    executed,
		Custom:                 PageMeta{Total: p.Total, Offset: p.Offset, Limit: int64(limit)},
	}
	what := "influencers"
	if withChecked {
		what = "flagged influencers"
	}
	text := "no " + what + " at offset " + strconv.FormatInt(p.Offset, 10) + " (" + strconv.FormatInt(p.Total, 10) + " in all)"
	if n > 0 {
		text = what + " " + strconv.FormatInt(p.Offset+1, 10) + "-" + strconv.FormatInt(p.Offset+int64(n), 10) + " of " + strconv.FormatInt(p.Total, 10)
	}
	meta.Notices = []data.Notice{{Severity: data.NoticeSeverityInfo, Text: text}}
	fr.Meta = meta
	return fr
}

var windowPart = regexp.MustCompile(`([0-9]+)(ms|[smhdwy])`)

// windowLength orders windows by length ("1h" < "24h" < "7d"); a name that
// is not a duration sorts last.
func windowLength(w string) time.Duration {
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	if !window.MatchString(w) {
		return 1<<63 - 1
	}
	var d time.Duration
	for _, part := range windowPart.FindAllStringSubmatch(w, -1) {
		n, _ := strconv.ParseInt(part[1], 10, 64)
		d += time.Duration(n) * units[part[2]]
	}
	return d
}

// GainsFrame is the gains of one or more influencers, a row per
// influencer and window, windows shortest first. A window with no history
// that old has no gains and says from when it will (availableFrom).
func GainsFrame(infs []Influencer, executed string) *data.Frame {
	var (
		pk                     []int64
		username, win          []string
		followers, following   []*int64
		followersR, followingR []*float64
		rank, total            []*int64
		from, available        []*time.Time
	)
	for _, inf := range infs {
		var ws []string
		for w := range inf.Gains {
			ws = append(ws, w)
		}
		for w := range inf.AvailableFrom {
			ws = append(ws, w)
		}
		slices.SortFunc(ws, func(a, b string) int {
			return cmp.Or(cmp.Compare(windowLength(a), windowLength(b)), strings.Compare(a, b))
		})
		for _, w := range ws {
			pk, username, win = append(pk, inf.PK), append(username, inf.Username), append(win, w)
			g, ok := inf.Gains[w]
			if !ok {
				a := inf.AvailableFrom[w]
				followers, following, followersR, followingR = append(followers, nil), append(following, nil), append(followersR, nil), append(followingR, nil)
				rank, total, from, available = append(rank, nil), append(total, nil), append(from, nil), append(available, &a)
				continue
			}
			followers, following = append(followers, &g.Followers), append(following, &g.Following)
			followersR, followingR = append(followersR, g.FollowersRelative), append(followingR, g.FollowingRelative)
			rank, total, from, available = append(rank, &g.Rank), append(total, &g.Total), append(from, &g.From), append(available, nil)
		}
	}
	fr := data.NewFrame("gains",
		field("pk", "pk", "", pk),
		field("username", "Username", "", username),
		field("window", "Window", "", win),
		field("followers", "Followers gained", "short", followers),
		field("followersRelative", "Followers gained, relative", "percentunit", followersR),
		field("rank", "Gain rank", "", rank),
		field("total", "Ranked", "short", total),
		field("following", "Following gained", "short", following),
		field("followingRelative", "Following gained, relative", "percentunit", followingR),
		field("from", "Since", "", from),
		field("availableFrom", "Available from", "", available),
	)
	fr.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable, ExecutedQueryString: executed}
	if len(pk) == 0 {
		fr.Meta.Notices = []data.Notice{{Severity: data.NoticeSeverityInfo, Text: "rankd has no gains: it runs without --victoria.url, or its first baselines are being read"}}
	}
	return fr
}

// MoversMeta is the Custom meta of the movers frame.
type MoversMeta struct {
	Total  int64     `json:"total"`
	Offset int64     `json:"offset"`
	Limit  int64     `json:"limit"`
	Window string    `json:"window"`
	Order  string    `json:"order"`
	Start  time.Time `json:"start"`
}

// MoversFrame is a page of the largest gains (or losses) over a window,
// one influencer a row.
func MoversFrame(m Movers, executed string) *data.Frame {
	n := len(m.Items)
	rank, pk, gain := make([]int64, n), make([]int64, n), make([]int64, n)
	username := make([]string, n)
	for i, it := range m.Items {
		rank[i], pk[i], gain[i] = it.Rank, it.PK, it.Gain
		username[i] = "influencer-" + strconv.FormatInt(it.PK, 10)
	}
	fr := data.NewFrame("movers",
		field("rank", "Gain rank", "", rank),
		field("pk", "pk", "", pk),
		field("username", "Username", "", username),
		field("gain", "Followers gained ("+m.Window+")", "short", gain),
	)
	what := "gainers"
	if m.Order == "losers" {
		what = "losers"
	}
	text := "no " + what + " at offset " + strconv.FormatInt(m.Offset, 10) + " (" + strconv.FormatInt(m.Total, 10) + " influencers with a " + m.Window + " gain)"
	if n > 0 {
		text = what + " " + strconv.FormatInt(m.Offset+1, 10) + "-" + strconv.FormatInt(m.Offset+int64(n), 10) + " over " + m.Window +
			", of " + strconv.FormatInt(m.Total, 10) + " influencers with a gain since " + m.Start.UTC().Format(time.RFC3339)
	}
	fr.Meta = &data.FrameMeta{
		PreferredVisualization: data.VisTypeTable,
		ExecutedQueryString:    executed,
		Custom:                 MoversMeta{Total: m.Total, Offset: m.Offset, Limit: m.Limit, Window: m.Window, Order: m.Order, Start: m.Start},
		Notices:                []data.Notice{{Severity: data.NoticeSeverityInfo, Text: text}},
	}
	return fr
}
