package promtext

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFetchAndSum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `# TYPE polls_total counter
polls_total{upstream="a",outcome="success"} 10
polls_total{upstream="b",outcome="success"} 5
polls_total{upstream="a",outcome="timeout"} 2
# TYPE coverage gauge
coverage 0.5
`)
	}))
	defer srv.Close()
	f, err := Fetch(http.DefaultClient, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		pairs []string
		want  float64
	}{
		{"polls_total", nil, 17},
		{"polls_total", []string{"outcome", "success"}, 15},
		{"polls_total", []string{"outcome", "success", "upstream", "a"}, 10},
		{"coverage", nil, 0.5},
		{"missing", nil, 0},
	} {
		if got := f.Sum(c.name, c.pairs...); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.pairs, got, c.want)
		}
	}
	if _, err := Fetch(http.DefaultClient, srv.URL+"/x\x00"); err == nil {
		t.Error("a bad URL must fail")
	}
	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	if _, err := Fetch(http.DefaultClient, bad.URL); err == nil {
		t.Error("a 404 must fail")
	}
}
