package exporter_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// opReader hands out the fuzzer's bytes as store operations; past the end
// it reads zeros.
type opReader struct{ b []byte }

func (r *opReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *opReader) u8() uint8   { b := r.bytes(1); return append(b, 0)[0] }
func (r *opReader) u32() uint32 { return binary.LittleEndian.Uint32(append(r.bytes(4), 0, 0, 0, 0)) }
func (r *opReader) u64() uint64 {
	return binary.LittleEndian.Uint64(append(r.bytes(8), 0, 0, 0, 0, 0, 0, 0, 0))
}

// fuzzStore builds the store a fuzz input describes: the pks of a shard of
// a range, and a run of samples, verdicts and usernames (any bytes) set
// on them. Poll and verdict times are positive and below 2^41 ms (year
// 71700): they come from this host's clock, not from outside.
func fuzzStore(first uint64, span uint16, shards, index uint8, ops []byte) *exporter.Store {
	r := pkrange.Range{Min: int64(first % (1 << 62))}
	r.Max = r.Min + int64(span%2048)
	sh := pkrange.Shard{Count: 1 + int(shards)%64}
	sh.Index = int(index) % sh.Count
	s := exporter.NewStore(pkrange.Owned(r, sh))
	if s.Len() == 0 {
		return s
	}
	in := &opReader{ops}
	for len(in.b) > 0 {
		op, i := in.u8(), int(in.u32()%uint32(s.Len()))
		switch op % 3 {
		case 0:
			s.Set(i, exporter.Sample{Followers: in.u32(), Following: in.u32(), TimeMs: int64(in.u64()%(1<<41)) + 1})
		case 1:
			t := in.u64()
			s.SetVerdict(i, exporter.Verdict{TimeMs: int64(t>>1%(1<<41)) + 1, Suspicious: t&1 == 1})
		case 2:
			s.SetUsername(i, in.bytes(int(in.u8())))
		}
	}
	return s
}

