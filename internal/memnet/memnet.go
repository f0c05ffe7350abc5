// Package memnet is an in-memory network for tests that run on a fake clock
// (testing/synctest): servers listen on names, clients dial them, and each
// connection is a net.Pipe. A goroutine blocked on a pipe is durably
// blocked, where one blocked on a loopback socket is not, so a test bubble
// whose goroutines talk over memnet can advance its clock; over real
// sockets it could not.
package memnet

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
)

// Network holds listeners by address. The zero value is not usable; use New.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*Listener
}

// New returns an empty network.
func New() *Network { return &Network{listeners: map[string]*Listener{}} }

// Listen serves addr (any string, such as "sim:80") until the listener is
// closed. It fails when addr is already served.
func (n *Network) Listen(addr string) (*Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.listeners[addr]; ok {
		return nil, fmt.Errorf("memnet: %s is already listened on", addr)
	}
	l := &Listener{net: n, addr: pipeAddr(addr), conns: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// ListenUnique listens on the first free address of the form
// "<name>-<k>:80", for tests that start several servers of one kind.
func (n *Network) ListenUnique(name string) *Listener {
	for k := 0; ; k++ {
		if l, err := n.Listen(fmt.Sprintf("%s-%d:80", name, k)); err == nil {
			return l
		}
	}
}

// Dial connects to the listener at addr, as net.Dialer.DialContext does:
// the network argument is ignored. Nobody listening is ECONNREFUSED, like a
// closed port.
func (n *Network) Dial(ctx context.Context, _, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "memnet", Addr: pipeAddr(addr), Err: syscall.ECONNREFUSED}
	if l == nil {
		return nil, refused
	}
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, &net.OpError{Op: "dial", Net: "memnet", Addr: pipeAddr(addr), Err: ctx.Err()}
	}
	client.Close()
	server.Close()
	return nil, refused
}

// Listener is a net.Listener on a Network.
type Listener struct {
	net   *Network
	addr  pipeAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and frees the address; open connections stay open.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.net.mu.Lock()
		delete(l.net.listeners, string(l.addr))
		l.net.mu.Unlock()
	})
	return nil
}

// Addr is the address the listener serves.
func (l *Listener) Addr() net.Addr { return l.addr }

type pipeAddr string

func (a pipeAddr) Network() string { return "memnet" }
func (a pipeAddr) String() string  { return string(a) }
