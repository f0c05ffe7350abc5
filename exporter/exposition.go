package exporter

import (
	"bytes"
	"io"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// Metric names of the influencer exposition. They are part of the public
// interface: rules, dashboards and rankd query them by name.
const (
	MetricFollowers  = "mockstagram_influencer_followers"
	MetricFollowing  = "mockstagram_influencer_following"
	MetricInfo       = "mockstagram_influencer_info"
	MetricSuspicious = "mockstagram_influencer_suspicious"
	// The sparse step series (steps.go).
	MetricFollowersStep = "mockstagram_influencer_followers_step"
	MetricFollowingStep = "mockstagram_influencer_following_step"
)

const renderFlushSize = 128 << 10

// renderer appends exposition lines to a reusable buffer and hands it to the
// writer in large chunks, so one scrape costs a few hundred writes, not
// millions.
type renderer struct {
	w       io.Writer
	buf     []byte
	n       int64
	err     error
	samples int64 // sample lines rendered
}

func (r *renderer) flush() {
	if r.err != nil || len(r.buf) == 0 {
		r.buf = r.buf[:0]
		return
	}
	n, err := r.w.Write(r.buf)
	r.n += int64(n)
	r.err = err
	r.buf = r.buf[:0]
}

func (r *renderer) maybeFlush() {
	r.samples++ // called once per sample line
	if len(r.buf) >= renderFlushSize {
		r.flush()
	}
}

// SliceBounds returns the index range [lo, hi) of slice k of n over length
// items. Slices are contiguous and differ in size by at most one.
func SliceBounds(length, k, n int) (lo, hi int) {
	return k * length / n, (k + 1) * length / n
}

// Exposition renders a Store as the Prometheus text exposition, in two
// documents: the counts (followers, following, the step series and the
// verdicts, on /metrics), which change every poll and are served once per
// scraper (delivery.go), and the info series (on /metrics/info), which
// change only when an influencer is first polled or renamed and are
// scraped rarely. The store knows nothing of it; it keeps the one thing
// worth caching, the gzip-compressed info series (Store.infoGen).
type Exposition struct {
	s         *Store
	cacheMu   sync.Mutex
	infoCache map[[2]int]infoBlock
}

// NewExposition renders s.
func NewExposition(s *Store) *Exposition {
	return &Exposition{s: s, infoCache: map[[2]int]infoBlock{}}
}

// Write streams the counts of the influencers at indexes [lo, hi) to w:
// followers and following, each with its poll time as the sample
// timestamp, the step series, and the verdicts with theirs. Influencers
// never polled are absent. It returns the bytes written.
func (x *Exposition) Write(w io.Writer, lo, hi int) (int64, error) {
	return x.WriteWindow(w, lo, hi, Everything)
}

// WriteWindow is Write restricted to the samples and verdicts whose
// delivery sequence number is inside win.
func (x *Exposition) WriteWindow(w io.Writer, lo, hi int, win Window) (int64, error) {
	r := x.render(w, lo, hi, win)
	return r.n, r.err
}

func (x *Exposition) render(w io.Writer, lo, hi int, win Window) *renderer {
	s := x.s
	r := &renderer{w: w, buf: make([]byte, 0, renderFlushSize+256)}
	s.renderValues(r, lo, hi, MetricFollowers, helpFollowers, true, win)
	s.renderValues(r, lo, hi, MetricFollowing, helpFollowing, false, win)
	s.renderSteps(r, lo, hi, win)
	s.renderVerdicts(r, lo, hi, win)
	r.flush()
	return r
}

// WriteInfo streams the info series of [lo, hi): one per influencer ever
// polled, carrying its username, without timestamp.
func (x *Exposition) WriteInfo(w io.Writer, lo, hi int) (int64, error) {
	r := &renderer{w: w, buf: make([]byte, 0, renderFlushSize+256)}
	x.s.renderInfo(r, lo, hi)
	r.flush()
	return r.n, r.err
}

const (
	helpFollowers  = "The influencer's followerCount at its latest successful poll; the sample timestamp is the poll time."
	helpFollowing  = "The influencer's followingCount at its latest successful poll; the sample timestamp is the poll time."
	helpInfo       = "Identity of the influencer; always 1. Join on pk to get the username."
	helpSuspicious = "1 when Mockstagram's classifier judged the influencer suspicious at its latest daily check, else 0; the sample timestamp is the time of the verdict. Absent until the first verdict."
)

// WriteGzip writes the same document as WriteWindow, gzip-compressed.
func (x *Exposition) WriteGzip(w io.Writer, gz *gzip.Writer, lo, hi int, win Window) error {
	_, err := x.writeGzip(w, gz, lo, hi, win)
	return err
}

// writeGzip is WriteGzip that also returns the number of samples.
func (x *Exposition) writeGzip(w io.Writer, gz *gzip.Writer, lo, hi int, win Window) (samples int64, err error) {
	gz.Reset(w)
	r := x.render(gz, lo, hi, win)
	if r.err != nil {
		return r.samples, r.err
	}
	return r.samples, gz.Close()
}

// WriteInfoGzip writes the info series of [lo, hi) gzip-compressed, from a
// cache when no influencer of the store was first polled or renamed since
// the last call.
func (x *Exposition) WriteInfoGzip(w io.Writer, gz *gzip.Writer, lo, hi int) error {
	_, err := w.Write(x.gzipInfo(gz, lo, hi))
	return err
}

// gzipInfo returns the info series of [lo, hi) as one gzip member, from the
// cache when no influencer of the store was first polled or renamed since.
func (x *Exposition) gzipInfo(gz *gzip.Writer, lo, hi int) []byte {
	gen := x.s.infoGen.Load()
	key := [2]int{lo, hi}
	x.cacheMu.Lock()
	c, ok := x.infoCache[key]
	x.cacheMu.Unlock()
	if ok && c.gen == gen {
		return c.data
	}
	var buf bytes.Buffer
	gz.Reset(&buf)
	r := &renderer{w: gz, buf: make([]byte, 0, renderFlushSize+256)}
	x.s.renderInfo(r, lo, hi)
	r.flush()
	gz.Close()
	x.cacheMu.Lock()
	if len(x.infoCache) >= maxInfoCache {
		clear(x.infoCache) // callers use a handful of slicings; never grow without bound
	}
	x.infoCache[key] = infoBlock{gen: gen, data: buf.Bytes()}
	x.cacheMu.Unlock()
	return buf.Bytes()
}

const maxInfoCache = 256

type infoBlock struct {
	gen  uint64
	data []byte
}

func (s *Store) renderValues(r *renderer, lo, hi int, name, help string, followers bool, win Window) {
	r.buf = appendHeader(r.buf, name, help)
	if lo >= hi {
		return
	}
	// The line head `name{pk="1000001"} ` is kept as one buffer whose pk
	// digits are advanced in place, so a line costs one copy for its head
	// instead of a full integer formatting of the pk.
	head := newPKText(name+`{pk="`, s.pks.PK(lo), `"} `)
	// Poll times of neighbouring influencers are often equal to the
	// millisecond, because the scheduler polls them in index order.
	var lastTs int64 = -1
	var tsText [24]byte
	tsLen := 0
	step1, hl := s.pks.Step == 1, head.end-1
	for i := lo; i < hi; i++ {
		if i > lo {
			// Inline fast path of head.advance: no carry.
			if c := head.buf[hl]; step1 && c != '9' {
				head.buf[hl] = c + 1
			} else {
				head.advance(s.pks.Step, s.pks.PK(i))
				hl = head.end - 1
			}
		}
		smp, seq, ok := s.getSeq(i)
		if !ok || !win.has(seq) {
			continue
		}
		v := smp.Following
		if followers {
			v = smp.Followers
		}
		if smp.TimeMs != lastTs {
			lastTs = smp.TimeMs
			tsText[0] = ' '
			tsLen = len(strconv.AppendInt(tsText[:1], smp.TimeMs, 10))
			tsText[tsLen] = '\n'
			tsLen++
		}
		b := append(r.buf, head.buf...)
		b = appendUint32(b, v)
		r.buf = append(b, tsText[:tsLen]...)
		r.maybeFlush()
	}
}

// renderVerdicts writes the suspicious flag of every influencer with a
// verdict inside win, timestamped with the verdict's time. Served once
// (delivery.go), a verdict reaches the scraper in the first scrape after it
// was made, so its timestamp is never older than VictoriaMetrics'
// -search.cacheTimestampOffset (5 m), which would reset the rollup result
// cache that dashboards rely on.
func (s *Store) renderVerdicts(r *renderer, lo, hi int, win Window) {
	r.buf = appendHeader(r.buf, MetricSuspicious, helpSuspicious)
	if lo >= hi {
		return
	}
	head := newPKText(MetricSuspicious+`{pk="`, s.pks.PK(lo), `"} `)
	step1, hl := s.pks.Step == 1, head.end-1
	var ts tsText
	for i := lo; i < hi; i++ {
		if i > lo {
			if c := head.buf[hl]; step1 && c != '9' {
				head.buf[hl] = c + 1
			} else {
				head.advance(s.pks.Step, s.pks.PK(i))
				hl = head.end - 1
			}
		}
		v, seq := s.verdictSeq(i)
		if v.TimeMs == 0 || !win.has(seq) {
			continue
		}
		b := append(r.buf, head.buf...)
		if v.Suspicious {
			b = append(b, "1 "...)
		} else {
			b = append(b, "0 "...)
		}
		b = ts.append(b, v.TimeMs)
		r.buf = append(b, '\n')
		r.maybeFlush()
	}
}

// tsText formats millisecond timestamps that differ little from one line
// to the next (verdicts of neighbouring pks are made tens of milliseconds
// apart): the digits above the last four are formatted once and reused
// while they stay the same, the last four come from a table.
type tsText struct {
	hi  int64
	txt []byte
}

func (t *tsText) append(b []byte, ms int64) []byte {
	if ms < 10000 {
		return strconv.AppendInt(b, ms, 10)
	}
	hi, lo := ms/10000, ms%10000
	if hi != t.hi || t.txt == nil {
		t.hi, t.txt = hi, strconv.AppendInt(t.txt[:0], hi, 10)
	}
	b = append(b, t.txt...)
	return append(b, digitPairs[lo/100*2], digitPairs[lo/100*2+1], digitPairs[lo%100*2], digitPairs[lo%100*2+1])
}

func (s *Store) renderInfo(r *renderer, lo, hi int) {
	r.buf = appendHeader(r.buf, MetricInfo, helpInfo)
	if lo >= hi {
		return
	}
	odd := s.OddUsernames()
	// Both pk occurrences of `..{pk="P",username="influencer-P"} 1` are
	// advanced in place.
	line := newPKText(MetricInfo+`{pk="`, s.pks.PK(lo), `",username="influencer-`)
	tail := newPKText("", s.pks.PK(lo), "\"} 1\n")
	step1, ll, tl := s.pks.Step == 1, line.end-1, tail.end-1
	for i := lo; i < hi; i++ {
		if i > lo {
			if c := line.buf[ll]; step1 && c != '9' {
				line.buf[ll], tail.buf[tl] = c+1, c+1
			} else {
				pk := s.pks.PK(i)
				line.advance(s.pks.Step, pk)
				tail.advance(s.pks.Step, pk)
				ll, tl = line.end-1, tail.end-1
			}
		}
		if s.TimeMs(i) == 0 {
			continue
		}
		if name, ok := odd[int32(i)]; ok {
			b := append(r.buf, line.buf[:line.end]...)
			b = append(b, `",username="`...)
			b = appendEscapedLabelValue(b, name)
			r.buf = append(b, "\"} 1\n"...)
		} else {
			r.buf = append(append(r.buf, line.buf...), tail.buf...)
		}
		r.maybeFlush()
	}
}

// pkText is prefix + decimal pk + suffix, with the pk's digits at
// buf[start:end], advanced in place by decimal addition.
type pkText struct {
	prefix, suffix string
	buf            []byte
	start, end     int
}

func newPKText(prefix string, pk int64, suffix string) *pkText {
	t := &pkText{prefix: prefix, suffix: suffix}
	t.set(pk)
	return t
}

func (t *pkText) set(pk int64) {
	t.buf = append(t.buf[:0], t.prefix...)
	t.start = len(t.buf)
	t.buf = strconv.AppendInt(t.buf, pk, 10)
	t.end = len(t.buf)
	t.buf = append(t.buf, t.suffix...)
}

// advance adds step to the digits; pk is the expected result, used when the
// number of digits grows.
func (t *pkText) advance(step int64, pk int64) {
	d := t.buf[t.start:t.end]
	carry := step
	for k := len(d) - 1; k >= 0 && carry > 0; k-- {
		v := int64(d[k]-'0') + carry
		d[k] = byte('0' + v%10)
		carry = v / 10
	}
	if carry > 0 {
		t.set(pk)
	}
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// appendUint32 is strconv.AppendUint without the generic base handling,
// writing the digits straight into b.
func appendUint32(b []byte, v uint32) []byte {
	n := 1
	for x := v; x >= 10; x /= 10 {
		n++
	}
	l := len(b)
	if cap(b)-l < n {
		b = append(b, make([]byte, n)...)[:l]
	}
	b = b[:l+n]
	i := l + n
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if v >= 10 {
		b[i-2], b[i-1] = digitPairs[v*2], digitPairs[v*2+1]
	} else {
		b[i-1] = byte('0' + v)
	}
	return b
}

func appendHeader(b []byte, name, help string) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, help...)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	return append(b, " gauge\n"...)
}

// appendEscapedLabelValue escapes a label value as the text format requires.
func appendEscapedLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
