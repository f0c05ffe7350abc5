package rankd_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
)

// TestLyingHeaderAllocatesLittle: an exporter whose snapshot header claims
// the most records a header may (2^26, 1 GiB of pk slots in rankd) and
// sends one costs rankd memory for what arrived, not for the claim; the
// read fails as truncated and the source is reported down.
func TestLyingHeaderAllocatesLittle(t *testing.T) {
	var b bytes.Buffer
	snapwire.Write(&b, snapwire.Header{First: pkMin, Step: 1, N: 1},
		func(int) snapwire.Record { return snapwire.Record{Followers: 1, Following: 1, TimeMs: tPoll} })
	body := b.Bytes()
	body[24], body[25], body[26], body[27] = 0, 0, 0, 4 // n = 2^26, little-endian
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(liar.Close)
	srv, _ := newServer(t, false, liar.URL)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	srv.Refresh(context.Background())
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Fatalf("a header claiming 2^26 records with one behind it made rankd allocate %d MiB", got>>20)
	}
	st := srv.Status()
	if len(st) != 1 || st[0].Healthy || !bytes.Contains([]byte(st[0].LastError), []byte("truncated at record 1")) {
		t.Fatalf("status %+v, want the source down with the truncation", st)
	}
}
