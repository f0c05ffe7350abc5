package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The types below mirror rankd's answers (rankd/api.go: InfluencerJSON,
// ListJSON, AverageJSON, StatusJSON). This module does not import rankd;
// TestRankdContract decodes rankd's golden answers (rankd/testdata/api)
// strictly into them and fails on a field either side lacks.

// Influencer is one influencer as rankd answers it (/api/v1/influencers/{pk},
// and the entries of /api/v1/top and /api/v1/suspicious).
type Influencer struct {
	PK             int64      `json:"pk"`
	Username       string     `json:"username"`
	FollowerCount  uint32     `json:"followerCount"`
	FollowingCount uint32     `json:"followingCount"`
	FollowerRatio  *float64   `json:"followerRatio"` // null when following is 0
	Rank           int64      `json:"rank"`
	DenseRank      int64      `json:"denseRank"`
	Percentile     float64    `json:"percentile"`
	Total          int64      `json:"total"`
	PolledAt       time.Time  `json:"polledAt"`
	Suspicious     *bool      `json:"suspicious"` // absent until the first verdict
	CheckedAt      *time.Time `json:"checkedAt"`  // time of that verdict
	// Gains by window ("24h"), /api/v1/influencers/{pk} only, when rankd
	// has gains on and a baseline that old for the influencer.
	Gains map[string]Gain `json:"gains"`
	// AvailableFrom gives, for a window with no baseline that old yet, when
	// it will have one.
	AvailableFrom map[string]time.Time `json:"availableFrom"`
}

// Gain is one window's gains of one influencer.
type Gain struct {
	Followers         int64     `json:"followers"`
	Following         int64     `json:"following"`
	FollowersRelative *float64  `json:"followersRelative"` // null when the baseline is 0
	FollowingRelative *float64  `json:"followingRelative"`
	Rank              int64     `json:"rank"`  // of the follower gain
	Total             int64     `json:"total"` // influencers ranked in the window
	From              time.Time `json:"from"`  // the baseline sample's time
}

// Movers is rankd's /api/v1/movers.
type Movers struct {
	Items []struct {
		PK   int64 `json:"pk"`
		Gain int64 `json:"gain"`
		Rank int64 `json:"rank"`
	} `json:"items"`
	Limit  int64     `json:"limit"`
	Offset int64     `json:"offset"`
	Order  string    `json:"order"`
	Start  time.Time `json:"start"`
	Total  int64     `json:"total"`
	Window string    `json:"window"`
}

// Average is rankd's /api/v1/average.
type Average struct {
	AverageFollowerCount float64 `json:"averageFollowerCount"`
	Count                int64   `json:"count"`
	Sum                  uint64  `json:"sum"`
	Min                  uint32  `json:"min"`
	Max                  uint32  `json:"max"`
	Percentiles          struct {
		P50  uint32 `json:"p50"`
		P90  uint32 `json:"p90"`
		P99  uint32 `json:"p99"`
		P999 uint32 `json:"p999"`
	} `json:"percentiles"`
	SnapshotAt time.Time `json:"snapshotAt"`
	Suspicious *int64    `json:"suspicious"` // flagged influencers
	Verdicts   *int64    `json:"verdicts"`   // influencers with a verdict
	// Gains holds the population's follower gains by window, when rankd has
	// gains on.
	Gains map[string]struct {
		Average     float64 `json:"average"`
		Count       int64   `json:"count"`
		Max         int64   `json:"max"`
		Min         int64   `json:"min"`
		Percentiles struct {
			P01 int64 `json:"p01"`
			P10 int64 `json:"p10"`
			P50 int64 `json:"p50"`
			P90 int64 `json:"p90"`
			P99 int64 `json:"p99"`
		} `json:"percentiles"`
		Start time.Time `json:"start"`
	} `json:"gains"`
}

// Page is rankd's /api/v1/top and /api/v1/suspicious.
type Page struct {
	Total       int64        `json:"total"`
	Offset      int64        `json:"offset"`
	Limit       int64        `json:"limit"` // suspicious only
	Influencers []Influencer `json:"influencers"`
}

