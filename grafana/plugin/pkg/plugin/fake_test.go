package plugin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg/plugin"
)

// Canned rankd answers, in rankd's own format (see the rankd API in
// docs/rankd.md): a flagged influencer with a verdict, one without a
// verdict and with 0 following (ratio null).
const (
	fakeFlagged = `{"pk":1000001,"username":"influencer-1000001","followerCount":5000,"followingCount":1328,"followerRatio":3.765060240963855,` +
		`"rank":2701,"denseRank":812,"percentile":10.0333,"total":3000,"polledAt":"2026-03-01T12:00:01.5Z","suspicious":true,"checkedAt":"2026-03-01T11:58:00Z"}`
	fakeNoVerdict = `{"pk":1000009,"username":"influencer-1000009","followerCount":9999999,"followingCount":0,"followerRatio":null,` +
		`"rank":1,"denseRank":1,"percentile":100,"total":3000,"polledAt":"2026-03-01T12:00:02Z"}`
	fakeAverage = `{"averageFollowerCount":101234.5,"count":3000,"sum":303703500,"min":5000,"max":9999999,` +
		`"percentiles":{"p50":99000,"p90":228000,"p99":330000,"p999":9999999},"snapshotAt":"2026-03-01T12:00:03Z","suspicious":301,"verdicts":2999}`
	fakeTop        = `{"total":3000,"offset":0,"influencers":[` + fakeNoVerdict + `,` + fakeFlagged + `]}`
	fakeSuspicious = `{"total":301,"offset":100,"limit":2,"influencers":[` + fakeFlagged + `]}`
	fakeStatus     = `{"sources":[{"url":"http://exporter-0:9866","healthy":true,"lastSuccess":"2026-03-01T12:00:03Z","influencers":1500,"fetchMs":3.1},` +
		`{"url":"http://exporter-1:9866","healthy":true,"lastSuccess":"2026-03-01T12:00:03Z","influencers":1500,"fetchMs":2.9}],` +
		`"refreshInterval":"5s","snapshotAgeSeconds":2.1234,"complete":true,"influencers":3000}`
)

// fake is a stand-in rankd whose answers a test sets per path.
type fake struct {
	*httptest.Server
	mu       sync.Mutex
	answers  map[string]answer // by path
	requests []*http.Request
}

type answer struct {
	code int
	body string
}

func newFake(t *testing.T) *fake {
	f := &fake{answers: map[string]answer{
		"/api/v1/influencers/1000001": {200, fakeFlagged},
		"/api/v1/influencers/1000009": {200, fakeNoVerdict},
		"/api/v1/average":             {200, fakeAverage},
		"/api/v1/top":                 {200, fakeTop},
		"/api/v1/suspicious":          {200, fakeSuspicious},
		"/api/v1/status":              {200, fakeStatus},
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Clone(context.Background()))
		a, ok := f.answers[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			a = answer{404, `{"status":"error","error":"no such endpoint: ` + r.URL.Path + `; see /"}`}
			if strings.HasPrefix(r.URL.Path, "/api/v1/influencers/") {
				a = answer{404, `{"status":"error","error":"no data for pk ` + strings.TrimPrefix(r.URL.Path, "/api/v1/influencers/") + ` (tracked: 1000000..1002999)"}`}
			}
		}
		if a.code == -1 { // hang until the client gives up
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.code)
		w.Write([]byte(a.body))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) set(path string, code int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[path] = answer{code, body}
}

func (f *fake) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return nil
	}
	return f.requests[len(f.requests)-1]
}

// settings is a datasource configured with url (and token, when not empty).
func settings(url, token string) backend.DataSourceInstanceSettings {
	s := backend.DataSourceInstanceSettings{ID: 1, UID: "rankd", Name: "rankd", Updated: time.Unix(1, 0)}
	s.JSONData, _ = json.Marshal(map[string]string{"url": url})
	if token != "" {
		s.DecryptedSecureJSONData = map[string]string{"token": token}
	}
	return s
}

// newDS makes a datasource the way the SDK's instance manager does.
func newDS(t *testing.T, s backend.DataSourceInstanceSettings) *plugin.Datasource {
	t.Helper()
	inst, err := plugin.NewDatasource(context.Background(), s)
	if err != nil {
		t.Fatalf("NewDatasource: %v", err)
	}
	t.Cleanup(inst.(instancemgmt.InstanceDisposer).Dispose)
	return inst.(*plugin.Datasource)
}

// query is one DataQuery with model as its JSON.
func query(refID, model string) backend.DataQuery {
	return backend.DataQuery{RefID: refID, JSON: json.RawMessage(model), TimeRange: backend.TimeRange{From: time.Unix(0, 0), To: time.Now()}}
}
