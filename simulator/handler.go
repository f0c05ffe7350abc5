package simulator

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

var (
	contentTypeJSON = []byte("application/json; charset=utf-8")
	contentTypeText = []byte("text/plain; charset=utf-8")
	contentTypeHTML = []byte("text/html; charset=utf-8")

	bodyNotFound      = []byte(`{"error":{"name":"InfluencerNotFoundError"}}`)
	bodyNotSuspicious = []byte(`{"suspicious":false}`)
	bodyInternalError = []byte("Internal Server Error")
	bodyUnavailable   = []byte("Service Unavailable")
	bodyBadRequest    = []byte("Bad Request")
	bodyOK            = []byte("OK")
	prefixInfluencers = []byte("/api/v1/influencers")
	prefixAdmin       = []byte("/admin/influencers/")
	pathCapacity      = []byte("/admin/capacity")
	pathStall         = []byte("/admin/stall")
	segmentSuspicious = []byte("is_suspicious")
	methodGet         = []byte(fasthttp.MethodGet)
	methodHead        = []byte(fasthttp.MethodHead)
	methodPost        = []byte(fasthttp.MethodPost)
	parsers           fastjson.ParserPool
)

// suspiciousThreshold is upstream's cut-off: the 10th percentile of
// followerCount/followingCount over its population.
const suspiciousThreshold = 5.64

// handle routes like upstream's Express app: paths match case-insensitively
// on the raw (still percent-encoded) path, an optional trailing slash is
// accepted, and anything unmatched is "Cannot <METHOD> <path>" with 404.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	route := s.route(ctx)
	code := ctx.Response.StatusCode()
	if ctx.Hijacked() {
		code = codeReset
	}
	s.tel.count(route, code)
}

func (s *Server) route(ctx *fasthttp.RequestCtx) int {
	path := rawPath(ctx.Request.Header.RequestURI())
	method := ctx.Method()
	get := bytes.Equal(method, methodGet) || bytes.Equal(method, methodHead)

	if rest, ok := cutPrefixFold(path, prefixInfluencers); ok {
		if seg, ok := singleSegment(rest); ok {
			switch {
			case get:
				s.stalled()
				s.queue()
				s.influencer(ctx, seg)
				return routeInfluencer
			case bytes.Equal(method, methodPost) && bytes.EqualFold(seg, segmentSuspicious):
				s.queue() // its delay is a timer: only the parsing takes the thread
				s.suspicious(ctx)
				return routeSuspicious
			}
		}
		notFound(ctx, method, path)
		return routeUnknown
	}
	if bytes.Equal(path, pathCapacity) {
		s.adminCapacity(ctx, get)
		return routeAdmin
	}
	if bytes.Equal(path, pathStall) {
		s.adminStall(ctx, get)
		return routeAdmin
	}
	if rest, ok := bytes.CutPrefix(path, prefixAdmin); ok && len(rest) > 0 {
		s.admin(ctx, get, rest)
		return routeAdmin
	}
	if get {
		switch string(path) {
		case "/":
			ctx.SetContentTypeBytes(contentTypeHTML)
			ctx.SetBody(s.landing)
			return routeMeta
		case "/metrics":
			s.metrics(ctx)
			return routeMeta
		case "/-/healthy", "/-/ready":
			ctx.SetContentTypeBytes(contentTypeText)
			ctx.SetBody(bodyOK)
			return routeMeta
		}
	}
	notFound(ctx, method, path)
	return routeUnknown
}

// rawPath strips the query (and the scheme and host of an absolute-form
// request line) from the request URI without decoding or normalising it.
func rawPath(uri []byte) []byte {
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			uri = uri[i+3:]
			if j := bytes.IndexByte(uri, '/'); j >= 0 {
				uri = uri[j:]
			} else {
				uri = []byte("/")
			}
		}
	}
	for i, c := range uri {
		if c == '?' || c == '#' {
			return uri[:i]
		}
	}
	return uri
}

func cutPrefixFold(s, prefix []byte) ([]byte, bool) {
	if len(s) < len(prefix) || !bytes.EqualFold(s[:len(prefix)], prefix) {
		return nil, false
	}
	return s[len(prefix):], true
}

