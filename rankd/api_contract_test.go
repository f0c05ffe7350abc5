package rankd

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden API answers in testdata/api/")

// apiExamples are one answer of every JSON endpoint the Grafana plugin
// reads, written by the encoders the handlers use. Between them they set
// every field of every answer type (TestAPIGolden checks), so that the
// plugin's TestRankdContract sees each field at least once.
func apiExamples(t *testing.T) map[string][]byte {
	flagged := Influencer{PK: 1000002, Followers: 5000, Following: 1328, PolledAt: 1763780210, Rank: 904001, DenseRank: 250000,
		Percentile: 9.5, HasVerdict: true, Suspicious: true, CheckedAt: 1763730001}
	unjudged := Influencer{PK: 1000009, Followers: 9999999, PolledAt: 1763780211, Rank: 1, DenseRank: 1, Percentile: 100} // following 0: ratio null
	list := func(infs []Influencer, limit, offset, total int) []byte {
		rec := httptest.NewRecorder()
		writeList(rec, infs, 1_000_000, limit, offset, total)
		return rec.Body.Bytes()
	}
	obj := func(v any) []byte {
		rec := httptest.NewRecorder()
		writeJSON(rec, v)
		return rec.Body.Bytes()
	}
	age, n := 2.125, 1_000_000
	windows, err := ParseWindows(DefaultWindows)
	if err != nil {
		t.Fatal(err)
	}
	gains := []Gain{ // 1h, 24h, 30d, 7d
		{Loaded: true, Has: true, Followers: 120, Following: -3, BaseFollowers: 4880, BaseFollowing: 1331, Rank: 20418, Total: 999_000, From: 1763776590321},
		{Loaded: true, Has: true, Followers: -2500, Following: 1328, BaseFollowers: 7500, Rank: 990_001, Total: 998_000, From: 1763693790456},
		{Loaded: true, Total: 0}, {Loaded: true, Total: 800_000},
	}
	infl := appendGains(appendInfluencerFields(nil, flagged, 1_000_000), windows, gains, flagged.PolledAt)
	start := time.Date(2025, 11, 21, 2, 56, 0, 0, time.UTC).Format(time.RFC3339Nano)
	return map[string][]byte{
		"influencer.json": append(infl, "}\n"...),
		"movers.json": obj(MoversJSON{Items: []MoverJSON{{PK: 1000042, Gain: 81234, Rank: 11}, {PK: 1000007, Gain: 50001, Rank: 12}},
			Limit: 2, Offset: 10, Order: "gainers", Start: start, Total: 998_000, Window: "24h"}),
		"top.json":        list([]Influencer{unjudged, flagged}, 0, 0, 1_000_000),
		"suspicious.json": list([]Influencer{flagged}, 2, 100, 101_234),
		"average.json": obj(AverageJSON{AverageFollowerCount: 101234.5, Count: 1_000_000, Sum: 101_234_500_000, Min: 5000, Max: 9999999,
			Percentiles: PercentilesJSON{P50: 99000, P90: 228000, P99: 330000, P999: 1_200_000},
			SnapshotAt:  time.Date(2025, 11, 22, 2, 56, 53, 250_000_000, time.UTC).Format(time.RFC3339Nano),
			Suspicious:  101_234, Verdicts: 999_000,
			Gains: map[string]GainStatsJSON{"24h": {Average: 12.5, Count: 998_000, Max: 81234, Min: -30211,
				Percentiles: GainPercentilesJSON{P01: -2900, P10: -1200, P50: 10, P90: 1300, P99: 3100}, Start: start}}}),
		"status.json": obj(StatusJSON{Complete: true, Influencers: &n, RefreshInterval: "5s", SnapshotAgeSeconds: &age,
			Sources: []SourceStatus{
				{URL: "http://exporter-0:9866", Healthy: true, LastSuccess: time.Date(2025, 11, 22, 2, 56, 53, 0, time.UTC), Influencers: 500_000, FetchMs: 31.5},
				{URL: "http://exporter-1:9866", LastSuccess: time.Date(2025, 11, 22, 2, 55, 3, 0, time.UTC), Influencers: 500_000, FetchMs: 4000,
					LastError: "cannot read snapshot: context deadline exceeded"},
			},
			Gains: []WindowStatus{
				{Window: "1h", Start: time.Date(2025, 11, 22, 1, 56, 0, 0, time.UTC), Influencers: 999_000, LastRead: time.Date(2025, 11, 22, 2, 56, 4, 0, time.UTC), ReadMs: 2412.5},
				{Window: "24h", ReadMs: 30000, LastError: "cannot export mockstagram_influencer_following from VictoriaMetrics: context deadline exceeded"},
			}}),
	}
}