// FuzzExposition renders random store contents, usernames of any bytes
// included, for any slice of the store, and reads it back with the
// Prometheus text parser: every influencer polled comes back with its
// values, timestamps and username, every verdict with its flag and time,
// nothing else; the gzip exposition decodes to the same bytes.
func FuzzExposition(f *testing.F) {
	ops := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	set := func(i uint32, fo, fg uint32, t uint64) []byte {
		b := binary.LittleEndian.AppendUint32([]byte{0}, i)
		b = binary.LittleEndian.AppendUint32(b, fo)
		b = binary.LittleEndian.AppendUint32(b, fg)
		return binary.LittleEndian.AppendUint64(b, t)
	}
	verdict := func(i uint32, t uint64) []byte {
		return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32([]byte{1}, i), t)
	}
	name := func(i uint32, n string) []byte {
		return append(append(binary.LittleEndian.AppendUint32([]byte{2}, i), byte(len(n))), n...)
	}
	golden := ops(set(0, 57166, 1328, 1_763_780_000_123), set(1, 5000, 50, 1_763_780_000_123), set(3, 1<<32-1, 0, 9999),
		set(4, 0, 0, 10000), verdict(0, 2*1_763_700_000_789+1), verdict(2, 2*1_763_700_000_790), verdict(4, 1),
		name(1, `we"ird\name`+"\n"), name(3, "\xff\xfe\x00\r\t"), name(4, "influencer-1000004"), name(0, ""))
	f.Add(uint64(1_000_000), uint16(9), uint8(0), uint8(0), uint8(0), uint8(255), golden)
	f.Add(uint64(999_998), uint16(14), uint8(2), uint8(1), uint8(1), uint8(4), golden)
	f.Add(uint64(99), uint16(2000), uint8(12), uint8(7), uint8(3), uint8(200), golden) // steps of 13 across 999 -> 1000
	f.Add(uint64(9_999_999_999), uint16(1), uint8(0), uint8(0), uint8(0), uint8(2), ops(set(0, 1, 1, 1), set(1, 2, 2, 2), name(1, "é")))
	f.Add(uint64(0), uint16(0), uint8(0), uint8(0), uint8(0), uint8(1), []byte{})
	f.Add(uint64(5), uint16(3), uint8(9), uint8(7), uint8(0), uint8(1), golden) // a shard that owns no pk
	f.Fuzz(func(t *testing.T, first uint64, span uint16, shards, index, lo8, hi8 uint8, opBytes []byte) {
		s := fuzzStore(first, span, shards, index, opBytes)
		lo, hi := int(lo8)%(s.Len()+1), int(hi8)%(s.Len()+1)
		if lo > hi {
			lo, hi = hi, lo
		}
		var plain bytes.Buffer
		n, err := exporter.NewExposition(s).Write(&plain, lo, hi)
		if err != nil || n != int64(plain.Len()) {
			t.Fatalf("WriteExposition: %d bytes, %v; wrote %d", n, err, plain.Len())
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(plain.Bytes()))
		if err != nil {
			t.Fatalf("the Prometheus parser rejects the exposition: %v\n%s", err, plain.Bytes())
		}
		pks := s.PKs()
		// series reads one family by index, checking its labels and type.
		series := func(name string, extra string) map[int]*dto.Metric {
			mf := mfs[name] // the parser drops a family without series
			if mf != nil && mf.GetType() != dto.MetricType_GAUGE {
				t.Fatalf("%s: missing or not a gauge: %v", name, mf)
			}
			out, wantLabels := map[int]*dto.Metric{}, 1
			if extra != "" {
				wantLabels = 2
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.Label {
					labels[l.GetName()] = l.GetValue()
				}
				pk, err := strconv.ParseInt(labels["pk"], 10, 64)
				i := pks.Index(pk)
				if err != nil || i < lo || i >= hi || out[i] != nil || len(labels) != wantLabels {
					t.Fatalf("%s: unexpected series %v (slice %d..%d of %+v)", name, m, lo, hi, pks)
				}
				if _, ok := labels[extra]; extra != "" && !ok {
					t.Fatalf("%s: series without %s: %v", name, extra, m)
				}
				out[i] = m
			}
			return out
		}
		followers, following := series(exporter.MetricFollowers, ""), series(exporter.MetricFollowing, "")
		verdicts := series(exporter.MetricSuspicious, "")
		var infoText bytes.Buffer
		if _, err := exporter.NewExposition(s).WriteInfo(&infoText, lo, hi); err != nil {
			t.Fatal(err)
		}
		infoParser := expfmt.NewTextParser(model.UTF8Validation)
		if mfs, err = infoParser.TextToMetricFamilies(bytes.NewReader(infoText.Bytes())); err != nil {
			t.Fatalf("the Prometheus parser rejects the info exposition: %v\n%s", err, infoText.Bytes())
		}
		info := series(exporter.MetricInfo, "username")
		polled, judged := 0, 0
		for i := lo; i < hi; i++ {
			smp, ok := s.Get(i)
			if ok {
				polled++
				fo, fg, in := followers[i], following[i], info[i]
				if fo == nil || fg == nil || in == nil ||
					fo.GetGauge().GetValue() != float64(smp.Followers) || fo.GetTimestampMs() != smp.TimeMs ||
					fg.GetGauge().GetValue() != float64(smp.Following) || fg.GetTimestampMs() != smp.TimeMs ||
					in.GetGauge().GetValue() != 1 || in.TimestampMs != nil {
					t.Fatalf("pk %d: store has %+v, exposition %v %v %v", pks.PK(i), smp, fo, fg, in)
				}
				for _, l := range in.Label {
					if l.GetName() == "username" && l.GetValue() != s.Username(i) {
						t.Fatalf("pk %d: username %q came back as %q", pks.PK(i), s.Username(i), l.GetValue())
					}
				}
			}
			if v := s.Verdict(i); v.TimeMs > 0 {
				judged++
				want := map[bool]float64{false: 0, true: 1}[v.Suspicious]
				if m := verdicts[i]; m == nil || m.GetGauge().GetValue() != want || m.GetTimestampMs() != v.TimeMs {
					t.Fatalf("pk %d: verdict %+v, exposition %v", pks.PK(i), v, m)
				}
			}
		}
		if len(followers) != polled || len(following) != polled || len(info) != polled || len(verdicts) != judged {
			t.Fatalf("%d polled and %d judged in the slice; the exposition has %d, %d, %d and %d series",
				polled, judged, len(followers), len(following), len(info), len(verdicts))
		}
		var zipped bytes.Buffer
		if err := exporter.NewExposition(s).WriteGzip(&zipped, gzip.NewWriter(io.Discard), lo, hi, exporter.Everything); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&zipped)
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unzipped, plain.Bytes()) {
			t.Fatalf("gzip exposition (%v) differs from the plain one:\n%s\n%s", err, unzipped, plain.Bytes())
		}
	})
}