// Status is rankd's /api/v1/status.
type Status struct {
	Sources []struct {
		URL         string    `json:"url"`
		Healthy     bool      `json:"healthy"`
		LastError   string    `json:"lastError"`
		LastSuccess time.Time `json:"lastSuccess"`
		Influencers int64     `json:"influencers"` // in that exporter's last good snapshot
		FetchMs     float64   `json:"fetchMs"`     // how long its last read took
	} `json:"sources"`
	RefreshInterval    string   `json:"refreshInterval"`
	SnapshotAgeSeconds *float64 `json:"snapshotAgeSeconds"`
	Complete           bool     `json:"complete"`
	Influencers        int64    `json:"influencers"`
	Gains              []struct {
		Window      string    `json:"window"`
		Start       time.Time `json:"start"`
		Influencers int64     `json:"influencers"`
		LastRead    time.Time `json:"lastRead"`
		LastError   string    `json:"lastError"`
		ReadMs      float64   `json:"readMs"`
	} `json:"gains"` // each gains window's baselines
}

// APIError is an error answer of rankd, {"status":"error","error":"..."}.
type APIError struct {
	Code    int    // HTTP status
	Message string // rankd's own words
}

func (e *APIError) Error() string { return fmt.Sprintf("rankd: %s (HTTP %d)", e.Message, e.Code) }

// UnreachableError means rankd did not answer at all.
type UnreachableError struct {
	URL     string
	Timeout time.Duration // the client's timeout, when that is what ended the call
	Err     error
}

func (e *UnreachableError) Error() string {
	if e.Timeout > 0 {
		return fmt.Sprintf("rankd at %s did not answer within %s; check that rankd is running and not overloaded, and the URL in the datasource settings", e.URL, e.Timeout)
	}
	return fmt.Sprintf("cannot reach rankd at %s (%v); check the URL in the datasource settings and that rankd is running", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// maxBody bounds one answer; a page of 1000 influencers is about 250 kB.
const maxBody = 16 << 20

// Client calls rankd's JSON API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient calls the rankd at base (validated by LoadSettings), sending
// token as a bearer token when it is not empty.
func NewClient(base, token string, timeout time.Duration) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &Client{base: base, token: token, http: &http.Client{Timeout: timeout, Transport: tr}}
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Raw sends GET path?query to rankd and returns the answer as it is,
// whatever its status (for the resource proxy).
func (c *Client) Raw(ctx context.Context, path string, query url.Values) (int, http.Header, []byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("cannot build the request to %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, fmt.Errorf("request to rankd cancelled: %w", ctx.Err())
		}
		ue := &UnreachableError{URL: c.base, Err: err}
		if ie := errors.Unwrap(err); ie != nil {
			ue.Err = ie // the url.Error repeats the URL
		}
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			ue.Timeout = c.http.Timeout
		}
		return 0, nil, nil, ue
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, fmt.Errorf("request to rankd cancelled: %w", ctx.Err())
		}
		return 0, nil, nil, &UnreachableError{URL: c.base, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(body) > maxBody {
		return 0, nil, nil, fmt.Errorf("rankd at %s answered more than %d MiB for %s; is the URL pointing at rankd?", c.base, maxBody>>20, path)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// Get sends GET path?query and decodes a 200 answer into into; any other
// answer becomes an *APIError with rankd's message, or an error that says
// the URL may not point at rankd.
func (c *Client) Get(ctx context.Context, path string, query url.Values, into any) error {
	code, _, body, err := c.Raw(ctx, path, query)
	if err != nil {
		return err
	}
	if code == http.StatusOK {
		if err := json.Unmarshal(body, into); err != nil {
			return fmt.Errorf("rankd at %s answered %s with something that is not its JSON (%v: %s); is the URL pointing at rankd?", c.base, path, err, snippet(body))
		}
		return nil
	}
	var ae struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if json.Unmarshal(body, &ae) == nil && ae.Status == "error" && ae.Error != "" {
		return &APIError{Code: code, Message: ae.Error}
	}
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &APIError{Code: code, Message: fmt.Sprintf("the server at %s refused the request (%s); check the token in the datasource settings", c.base, snippet(body))}
	}
	return &APIError{Code: code, Message: fmt.Sprintf("the server at %s answered %s with %q, not rankd's JSON; is the URL pointing at rankd?", c.base, path, snippet(body))}
}

// snippet is the start of a body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
