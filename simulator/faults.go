package simulator

import (
	"math/rand/v2"
	"net"

	"github.com/valyala/fasthttp"
)

// injectBefore applies the faults decided before the influencer is looked
// up: latency, outage, reset and error. It reports whether it answered (or
// dropped) the request; the influencer is then not stepped.
func (s *Server) injectBefore(ctx *fasthttp.RequestCtx) bool {
	f := &s.cfg.Faults
	if f.OutageDuration > 0 {
		since := s.now().Sub(s.start)
		if since >= f.OutageAfter && since < f.OutageAfter+f.OutageDuration {
			s.tel.faults[faultOutage].Inc()
			if f.OutageMode == Outage503 {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetContentTypeBytes(contentTypeText)
				ctx.SetBody(bodyUnavailable)
			} else {
				reset(ctx)
			}
			return true
		}
	}
	if f.LatencyMean > 0 || f.LatencyStddev > 0 {
		s.tel.faults[faultLatency].Inc()
		s.sleep(normalDelay(f.LatencyMean, f.LatencyStddev, 0, rand.NormFloat64()))
	}
	if f.LatencySpikeRatio > 0 && rand.Float64() < f.LatencySpikeRatio {
		s.tel.faults[faultSpike].Inc()
		s.sleep(f.LatencySpike)
	}
	if f.ResetRatio > 0 && rand.Float64() < f.ResetRatio {
		s.tel.faults[faultReset].Inc()
		reset(ctx)
		return true
	}
	if f.ErrorRatio > 0 && rand.Float64() < f.ErrorRatio {
		s.tel.faults[faultError].Inc()
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetContentTypeBytes(contentTypeText)
		ctx.SetBody(bodyInternalError)
		return true
	}
	return false
}

// injectAfter may replace the body of a stepped influencer i: with another
// pk's current values, or with a strict prefix of itself, which is never
// valid JSON because the closing brace is missing.
func (s *Server) injectAfter(body []byte, i int) []byte {
	f := &s.cfg.Faults
	if f.WrongPKRatio > 0 && rand.Float64() < f.WrongPKRatio {
		s.tel.faults[faultWrongPK].Inc()
		n := s.cfg.PKs.Len()
		other := s.cfg.PKs.Min + int64(i) + 1 // a one-pk range borrows the next pk's number
		oi := i
		if n > 1 {
			oi = (i + 1 + rand.IntN(n-1)) % n
			other = s.cfg.PKs.Min + int64(oi)
		}
		of, og := s.st.peek(oi)
		body = appendInfluencer(body[:0], other, of, og)
	}
	if f.BadJSONRatio > 0 && rand.Float64() < f.BadJSONRatio {
		s.tel.faults[faultBadJSON].Inc()
		body = body[:1+rand.IntN(len(body)-1)]
	}
	return body
}

// reset drops the connection without a response. Linger 0 makes the close
// send RST rather than FIN, which clients see as "connection reset by peer",
// like a crashed or overloaded upstream.
func reset(ctx *fasthttp.RequestCtx) {
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(resetConn)
}

func resetConn(c net.Conn) {
	// fasthttp wraps hijacked connections; it closes the real one when we
	// return, so setting linger is all that is left to do.
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}
