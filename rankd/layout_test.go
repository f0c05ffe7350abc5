package rankd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// TestSourceMerge: overlapping exporters, failures, a read cut short and a
// reconfigured exporter.
func TestSourceMerge(t *testing.T) {
	rec := func(f uint32, ms int64) snapwire.Record {
		return snapwire.Record{Followers: f, Following: 1, TimeMs: ms}
	}
	a := startFake(t, pkMin, 1, []snapwire.Record{rec(10, 1000e3), rec(11, 1000e3), rec(12, 1000e3), rec(13, 1000e3)})
	b := startFake(t, pkMin+2, 1, []snapwire.Record{rec(22, 999e3), rec(23, 1001e3), rec(24, 1000e3)})
	srv, _ := newServer(t, false, a.URL, b.URL)
	check := func(what string, want map[int64]uint32, span int) {
		t.Helper()
		snap := srv.Snapshot()
		for pk := pkMin - 1; pk <= pkMin+20; pk++ {
			inf, ok := snap.Lookup(int64(pk))
			w, wok := want[int64(pk)]
			if ok != wok || inf.Followers != w {
				t.Fatalf("%s: pk %d = %d (found %v), want %d (found %v)", what, pk, inf.Followers, ok, w, wok)
			}
		}
		if snap.Count != len(want) || snap.Span() != span || !snap.Complete {
			t.Fatalf("%s: %d influencers over %d slots, complete %v; want %d over %d", what, snap.Count, snap.Span(), snap.Complete, len(want), span)
		}
	}
	srv.Refresh(context.Background())
	// pk+2: a's sample is newer; pk+3: b's; pk+4 only b has.
	check("overlap", map[int64]uint32{pkMin: 10, pkMin + 1: 11, pkMin + 2: 12, pkMin + 3: 23, pkMin + 4: 24}, 5)

	// a fails: its last data stays, still newer-wins against b.
	a.set(pkMin, 1, []snapwire.Record{rec(110, 2000e3), rec(111, 2000e3), rec(112, 2000e3), rec(113, 2000e3)})
	a.setFail(true, -1)
	srv.Refresh(context.Background())
	check("a down", map[int64]uint32{pkMin: 10, pkMin + 1: 11, pkMin + 2: 12, pkMin + 3: 23, pkMin + 4: 24}, 5)
	if st := srv.Status(); st[0].Healthy || !strings.Contains(st[0].LastError, "HTTP 503") || !st[1].Healthy || st[0].Influencers != 4 {
		t.Fatalf("status %+v", st)
	}

	// a's read breaks off after two records: those two are new, the rest
	// keep the last good data.
	a.setFail(false, 2)
	srv.Refresh(context.Background())
	check("a cut short", map[int64]uint32{pkMin: 110, pkMin + 1: 111, pkMin + 2: 12, pkMin + 3: 23, pkMin + 4: 24}, 5)
	if st := srv.Status(); st[0].Healthy || !strings.Contains(st[0].LastError, "snapshot truncated at record 2 of 4") {
		t.Fatalf("status %+v", st)
	}

	// a is whole again, then moves to other pks: its old ones are gone.
	a.setFail(false, -1)
	srv.Refresh(context.Background())
	check("a back", map[int64]uint32{pkMin: 110, pkMin + 1: 111, pkMin + 2: 112, pkMin + 3: 113, pkMin + 4: 24}, 5)
	a.set(pkMin+10, 5, []snapwire.Record{rec(7, 3000e3), rec(8, 3000e3)})
	srv.Refresh(context.Background())
	check("a moved", map[int64]uint32{pkMin + 2: 22, pkMin + 3: 23, pkMin + 4: 24, pkMin + 10: 7, pkMin + 15: 8}, 16)
	srv.Refresh(context.Background()) // the layout now follows the known ranges only
	check("a moved, next refresh", map[int64]uint32{pkMin + 2: 22, pkMin + 3: 23, pkMin + 4: 24, pkMin + 10: 7, pkMin + 15: 8}, 14)

	// An exporter whose pks cannot fit is refused, not allocated for.
	b.set(pkMin, 1<<40, []snapwire.Record{rec(1, 1e6), rec(2, 1e6)})
	srv.Refresh(context.Background())
	if st := srv.Status(); st[1].Healthy || !strings.Contains(st[1].LastError, "implausible") {
		t.Fatalf("status %+v", st)
	}
	check("b refused", map[int64]uint32{pkMin + 2: 22, pkMin + 3: 23, pkMin + 4: 24, pkMin + 10: 7, pkMin + 15: 8}, 14)
}

// TestReusedArraysStartEmpty: a refresh builds into the arrays of the
// snapshot before the current one; nothing of that old data may survive.
func TestReusedArraysStartEmpty(t *testing.T) {
	const n = 100_000
	recs := make([]snapwire.Record, n)
	for i := range recs {
		recs[i] = snapwire.Record{Followers: uint32(i), Following: 1, TimeMs: tPoll, VerdictMs: tVerdict, Suspicious: i%2 == 0}
	}
	a := startFake(t, pkMin, 1, recs)
	srv, _ := newServer(t, false, a.URL)
	srv.Refresh(context.Background())
	srv.Refresh(context.Background())
	if s := srv.Snapshot(); s.Count != n || s.Suspicious() != n/2 {
		t.Fatalf("%d influencers, %d suspicious", s.Count, s.Suspicious())
	}
	never := make([]snapwire.Record, n) // the exporter restarted: nothing polled yet
	a.set(pkMin, 1, never)
	srv.Refresh(context.Background()) // into the first snapshot's arrays
	s := srv.Snapshot()
	if s.Count != 0 || s.Suspicious() != 0 || s.Verdicts != 0 {
		t.Fatalf("after a refresh without data: %d influencers, %d suspicious, %d verdicts", s.Count, s.Suspicious(), s.Verdicts)
	}
	for pk := int64(pkMin); pk < pkMin+n; pk++ {
		if _, ok := s.Lookup(pk); ok {
			t.Fatalf("pk %d kept old data", pk)
		}
	}
}
