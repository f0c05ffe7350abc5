package rankd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/snapwire"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
)

// fuzzFirst.. are the pks of the small population the API fuzzer queries:
// some never polled, ties, a following of 0, verdicts of both kinds.
const (
	fuzzFirst = 1_000_000
	fuzzN     = 20
)

func fuzzRecord(i int) snapwire.Record {
	if i%7 == 3 {
		return snapwire.Record{} // never polled
	}
	r := snapwire.Record{Followers: uint32(5000 + 1000*(i%4)), Following: uint32(50 + i), TimeMs: tPoll + int64(i)}
	if i == 5 {
		r.Following = 0
	}
	if i%3 == 0 {
		r.VerdictMs, r.Suspicious = tVerdict+int64(i), i%2 == 0
	}
	return r
}

// fuzzBaseline is pk i's baseline in every window: none for a third,
// else a count that gives a few tied gains.
func fuzzBaseline(i int) (uint32, bool) {
	if i%3 == 1 {
		return 0, false
	}
	return fuzzRecord(i).Followers - uint32(100*(i%5)), true
}

// fuzzHandler is rankd's HTTP handler over a complete snapshot of the
// fuzz population, read from a fake exporter once, with gains over 1h and
// 24h from a fake VictoriaMetrics export; gained is how many have a gain.
func fuzzHandler(f *testing.F) (h http.Handler, count, suspicious, gained int) {
	var snap bytes.Buffer
	snapwire.Write(&snap, snapwire.Header{First: fuzzFirst, Step: 1, N: fuzzN}, fuzzRecord)
	exp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(snap.Bytes()) }))
	f.Cleanup(exp.Close)
	vm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		end, _ := strconv.ParseFloat(r.URL.Query().Get("end"), 64)
		for i := range fuzzN {
			if v, ok := fuzzBaseline(i); ok {
				fmt.Fprintf(w, "%d,%d,%d\n", fuzzFirst+i, v, int64(end*1000))
			}
		}
	}))
	f.Cleanup(vm.Close)
	windows, _ := rankd.ParseWindows("1h,24h")
	srv, err := rankd.New(rankd.Config{Sources: []string{exp.URL}, Refresh: time.Second, Timeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Victoria: vm.URL, Windows: windows})
	if err != nil {
		f.Fatal(err)
	}
	srv.Refresh(context.Background())
	srv.ReadBaselines(context.Background(), true)
	srv.Refresh(context.Background())
	for i := range fuzzN {
		if r := fuzzRecord(i); r.TimeMs > 0 {
			if _, ok := fuzzBaseline(i); ok {
				gained++
			}
			count++
			if r.VerdictMs > 0 && r.Suspicious {
				suspicious++
			}
		}
	}
	return srv.Handler(), count, suspicious, gained
}

