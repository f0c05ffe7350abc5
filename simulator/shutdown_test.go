package simulator

import (
	"net"
	"testing"
	"time"
)

// TestShutdownClosesStuckConnections: a client that sent half a request
// and went silent (its network dropped) holds a connection fasthttp counts
// as active and never times out; Shutdown closes it after its grace
// instead of waiting for ever, and Serve returns.
func TestShutdownClosesStuckConnections(t *testing.T) {
	s, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.shutdownGrace = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /api/v1/influencers/1000000 HTTP/1.1\r\nHost: sim\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server reads the first bytes
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waits 10 s later for a connection that sent half a request")
	}
	if d := time.Since(start); d < s.shutdownGrace {
		t.Fatalf("Shutdown returned after %v, before its grace of %v", d, s.shutdownGrace)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the stuck connection is still open after Shutdown")
	}
}
