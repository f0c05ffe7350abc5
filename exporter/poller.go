package exporter

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// idleClose closes a connection idle this long, below Node's 5 s keep-alive
// timeout, so we never write into a connection the server is closing.
const idleClose = 4 * time.Second

// pending is a request written (or about to be written) on a connection,
// waiting for its answer.
type pending struct {
	j      job
	pk     int64
	sentAt time.Time
	epoch  uint64 // the upstream limiter's epoch when its token was taken
}

// runConn polls the jobs routed to upstream u over one keep-alive connection
// at a time, redialling as needed, until the jobs channel closes.
//
// With depth 1 it is a plain HTTP/1.1 client: one request, one answer. With
// depth d > 1 it pipelines: up to d requests are in flight on the connection,
// and every request that arrived within one dispatch tick goes out in one
// write. The answers come back in order on a reader goroutine. A batch costs
// one write and usually one read system call instead of one of each per poll,
// which is most of a poll's CPU on loopback (docs/performance.md).
//
// When a request fails (timeout, reset, connection closed), the requests
// queued behind it on the connection were never answered: they are failed
// as "aborted" and retried like any failure.
//
// Connection k takes jobs only while the upstream's limit keeps k
// connections busy (limiter.writers); above that it waits, unconnected.
func (e *Exporter) runConn(u, k int, jobs <-chan job, depth int, quit <-chan struct{}) {
	up := e.upstreams[u]
	lim := e.limiters[u]
	var held *job // a job taken while no connection was up
	for {
		if held == nil {
			if !e.waitTurn(u, k, depth, quit) {
				return
			}
			j, ok := <-jobs
			if !ok {
				return
			}
			held = &j
		}
		if e.scheds[u].expired(*held, time.Now()) {
			e.scheds[u].expire(*held, time.Now())
			held = nil
			continue
		}
		conn, err := e.dial(up)
		if err != nil {
			// Count the failure against the poll that wanted the
			// connection, as any other failed poll.
			now := time.Now()
			e.finish(u, *held, e.pkOf(held.idx), result{reason: classifyErr(err), err: err}, now, now)
			held = nil
			continue
		}
		held = e.serveConn(u, k, conn, jobs, depth, held)
		if held == nil && k < lim.writers(e.depth(u, depth)) {
			select {
			case j, ok := <-jobs:
				if !ok {
					return
				}
				held = &j
			default:
			}
		}
	}
}

func (e *Exporter) pkOf(idx int32) int64 { return e.store.pks.PK(int(idx)) }

// depth is the pipeline depth to upstream u.
func (e *Exporter) depth(u, depth int) int {
	if e.upstreams[u].noPipeline.Load() {
		return 1
	}
	return depth
}

// waitTurn waits until connection k of upstream u may take jobs; false
// when polling ends first.
func (e *Exporter) waitTurn(u, k, depth int, quit <-chan struct{}) bool {
	lim := e.limiters[u]
	for {
		changed := lim.changed()
		if k < lim.writers(e.depth(u, depth)) {
			return true
		}
		select {
		case <-changed:
		case <-quit:
			return false
		}
	}
}

