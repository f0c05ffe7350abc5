package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg/plugin"
)

var update = flag.Bool("update", false, "rewrite the golden frames in testdata/")

// frameJSON is a frame as Grafana's frontend receives it (schema and
// values), indented for a readable golden file.
func frameJSON(t *testing.T, fr *data.Frame) []byte {
	t.Helper()
	b, err := json.Marshal(fr)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	json.Indent(&out, b, "", "  ")
	return append(out.Bytes(), '\n')
}

// one runs a single query and returns its response.
func one(t *testing.T, ds *plugin.Datasource, model string) backend.DataResponse {
	t.Helper()
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{query("A", model)}})
	if err != nil {
		t.Fatalf("QueryData(%s): %v", model, err)
	}
	r, ok := resp.Responses["A"]
	if !ok || len(resp.Responses) != 1 {
		t.Fatalf("QueryData(%s): responses %v", model, resp.Responses)
	}
	return r
}

// TestQueryFrames: each query type against canned rankd answers gives the
// frame in testdata/ (names, types, display names, meta and values), and
// asks rankd the right question.
func TestQueryFrames(t *testing.T) {
	fk := newFake(t)
	ds := newDS(t, settings(fk.URL, ""))
	f := func(golden, model, wantRequest string) {
		t.Helper()
		r := one(t, ds, model)
		if r.Error != nil || len(r.Frames) != 1 {
			t.Fatalf("%s: error %v, %d frames", model, r.Error, len(r.Frames))
		}
		if got := fk.last().URL.RequestURI(); got != wantRequest {
			t.Fatalf("%s: rankd was asked %s, want %s", model, got, wantRequest)
		}
		if r.Frames[0].RefID != "A" {
			t.Fatalf("%s: refId %q", model, r.Frames[0].RefID)
		}
		got := frameJSON(t, r.Frames[0])
		path := filepath.Join("testdata", golden+".json")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update once to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: frame differs from %s:\n%s", model, path, got)
		}
	}
	f("influencer_flagged", `{"queryType":"influencer","pk":"1000001"}`, "/api/v1/influencers/1000001")
	f("influencer_no_verdict", `{"queryType":"influencer","pk":1000009}`, "/api/v1/influencers/1000009")
	f("influencer_no_verdict", `{"queryType":"influencer","pk":" 1000009 "}`, "/api/v1/influencers/1000009")
	f("average", `{"queryType":"average"}`, "/api/v1/average")
	f("top", `{"queryType":"top","n":2}`, "/api/v1/top?n=2&offset=0")
	f("top", `{"queryType":"top","n":"2","offset":0}`, "/api/v1/top?n=2&offset=0")
	f("suspicious", `{"queryType":"suspicious","limit":2,"offset":100}`, "/api/v1/suspicious?limit=2&offset=100")
	fk.set("/api/v1/suspicious", 200, `{"total":301,"offset":400,"limit":100,"influencers":[]}`)
	f("suspicious_past_end", `{"queryType":"suspicious","offset":400}`, "/api/v1/suspicious?limit=100&offset=400")
	fk.set("/api/v1/top", 200, `{"total":3000,"offset":0,"influencers":[]}`)
	f("top_default", `{"queryType":"top"}`, "/api/v1/top?n=100&offset=0")
}

