package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg/plugin"
)

// backendAPI is what Grafana calls: the datasource itself, the SDK's
// in-process gRPC client, or the plugin binary over go-plugin.
type backendAPI interface {
	QueryData(context.Context, *backend.QueryDataRequest) (*backend.QueryDataResponse, error)
	CheckHealth(context.Context, *backend.CheckHealthRequest) (*backend.CheckHealthResult, error)
	CallResource(context.Context, *backend.CallResourceRequest, backend.CallResourceResponseSender) error
}

// pluginContext is what Grafana sends with every call for a datasource
// with this uid and settings.
func pluginContext(uid string, s backend.DataSourceInstanceSettings) backend.PluginContext {
	s.UID = uid
	return backend.PluginContext{OrgID: 1, PluginID: plugin.ID, DataSourceInstanceSettings: &s}
}

// influencerTypes are the field types of the influencer frame.
var influencerTypes = map[string]data.FieldType{
	"pk": data.FieldTypeInt64, "username": data.FieldTypeString, "followerCount": data.FieldTypeUint32,
	"followingCount": data.FieldTypeUint32, "followerRatio": data.FieldTypeNullableFloat64, "rank": data.FieldTypeInt64,
	"denseRank": data.FieldTypeInt64, "percentile": data.FieldTypeFloat64, "total": data.FieldTypeInt64,
	"suspicious": data.FieldTypeNullableBool, "checkedAt": data.FieldTypeNullableTime, "polledAt": data.FieldTypeTime,
}

// checkRow compares row i of fr with rankd's JSON object field by field
// (the frame's field names are rankd's JSON names); times may differ by a
// few refreshes, since the pipeline keeps polling between the two reads.
func checkRow(t *testing.T, what string, fr *data.Frame, i int, obj map[string]any) {
	t.Helper()
	for _, f := range fr.Fields {
		want, present := obj[f.Name]
		got, notNull := f.ConcreteAt(i)
		if !present || want == nil {
			if notNull {
				t.Errorf("%s: %s = %v, rankd has none", what, f.Name, got)
			}
			continue
		}
		if !notNull {
			t.Errorf("%s: %s is null, rankd has %v", what, f.Name, want)
			continue
		}
		switch g := got.(type) {
		case time.Time:
			w, err := time.Parse(time.RFC3339Nano, want.(string))
			if err != nil || g.Sub(w).Abs() > 5*time.Second {
				t.Errorf("%s: %s = %s, rankd has %v", what, f.Name, g, want)
			}
		case string, bool:
			if got != want {
				t.Errorf("%s: %s = %v, rankd has %v", what, f.Name, got, want)
			}
		default:
			if n := reflect.ValueOf(got).Convert(reflect.TypeFor[float64]()).Float(); n != want.(float64) {
				t.Errorf("%s: %s = %v, rankd has %v", what, f.Name, got, want)
			}
		}
	}
}

// checkPage compares the rows of a list frame with rankd's entries.
func checkPage(t *testing.T, what string, fr *data.Frame, want []map[string]any) {
	t.Helper()
	if fr.Rows() != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, fr.Rows(), len(want))
	}
	for i, obj := range want {
		checkRow(t, fmt.Sprintf("%s row %d", what, i), fr, i, obj)
	}
}

