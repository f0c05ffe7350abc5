package memnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
)

// TestHTTPOverMemnet: an HTTP server and client talk over the network
// inside a bubble, and a timeout fires on the bubble's clock, not the wall.
func TestHTTPOverMemnet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New()
		ln, err := n.Listen("api:80")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				select { // until the client gives up
				case <-time.After(time.Hour):
				case <-r.Context().Done():
				}
			}
			io.WriteString(w, "hello "+r.URL.Path)
		})}
		go srv.Serve(ln)
		tr := &http.Transport{DialContext: n.Dial}
		c := &http.Client{Transport: tr, Timeout: time.Minute}
		defer func() { srv.Close(); tr.CloseIdleConnections() }()

		resp, err := c.Get("http://api:80/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello /x" {
			t.Fatalf("body %q", b)
		}
		start := time.Now()
		if _, err := c.Get("http://api:80/slow"); err == nil || time.Since(start) != time.Minute {
			t.Fatalf("slow call: %v after %s, want a timeout after exactly 1m of fake time", err, time.Since(start))
		}
	})
}

// TestRefused: nobody listening, or a closed listener, is ECONNREFUSED as a
// closed TCP port is; an address is served once at a time.
func TestRefused(t *testing.T) {
	n := memnet.New()
	if _, err := n.Dial(context.Background(), "tcp", "nobody:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial nobody: %v, want ECONNREFUSED", err)
	}
	ln, err := n.Listen("a:80")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listen("a:80"); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second listen on a:80: %v", err)
	}
	if l := n.ListenUnique("a"); l.Addr().String() != "a-0:80" {
		t.Fatalf("unique address %s, want a-0:80", l.Addr())
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, err := n.Dial(context.Background(), "tcp", "a:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed listener: %v, want ECONNREFUSED", err)
	}
	if _, err := n.Listen("a:80"); err != nil {
		t.Fatalf("listen again after close: %v", err)
	}
}
