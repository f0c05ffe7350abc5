package exporter

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenStore is shard 1 of 3 over 999998..1000012: pks 999999, 1000002,
// ... 1000011, with one never polled, one renamed with characters that need
// escaping, neighbours polled in the same millisecond, and verdicts for
// some: suspicious, not suspicious, none; two polled again, one with a
// large follower step, one with a large following step.
func goldenStore() *Store {
	s := testStore(999998, 1000012, pkrange.Shard{Index: 1, Count: 3})
	s.SetStepThresholds(DefaultStepThresholds)
	for i := range s.Len() {
		if i == 2 {
			continue
		}
		s.Set(i, Sample{Followers: uint32(5000 + 1111*i), Following: uint32(50 + 7*i), TimeMs: 1763800000000 + int64(i/2)})
	}
	s.Set(4, Sample{Followers: 5000 + 1111*4 + 60_000, Following: 50 + 7*4, TimeMs: 1763800060002})
	s.Set(1, Sample{Followers: 5000 + 1111, Following: 50 + 7 + 600, TimeMs: 1763800060000})
	s.SetUsername(3, []byte(`we"ird\name`+"\n"))
	s.SetVerdict(0, Verdict{TimeMs: 1763790000123, Suspicious: true})
	s.SetVerdict(3, Verdict{TimeMs: 1763795000456})
	s.SetVerdict(2, Verdict{TimeMs: 1763795000789, Suspicious: true}) // never polled yet: the verdict stands alone
	return s
}

func TestExpositionGolden(t *testing.T) {
	s := goldenStore()
	var buf bytes.Buffer
	if _, err := NewExposition(s).Write(&buf, 0, s.Len()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "exposition.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("exposition differs from %s (rerun with -update if intended):\n%s", golden, buf.String())
	}
}

// TestExpositionParses reads the exposition back with the Prometheus text
// parser and lints it as `promtool check metrics` does.
func TestExpositionParses(t *testing.T) {
	s := goldenStore()
	var buf bytes.Buffer
	NewExposition(s).Write(&buf, 0, s.Len())
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the Prometheus parser rejects the exposition: %v", err)
	}
	for _, name := range []string{MetricFollowers, MetricFollowing} {
		mf := mfs[name]
		if mf == nil || len(mf.Metric) != s.Len()-1 {
			t.Fatalf("%s: want %d series (one pk never polled), got %v", name, s.Len()-1, mf)
		}
	}
	if st := mfs[MetricFollowersStep]; st == nil || len(st.Metric) != 1 || st.Metric[0].GetGauge().GetValue() != 60_000 {
		t.Fatalf("%s: want one series of 60000, got %v", MetricFollowersStep, st)
	}
	if st := mfs[MetricFollowingStep]; st == nil || len(st.Metric) != 1 || st.Metric[0].GetGauge().GetValue() != 600 {
		t.Fatalf("%s: want one series of 600, got %v", MetricFollowingStep, st)
	}
	var info bytes.Buffer
	NewExposition(s).WriteInfo(&info, 0, s.Len())
	ip := expfmt.NewTextParser(model.UTF8Validation)
	infos, err := ip.TextToMetricFamilies(bytes.NewReader(info.Bytes()))
	if err != nil || infos[MetricInfo] == nil || len(infos[MetricInfo].Metric) != s.Len()-1 {
		t.Fatalf("info exposition: %v %v", err, infos[MetricInfo])
	}
	if _, ok := mfs[MetricInfo]; ok {
		t.Fatal("the counts carry the info series; they have a path of their own")
	}
	for _, m := range mfs[MetricFollowers].Metric {
		pk, _ := strconv.ParseInt(m.Label[0].GetValue(), 10, 64)
		i := s.PKs().Index(pk)
		smp, ok := s.Get(i)
		if !ok || m.GetGauge().GetValue() != float64(smp.Followers) || m.GetTimestampMs() != smp.TimeMs {
			t.Fatalf("pk %d parsed as %v at %d, store has %+v", pk, m.GetGauge().GetValue(), m.GetTimestampMs(), smp)
		}
	}
	var odd string
	for _, m := range infos[MetricInfo].Metric {
		if m.Label[0].GetValue() == "1000008" {
			odd = m.Label[1].GetValue()
		}
	}
	if odd != `we"ird\name`+"\n" {
		t.Fatalf("renamed username parsed back as %q", odd)
	}
	for _, b := range [][]byte{buf.Bytes(), info.Bytes()} {
		problems, err := promlint.New(bytes.NewReader(b)).Lint()
		if err != nil || len(problems) != 0 {
			t.Fatalf("lint: %v %v", err, problems)
		}
	}
}

