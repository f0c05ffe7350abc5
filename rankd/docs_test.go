package rankd

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDocExamples: every JSON answer shown in docs/rankd.md decodes
// strictly (no unknown key, every value of the right type) into the type
// its endpoint answers with, and its times are what the API writes
// (RFC 3339, never a number), so that the docs cannot drift from the
// code unnoticed.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/rankd.md")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]func() any{
		"/api/v1/influencers/{pk}": func() any { return new(InfluencerJSON) },
		"/api/v1/average":          func() any { return new(AverageJSON) },
		"/api/v1/top":              func() any { return new(ListJSON) },
		"/api/v1/suspicious":       func() any { return new(ListJSON) },
		"/api/v1/status":           func() any { return new(StatusJSON) },
		"/api/v1/movers":           func() any { return new(MoversJSON) },
	}
	heading := regexp.MustCompile("^### `GET (/api/v1/[^`]*)`")
	endpoint, inJSON := "", false
	var block strings.Builder
	checked := map[string]bool{}
	for n, line := range strings.Split(string(b), "\n") {
		switch {
		case heading.MatchString(line):
			endpoint = heading.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "### "):
			endpoint = ""
		case line == "```json":
			inJSON = true
			block.Reset()
		case inJSON && line == "```":
			inJSON = false
			mk, ok := types[endpoint]
			if !ok {
				t.Fatalf("docs/rankd.md:%d: a JSON example outside an API section (%q)", n+1, endpoint)
			}
			v := mk()
			dec := json.NewDecoder(bytes.NewReader([]byte(block.String())))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("docs/rankd.md:%d: the %s example does not decode as %T: %v", n+1, endpoint, v, err)
			}
			checkTimes(t, endpoint, v)
			checked[endpoint] = true
		case inJSON:
			block.WriteString(line + "\n")
		}
	}
	for endpoint := range types {
		if !checked[endpoint] {
			t.Errorf("docs/rankd.md has no JSON example of %s", endpoint)
		}
	}
}

// checkTimes requires the example's timestamps to parse as the API's.
func checkTimes(t *testing.T, endpoint string, v any) {
	t.Helper()
	var times []string
	inf := func(i InfluencerJSON) {
		times = append(times, i.PolledAt, i.CheckedAt)
		for _, g := range i.Gains {
			times = append(times, g.From)
		}
		for _, a := range i.AvailableFrom {
			times = append(times, a)
		}
	}
	switch x := v.(type) {
	case *InfluencerJSON:
		inf(*x)
	case *ListJSON:
		for _, i := range x.Influencers {
			inf(i)
		}
	case *AverageJSON:
		times = append(times, x.SnapshotAt)
		for _, g := range x.Gains {
			times = append(times, g.Start)
		}
	case *MoversJSON:
		times = append(times, x.Start)
	}
	for _, s := range times {
		if s == "" {
			continue // absent: no verdict yet
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			t.Errorf("%s example: time %q is not RFC 3339: %v", endpoint, s, err)
		}
	}
}