// TestFieldTypes: the influencer frame's fields have Go types Grafana
// reads as numbers, nullable numbers, nullable bools and times.
func TestFieldTypes(t *testing.T) {
	fk := newFake(t)
	ds := newDS(t, settings(fk.URL, ""))
	fr := one(t, ds, `{"queryType":"influencer","pk":"1000001"}`).Frames[0]
	if fr.Name != "influencer-1000001" || fr.Rows() != 1 || fr.Meta.Type != data.FrameTypeNumericWide {
		t.Fatalf("frame %q, %d rows, type %q", fr.Name, fr.Rows(), fr.Meta.Type)
	}
	want := map[string]data.FieldType{
		"pk": data.FieldTypeInt64, "username": data.FieldTypeString, "followerCount": data.FieldTypeUint32,
		"followingCount": data.FieldTypeUint32, "followerRatio": data.FieldTypeNullableFloat64, "rank": data.FieldTypeInt64,
		"denseRank": data.FieldTypeInt64, "percentile": data.FieldTypeFloat64, "total": data.FieldTypeInt64,
		"suspicious": data.FieldTypeNullableBool, "checkedAt": data.FieldTypeNullableTime, "polledAt": data.FieldTypeTime,
	}
	if len(fr.Fields) != len(want) {
		t.Fatalf("%d fields, want %d", len(fr.Fields), len(want))
	}
	for _, f := range fr.Fields {
		if f.Type() != want[f.Name] {
			t.Errorf("field %s: type %s, want %s", f.Name, f.Type(), want[f.Name])
		}
	}
	get := func(fr *data.Frame, name string) any {
		f, _ := fr.FieldByName(name)
		if f == nil {
			t.Fatalf("no field %s", name)
		}
		return f.At(0)
	}
	if v := get(fr, "suspicious").(*bool); v == nil || !*v {
		t.Errorf("suspicious = %v, want true", v)
	}
	if v := get(fr, "checkedAt").(*time.Time); v == nil || !v.Equal(time.Date(2026, 3, 1, 11, 58, 0, 0, time.UTC)) {
		t.Errorf("checkedAt = %v", v)
	}
	if v := get(fr, "polledAt").(time.Time); !v.Equal(time.Date(2026, 3, 1, 12, 0, 1, 5e8, time.UTC)) {
		t.Errorf("polledAt = %v", v)
	}
	if v := get(fr, "followerCount").(uint32); v != 5000 {
		t.Errorf("followerCount = %d", v)
	}
	none := one(t, ds, `{"queryType":"influencer","pk":"1000009"}`).Frames[0]
	if get(none, "followerRatio").(*float64) != nil || get(none, "suspicious").(*bool) != nil || get(none, "checkedAt").(*time.Time) != nil {
		t.Errorf("influencer without verdict and following: ratio %v, suspicious %v, checkedAt %v",
			get(none, "followerRatio"), get(none, "suspicious"), get(none, "checkedAt"))
	}
}

