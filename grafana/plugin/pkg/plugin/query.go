package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
)

// Bounds of the list queries; rankd has the same.
const (
	MaxPage     = 1000
	DefaultPage = 100
)

// Query is one parsed query of the query model
// {"queryType","pk","n","offset","limit"}.
type Query struct {
	Type   string
	PK     int64 // influencer
	N      int   // top
	Offset int   // top, suspicious
	Limit  int   // suspicious
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
	case QueryInfluencer:
		out.PK, err = parsePK(m.PK)
	case QueryAverage:
	case QueryTop:
		if out.N, err = intParam("n", m.N, DefaultPage, 1, MaxPage); err == nil {
			out.Offset, err = intParam("offset", m.Offset, 0, 0, 1<<31-1)
		}
	case QuerySuspicious:
		if out.Limit, err = intParam("limit", m.Limit, DefaultPage, 1, MaxPage); err == nil {
			out.Offset, err = intParam("offset", m.Offset, 0, 0, 1<<31-1)
		}
	case "":
		err = badQuery("queryType is missing; choose one of influencer, average, top, suspicious")
	default:
		err = badQuery("queryType %q is not known; choose one of influencer, average, top, suspicious", out.Type)
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

func parsePK(raw json.RawMessage) (int64, error) {
	s, present, ok := scalar(raw)
	if !present || (ok && s == "") {
		return 0, badQuery("pk is missing; enter an influencer pk such as 1000001")
	}
	pk, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil {
		if strings.Contains(s, "$") {
			return 0, badQuery("pk %q is not an integer: the dashboard variable was not replaced; define it or enter a pk such as 1000001", s)
		}
		return 0, badQuery("pk %q is not an integer; enter an influencer pk such as 1000001", s)
	}
	return pk, nil
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
