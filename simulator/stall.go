package simulator

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// A stall holds every influencer GET that arrives before it ends until it
// ends, like the reference server's event loop blocked for seconds: the
// connections stay open, nothing is answered, then everything is. It is
// started at run time (POST /admin/stall?for=D), so that a chaos run can
// stall the upstream under a running pipeline.

// Stall holds influencer requests until d from now (0 ends a stall).
func (s *Server) Stall(d time.Duration) {
	if d <= 0 {
		s.stallUntil.Store(0)
		return
	}
	s.stallUntil.Store(s.now().Add(d).UnixNano())
}

// stalled waits out a stall in progress.
func (s *Server) stalled() {
	until := s.stallUntil.Load()
	if until == 0 {
		return
	}
	s.sleep(time.Unix(0, until).Sub(s.now()))
}

// adminStall serves the test-only /admin/stall: POST ?for=D stalls the
// influencer route for D (a Go duration; 0s ends a stall), GET reads the
// time left.
func (s *Server) adminStall(ctx *fasthttp.RequestCtx, get bool) {
	if !get {
		if !ctx.IsPost() {
			notFound(ctx, ctx.Method(), rawPath(ctx.Request.Header.RequestURI()))
			return
		}
		d, err := time.ParseDuration(string(ctx.QueryArgs().Peek("for")))
		if err != nil || d < 0 {
			adminError(ctx, fasthttp.StatusBadRequest, "want POST /admin/stall?for=D with D a duration >= 0 (30s; 0s ends a stall)")
			return
		}
		s.Stall(d)
	}
	left := 0.0
	if until := s.stallUntil.Load(); until != 0 {
		left = max(time.Unix(0, until).Sub(s.now()).Seconds(), 0)
	}
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(strconv.AppendFloat([]byte(`{"remaining_seconds":`), left, 'f', 3, 64))
	ctx.Response.AppendBodyString("}")
}