// singleSegment matches Express's "/:param" with strict routing off:
// one non-empty segment, optionally followed by a slash.
func singleSegment(rest []byte) ([]byte, bool) {
	if len(rest) < 2 || rest[0] != '/' {
		return nil, false
	}
	seg := bytes.TrimSuffix(rest[1:], []byte("/"))
	if len(seg) == 0 || bytes.IndexByte(seg, '/') >= 0 {
		return nil, false
	}
	return seg, true
}

func notFound(ctx *fasthttp.RequestCtx, method, path []byte) {
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	ctx.SetContentTypeBytes(contentTypeText)
	b := ctx.Response.BodyWriter()
	_, _ = b.Write([]byte("Cannot "))
	_, _ = b.Write(method)
	_, _ = b.Write([]byte(" "))
	_, _ = b.Write(path)
}

// influencer serves GET /api/v1/influencers/:pk.
func (s *Server) influencer(ctx *fasthttp.RequestCtx, seg []byte) {
	s.requests.Add(1)
	if s.faulty && s.injectBefore(ctx) {
		return
	}
	decoded, ok := seg, true
	var buf [64]byte
	if bytes.IndexByte(seg, '%') >= 0 {
		decoded, ok = decodeURIComponent(buf[:0], seg)
	}
	if !ok {
		// Express's decode_param throws a URIError with status 400.
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetContentTypeBytes(contentTypeText)
		ctx.SetBody(bodyBadRequest)
		return
	}
	pk, ok := pkFromSegment(string(decoded), s.cfg.PKs.Min, s.cfg.PKs.Max)
	if !ok {
		ctx.SetStatusCode(s.cfg.NotFoundStatus)
		ctx.SetContentTypeBytes(contentTypeJSON)
		ctx.SetBody(bodyNotFound)
		return
	}
	i := int(pk - s.cfg.PKs.Min)
	f, g := s.st.step(i)
	var out [128]byte
	body := appendInfluencer(out[:0], pk, f, g)
	if s.faulty {
		body = s.injectAfter(body, i)
	}
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(body)
}

// appendInfluencer writes upstream's body, in upstream's field order.
func appendInfluencer(b []byte, pk int64, followers, following uint32) []byte {
	b = append(b, `{"pk":`...)
	b = strconv.AppendInt(b, pk, 10)
	b = append(b, `,"username":"influencer-`...)
	b = strconv.AppendInt(b, pk, 10)
	b = append(b, `","followerCount":`...)
	b = strconv.AppendUint(b, uint64(followers), 10)
	b = append(b, `,"followingCount":`...)
	b = strconv.AppendUint(b, uint64(following), 10)
	return append(b, '}')
}

// suspicious serves POST /api/v1/influencers/is_suspicious. The verdict is
// computed from the body alone with JavaScript's arithmetic, so a test can
// predict it exactly; then the call waits like upstream's setTimeout.
func (s *Server) suspicious(ctx *fasthttp.RequestCtx) {
	s.tel.inFlight.Inc()
	defer s.tel.inFlight.Dec()

	var out []byte
	if body := bytes.TrimSpace(ctx.PostBody()); len(body) == 0 {
		out = bodyNotSuspicious
	} else {
		p := parsers.Get()
		defer parsers.Put(p)
		v, err := p.ParseBytes(body)
		if err != nil {
			// Upstream fails at once, before its timer.
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetContentTypeBytes(contentTypeText)
			ctx.SetBody(bodyInternalError)
			return
		}
		out = verdict(v)
	}

	fail := s.cfg.Faults.SuspiciousErrorRatio > 0 && rand.Float64() < s.cfg.Faults.SuspiciousErrorRatio
	s.sleep(normalDelay(s.cfg.SuspiciousDelayMean, s.cfg.SuspiciousDelayStddev, s.cfg.SuspiciousDelayMax, rand.NormFloat64()))
	if fail {
		s.tel.faults[faultSuspiciousError].Inc()
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetContentTypeBytes(contentTypeText)
		ctx.SetBody(bodyInternalError)
		return
	}
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(out)
}