// TestQueryErrors: a bad query, or a rankd error, is that query's error
// with a message that says what to change; a bad query never reaches rankd.
func TestQueryErrors(t *testing.T) {
	fk := newFake(t)
	fk.set("/api/v1/influencers/-5", 400, `{"status":"error","error":"pk \"-5\" is not a non-negative integer"}`)
	ds := newDS(t, settings(fk.URL, ""))
	f := func(model string, reachesRankd bool, status backend.Status, msg string) {
		t.Helper()
		before := len(fk.requests)
		r := one(t, ds, model)
		if r.Error == nil || len(r.Frames) != 0 {
			t.Fatalf("%s: no error (frames %v)", model, r.Frames)
		}
		if r.Error.Error() != msg || r.Status != status || r.ErrorSource != backend.ErrorSourceDownstream {
			t.Fatalf("%s:\n got %d %s %q\nwant %d %q", model, r.Status, r.ErrorSource, r.Error, status, msg)
		}
		if got := len(fk.requests) > before; got != reachesRankd {
			t.Fatalf("%s: rankd asked: %v, want %v", model, got, reachesRankd)
		}
	}
	const bad = backend.StatusBadRequest
	f(`{"queryType":"nope"}`, false, bad, `queryType "nope" is not known; choose one of influencer, average, top, suspicious, gains, movers`)
	f(`{}`, false, bad, `queryType is missing; choose one of influencer, average, top, suspicious, gains, movers`)
	f(`{"queryType":`, false, bad, `the query is not valid JSON (unexpected end of JSON input); edit it in the query editor`)
	f(`{"queryType":"influencer"}`, false, bad, `pk is missing; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":"  "}`, false, bad, `pk is missing; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":"abc"}`, false, bad, `pk "abc" is not an integer; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":1.5}`, false, bad, `pk "1.5" is not an integer; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":true}`, false, bad, `pk "true" is not an integer; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":"99999999999999999999"}`, false, bad, `pk "99999999999999999999" is not an integer; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":"$pk"}`, false, bad, `pk "$pk" is not an integer: the dashboard variable was not replaced; define it or enter a pk such as 1000001`)
	f(`{"queryType":"top","n":0}`, false, bad, `n=0 is out of range; use 1..1000`)
	f(`{"queryType":"top","n":1001}`, false, bad, `n=1001 is out of range; use 1..1000`)
	f(`{"queryType":"top","n":"x"}`, false, bad, `n=x is not an integer; use 1..1000`)
	f(`{"queryType":"top","n":2.5}`, false, bad, `n=2.5 is not an integer; use 1..1000`)
	f(`{"queryType":"top","offset":-1}`, false, bad, `offset=-1 is out of range; use 0..2147483647`)
	f(`{"queryType":"top","offset":99999999999999999999}`, false, bad, `offset=99999999999999999999 is out of range; use 0..2147483647`)
	f(`{"queryType":"suspicious","limit":0}`, false, bad, `limit=0 is out of range; use 1..1000`)
	f(`{"queryType":"suspicious","limit":5000}`, false, bad, `limit=5000 is out of range; use 1..1000`)
	f(`{"queryType":"suspicious","offset":-3}`, false, bad, `offset=-3 is out of range; use 0..2147483647`)
	f(`{"queryType":"gains","pk":"1,2,3,4,5,6"}`, false, bad, `6 pks; compare at most 5 influencers at a time`)
	f(`{"queryType":"gains","pk":"{1000001,x}"}`, false, bad, `pk "x" is not an integer; enter an influencer pk such as 1000001`)
	f(`{"queryType":"influencer","pk":"1000001,$pk"}`, false, bad, `pk "$pk" is not an integer: the dashboard variable was not replaced; define it or enter a pk such as 1000001`)
	f(`{"queryType":"movers"}`, false, bad, `window is missing; enter one of rankd's --gains.windows such as 24h`)
	f(`{"queryType":"movers","window":"$window"}`, false, bad, `window "$window" is not a duration: the dashboard variable was not replaced; define it or enter a window such as 24h`)
	f(`{"queryType":"movers","window":"a day"}`, false, bad, `window "a day" is not a duration; enter one of rankd's --gains.windows such as 24h`)
	f(`{"queryType":"movers","window":"24h","order":"up"}`, false, bad, `order "up" is not gainers or losers`)
	f(`{"queryType":"movers","window":"24h","limit":0}`, false, bad, `limit=0 is out of range; use 1..1000`)

	// rankd's own errors pass through with their status.
	f(`{"queryType":"influencer","pk":"999"}`, true, backend.StatusNotFound, `rankd: no data for pk 999 (tracked: 1000000..1002999) (HTTP 404)`)
	f(`{"queryType":"influencer","pk":"-5"}`, true, backend.StatusBadRequest, `rankd: pk "-5" is not a non-negative integer (HTTP 400)`)
	fk.set("/api/v1/average", 503, `{"status":"error","error":"no complete snapshot yet: waiting for every exporter to answer once (see /api/v1/status)"}`)
	f(`{"queryType":"average"}`, true, backend.Status(503), `rankd: no complete snapshot yet: waiting for every exporter to answer once (see /api/v1/status) (HTTP 503)`)
	fk.set("/api/v1/movers", 400, `{"status":"error","error":"window=\"2h\" must be one of 1h, 24h, 7d, 30d (--gains.windows)"}`)
	f(`{"queryType":"movers","window":"2h"}`, true, bad, `rankd: window="2h" must be one of 1h, 24h, 7d, 30d (--gains.windows) (HTTP 400)`)
	fk.set("/api/v1/suspicious", 404, `{"status":"error","error":"no such endpoint: /api/v1/suspicious; see /"}`)
	f(`{"queryType":"suspicious"}`, true, backend.StatusNotFound, `rankd: no such endpoint: /api/v1/suspicious; see / (HTTP 404)`)
	// Something else than rankd at the URL.
	fk.set("/api/v1/top", 502, `<html>Bad Gateway</html>`)
	f(`{"queryType":"top"}`, true, backend.StatusBadGateway, `rankd: the server at `+fk.URL+` answered /api/v1/top with "<html>Bad Gateway</html>", not rankd's JSON; is the URL pointing at rankd? (HTTP 502)`)
	fk.set("/api/v1/top", 200, `<!DOCTYPE html><title>Grafana</title>`)
	f(`{"queryType":"top"}`, true, backend.StatusBadGateway, `rankd at `+fk.URL+` answered /api/v1/top with something that is not its JSON (invalid character '<' looking for beginning of value: <!DOCTYPE html><title>Grafana</title>); is the URL pointing at rankd?`)
	fk.set("/api/v1/top", 401, `Unauthorized`)
	f(`{"queryType":"top"}`, true, backend.StatusUnauthorized, `rankd: the server at `+fk.URL+` refused the request (Unauthorized); check the token in the datasource settings (HTTP 401)`)
}