// TestAPIGolden keeps testdata/api/*.json, rankd's side of the contract
// with the Grafana plugin, equal to what rankd writes (-update rewrites
// them), and checks that they set every field of the answer types: a field
// only ever absent or zero there would go unchecked on the plugin's side.
func TestAPIGolden(t *testing.T) {
	types := map[string]any{
		"influencer.json": InfluencerJSON{}, "top.json": ListJSON{}, "suspicious.json": ListJSON{},
		"average.json": AverageJSON{}, "status.json": StatusJSON{}, "movers.json": MoversJSON{},
	}
	set := map[reflect.Type]map[string]bool{}
	for name, got := range apiExamples(t) {
		path := filepath.Join("testdata", "api", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v; run go test ./rankd -run TestAPIGolden -update", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: rankd writes\n%s\nthe golden answer is\n%s\nIf the change is meant, rerun with -update and update grafana/plugin/pkg/plugin/rankd.go until its TestRankdContract passes.", name, got, want)
		}
		typ := reflect.TypeOf(types[name])
		v := reflect.New(typ)
		dec := json.NewDecoder(bytes.NewReader(got))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.Interface()); err != nil {
			t.Fatalf("%s does not decode into %s: %v", name, typ, err)
		}
		if set[typ] == nil {
			set[typ] = map[string]bool{}
		}
		markSet(v.Elem(), "", set[typ])
	}
	for typ, seen := range set {
		for _, f := range fieldPaths(typ, "") {
			if !seen[f] && !notInLists(typ, f) {
				t.Errorf("no golden answer sets %s.%s; give the examples in apiExamples a non-zero value for it", typ.Name(), f)
			}
		}
	}
}

// notInLists: the entries of /top and /suspicious are InfluencerJSON
// without the gains, which only /api/v1/influencers/{pk} carries.
func notInLists(typ reflect.Type, path string) bool {
	return typ == reflect.TypeFor[ListJSON]() &&
		(strings.HasPrefix(path, "influencers.gains") || strings.HasPrefix(path, "influencers.availableFrom"))
}

// fieldPaths lists the JSON paths of every field of a struct type, through
// nested structs, pointers and slices (time.Time is one field).
func fieldPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return []string{prefix}
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		out = append(out, fieldPaths(f.Type, prefix+"."+jsonName(f))...)
	}
	if prefix == "" {
		for i := range out {
			out[i] = strings.TrimPrefix(out[i], ".")
		}
	}
	slices.Sort(out)
	return out
}

// markSet records the paths of the fields v sets to a non-zero value.
func markSet(v reflect.Value, prefix string, seen map[string]bool) {
	switch {
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			markSet(v.Elem(), prefix, seen)
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			markSet(v.Index(i), prefix, seen)
		}
	case v.Kind() == reflect.Struct && v.Type() != reflect.TypeFor[time.Time]():
		for i := range v.NumField() {
			p := jsonName(v.Type().Field(i))
			if prefix != "" {
				p = prefix + "." + p
			}
			markSet(v.Field(i), p, seen)
		}
	default:
		if !v.IsZero() {
			seen[prefix] = true
		}
	}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}