// pageMeta is a list frame's Custom meta (a struct in process, a map after
// gRPC).
func pageMeta(t *testing.T, fr *data.Frame) plugin.PageMeta {
	t.Helper()
	var m plugin.PageMeta
	b, err := json.Marshal(fr.Meta.Custom)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkAgainstRankd runs every query type, the health check and the
// resource routes through api against the real rankd at url, and checks
// each answer against rankd's own JSON and the simulator's classifier rule.
func checkAgainstRankd(t *testing.T, api backendAPI, url string) {
	ctx := context.Background()
	pc := pluginContext("rankd", settings(url, ""))

	// rankd's own view, and the pipeline's: flagged exactly when the
	// simulator's rule says so.
	var all, flagged struct {
		Total       int              `json:"total"`
		Influencers []map[string]any `json:"influencers"`
	}
	var avg map[string]any
	for path, into := range map[string]any{"/api/v1/top?n=1000": &all, "/api/v1/suspicious?limit=1000": &flagged, "/api/v1/average": &avg} {
		if code, body, err := getJSON(url+path, into); code != 200 || err != nil {
			t.Fatalf("GET %s: %d %v %s", path, code, err, body)
		}
	}
	var byRule []map[string]any
	for _, inf := range all.Influencers {
		if r, ok := inf["followerRatio"].(float64); ok && r <= suspiciousRatio {
			byRule = append(byRule, inf)
		}
	}
	if len(all.Influencers) != population || len(flagged.Influencers) != len(byRule) || flagged.Total != len(byRule) || len(byRule) == 0 {
		t.Fatalf("rankd: %d influencers, %d flagged (total %d); the classifier's rule flags %d", len(all.Influencers), len(flagged.Influencers), flagged.Total, len(byRule))
	}
	for i := range byRule {
		if byRule[i]["pk"] != flagged.Influencers[i]["pk"] {
			t.Fatalf("flagged[%d] = pk %v, the rule says pk %v", i, flagged.Influencers[i]["pk"], byRule[i]["pk"])
		}
	}
	var clean map[string]any
	for _, inf := range all.Influencers {
		if inf["suspicious"] == false {
			clean = inf
			break
		}
	}
	flaggedPK := strconv.FormatFloat(flagged.Influencers[0]["pk"].(float64), 'f', -1, 64)
	cleanPK := strconv.FormatFloat(clean["pk"].(float64), 'f', -1, 64)
	for k, v := range avg["percentiles"].(map[string]any) {
		avg[k] = v
	}

	models := map[string]string{
		"flagged": `{"queryType":"influencer","pk":"` + flaggedPK + `"}`,
		"clean":   `{"queryType":"influencer","pk":` + cleanPK + `}`,
		"avg":     `{"queryType":"average"}`,
		"top":     `{"queryType":"top","n":10,"offset":5}`,
		"susp":    `{"queryType":"suspicious","limit":7,"offset":3}`,
		"past":    `{"queryType":"suspicious","offset":1000}`,
		"missing": `{"queryType":"influencer","pk":"999"}`,
		"negpk":   `{"queryType":"influencer","pk":"-5"}`,
		"badpk":   `{"queryType":"influencer","pk":"abc"}`,
		"badn":    `{"queryType":"top","n":0}`,
		"badtype": `{"queryType":"followers"}`,
		"gains":   `{"queryType":"gains","pk":"{` + flaggedPK + `,` + cleanPK + `}"}`,
		"two":     `{"queryType":"influencer","pk":"` + flaggedPK + `,` + cleanPK + `"}`,
		"movers":  `{"queryType":"movers","window":"1h","order":"losers","limit":5,"offset":2}`,
		"gainers": `{"queryType":"movers","window":"24h"}`,
	}
	req := &backend.QueryDataRequest{PluginContext: pc}
	for ref, m := range models {
		req.Queries = append(req.Queries, query(ref, m))
	}
	resp, err := api.QueryData(ctx, req)
	if err != nil {
		t.Fatalf("QueryData: %v", err)
	}
	if len(resp.Responses) != len(models) {
		t.Fatalf("%d responses for %d queries", len(resp.Responses), len(models))
	}
	frame := func(ref string) *data.Frame {
		t.Helper()
		r := resp.Responses[ref]
		if r.Error != nil || len(r.Frames) != 1 {
			t.Fatalf("%s: error %v, %d frames", ref, r.Error, len(r.Frames))
		}
		if r.Frames[0].RefID != ref {
			t.Errorf("%s: frame refId %q", ref, r.Frames[0].RefID)
		}
		return r.Frames[0]
	}

	for _, c := range []struct {
		ref string
		inf map[string]any
	}{{"flagged", flagged.Influencers[0]}, {"clean", clean}} {
		fr := frame(c.ref)
		if fr.Rows() != 1 || fr.Name != c.inf["username"] || fr.Meta.Type != data.FrameTypeNumericWide {
			t.Fatalf("%s: frame %q with %d rows, type %q", c.ref, fr.Name, fr.Rows(), fr.Meta.Type)
		}
		for _, f := range fr.Fields {
			if f.Type() != influencerTypes[f.Name] {
				t.Errorf("%s: field %s is %s, want %s", c.ref, f.Name, f.Type(), influencerTypes[f.Name])
			}
		}
		if len(fr.Fields) != len(influencerTypes) {
			t.Errorf("%s: %d fields", c.ref, len(fr.Fields))
		}
		checkRow(t, c.ref, fr, 0, c.inf)
	}
	if v, _ := frame("flagged").Fields[9].ConcreteAt(0); v != true {
		t.Errorf("flagged influencer: suspicious %v", v)
	}
	if v, _ := frame("flagged").Fields[10].ConcreteAt(0); v == nil {
		t.Errorf("flagged influencer without checkedAt")
	}

	// Two influencers compared: a frame each.
	if r := resp.Responses["two"]; r.Error != nil || len(r.Frames) != 2 || r.Frames[0].Name != flagged.Influencers[0]["username"] || r.Frames[1].Name != clean["username"] {
		t.Errorf("two influencers: %v, %d frames", r.Error, len(r.Frames))
	}

	// Gains: a row per influencer and window, shortest window first, as
	// rankd answers them (the even pks have a day's history, the odd ones
	// only an hour's: their 24h row says when it will have one).
	var rows []map[string]any
	for _, pk := range []string{flaggedPK, cleanPK} {
		var inf map[string]any
		if code, body, err := getJSON(url+"/api/v1/influencers/"+pk, &inf); code != 200 || err != nil {
			t.Fatalf("GET influencer %s: %d %v %s", pk, code, err, body)
		}
		gains, _ := inf["gains"].(map[string]any)
		avail, _ := inf["availableFrom"].(map[string]any)
		for _, w := range []string{"1h", "24h"} {
			row := map[string]any{"pk": inf["pk"], "username": inf["username"], "window": w}
			if g, ok := gains[w].(map[string]any); ok {
				for k, v := range g {
					row[k] = v
				}
			} else if a, ok := avail[w]; ok {
				row["availableFrom"] = a
			} else {
				t.Fatalf("influencer %s: neither gains nor availableFrom for %s: %v", pk, w, inf)
			}
			rows = append(rows, row)
		}
	}
	checkPage(t, "gains", frame("gains"), rows)

	// Movers: rankd's page, row for row.
	for ref, path := range map[string]string{"movers": "/api/v1/movers?window=1h&order=losers&limit=5&offset=2", "gainers": "/api/v1/movers?window=24h&order=gainers&limit=100&offset=0"} {
		var page struct {
			Items []map[string]any `json:"items"`
			Total int64            `json:"total"`
		}
		if code, body, err := getJSON(url+path, &page); code != 200 || err != nil || len(page.Items) == 0 {
			t.Fatalf("GET %s: %d %v %s", path, code, err, body)
		}
		for _, it := range page.Items {
			it["username"] = "influencer-" + strconv.FormatFloat(it["pk"].(float64), 'f', -1, 64)
		}
		fr := frame(ref)
		checkPage(t, ref, fr, page.Items)
		var m plugin.MoversMeta
		b, _ := json.Marshal(fr.Meta.Custom)
		if err := json.Unmarshal(b, &m); err != nil || m.Total != page.Total || m.Total == 0 {
			t.Errorf("%s meta %+v (%v), total want %d", ref, m, err, page.Total)
		}
	}

	fr := frame("avg")
	if fr.Rows() != 1 || fr.Name != "population" {
		t.Fatalf("avg: frame %q with %d rows", fr.Name, fr.Rows())
	}
	avg["snapshotAt"] = time.Now().UTC().Format(time.RFC3339Nano) // rebuilt twice a second
	checkRow(t, "avg", fr, 0, avg)
	if _, f := fr.FieldByName("suspicious"); f < 0 || fr.Fields[f].At(0).(*int64) == nil || *fr.Fields[f].At(0).(*int64) != int64(len(byRule)) {
		t.Errorf("avg: suspicious count is not %d", len(byRule))
	}

	fr = frame("top")
	checkPage(t, "top", fr, all.Influencers[5:15])
	if got := pageMeta(t, fr); got != (plugin.PageMeta{Total: population, Offset: 5, Limit: 10}) {
		t.Errorf("top meta %+v", got)
	}
	fr = frame("susp")
	checkPage(t, "susp", fr, flagged.Influencers[3:10])
	if got := pageMeta(t, fr); got != (plugin.PageMeta{Total: int64(len(byRule)), Offset: 3, Limit: 7}) {
		t.Errorf("susp meta %+v", got)
	}
	if got := fr.Meta.Notices[0].Text; got != fmt.Sprintf("flagged influencers 4-10 of %d", len(byRule)) {
		t.Errorf("susp notice %q", got)
	}
	if fr := frame("past"); fr.Rows() != 0 || len(fr.Fields) != 9 || fr.Meta.Notices[0].Text != fmt.Sprintf("no flagged influencers at offset 1000 (%d in all)", len(byRule)) {
		t.Errorf("past the end: %d rows, %d fields, %v", fr.Rows(), len(fr.Fields), fr.Meta.Notices)
	}

	for ref, want := range map[string]struct {
		status backend.Status
		msg    string
	}{
		"missing": {backend.StatusNotFound, fmt.Sprintf("rankd: no data for pk 999 (tracked: %d..%d) (HTTP 404)", pkMin, pkMax)},
		"negpk":   {backend.StatusBadRequest, `rankd: pk "-5" is not a non-negative integer (HTTP 400)`},
		"badpk":   {backend.StatusBadRequest, `pk "abc" is not an integer; enter an influencer pk such as 1000001`},
		"badn":    {backend.StatusBadRequest, `n=0 is out of range; use 1..1000`},
		"badtype": {backend.StatusBadRequest, `queryType "followers" is not known; choose one of influencer, average, top, suspicious, gains, movers`},
	} {
		r := resp.Responses[ref]
		if r.Error == nil || r.Error.Error() != want.msg || r.Status != want.status || len(r.Frames) != 0 {
			t.Errorf("%s: %d %v, want %d %q", ref, r.Status, r.Error, want.status, want.msg)
		}
	}

	h, err := api.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: pc})
	if err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
	okMsg := regexp.MustCompile(fmt.Sprintf(`^rankd answers: %d influencers, snapshot \d+\.\d s old, 2/2 exporters healthy, suspicious verdicts for %d \(%d flagged\)$`,
		population, population, len(byRule)))
	if h.Status != backend.HealthStatusOk || !okMsg.MatchString(h.Message) {
		t.Errorf("health: %s %q", h.Status, h.Message)
	}
	noURL := pluginContext("no-url", settings("", ""))
	if h, err := api.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: noURL}); err != nil || h.Status != backend.HealthStatusError ||
		h.Message != "no rankd URL: set the rankd URL in the datasource settings (for example http://rankd:9867)" {
		t.Errorf("health without URL: %v %+v", err, h)
	}

	resource := func(url string) (int, string) {
		t.Helper()
		path, _, _ := strings.Cut(url, "?")
		var got []*backend.CallResourceResponse
		err := api.CallResource(ctx, &backend.CallResourceRequest{PluginContext: pc, Method: "GET", Path: path, URL: url},
			backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = append(got, r); return nil }))
		if err != nil || len(got) != 1 {
			t.Fatalf("resource %s: %v, %d answers", url, err, len(got))
		}
		return got[0].Status, string(got[0].Body)
	}
	var page struct {
		Influencers []map[string]any `json:"influencers"`
	}
	code, body := resource("top?n=3")
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Influencers) != 3 || page.Influencers[2]["pk"] != all.Influencers[2]["pk"] {
		t.Errorf("resource top?n=3: %d %s", code, body)
	}
	if code, body := resource("influencers/" + flaggedPK); code != 200 || !strings.Contains(body, `"pk":`+flaggedPK+`,`) || !strings.Contains(body, `"suspicious":true`) {
		t.Errorf("resource influencers/%s: %d %s", flaggedPK, code, body)
	}
	if code, body := resource("status"); code != 200 || !strings.Contains(body, `"complete":true`) {
		t.Errorf("resource status: %d %s", code, body)
	}
	if code, body := resource("top?n=0"); code != 400 || !strings.Contains(body, "must be an integer in 1..1000") {
		t.Errorf("resource top?n=0: %d %s", code, body)
	}
	if code, body := resource("metrics"); code != 404 || !strings.Contains(body, "no such resource: metrics") {
		t.Errorf("resource metrics: %d %s", code, body)
	}
}