// TestMixedQueries: one request, several queries; each is answered on its
// own.
func TestMixedQueries(t *testing.T) {
	fk := newFake(t)
	ds := newDS(t, settings(fk.URL, ""))
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{
		query("A", `{"queryType":"average"}`),
		query("B", `{"queryType":"influencer","pk":"abc"}`),
		query("C", `{"queryType":"influencer","pk":"5"}`),
		query("D", `{"queryType":"top","n":2}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Responses) != 4 {
		t.Fatalf("%d responses", len(resp.Responses))
	}
	for ref, ok := range map[string]bool{"A": true, "B": false, "C": false, "D": true} {
		r := resp.Responses[ref]
		if (r.Error == nil) != ok || (len(r.Frames) == 1) != ok {
			t.Errorf("%s: error %v, %d frames", ref, r.Error, len(r.Frames))
		}
	}
	if n := resp.Responses["D"].Frames[0].Rows(); n != 2 {
		t.Errorf("D: %d rows", n)
	}
}

// TestUnreachable: no rankd at the URL, or one that never answers.
func TestUnreachable(t *testing.T) {
	fk := newFake(t)
	url := fk.URL
	fk.Close()
	ds := newDS(t, settings(url, ""))
	r := one(t, ds, `{"queryType":"average"}`)
	msg := r.Error.Error()
	if r.Status != backend.StatusBadGateway || !strings.HasPrefix(msg, "cannot reach rankd at "+url+" (dial tcp ") ||
		!strings.HasSuffix(msg, "connection refused); check the URL in the datasource settings and that rankd is running") {
		t.Fatalf("%d %q", r.Status, msg)
	}

	hang := newFake(t)
	hang.set("/api/v1/average", -1, "")
	c := plugin.NewClient(hang.URL, "", 200*time.Millisecond)
	var ue *plugin.UnreachableError
	err := c.Get(context.Background(), "/api/v1/average", nil, &plugin.Average{})
	if !errors.As(err, &ue) || ue.Timeout != 200*time.Millisecond ||
		err.Error() != "rankd at "+hang.URL+" did not answer within 200ms; check that rankd is running and not overloaded, and the URL in the datasource settings" {
		t.Fatalf("timeout: %v", err)
	}
}

// TestCancel: a request Grafana gives up on ends the call to rankd.
func TestCancel(t *testing.T) {
	fk := newFake(t)
	fk.set("/api/v1/top", -1, "")
	ds := newDS(t, settings(fk.URL, ""))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for fk.last() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	resp, err := ds.QueryData(ctx, &backend.QueryDataRequest{Queries: []backend.DataQuery{query("A", `{"queryType":"top"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Responses["A"]; r.Error == nil || r.Error.Error() != "request to rankd cancelled: context canceled" {
		t.Fatalf("cancelled query: %v", r.Error)
	}
}

// TestBearerToken: the secure token goes to rankd as a bearer token, on
// queries, health checks and resources alike; none without a token.
func TestBearerToken(t *testing.T) {
	fk := newFake(t)
	ctx := context.Background()
	for _, token := range []string{"s3cret", ""} {
		ds := newDS(t, settings(fk.URL, token))
		want := ""
		if token != "" {
			want = "Bearer " + token
		}
		one(t, ds, `{"queryType":"average"}`)
		if got := fk.last().Header.Get("Authorization"); got != want {
			t.Errorf("query: Authorization %q, want %q", got, want)
		}
		ds.CheckHealth(ctx, &backend.CheckHealthRequest{})
		if got := fk.last().Header.Get("Authorization"); got != want {
			t.Errorf("health: Authorization %q, want %q", got, want)
		}
		ds.CallResource(ctx, &backend.CallResourceRequest{Method: "GET", Path: "status", URL: "status"}, backend.CallResourceResponseSenderFunc(func(*backend.CallResourceResponse) error { return nil }))
		if got := fk.last().Header.Get("Authorization"); got != want {
			t.Errorf("resource: Authorization %q, want %q", got, want)
		}
	}
}

// TestSettingsErrors: a datasource without a usable URL says what to set,
// in every query and in the health check.
func TestSettingsErrors(t *testing.T) {
	f := func(jsonData, msg string) {
		t.Helper()
		s := settings("", "")
		s.JSONData = json.RawMessage(jsonData)
		ds := newDS(t, s)
		if r := one(t, ds, `{"queryType":"average"}`); r.Error == nil || r.Error.Error() != msg || r.Status != backend.StatusBadRequest {
			t.Errorf("%s: query error %v, want %q", jsonData, r.Error, msg)
		}
		h, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
		if err != nil || h.Status != backend.HealthStatusError || h.Message != msg {
			t.Errorf("%s: health %v %+v, want %q", jsonData, err, h, msg)
		}
	}
	f(`{}`, "no rankd URL: set the rankd URL in the datasource settings (for example http://rankd:9867)")
	f(``, "no rankd URL: set the rankd URL in the datasource settings (for example http://rankd:9867)")
	f(`{"url":"  "}`, "no rankd URL: set the rankd URL in the datasource settings (for example http://rankd:9867)")
	f(`{"url":"rankd:9867"}`, `rankd URL "rankd:9867" is not an http(s) URL: set the rankd URL in the datasource settings (for example http://rankd:9867)`)
	f(`{"url":"ftp://rankd"}`, `rankd URL "ftp://rankd" is not an http(s) URL: set the rankd URL in the datasource settings (for example http://rankd:9867)`)
	f(`{"url":"http://"}`, `rankd URL "http:" is not an http(s) URL: set the rankd URL in the datasource settings (for example http://rankd:9867)`)
	f(`{"url":"http://rankd:9867/?x=1"}`, `rankd URL "http://rankd:9867/?x=1" has a query or fragment: set the rankd URL in the datasource settings to rankd's base URL (for example http://rankd:9867)`)
	f(`{"url":9867}`, `cannot read the datasource settings (json: cannot unmarshal number into Go struct field Settings.url of type string); save them again in the datasource settings page`)
}

// TestCheckHealth: the health check's verdict and message for a healthy
// rankd and for each way it can be unwell.
func TestCheckHealth(t *testing.T) {
	fk := newFake(t)
	ds := newDS(t, settings(fk.URL, ""))
	f := func(status, average string, want backend.HealthStatus, msg ...string) {
		t.Helper()
		fk.set("/api/v1/status", 200, status)
		fk.set("/api/v1/average", 200, average)
		h, err := ds.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != want {
			t.Fatalf("status %s, want %s: %s", h.Status, want, h.Message)
		}
		for _, m := range msg {
			if !strings.Contains(h.Message, m) {
				t.Fatalf("message %q lacks %q", h.Message, m)
			}
		}
	}
	f(fakeStatus, fakeAverage, backend.HealthStatusOk, "rankd answers: 3000 influencers, snapshot 2.1 s old, 2/2 exporters healthy, suspicious verdicts for 2999 (301 flagged)")
	noVerdicts := strings.Replace(fakeAverage, `,"suspicious":301,"verdicts":2999`, "", 1)
	f(fakeStatus, noVerdicts, backend.HealthStatusOk, "rankd answers: 3000 influencers, snapshot 2.1 s old, 2/2 exporters healthy")
	if h, _ := ds.CheckHealth(context.Background(), nil); h.Message != "rankd answers: 3000 influencers, snapshot 2.1 s old, 2/2 exporters healthy" {
		t.Fatalf("without verdicts: %q", h.Message)
	}

	incomplete := `{"sources":[{"url":"http://exporter-0:9866","healthy":true,"lastSuccess":"2026-03-01T12:00:03Z"},` +
		`{"url":"http://exporter-1:9866","healthy":false,"lastError":"dial tcp 10.0.0.7:9866: connect: connection refused"}],` +
		`"refreshInterval":"5s","snapshotAgeSeconds":0.5,"complete":false,"influencers":1500}`
	f(incomplete, fakeAverage, backend.HealthStatusError,
		"rankd answers but has no complete snapshot yet (1/2 exporters healthy; it waits until every exporter has answered once): "+
			"http://exporter-1:9866 (never answered: dial tcp 10.0.0.7:9866: connect: connection refused)")
	f(`{"sources":[],"refreshInterval":"5s","complete":false}`, fakeAverage, backend.HealthStatusError, "no complete snapshot yet (0/0 exporters healthy")

	stale := strings.Replace(fakeStatus, `"snapshotAgeSeconds":2.1234`, `"snapshotAgeSeconds":16.04`, 1)
	f(stale, fakeAverage, backend.HealthStatusError,
		"rankd's snapshot is 16.0 s old, more than 3 refresh intervals of 5s: rankd has stopped refreshing; check its logs and restart it")
	f(strings.Replace(fakeStatus, `"snapshotAgeSeconds":2.1234`, `"snapshotAgeSeconds":14.9`, 1), fakeAverage, backend.HealthStatusOk, "snapshot 14.9 s old")

	failing := `{"sources":[{"url":"http://exporter-0:9866","healthy":true,"lastSuccess":"2026-03-01T12:00:03Z"},` +
		`{"url":"http://exporter-1:9866","healthy":false,"lastError":"HTTP 503","lastSuccess":"` + time.Now().Add(-90*time.Second).UTC().Format(time.RFC3339) + `"}],` +
		`"refreshInterval":"5s","snapshotAgeSeconds":2.1234,"complete":true,"influencers":3000}`
	f(failing, fakeAverage, backend.HealthStatusError,
		"rankd answers: 3000 influencers, snapshot 2.1 s old, 1/2 exporters healthy, suspicious verdicts for 2999 (301 flagged); "+
			"the influencers of the failing ones keep their last values: http://exporter-1:9866 (last answered 1m3", "s ago: HTTP 503)")

	f(`{"sources":[],"complete":true}`, fakeAverage, backend.HealthStatusError,
		"rankd at "+fk.URL+" answered /api/v1/status without snapshotAgeSeconds; is the URL pointing at rankd?")
	fk.set("/api/v1/average", 401, "no")
	fk.set("/api/v1/status", 200, fakeStatus)
	if h, _ := ds.CheckHealth(context.Background(), nil); h.Status != backend.HealthStatusError ||
		h.Message != "rankd answers /api/v1/status but not /api/v1/average: rankd: the server at "+fk.URL+" refused the request (no); check the token in the datasource settings (HTTP 401)" {
		t.Fatalf("average refused: %+v", h)
	}
	fk.set("/api/v1/status", 200, "<html>")
	if h, _ := ds.CheckHealth(context.Background(), nil); h.Status != backend.HealthStatusError || !strings.HasSuffix(h.Message, "is the URL pointing at rankd?") {
		t.Fatalf("not rankd: %+v", h)
	}

	fk.Close()
	if h, _ := ds.CheckHealth(context.Background(), nil); h.Status != backend.HealthStatusError ||
		!strings.HasPrefix(h.Message, "cannot reach rankd at "+fk.URL) || !strings.HasSuffix(h.Message, "check the URL in the datasource settings and that rankd is running") {
		t.Fatalf("unreachable: %+v", h)
	}
}

// TestCallResource: the allowlisted routes reach rankd with their known
// query parameters and pass its answer through; anything else is 404.
func TestCallResource(t *testing.T) {
	fk := newFake(t)
	ds := newDS(t, settings(fk.URL, ""))
	f := func(method, url string, code int, body, wantRequest string) {
		t.Helper()
		before := fk.last()
		path, _, _ := strings.Cut(url, "?")
		var got []*backend.CallResourceResponse
		err := ds.CallResource(context.Background(), &backend.CallResourceRequest{Method: method, Path: path, URL: url},
			backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = append(got, r); return nil }))
		if err != nil || len(got) != 1 {
			t.Fatalf("%s %s: %v, %d responses", method, url, err, len(got))
		}
		if got[0].Status != code || !strings.Contains(string(got[0].Body), body) || got[0].Headers["Content-Type"][0] != "application/json" {
			t.Fatalf("%s %s: %d %v %s, want %d with %q", method, url, got[0].Status, got[0].Headers, got[0].Body, code, body)
		}
		last := fk.last()
		if wantRequest == "" {
			if last != before {
				t.Fatalf("%s %s reached rankd: %s", method, url, last.URL)
			}
			return
		}
		if last == before || last.URL.RequestURI() != wantRequest {
			t.Fatalf("%s %s: rankd was asked %v, want %s", method, url, last.URL, wantRequest)
		}
	}
	f("GET", "top?n=5&offset=2&evil=1", 200, fakeTop, "/api/v1/top?n=5&offset=2")
	f("GET", "influencers/1000001", 200, fakeFlagged, "/api/v1/influencers/1000001")
	f("GET", "influencers/999", 404, `"error":"no data for pk 999`, "/api/v1/influencers/999")
	f("GET", "average", 200, fakeAverage, "/api/v1/average")
	f("GET", "status", 200, fakeStatus, "/api/v1/status")
	f("GET", "suspicious?limit=2&offset=100", 200, fakeSuspicious, "/api/v1/suspicious?limit=2&offset=100")
	f("GET", "metrics", 404, `no such resource: metrics; the rankd datasource serves influencers/{pk}, average, top, suspicious and status`, "")
	f("GET", "influencers/1/2", 404, `no such resource: influencers/1/2`, "")
	f("GET", "influencers/", 404, `no such resource: influencers/`, "")
	f("GET", "", 404, `no such resource: ;`, "")
	f("POST", "top", 405, `resource top answers GET only`, "")

	bad := newDS(t, settings("", ""))
	var got *backend.CallResourceResponse
	bad.CallResource(context.Background(), &backend.CallResourceRequest{Method: "GET", Path: "top", URL: "top"},
		backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
	if got.Status != http.StatusBadRequest || !strings.Contains(string(got.Body), "set the rankd URL in the datasource settings") {
		t.Fatalf("no URL: %d %s", got.Status, got.Body)
	}
	fk.Close()
	f("GET", "top", 502, `cannot reach rankd at `+fk.URL, "")
}
