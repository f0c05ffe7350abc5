package exporter

import (
	"sync"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

func testStore(min, max int64, shard pkrange.Shard) *Store {
	return NewStore(pkrange.Owned(pkrange.Range{Min: min, Max: max}, shard))
}

func TestStoreSetGet(t *testing.T) {
	s := testStore(1000, 1009, pkrange.Shard{Count: 1})
	if _, ok := s.Get(3); ok {
		t.Fatal("a never polled influencer must be absent")
	}
	f := func(smp Sample, wantStored bool, want Sample) {
		t.Helper()
		if got := s.Set(3, smp); got != wantStored {
			t.Fatalf("Set(%+v) = %v, want %v", smp, got, wantStored)
		}
		got, ok := s.Get(3)
		if !ok || got != want {
			t.Fatalf("Get after Set(%+v) = %+v, %v; want %+v", smp, got, ok, want)
		}
	}
	a := Sample{Followers: 57166, Following: 1328, TimeMs: 2000}
	f(a, true, a)
	// An older or equally old sample never replaces a newer one: a slow
	// retry must not move the series back in time.
	f(Sample{Followers: 1, Following: 1, TimeMs: 1999}, false, a)
	f(Sample{Followers: 1, Following: 1, TimeMs: 2000}, false, a)
	b := Sample{Followers: 1<<32 - 1, Following: 0, TimeMs: 2001}
	f(b, true, b)
	if s.Set(4, Sample{Followers: 5, TimeMs: 0}) {
		t.Fatal("a sample without a poll time must be refused")
	}
}

// TestStoreNoTornReads races writers against readers: a reader must never
// see the followers of one poll with the following or time of another.
func TestStoreNoTornReads(t *testing.T) {
	s := testStore(0, 3, pkrange.Shard{Count: 1})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int64(1); k < 20000; k++ {
				v := uint32(2*k + int64(w))
				s.Set(int(k%4), Sample{Followers: v, Following: v, TimeMs: int64(v)})
			}
		}()
	}
	errs := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range 4 {
				smp, ok := s.Get(i)
				if ok && (smp.Followers != smp.Following || int64(smp.Followers) != smp.TimeMs) {
					select {
					case errs <- "torn read":
					default:
					}
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
}

func TestStoreUsernames(t *testing.T) {
	s := testStore(1000000, 1000009, pkrange.Shard{Count: 1})
	gen := s.infoGen.Load()
	s.SetUsername(1, []byte("influencer-1000001"))
	if len(s.oddUsernames) != 0 || s.infoGen.Load() != gen {
		t.Fatal("the canonical username must cost nothing")
	}
	s.SetUsername(1, []byte("renamed"))
	if s.oddUsernames[1] != "renamed" || s.infoGen.Load() == gen {
		t.Fatalf("odd username not kept: %v", s.oddUsernames)
	}
	s.SetUsername(1, []byte("influencer-1000001"))
	if len(s.oddUsernames) != 0 {
		t.Fatal("returning to the canonical name must drop the exception")
	}
	s.SetUsername(2, []byte("bad\xffutf8"))
	if s.oddUsernames[2] != "bad\uFFFDutf8" {
		t.Fatalf("invalid UTF-8 must be replaced, got %q", s.oddUsernames[2])
	}
}

func TestStoreFreshness(t *testing.T) {
	s := testStore(0, 9, pkrange.Shard{Count: 1})
	s.Set(0, Sample{TimeMs: 100})
	s.Set(1, Sample{TimeMs: 200})
	s.Set(2, Sample{TimeMs: 300})
	a := s.Ages(400, 200)
	if a.Fresh != 2 || a.Polled != 3 || a.OldestMs != 100 {
		t.Fatalf("Ages(400, 200) = %+v; want 2 fresh, 3 polled, oldest 100", a)
	}
	// Ages 300, 200, 100 ms: the median is read as the top of its 10 ms
	// bucket, 210 ms; the 99th percentile is the oldest, 300 ms; the sum
	// 600 ms.
	if a.P50 != 210*time.Millisecond || a.P99 != 300*time.Millisecond || a.Sum != 600*time.Millisecond {
		t.Fatalf("ages p50 %s p99 %s sum %s; want 210ms, 300ms, 600ms", a.P50, a.P99, a.Sum)
	}
	if e := NewStore(s.PKs()).Ages(400, 200); e != (Ages{}) {
		t.Fatalf("an empty store: %+v", e)
	}
}