func (e *Exporter) dial(up *Upstream) (net.Conn, error) {
	var conn net.Conn
	var err error
	if e.cfg.Dial != nil {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
		conn, err = e.cfg.Dial(ctx, "tcp", up.addr)
		cancel()
	} else {
		d := net.Dialer{Timeout: e.cfg.Timeout, KeepAlive: 30 * time.Second}
		conn, err = d.Dial("tcp", up.addr)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if up.tlsConfig != nil {
		tc := tls.Client(conn, up.tlsConfig)
		tc.SetDeadline(time.Now().Add(e.cfg.Timeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", up.addr, err)
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	return conn, nil
}

// serveConn writes jobs to conn, starting with first (may be nil), until
// the connection fails, idles out or the jobs channel closes. It returns a
// job it took but could not send, for the next connection.
func (e *Exporter) serveConn(u, k int, conn net.Conn, jobs <-chan job, depth int, first *job) *job {
	up := e.upstreams[u]
	sched := e.scheds[u]
	lim := e.limiters[u]
	// slots holds one token per request on the connection, taken by the
	// writer before it queues a request and given back by the reader once
	// the answer is handled: never more than depth requests in flight.
	// Each request also holds one of the upstream's limiter tokens (its
	// adaptive in-flight bound over all connections).
	if up.noPipeline.Load() {
		depth = 1
	}
	slots := make(chan struct{}, depth)
	fifo := make(chan pending, depth)
	failed := make(chan struct{})      // closed by the reader when the connection broke
	answered := make(chan struct{}, 1) // signalled by the reader after each answer
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		e.readAnswers(u, conn, fifo, slots, failed, answered)
	}()
	// However the writer stops, the reader answers or fails what is queued,
	// then the connection closes.
	defer func() {
		close(fifo)
		<-readerDone
		conn.Close()
	}()
	buf := make([]byte, 0, 4096)
	flush := func() bool {
		if len(buf) == 0 {
			return true
		}
		conn.SetWriteDeadline(time.Now().Add(e.cfg.Timeout))
		_, err := conn.Write(buf)
		buf = buf[:0]
		return err == nil // the reader sees the failure and fails the queue
	}
	idle := time.NewTimer(idleClose)
	defer idle.Stop()
	next := first
	batch := 0 // tokens of a granted batch still to take
	for {
		if next == nil {
			changed := lim.changed()
			if k >= lim.writers(depth) {
				return nil // the limit no longer needs this connection
			}
			idle.Reset(idleClose)
			select {
			case j, ok := <-jobs:
				if !ok {
					return nil
				}
				next = &j
			case <-changed:
				continue
			case <-failed:
				return nil
			case <-idle.C:
				if len(fifo) == 0 {
					return nil // idle: close before the server does
				}
				continue
			}
		}
		// Queue as many jobs as are waiting, up to the pipeline depth, then
		// write them in one go.
		share := lim.perConn(depth) // at most this connection's share of the upstream's limit
		for next != nil {
			for len(slots) >= share {
				if !flush() {
					return next
				}
				select {
				case <-answered:
				case <-failed:
					return next
				}
				share = lim.perConn(depth)
			}
			select {
			case slots <- struct{}{}:
			default:
				// Full: send what is queued, then wait for an answer.
				if !flush() {
					return next
				}
				select {
				case slots <- struct{}{}:
				case <-failed:
					return next
				}
			}
			epoch, ok := lim.tryAcquire(batch > 0)
			if ok && batch > 0 {
				batch--
			}
			if !ok {
				// The upstream's limit binds: send what is queued (its
				// answers free tokens), then wait for a batch of tokens.
				if !flush() {
					return next
				}
				if epoch, ok = lim.acquire(failed); !ok {
					return next
				}
				batch = lim.grantBatch() - 1
			}
			now := time.Now()
			if sched.expired(*next, now) {
				<-slots
				lim.release(epoch, 0, false)
				sched.expire(*next, now) // waited too long to still end in time
			} else if at, young := e.replacesUnscraped(next.idx, now); young && !next.deferred && !lim.saturated() && sched.deferTo(*next, at) {
				// Not while the upstream is saturated: every poll is late
				// then, and held-back polls would crowd out others.
				<-slots
				lim.release(epoch, 0, false)
				e.tel.deferred.Inc()
			} else {
				p := pending{j: *next, pk: e.pkOf(next.idx), sentAt: now, epoch: epoch}
				fifo <- p // never blocks: fifo holds as many as slots
				e.tel.inflight.Inc()
				buf = up.appendRequest(buf, p.pk)
			}
			next = nil
			select {
			case j, ok := <-jobs:
				if !ok {
					flush()
					return nil
				}
				next = &j
			default:
			}
		}
		batch = 0
		if !flush() {
			return nil
		}
	}
}

// readAnswers reads the answers to the queued requests in order. On a
// failed read it fails the request at the head, closes the connection and
// fails every request queued behind it as aborted (they are sent again at
// once, on another connection, without spending an attempt).
func (e *Exporter) readAnswers(u int, conn net.Conn, fifo <-chan pending, slots <-chan struct{}, failed, answered chan<- struct{}) {
	var p poller
	lim := e.limiters[u]
	br := bufio.NewReaderSize(conn, 16<<10)
	broken := func(end time.Time) {
		conn.Close()
		close(failed)
		for rest := range fifo {
			e.tel.inflight.Dec()
			e.finish(u, rest.j, rest.pk, result{reason: Aborted, err: errAborted}, rest.sentAt, end)
			lim.release(rest.epoch, 0, false) // never answered: no latency to learn from
			<-slots
		}
	}
	for q := range fifo {
		conn.SetReadDeadline(q.sentAt.Add(e.cfg.Timeout))
		p.resp.Reset()
		err := p.resp.ReadLimitBody(br, maxBody)
		end := time.Now()
		e.tel.inflight.Dec()
		if err != nil {
			res := result{reason: classifyErr(err), err: err}
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				res.reason = BadJSON
			}
			e.finish(u, q.j, q.pk, res, q.sentAt, end)
			lim.release(q.epoch, end.Sub(q.sentAt), true) // a timeout is the upstream's latency too
			<-slots
			broken(end)
			return
		}
		res := p.decode(q.pk, end.UnixMilli())
		e.finish(u, q.j, q.pk, res, q.sentAt, end)
		lim.release(q.epoch, end.Sub(q.sentAt), true)
		<-slots
		select {
		case answered <- struct{}{}:
		default:
		}
		// An answer for another pk on a pipelined connection may mean the
		// answers are out of step (a stray response): start afresh.
		if p.resp.ConnectionClose() {
			// A server that closes after an answer drops whatever was
			// pipelined behind it: stop pipelining to it.
			if cap(fifo) > 1 && !e.upstreams[u].noPipeline.Swap(true) {
				e.log.Warn("upstream closes connections after answering; pipelining to it is off", "upstream", e.upstreams[u].URL)
			}
			broken(end)
			return
		}
		if res.reason == PKMismatch && cap(fifo) > 1 {
			broken(end)
			return
		}
	}
}

// maxBody bounds an answer's body: Mockstagram's are under 100 bytes.
const maxBody = 64 << 10

var errAborted = errors.New("the connection failed before this pipelined request was answered")
