package exporter

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Reason classifies why a poll failed. The values are the label values of
// mockstagram_exporter_polls_total{outcome=...}.
type Reason uint8

// Poll outcomes.
const (
	OK         Reason = iota // the sample was stored
	Timeout                  // no complete answer within --poll.timeout
	Reset                    // the connection was reset or closed mid-request
	Connect                  // the upstream could not be reached
	HTTP5xx                  // a 5xx other than Mockstagram's not-found answer
	HTTP4xx                  // a 4xx other than Mockstagram's not-found answer
	NotFound                 // InfluencerNotFoundError: the pk range exceeds the upstream's
	Aborted                  // queued behind a failed request on a pipelined connection, never answered
	BadJSON                  // the body is not the influencer JSON
	PKMismatch               // the body describes another influencer
	Absurd                   // counts that cannot be real (negative, fractional, beyond 2^32-1)
	Other                    // anything else (counted, logged)
	numReasons
)

var reasonNames = [numReasons]string{
	OK: "success", Timeout: "timeout", Reset: "reset", Connect: "connect",
	HTTP5xx: "http_5xx", HTTP4xx: "http_4xx", NotFound: "not_found", Aborted: "aborted",
	BadJSON: "bad_json", PKMismatch: "pk_mismatch", Absurd: "absurd_value", Other: "other",
}

func (r Reason) String() string { return reasonNames[r] }

// retryable reports whether polling again within the interval may help.
// A not-found answer will not change; every other failure might.
func (r Reason) retryable() bool { return r != OK && r != NotFound }

// Upstream is one Mockstagram base URL.
type Upstream struct {
	URL       string
	prefix    string // path prefix before /api/v1/...
	host      string // Host header
	addr      string // host:port to dial
	tlsConfig *tls.Config

	consecutiveFailures atomic.Int64
	noPipeline          atomic.Bool // it closed a connection after an answer: one request per connection
}

// downAfter is how many polls in a row must fail for an upstream to count
// as down (upstream_up 0, the landing page, the cycle log line), until one
// succeeds.
const downAfter = 10

// down reports whether the upstream is down, and its failures in a row.
func (u *Upstream) down() (bool, int64) {
	n := u.consecutiveFailures.Load()
	return n >= downAfter, n
}

// NewUpstream parses a base URL such as http://mockstagram:3000.
func NewUpstream(base string, tlsConfig *tls.Config) (*Upstream, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("cannot parse --mockstagram.url=%q (want e.g. http://127.0.0.1:3000): %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("--mockstagram.url=%q: scheme must be http or https", base)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("--mockstagram.url=%q has no host; use e.g. http://127.0.0.1:3000", base)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--mockstagram.url=%q: a base URL takes no query or fragment", base)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	up := &Upstream{
		URL:    base,
		prefix: strings.TrimRight(u.EscapedPath(), "/"),
		host:   u.Host,
		addr:   addr,
	}
	if u.Scheme == "https" {
		up.tlsConfig = &tls.Config{ServerName: u.Hostname()}
		if tlsConfig != nil {
			up.tlsConfig = tlsConfig.Clone()
			if up.tlsConfig.ServerName == "" {
				up.tlsConfig.ServerName = u.Hostname()
			}
		}
	}
	return up, nil
}

// appendRequest appends the HTTP/1.1 request for pk.
func (up *Upstream) appendRequest(b []byte, pk int64) []byte {
	b = append(b, "GET "...)
	b = append(b, up.prefix...)
	b = append(b, "/api/v1/influencers/"...)
	b = strconv.AppendInt(b, pk, 10)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, up.host...)
	return append(b, "\r\nUser-Agent: mockstagram_exporter\r\nAccept: application/json\r\n\r\n"...)
}

// poller is one connection's reusable response state: nothing is allocated
// per poll.
type poller struct {
	resp   fasthttp.Response
	parser fastjson.Parser
}

// result of one poll.
type result struct {
	reason Reason
	status int
	err    error // detail for the log; nil on success
	sample Sample
	name   []byte // username as reported, valid until the next poll
}

