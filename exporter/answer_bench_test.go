package exporter

import (
	"testing"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// BenchmarkDecode is the user-space part of a poll after the HTTP response
// is read: JSON parse, validation and the pk check.
func BenchmarkDecode(b *testing.B) {
	var p poller
	p.resp.SetStatusCode(200)
	p.resp.SetBodyString(`{"pk":1000001,"username":"influencer-1000001","followerCount":57166,"followingCount":1328}`)
	b.ReportAllocs()
	for b.Loop() {
		if r := p.decode(1000001, 1); r.reason != OK {
			b.Fatal(r.err)
		}
	}
}

// BenchmarkStoreSet is storing one sample and its username.
func BenchmarkStoreSet(b *testing.B) {
	s := filledStore(1_000_000)
	name := []byte("influencer-1000001")
	b.ReportAllocs()
	ts := int64(1_800_000_000_000)
	for b.Loop() {
		ts++
		s.Set(1, Sample{Followers: 5, Following: 6, TimeMs: ts})
		s.SetUsername(1, name)
	}
}

// BenchmarkAges1M is the scan behind every telemetry scrape and landing
// page view: freshness and age quantiles over 1M poll times, spread over a
// minute as the scheduler leaves them.
func BenchmarkAges1M(b *testing.B) {
	s := NewStore(pkrange.Owned(pkrange.Range{Min: pkrange.DefaultMin, Max: pkrange.DefaultMin + 999_999}, pkrange.Shard{Count: 1}))
	now := int64(1_763_800_060_000)
	for i := range s.Len() {
		s.Set(i, Sample{Followers: 1, Following: 1, TimeMs: now - int64(i*7919%1_000_000)*60/1000})
	}
	b.ReportAllocs()
	for b.Loop() {
		if a := s.Ages(now, now-120_000); a.Fresh != s.Len() {
			b.Fatalf("fresh %d of %d", a.Fresh, s.Len())
		}
	}
}
