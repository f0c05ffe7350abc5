package exporter

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestDecode(t *testing.T) {
	var p poller
	f := func(status int, body string, want Reason, wantF, wantG uint32) {
		t.Helper()
		p.resp.Reset()
		p.resp.SetStatusCode(status)
		p.resp.SetBodyString(body)
		res := p.decode(1000001, 42)
		if res.reason != want {
			t.Fatalf("decode(%d, %s) = %s (%v), want %s", status, body, res.reason, res.err, want)
		}
		if want == OK {
			if res.sample != (Sample{Followers: wantF, Following: wantG, TimeMs: 42}) {
				t.Fatalf("decode(%s) sample = %+v", body, res.sample)
			}
		} else if res.err == nil {
			t.Fatalf("decode(%s): a failure must carry an error for the log", body)
		}
	}
	f(200, `{"pk":1000001,"username":"influencer-1000001","followerCount":57166,"followingCount":1328}`, OK, 57166, 1328)
	f(200, `{"followingCount":50,"followerCount":5000,"pk":1000001}`, OK, 5000, 50) // order and username do not matter
	f(200, `{"pk":1000001,"username":"x","followerCount":57166.0,"followingCount":13.28e2,"extra":[1]}`, OK, 57166, 1328)
	f(200, `{"pk":1000001,"followerCount":4294967295,"followingCount":0}`, OK, 1<<32-1, 0)
	// Mockstagram's not-found answers, both variants.
	f(500, `{"error":{"name":"InfluencerNotFoundError"}}`, NotFound, 0, 0)
	f(400, `{"error":{"name":"InfluencerNotFoundError"}}`, NotFound, 0, 0)
	f(404, `Cannot GET /api/v1/influencers/`, HTTP4xx, 0, 0)
	f(500, `Internal Server Error`, HTTP5xx, 0, 0)
	f(503, ``, HTTP5xx, 0, 0)
	f(429, `slow down`, HTTP4xx, 0, 0)
	f(302, ``, Other, 0, 0)
	// Broken bodies.
	f(200, `{"pk":1000001,"username":"influencer-1000001","followerCount":571`, BadJSON, 0, 0)
	f(200, ``, BadJSON, 0, 0)
	f(200, `<html>`, BadJSON, 0, 0)
	f(200, `[1,2]`, BadJSON, 0, 0)
	f(200, `{"pk":"1000001","followerCount":1,"followingCount":1}`, BadJSON, 0, 0)
	f(200, `{"pk":1000001,"followingCount":1}`, BadJSON, 0, 0)
	f(200, `{"pk":1000001,"followerCount":null,"followingCount":1}`, BadJSON, 0, 0)
	f(200, `{"pk":1000001,"followerCount":1,"followingCount":1,"username":7}`, BadJSON, 0, 0)
	f(200, `{"pk":1000002,"followerCount":1,"followingCount":1}`, PKMismatch, 0, 0)
	// Absurd values.
	f(200, `{"pk":1000001,"followerCount":-5,"followingCount":1}`, Absurd, 0, 0)
	f(200, `{"pk":1000001,"followerCount":1.5,"followingCount":1}`, Absurd, 0, 0)
	f(200, `{"pk":1000001,"followerCount":4294967296,"followingCount":1}`, Absurd, 0, 0)
	f(200, `{"pk":1000001,"followerCount":1e300,"followingCount":1}`, Absurd, 0, 0)
}

func TestClassifyErr(t *testing.T) {
	f := func(err error, want Reason) {
		t.Helper()
		if got := classifyErr(err); got != want {
			t.Fatalf("classifyErr(%v) = %s, want %s", err, got, want)
		}
	}
	f(fasthttp.ErrTimeout, Timeout)
	f(fasthttp.ErrDialTimeout, Timeout)
	f(fasthttp.ErrNoFreeConns, Timeout)
	f(fmt.Errorf("read: %w", os.ErrDeadlineExceeded), Timeout)
	f(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Connect)
	f(&net.OpError{Op: "dial", Err: errors.New("no route")}, Connect)
	f(&net.DNSError{Err: "no such host", Name: "x"}, Connect)
	f(&net.OpError{Op: "read", Err: syscall.ECONNRESET}, Reset)
	f(io.EOF, Reset)
	f(fasthttp.ErrConnectionClosed, Reset)
	f(errors.New("something odd"), Other)
}

func TestNewUpstream(t *testing.T) {
	f := func(base, wantErr, wantAddr, wantPrefix string) {
		t.Helper()
		up, err := NewUpstream(base, nil)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr {
				t.Fatalf("NewUpstream(%q) error = %v, want %q", base, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if up.addr != wantAddr || up.prefix != wantPrefix {
			t.Fatalf("NewUpstream(%q) = addr %q prefix %q", base, up.addr, up.prefix)
		}
	}
	f("http://127.0.0.1:3000", "", "127.0.0.1:3000", "")
	f("http://mockstagram/", "", "mockstagram:80", "")
	f("https://api.example/mockstagram/", "", "api.example:443", "/mockstagram")
	f("ftp://x", `--mockstagram.url="ftp://x": scheme must be http or https`, "", "")
	f("127.0.0.1:3000", `cannot parse --mockstagram.url="127.0.0.1:3000" (want e.g. http://127.0.0.1:3000): parse "127.0.0.1:3000": first path segment in URL cannot contain colon`, "", "")
	f("localhost:3000", `--mockstagram.url="localhost:3000": scheme must be http or https`, "", "")
	f("http://", `--mockstagram.url="http://" has no host; use e.g. http://127.0.0.1:3000`, "", "")
	f("http://x/?a=1", `--mockstagram.url="http://x/?a=1": a base URL takes no query or fragment`, "", "")
}
