package exporter

import (
	"testing"
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
