package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// resourceParams are the query parameters passed on to rankd; others are
// dropped.
var resourceParams = []string{"n", "offset", "limit"}

// resourcePath maps a resource path (under
// /api/datasources/uid/<uid>/resources/) to rankd's API path; ok is false
// for anything outside the allowlist.
func resourcePath(p string) (string, bool) {
	p = strings.Trim(p, "/")
	switch p {
	case "average", "top", "suspicious", "status":
		return "/api/v1/" + p, true
	}
	if pk, found := strings.CutPrefix(p, "influencers/"); found && pk != "" && !strings.Contains(pk, "/") {
		return "/api/v1/influencers/" + url.PathEscape(pk), true
	}
	return "", false
}

// CallResource proxies a few GET routes of rankd for the query editor:
// influencers/{pk}, average, top, suspicious and status. Anything else is
// 404; rankd's answers pass through with their status.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	path, ok := resourcePath(req.Path)
	if !ok {
		return sendJSONError(sender, http.StatusNotFound, "no such resource: "+req.Path+"; the rankd datasource serves influencers/{pk}, average, top, suspicious and status")
	}
	if req.Method != http.MethodGet {
		return sendJSONError(sender, http.StatusMethodNotAllowed, "resource "+req.Path+" answers GET only")
	}
	if d.err != nil {
		return sendJSONError(sender, http.StatusBadRequest, d.err.Error())
	}
	q := url.Values{}
	if u, err := url.Parse(req.URL); err == nil {
		for _, k := range resourceParams {
			if v, ok := u.Query()[k]; ok {
				q[k] = v
			}
		}
	}
	code, hdr, body, err := d.client.Raw(ctx, path, q)
	if err != nil {
		return sendJSONError(sender, http.StatusBadGateway, err.Error())
	}
	ct := hdr.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	return sender.Send(&backend.CallResourceResponse{Status: code, Headers: map[string][]string{"Content-Type": {ct}}, Body: body})
}

func sendJSONError(sender backend.CallResourceResponseSender, code int, msg string) error {
	body, _ := json.Marshal(map[string]string{"status": "error", "error": msg})
	return sender.Send(&backend.CallResourceResponse{Status: code, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: body})
}
