package snapwire

import (
	"math"
	"testing"
)

// TestVerdictWord pins the verdict word the exporter stores and the
// snapshot carries: no verdict is 0, a later verdict is a larger word, and
// unpacking gives back what was packed.
func TestVerdictWord(t *testing.T) {
	f := func(ms int64, suspicious bool, want, wantMs int64, wantSuspicious bool) {
		t.Helper()
		w := PackVerdict(ms, suspicious)
		if w != want {
			t.Fatalf("PackVerdict(%d, %v) = %d, want %d", ms, suspicious, w, want)
		}
		gotMs, gotSuspicious := UnpackVerdict(w)
		if gotMs != wantMs || gotSuspicious != wantSuspicious {
			t.Fatalf("UnpackVerdict(%d) = %d, %v; want %d, %v", w, gotMs, gotSuspicious, wantMs, wantSuspicious)
		}
	}
	f(0, false, 0, 0, false)
	f(0, true, 0, 0, false)  // a flag without a time is no verdict
	f(-5, true, 0, 0, false) // nor is a time before 1970
	f(1000, false, 2000, 1000, false)
	f(1000, true, 2001, 1000, true)
	f(MaxVerdictMs, true, math.MaxInt64, MaxVerdictMs, true)
	f(math.MaxInt64, false, MaxVerdictMs<<1, MaxVerdictMs, false) // clamped, never negative
	if PackVerdict(1001, false) <= PackVerdict(1000, true) {
		t.Fatal("a later verdict must have a larger word")
	}
	for _, w := range []int64{0, -1, math.MinInt64} {
		if ms, s := UnpackVerdict(w); ms != 0 || s {
			t.Fatalf("UnpackVerdict(%d) = %d, %v; want no verdict", w, ms, s)
		}
	}
}