func TestExpositionSlices(t *testing.T) {
	s := filledStore(1001)
	var whole bytes.Buffer
	NewExposition(s).Write(&whole, 0, s.Len())
	count := func(b []byte) int {
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return len(mfs[MetricFollowers].Metric)
	}
	for _, n := range []int{1, 2, 7, 1001, 2000} {
		seen := 0
		for k := range n {
			lo, hi := SliceBounds(s.Len(), k, n)
			var b bytes.Buffer
			NewExposition(s).Write(&b, lo, hi)
			if lo < hi {
				seen += count(b.Bytes())
			}
		}
		if seen != s.Len() {
			t.Fatalf("%d slices hold %d influencers, want %d", n, seen, s.Len())
		}
	}
}

// TestGzipExposition checks that the gzip streams decode, with the info
// cached or not, to exactly the plain expositions.
func TestGzipExposition(t *testing.T) {
	s := goldenStore()
	x := NewExposition(s) // one exposition throughout: its cache is under test
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	check := func() {
		t.Helper()
		var plain, plainInfo, z, zInfo bytes.Buffer
		x.Write(&plain, 0, s.Len())
		x.WriteInfo(&plainInfo, 0, s.Len())
		if err := x.WriteGzip(&z, gz, 0, s.Len(), Everything); err != nil {
			t.Fatal(err)
		}
		if err := x.WriteInfoGzip(&zInfo, gz, 0, s.Len()); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ z, plain *bytes.Buffer }{{&z, &plain}, {&zInfo, &plainInfo}} {
			zr, err := gzip.NewReader(c.z)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.plain.Bytes()) {
				t.Fatalf("gzip decodes to\n%s\nwant\n%s", got, c.plain.Bytes())
			}
		}
	}
	check()
	check() // served from the info cache
	s.Set(2, Sample{Followers: 7, Following: 8, TimeMs: 1763800000009})
	check() // a newly polled influencer must invalidate the cache
	s.SetUsername(0, []byte("x"))
	check() // so must a rename
}

func TestPKTextAdvance(t *testing.T) {
	f := func(start, step int64, n int) {
		t.Helper()
		pt := newPKText(`a{pk="`, start, `"}`)
		for k := 1; k <= n; k++ {
			pk := start + int64(k)*step
			pt.advance(step, pk)
			if want := `a{pk="` + strconv.FormatInt(pk, 10) + `"}`; string(pt.buf) != want {
				t.Fatalf("after %d steps of %d from %d: %q, want %q", k, step, start, pt.buf, want)
			}
		}
	}
	f(1000000, 1, 1000)
	f(0, 1, 120)
	f(9, 1, 3)
	f(1000000, 7, 500)
	f(999990, 3, 20)
	f(5, 97, 300)
	f(1000000, 1234567, 5)
}

func TestAppendUint32(t *testing.T) {
	for _, v := range []uint32{0, 1, 9, 10, 99, 100, 5000, 57166, 99999, 100000, 1<<32 - 1} {
		if got := string(appendUint32([]byte("x"), v)); got != "x"+strconv.FormatUint(uint64(v), 10) {
			t.Fatalf("appendUint32(%d) = %q", v, got)
		}
	}
}

func TestTsText(t *testing.T) {
	var ts tsText
	for _, ms := range []int64{0, 7, 9999, 10000, 10001, 1763700000000, 1763700000099, 1763700009999, 1763700010000, 1763700010001, 99999999, 100000000} {
		if got, want := string(ts.append(nil, ms)), strconv.FormatInt(ms, 10); got != want {
			t.Fatalf("%d: %q, want %q", ms, got, want)
		}
	}
}
