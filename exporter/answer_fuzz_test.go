package exporter

import (
	"bytes"
	"encoding/json"

	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// answerOracle is what an upstream answer of status 200 means, read with
// encoding/json instead of fastjson: the reason, and on success the
// sample and the username. It reports false when the body has one of the
// fields twice, which JSON leaves undefined (JavaScript keeps the last,
// fastjson the first).
func answerOracle(body []byte, pk int64) (reason Reason, f, g uint32, name []byte, ok bool) {
	if !json.Valid(body) {
		return BadJSON, 0, 0, nil, true
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if tok, _ := d.Token(); tok != json.Delim('{') {
		return BadJSON, 0, 0, nil, true
	}
	fields := map[string]json.RawMessage{}
	for d.More() {
		tok, _ := d.Token()
		var raw json.RawMessage
		d.Decode(&raw)
		k := tok.(string)
		if _, dup := fields[k]; dup && (k == "pk" || k == "username" || k == "followerCount" || k == "followingCount") {
			return 0, 0, 0, nil, false
		}
		fields[k] = raw
	}
	gotPK, r := oracleInt(fields["pk"])
	if r != OK {
		return BadJSON, 0, 0, nil, true // whatever is wrong with pk, the body is not an influencer
	}
	if gotPK != pk {
		return PKMismatch, 0, 0, nil, true
	}
	var counts [2]uint32
	for k, field := range []string{"followerCount", "followingCount"} {
		n, r := oracleInt(fields[field])
		if r == OK && (n < 0 || n > math.MaxUint32) {
			r = Absurd
		}
		if r != OK {
			return r, 0, 0, nil, true
		}
		counts[k] = uint32(n)
	}
	if raw, ok := fields["username"]; ok {
		var s string
		if raw[0] != '"' {
			return BadJSON, 0, 0, nil, true
		}
		json.Unmarshal(raw, &s)
		name = []byte(s)
	}
	return OK, counts[0], counts[1], name, true
}

var integerLiteral = regexp.MustCompile(`^-?[0-9]+$`)

// oracleInt reads an integer field the way the upstream's JavaScript sees
// it: a JSON number whose value (a float64, except for integer literals
// that fit int64 exactly) is a whole number within int64.
func oracleInt(raw json.RawMessage) (int64, Reason) {
	if raw == nil || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, BadJSON // missing, or not a number
	}
	s := string(raw)
	if integerLiteral.MatchString(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, OK
		}
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x != math.Trunc(x) || x < -(1<<63) || x >= 1<<63 {
		return 0, Absurd
	}
	return int64(x), OK
}

// FuzzDecode feeds the answer decoder any status, body and pk. The
// classification must agree with an independent reading of the answer:
// a not-found only for Mockstagram's error, 4xx and 5xx by class, a
// sample only from a well-formed influencer of the pk asked for, with
// exactly its counts; every failure carries an error for the log.
func FuzzDecode(f *testing.F) {
	for _, c := range []struct {
		status int
		body   string
		pk     int64
	}{
		{200, `{"pk":1000001,"username":"influencer-1000001","followerCount":57166,"followingCount":1328}`, 1000001},
		{200, `{"followingCount":50,"followerCount":5000,"pk":1000001}`, 1000001},
		{200, `{"pk":1000001,"username":"x","followerCount":57166.0,"followingCount":13.28e2,"extra":[1]}`, 1000001},
		{200, `{"pk":1000001,"followerCount":4294967295,"followingCount":0}`, 1000001},
		{200, `{"pk":1e6,"followerCount":1,"followingCount":1}`, 1000000},
		{200, `{"pk":-9223372036854775808,"followerCount":1,"followingCount":1}`, math.MinInt64},
		{200, `{"pk":9223372036854775807,"followerCount":1,"followingCount":1}`, math.MaxInt64},
		{200, `{"pk":1000001,"username":"we\"ird\\name\n\u00e9\ud800","followerCount":1,"followingCount":2}`, 1000001},
		{200, `{"p\u006b":1000001,"followerCount":1,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"pk":1000002,"followerCount":1,"followingCount":1}`, 1000001},
		{500, `{"error":{"name":"InfluencerNotFoundError"}}`, 1000001},
		{400, `{"error":{"name":"InfluencerNotFoundError"}}`, 1000001},
		{404, `Cannot GET /api/v1/influencers/`, 1000001},
		{500, `Internal Server Error`, 1000001},
		{503, ``, 1000001},
		{429, `slow down`, 1000001},
		{302, ``, 1000001},
		{200, `{"pk":1000001,"username":"influencer-1000001","followerCount":571`, 1000001},
		{200, ``, 1000001},
		{200, `<html>`, 1000001},
		{200, `[1,2]`, 1000001},
		{200, `{"pk":"1000001","followerCount":1,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":null,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":1,"followingCount":1,"username":7}`, 1000001},
		{200, `{"pk":1000002,"followerCount":1,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":-5,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":1.5,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":4294967296,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":1e300,"followingCount":1}`, 1000001},
		{200, `{"pk":1000001,"followerCount":1e400,"followingCount":1}`, 1000001},
		{200, `{"pk":01000001,"followerCount":1,"followingCount":1}`, 1000001},
		{200, "{\"pk\":1000001,\"followerCount\":1,\"followingCount\":1,\"username\":\"\xff\"}", 1000001},
	} {
		f.Add(uint16(c.status), []byte(c.body), c.pk)
	}
	var p poller
	f.Fuzz(func(t *testing.T, code uint16, body []byte, pk int64) {
		status := 100 + int(code)%900 // a status line has three digits
		p.resp.Reset()
		p.resp.SetStatusCode(status)
		p.resp.SetBody(body)
		const nowMs = 1_763_780_000_123
		res := p.decode(pk, nowMs)
		if res.status != status {
			t.Fatalf("status %d reported as %d", status, res.status)
		}
		if (res.reason == OK) != (res.err == nil) {
			t.Fatalf("reason %s with error %v", res.reason, res.err)
		}
		if status != 200 {
			want := Other
			switch {
			case (status == 400 || status == 404 || status == 500) && bytes.Contains(body, []byte("InfluencerNotFoundError")):
				want = NotFound
			case status >= 500:
				want = HTTP5xx
			case status >= 400:
				want = HTTP4xx
			}
			if res.reason != want {
				t.Fatalf("HTTP %d %q: %s, want %s", status, body, res.reason, want)
			}
			return
		}
		want, wf, wg, wname, ok := answerOracle(body, pk)
		if !ok {
			return
		}
		if res.reason != want {
			t.Fatalf("decode(%q, pk %d) = %s (%v), want %s", body, pk, res.reason, res.err, want)
		}
		if want != OK {
			return
		}
		if res.sample != (Sample{Followers: wf, Following: wg, TimeMs: nowMs}) {
			t.Fatalf("decode(%q) = %+v, want followers %d following %d at %d", body, res.sample, wf, wg, int64(nowMs))
		}
		// encoding/json turns invalid UTF-8 and lone surrogates into U+FFFD
		// where fastjson keeps the bytes; the store cleans them the same way.
		got := strings.ToValidUTF8(string(res.name), "\uFFFD")
		if !bytes.Contains(body, []byte(`\u`)) && utf8.Valid(body) && got != string(wname) {
			t.Fatalf("decode(%q) username %q, want %q", body, res.name, wname)
		}
	})
}
