// Package plugin is the backend of the mockstagram-rankd-datasource Grafana
// plugin: it answers Grafana's QueryData, CheckHealth and CallResource
// calls from rankd's JSON API.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Timeout bounds one call to rankd; its answers take microseconds to
// milliseconds, so a slow answer means rankd is down or overloaded.
const Timeout = 10 * time.Second

// maxParallel bounds the rankd calls of one QueryData request.
const maxParallel = 8

// Datasource is one configured datasource (one per Grafana datasource and
// settings version).
type Datasource struct {
	settings Settings
	err      error // a configuration that cannot work: every call says so
	client   *Client
	log      log.Logger
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource is the SDK's instance factory. It never fails: a bad
// configuration is reported by every query and by the health check, in
// words that say what to change, instead of as an opaque plugin error.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	ds := &Datasource{log: log.DefaultLogger.With("datasource", s.UID)}
	ds.settings, ds.err = LoadSettings(s)
	if ds.err == nil {
		ds.client = NewClient(ds.settings.URL, ds.settings.Token, Timeout)
	}
	return ds, nil
}

// Dispose drops the idle connections of a datasource whose settings changed.
func (d *Datasource) Dispose() {
	if d.client != nil {
		d.client.Close()
	}
}

// QueryData answers every query on its own: a bad query or a failing rankd
// call is that query's error, never the request's.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallel)
	for _, q := range req.Queries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := d.query(ctx, q)
			mu.Lock()
			resp.Responses[q.RefID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, dq backend.DataQuery) (resp backend.DataResponse) {
	defer func() {
		// A bug in one query must not take the plugin down with the others.
		if p := recover(); p != nil {
			d.log.Error("query panicked", "refId", dq.RefID, "panic", p)
			resp = backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin, fmt.Sprintf("internal error in the rankd plugin: %v", p))
		}
	}()
	if d.err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, d.err.Error())
	}
	q, err := ParseQuery(dq)
	if err != nil {
		return errorResponse(err)
	}
	switch q.Type {
	case QueryInfluencer, QueryGains:
		infs := make([]Influencer, len(q.PKs))
		paths := make([]string, len(q.PKs))
		for i, pk := range q.PKs {
			paths[i] = "/api/v1/influencers/" + strconv.FormatInt(pk, 10)
			if err := d.client.Get(ctx, paths[i], nil, &infs[i]); err != nil {
				return errorResponse(err)
			}
		}
		executed := "GET " + strings.Join(paths, ", GET ")
		if q.Type == QueryGains {
			return frameResponse(dq.RefID, GainsFrame(infs, executed))
		}
		var resp backend.DataResponse
		for _, inf := range infs {
			fr := InfluencerFrame(inf, executed)
			fr.RefID = dq.RefID
			resp.Frames = append(resp.Frames, fr)
		}
		return resp
	case QueryMovers:
		const path = "/api/v1/movers"
		v := url.Values{"window": {q.Window}, "order": {q.Order}, "limit": {strconv.Itoa(q.Limit)}, "offset": {strconv.Itoa(q.Offset)}}
		var m Movers
		if err := d.client.Get(ctx, path, v, &m); err != nil {
			return errorResponse(err)
		}
		return frameResponse(dq.RefID, MoversFrame(m, "GET "+path+"?"+v.Encode()))
	case QueryAverage:
		const path = "/api/v1/average"
		var a Average
		if err := d.client.Get(ctx, path, nil, &a); err != nil {
			return errorResponse(err)
		}
		return frameResponse(dq.RefID, AverageFrame(a, "GET "+path))
	case QueryTop:
		const path = "/api/v1/top"
		v := url.Values{"n": {strconv.Itoa(q.N)}, "offset": {strconv.Itoa(q.Offset)}}
		var p Page
		if err := d.client.Get(ctx, path, v, &p); err != nil {
			return errorResponse(err)
		}
		return frameResponse(dq.RefID, ListFrame("top", p, q.N, false, "GET "+path+"?"+v.Encode()))
	default: // QuerySuspicious; ParseQuery knows no others
		const path = "/api/v1/suspicious"
		v := url.Values{"limit": {strconv.Itoa(q.Limit)}, "offset": {strconv.Itoa(q.Offset)}}
		var p Page
		if err := d.client.Get(ctx, path, v, &p); err != nil {
			return errorResponse(err)
		}
		return frameResponse(dq.RefID, ListFrame("suspicious", p, q.Limit, true, "GET "+path+"?"+v.Encode()))
	}
}

func frameResponse(refID string, fr *data.Frame) backend.DataResponse {
	fr.RefID = refID
	return backend.DataResponse{Frames: data.Frames{fr}}
}

// errorResponse maps an error to a query's response: rankd's own message
// and status, or what to fix in the query or the settings.
func errorResponse(err error) backend.DataResponse {
	var (
		qe *queryError
		ae *APIError
		ue *UnreachableError
	)
	switch {
	case errors.As(err, &qe):
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
	case errors.As(err, &ae):
		st := backend.Status(ae.Code)
		switch ae.Code {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable:
		default:
			st = backend.StatusBadGateway
		}
		return backend.ErrDataResponseWithSource(st, backend.ErrorSourceDownstream, err.Error())
	case errors.As(err, &ue):
		st := backend.StatusBadGateway
		if ue.Timeout > 0 {
			st = backend.StatusTimeout
		}
		return backend.ErrDataResponseWithSource(st, backend.ErrorSourceDownstream, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return backend.ErrDataResponseWithSource(backend.StatusTimeout, backend.ErrorSourceDownstream, err.Error())
	}
	return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream, err.Error())
}
