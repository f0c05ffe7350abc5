package plugin

import (
	"strconv"
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