// verdict answers like upstream's res.json({pk, suspicious}): pk is echoed
// as sent (JSON.stringify drops it when absent), and suspicious is
// followerCount / followingCount <= 5.64 under JavaScript coercion, so
// missing fields (NaN) and 0/0 are false while x/0 is +Inf (false) or -Inf
// (true). A body that is valid JSON but not an object has no fields.
func verdict(v *fastjson.Value) []byte {
	if v.Type() != fastjson.TypeObject {
		return bodyNotSuspicious
	}
	ratio := jsToNumber(v.Get("followerCount")) / jsToNumber(v.Get("followingCount"))
	susp := ratio <= suspiciousThreshold
	b := make([]byte, 0, 64)
	b = append(b, '{')
	if pk := v.Get("pk"); pk != nil {
		b = append(b, `"pk":`...)
		b = pk.MarshalTo(b)
		b = append(b, ',')
	}
	b = append(b, `"suspicious":`...)
	b = strconv.AppendBool(b, susp)
	return append(b, '}')
}

// jsToNumber is JavaScript's ToNumber for a parsed JSON value; nil stands
// for undefined.
func jsToNumber(v *fastjson.Value) float64 {
	if v == nil {
		return math.NaN()
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		if f, err := v.Float64(); err == nil {
			return f
		}
		return jsNumber(string(v.MarshalTo(nil))) // e.g. 1e400 is Infinity
	case fastjson.TypeString:
		return jsNumber(string(v.GetStringBytes()))
	case fastjson.TypeTrue:
		return 1
	case fastjson.TypeFalse, fastjson.TypeNull:
		return 0
	case fastjson.TypeArray:
		return jsArrayToNumber(v)
	}
	return math.NaN() // objects
}

// jsArrayToNumber is Number(String(array)): [] is 0, [x] is x converted
// through its string form, longer arrays join with commas and are NaN.
func jsArrayToNumber(v *fastjson.Value) float64 {
	a, _ := v.Array()
	switch len(a) {
	case 0:
		return 0
	case 1:
	default:
		return math.NaN()
	}
	switch e := a[0]; e.Type() {
	case fastjson.TypeNull: // String([null]) is ""
		return 0
	case fastjson.TypeTrue, fastjson.TypeFalse, fastjson.TypeObject: // "true", "[object Object]"
		return math.NaN()
	default:
		return jsToNumber(e)
	}
}

// admin serves the test-only /admin/influencers/{pk}: GET reads the counts
// without stepping them, POST sets either or both from
// {"followerCount":N,"followingCount":M}. Upstream has no such routes.
func (s *Server) admin(ctx *fasthttp.RequestCtx, get bool, seg []byte) {
	pk, err := strconv.ParseInt(string(seg), 10, 64)
	i := s.st.index(pk)
	if err != nil || i < 0 {
		adminError(ctx, fasthttp.StatusNotFound, "pk "+strconv.Quote(string(seg))+" is not an integer in "+
			strconv.FormatInt(s.cfg.PKs.Min, 10)+".."+strconv.FormatInt(s.cfg.PKs.Max, 10))
		return
	}
	var f, g uint32
	switch {
	case get:
		f, g = s.st.peek(i)
	case bytes.Equal(ctx.Method(), methodPost):
		p := parsers.Get()
		defer parsers.Put(p)
		v, err := p.ParseBytes(ctx.PostBody())
		if err != nil || v.Type() != fastjson.TypeObject {
			adminError(ctx, fasthttp.StatusBadRequest, `body must be {"followerCount":N,"followingCount":M}`)
			return
		}
		nf, okF := adminCount(v.Get("followerCount"))
		ng, okG := adminCount(v.Get("followingCount"))
		if !okF || !okG {
			adminError(ctx, fasthttp.StatusBadRequest, "followerCount and followingCount must be integers in 0..4294967295")
			return
		}
		f, g = s.st.setPartial(i, nf, ng)
	default:
		notFound(ctx, ctx.Method(), rawPath(ctx.Request.Header.RequestURI()))
		return
	}
	var out [128]byte
	ctx.SetContentTypeBytes(contentTypeJSON)
	ctx.SetBody(appendInfluencer(out[:0], pk, f, g))
}

// adminCount reads an optional count: absent is (nil, true).
func adminCount(v *fastjson.Value) (*uint32, bool) {
	if v == nil {
		return nil, true
	}
	n, err := v.Uint64()
	if err != nil || n > math.MaxUint32 {
		return nil, false
	}
	c := uint32(n)
	return &c, true
}

func adminError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(contentTypeJSON)
	b, _ := json.Marshal(map[string]string{"error": msg})
	ctx.SetBody(b)
}