// decode validates the response held in p.resp for pk, stamped with nowMs.
func (p *poller) decode(pk int64, nowMs int64) result {
	status := p.resp.StatusCode()
	body := p.resp.Body()
	if status != fasthttp.StatusOK {
		return classifyStatus(status, body)
	}
	// fastjson's parser is lenient (it reads 0100 as 100, for one); the
	// validator holds the body to the JSON grammar, as upstream's own
	// JSON.parse would.
	err := fastjson.ValidateBytes(body)
	var v *fastjson.Value
	if err == nil {
		v, err = p.parser.ParseBytes(body)
	}
	if err != nil {
		return result{reason: BadJSON, status: status, err: fmt.Errorf("cannot parse body %q: %w", truncate(body), err)}
	}
	gotPK, err := exactInt(v, "pk")
	if err != nil {
		return result{reason: BadJSON, status: status, err: err}
	}
	if gotPK != pk {
		return result{reason: PKMismatch, status: status, err: fmt.Errorf("asked for pk %d, got pk %d", pk, gotPK)}
	}
	followers, err := count(v, "followerCount")
	if err != nil {
		return result{reason: reasonOf(err), status: status, err: err}
	}
	following, err := count(v, "followingCount")
	if err != nil {
		return result{reason: reasonOf(err), status: status, err: err}
	}
	var name []byte
	if u := v.Get("username"); u != nil {
		if name, err = u.StringBytes(); err != nil {
			return result{reason: BadJSON, status: status, err: fmt.Errorf("username: %w", err)}
		}
	}
	return result{reason: OK, status: status, sample: Sample{Followers: followers, Following: following, TimeMs: nowMs}, name: name}
}

var errAbsurd = errors.New("absurd value")

func reasonOf(err error) Reason {
	if errors.Is(err, errAbsurd) {
		return Absurd
	}
	return BadJSON
}

// exactInt reads an integer field, accepting only JSON numbers.
func exactInt(v *fastjson.Value, field string) (int64, error) {
	f := v.Get(field)
	if f == nil {
		return 0, fmt.Errorf("field %q is missing", field)
	}
	if f.Type() != fastjson.TypeNumber {
		return 0, fmt.Errorf("field %q is %s, not a number", field, f.Type())
	}
	n, err := f.Int64()
	if err != nil {
		// 1e6 or 57166.0: a number, but not an integer literal. Read as
		// JavaScript reads it, correctly rounded: fastjson's Float64 is
		// not (10000.20e2 came out as a fraction). The range is checked
		// before converting, which saturates on some platforms.
		x, ferr := strconv.ParseFloat(string(f.MarshalTo(nil)), 64)
		if ferr != nil || x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return 0, fmt.Errorf("field %q=%s: %w", field, f, errAbsurd)
		}
		return int64(x), nil
	}
	return n, nil
}

// count reads a follower or following count, which must fit in uint32.
func count(v *fastjson.Value, field string) (uint32, error) {
	n, err := exactInt(v, field)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("field %q=%d is outside 0..%d: %w", field, n, uint32(1<<32-1), errAbsurd)
	}
	return uint32(n), nil
}

func classifyStatus(status int, body []byte) result {
	err := fmt.Errorf("HTTP %d: %q", status, truncate(body))
	switch {
	case (status == 500 || status == 400 || status == 404) && strings.Contains(string(body), "InfluencerNotFoundError"):
		return result{reason: NotFound, status: status, err: err}
	case status >= 500:
		return result{reason: HTTP5xx, status: status, err: err}
	case status >= 400:
		return result{reason: HTTP4xx, status: status, err: err}
	default:
		return result{reason: Other, status: status, err: err}
	}
}

func classifyErr(err error) Reason {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return Connect // including a dial that timed out: the upstream is unreachable
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, os.ErrDeadlineExceeded):
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Connect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, fasthttp.ErrConnectionClosed):
		return Reset
	case errors.As(err, &ne) && ne.Timeout():
		return Timeout
	}
	if strings.Contains(err.Error(), "closed") || strings.Contains(err.Error(), "reset") {
		return Reset
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return Connect
	}
	return Other
}

func truncate(b []byte) []byte {
	if len(b) > 120 {
		return b[:120]
	}
	return b
}
