package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// Query types of the query model's "queryType".
const (
	QueryInfluencer = "influencer"
	QueryAverage    = "average"
	QueryTop        = "top"
	QuerySuspicious = "suspicious"
	QueryGains      = "gains"
	QueryMovers     = "movers"
)

// knownTypes lists the query types for messages.
const knownTypes = "influencer, average, top, suspicious, gains, movers"

// MaxPKs bounds the influencers one influencer or gains query compares.
const MaxPKs = 5

// Bounds of the list queries; rankd has the same.
const (
	MaxPage     = 1000
	DefaultPage = 100
)

// Query is one parsed query of the query model
// {"queryType","pk","n","offset","limit","window","order"}.
type Query struct {
	Type   string
	PKs    []int64 // influencer, gains: one to MaxPKs
	N      int     // top
	Offset int     // top, suspicious, movers
	Limit  int     // suspicious, movers
	Window string  // movers: one of rankd's --gains.windows
	Order  string  // movers: gainers or losers
}

// queryError is a query the user has to fix; it never reaches rankd.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func badQuery(format string, a ...any) error { return &queryError{fmt.Sprintf(format, a...)} }

// ParseQuery reads a query's JSON; queryType may also come from the
// request's own QueryType (Grafana copies it there).
func ParseQuery(q backend.DataQuery) (Query, error) {
	var m struct {
		QueryType string          `json:"queryType"`
		PK        json.RawMessage `json:"pk"`
		N         json.RawMessage `json:"n"`
		Offset    json.RawMessage `json:"offset"`
		Limit     json.RawMessage `json:"limit"`
		Window    json.RawMessage `json:"window"`
		Order     json.RawMessage `json:"order"`
	}
	if len(q.JSON) > 0 {
		if err := json.Unmarshal(q.JSON, &m); err != nil {
			return Query{}, badQuery("the query is not valid JSON (%v); edit it in the query editor", err)
		}
	}
	out := Query{Type: q.QueryType}
	if out.Type == "" {
		out.Type = m.QueryType
	}
	var err error
	switch out.Type {
	case QueryInfluencer, QueryGains:
		out.PKs, err = parsePKs(m.PK)
	case QueryAverage:
	case QueryTop:
		if out.N, err = intParam("n", m.N, DefaultPage, 1, MaxPage); err == nil {
			out.Offset, err = intParam("offset", m.Offset, 0, 0, 1<<31-1)
		}
	case QuerySuspicious:
		if out.Limit, err = intParam("limit", m.Limit, DefaultPage, 1, MaxPage); err == nil {
			out.Offset, err = intParam("offset", m.Offset, 0, 0, 1<<31-1)
		}
	case QueryMovers:
		if out.Window, err = parseWindow(m.Window); err != nil {
			break
		}
		if out.Order, err = parseOrder(m.Order); err != nil {
			break
		}
		if out.Limit, err = intParam("limit", m.Limit, DefaultPage, 1, MaxPage); err == nil {
			out.Offset, err = intParam("offset", m.Offset, 0, 0, 1<<31-1)
		}
	case "":
		err = badQuery("queryType is missing; choose one of " + knownTypes)
	default:
		err = badQuery("queryType %q is not known; choose one of "+knownTypes, out.Type)
	}
	return out, err
}

// scalar reads a JSON string or number as its text; ok is false for
// anything else.
func scalar(raw json.RawMessage) (s string, present, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, true
	}
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return "", true, false
		}
		s = strings.TrimSpace(s)
		return s, s != "", true
	}
	if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		return string(raw), true, true
	}
	return string(raw), true, false
}

// parsePKs reads one pk or a list: "1000001", 1000001, "1000001,1000002",
// or Grafana's default format of a multi-value variable, "{1000001,1000002}".
func parsePKs(raw json.RawMessage) ([]int64, error) {
	s, present, ok := scalar(raw)
	if !present || (ok && s == "") {
		return nil, badQuery("pk is missing; enter an influencer pk such as 1000001")
	}
	if !ok {
		return nil, badQuery("pk %q is not an integer; enter an influencer pk such as 1000001", s)
	}
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	var pks []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		pk, err := strconv.ParseInt(part, 10, 64)
		if err != nil {
			if strings.Contains(part, "$") {
				return nil, badQuery("pk %q is not an integer: the dashboard variable was not replaced; define it or enter a pk such as 1000001", part)
			}
			return nil, badQuery("pk %q is not an integer; enter an influencer pk such as 1000001", part)
		}
		if !slices.Contains(pks, pk) {
			pks = append(pks, pk)
		}
	}
	if len(pks) > MaxPKs {
		return nil, badQuery("%d pks; compare at most %d influencers at a time", len(pks), MaxPKs)
	}
	return pks, nil
}

// window is a Prometheus-style duration such as 1h, 24h, 7d or 30d;
// rankd answers which of them it has.
var window = regexp.MustCompile(`^([0-9]+(ms|[smhdwy]))+$`)

func parseWindow(raw json.RawMessage) (string, error) {
	s, present, ok := scalar(raw)
	switch {
	case !present:
		return "", badQuery("window is missing; enter one of rankd's --gains.windows such as 24h")
	case !ok || !window.MatchString(s):
		if strings.Contains(s, "$") {
			return "", badQuery("window %q is not a duration: the dashboard variable was not replaced; define it or enter a window such as 24h", s)
		}
		return "", badQuery("window %q is not a duration; enter one of rankd's --gains.windows such as 24h", s)
	}
	return s, nil
}

func parseOrder(raw json.RawMessage) (string, error) {
	s, present, ok := scalar(raw)
	switch {
	case !present:
		return "gainers", nil
	case !ok || (s != "gainers" && s != "losers"):
		return "", badQuery("order %q is not gainers or losers", s)
	}
	return s, nil
}

func intParam(name string, raw json.RawMessage, def, lo, hi int) (int, error) {
	s, present, ok := scalar(raw)
	if !present {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if !ok || err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, badQuery("%s=%s is out of range; use %d..%d", name, s, lo, hi)
		}
		return 0, badQuery("%s=%s is not an integer; use %d..%d", name, s, lo, hi)
	}
	if v < lo || v > hi {
		return 0, badQuery("%s=%d is out of range; use %d..%d", name, v, lo, hi)
	}
	return v, nil
}