// cleanPath is the path ServeMux serves without redirecting.
func cleanPath(p string) string {
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// pageParam is the documented reading of a page parameter: absent means
// def, else an integer in lo..hi.
func pageParam(q url.Values, name string, def, lo, hi int) (int, bool) {
	raw := q.Get(name)
	if raw == "" {
		return def, true
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	return int(v), err == nil && v >= int64(lo) && v <= int64(hi)
}

// FuzzAPI sends rankd's API any pk path segment and any query (n, limit,
// offset, window, order and whatever else) on each endpoint. Every answer
// is 200 or a 4xx with a JSON error (a redirect only where ServeMux cleans
// the path), never a 5xx or a panic; pk, n, limit, offset, window and
// order are accepted exactly as documented, and an accepted one answers
// what was asked for.
func FuzzAPI(f *testing.F) {
	for _, s := range []struct {
		endpoint uint8
		seg, q   string
	}{
		{0, "1000000", ""}, {0, "1000001", ""}, {0, "1000003", ""}, {0, "1000005", ""}, {0, "999999", ""},
		{0, "1000020", ""}, {0, "-1", ""}, {0, "abc", ""}, {0, "+1000001", ""}, {0, "01000001", ""},
		{0, "1e6", ""}, {0, "9223372036854775807", ""}, {0, "9223372036854775808", ""}, {0, "", ""},
		{0, "%31000001", ""}, {0, "1000001%00", ""}, {0, "..", ""}, {0, "1000001/x", ""}, {0, "%zz", ""},
		{0, "1000001%2F5", ""}, {0, "%2e%2e", ""}, {0, "1000001/", ""}, {0, "%2B1000001", ""},
		{1, "", "n=10"}, {1, "", "n=0"}, {1, "", "n=1001"}, {1, "", "n=1000&offset=5"}, {1, "", "offset=-1"},
		{1, "", "offset=2147483647"}, {1, "", "offset=2147483648"}, {1, "", "n=x"}, {1, "", "n=1;offset=2"},
		{1, "", "n=%31"}, {1, "", "n=1&n=2"}, {1, "", "n=+5"}, {1, "", "n= 5"}, {1, "", "offset=17&n=2"},
		{2, "", "limit=10"}, {2, "", "limit=0"}, {2, "", "limit=1&offset=1"}, {2, "", "limit=1001"},
		{6, "", "window=1h"}, {6, "", "window=24h&order=losers&limit=3&offset=2"}, {6, "", "window=7d"}, {6, "", ""},
		{6, "", "window=1h&order=x"}, {6, "", "window=1h&limit=0"}, {6, "", "window=24h&offset=99"}, {6, "", "window=1h&window=24h"},
		{3, "", ""}, {4, "", ""}, {5, "v1/nothing", ""}, {5, "v1/top/", ""}, {5, "v1//top", ""}, {5, "v1/./average", "n=2"},
	} {
		f.Add(s.endpoint, s.seg, s.q)
	}
	h, count, suspicious, gained := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, seg, query string) {
		prefix := []string{"/api/v1/influencers/", "/api/v1/top", "/api/v1/suspicious", "/api/v1/average", "/api/v1/status", "/api/", "/api/v1/movers"}[endpoint%7]
		if e := endpoint % 7; e >= 1 && e <= 4 || e == 6 {
			seg = ""
		}
		target := prefix + seg
		if query != "" {
			target += "?" + query
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(target, " #") {
			return // net/http answers 400 before any handler
		}
		req := (&http.Request{Method: "GET", URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Host: "rankd", Body: http.NoBody}).WithContext(context.Background())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		code, body := w.Code, w.Body.Bytes()
		esc := u.EscapedPath() // ServeMux routes and cleans the escaped path
		clean := cleanPath(esc) == esc
		switch {
		case (code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect) && !clean:
			return
		case code != 200 && (code < 400 || code > 499):
			t.Fatalf("GET %s: %d %s", target, code, body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("GET %s: %d with content type %q: %s", target, code, ct, body)
		}
		var ans map[string]any
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("GET %s: %d with a body that is not JSON (%v): %q", target, code, err, body)
		}
		if code != 200 && (ans["status"] != "error" || ans["error"] == "") {
			t.Fatalf("GET %s: %d without a JSON error: %s", target, code, body)
		}
		q := u.Query()
		switch endpoint % 7 {
		case 0:
			if !strings.HasPrefix(esc, prefix) {
				return
			}
			pk, err := strconv.ParseInt(u.Path[len(prefix):], 10, 64) // the {pk} segment, unescaped
			want := http.StatusOK
			switch i := pk - fuzzFirst; {
			case !clean || strings.Contains(esc[len(prefix):], "/") || esc == prefix:
				want = http.StatusNotFound // another route: /api/'s not found
			case err != nil || pk < 0:
				want = http.StatusBadRequest
			case i < 0 || i >= fuzzN || fuzzRecord(int(i)).TimeMs == 0:
				want = http.StatusNotFound
			}
			if code != want {
				t.Fatalf("GET %s: %d %s, want %d", target, code, body, want)
			}
			if want == http.StatusOK {
				r := fuzzRecord(int(pk - fuzzFirst))
				if ans["pk"] != float64(pk) || ans["followerCount"] != float64(r.Followers) || ans["followingCount"] != float64(r.Following) {
					t.Fatalf("GET %s: %s, want pk %d with %+v", target, body, pk, r)
				}
				gains, _ := ans["gains"].(map[string]any)
				avail, _ := ans["availableFrom"].(map[string]any)
				if base, ok := fuzzBaseline(int(pk - fuzzFirst)); ok {
					g, _ := gains["24h"].(map[string]any)
					if len(gains) != 2 || avail != nil || g["followers"] != float64(int64(r.Followers)-int64(base)) {
						t.Fatalf("GET %s: %s, want gains in 1h and 24h of %d", target, body, int64(r.Followers)-int64(base))
					}
				} else if gains != nil || len(avail) != 2 {
					t.Fatalf("GET %s: %s, want no gains, available from in 1h and 24h", target, body)
				}
			}
		case 1, 2:
			name, total := "n", count
			if endpoint%7 == 2 {
				name, total = "limit", suspicious
			}
			n, ok1 := pageParam(q, name, 100, 1, 1000)
			offset, ok2 := pageParam(q, "offset", 0, 0, math.MaxInt32)
			if want := map[bool]int{true: 200, false: 400}[ok1 && ok2]; code != want {
				t.Fatalf("GET %s: %d %s, want %d", target, code, body, want)
			}
			if code != 200 {
				return
			}
			infs, _ := ans["influencers"].([]any)
			if want := max(0, min(n, total-offset)); len(infs) != want || ans["offset"] != float64(offset) || ans["total"] != float64(total) {
				t.Fatalf("GET %s: %d influencers, offset %v, total %v; want %d, %d, %d", target, len(infs), ans["offset"], ans["total"], want, offset, total)
			}
			last := 0.0
			for _, x := range infs {
				rank, _ := x.(map[string]any)["rank"].(float64)
				if rank < last || rank < 1 {
					t.Fatalf("GET %s: ranks out of order: %s", target, body)
				}
				last = rank
			}
		case 6:
			if !clean {
				return
			}
			w := q.Get("window")
			order := q.Get("order")
			limit, ok1 := pageParam(q, "limit", 100, 1, 1000)
			offset, ok2 := pageParam(q, "offset", 0, 0, math.MaxInt32)
			ok := (w == "1h" || w == "24h") && (order == "" || order == "gainers" || order == "losers") && ok1 && ok2
			if want := map[bool]int{true: 200, false: 400}[ok]; code != want {
				t.Fatalf("GET %s: %d %s, want %d", target, code, body, want)
			}
			if code != 200 {
				return
			}
			items, _ := ans["items"].([]any)
			if want := max(0, min(limit, gained-offset)); len(items) != want || ans["offset"] != float64(offset) || ans["total"] != float64(gained) || ans["window"] != w {
				t.Fatalf("GET %s: %d items, offset %v, total %v; want %d, %d, %d", target, len(items), ans["offset"], ans["total"], want, offset, gained)
			}
			for k := 1; k < len(items); k++ {
				a, b := items[k-1].(map[string]any)["gain"].(float64), items[k].(map[string]any)["gain"].(float64)
				if (order == "losers" && a > b) || (order != "losers" && a < b) {
					t.Fatalf("GET %s: gains out of order: %s", target, body)
				}
			}
		default:
			if code != 200 && clean && endpoint%7 != 5 {
				t.Fatalf("GET %s: %d %s", target, code, body)
			}
		}
	})
}
