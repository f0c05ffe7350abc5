package plugin_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg/plugin"
)

// rankdGolden holds rankd's side of the API contract: one answer of every
// endpoint this plugin reads, written by rankd's own encoders and kept
// current by rankd's TestAPIGolden. The plugin is a module of its own and
// does not import rankd, so these files are what ties the two together.
var rankdGolden = filepath.Join("..", "..", "..", "..", "rankd", "testdata", "api")

// TestRankdContract decodes rankd's golden answers strictly into the
// plugin's types: a field rankd writes that the plugin does not know (added
// or renamed in rankd) or with another JSON type fails the decoding, and a
// field of the plugin's types that no answer sets (dropped or renamed in
// rankd, or invented here) fails the coverage check. See "The rankd API
// contract" in docs/grafana-plugin.md.
func TestRankdContract(t *testing.T) {
	types := map[string]any{
		"influencer.json": plugin.Influencer{}, "top.json": plugin.Page{}, "suspicious.json": plugin.Page{},
		"average.json": plugin.Average{}, "status.json": plugin.Status{}, "movers.json": plugin.Movers{},
	}
	set := map[reflect.Type]map[string]bool{}
	for name, typ := range types {
		b, err := os.ReadFile(filepath.Join(rankdGolden, name))
		if err != nil {
			t.Fatalf("cannot read rankd's golden answer: %v", err)
		}
		v := reflect.New(reflect.TypeOf(typ))
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.Interface()); err != nil {
			t.Fatalf("rankd's %s does not decode into plugin.%s: %v; update pkg/plugin/rankd.go to rankd's format", name, v.Elem().Type().Name(), err)
		}
		if set[v.Elem().Type()] == nil {
			set[v.Elem().Type()] = map[string]bool{}
		}
		markSet(v.Elem(), "", set[v.Elem().Type()])
	}
	for typ, seen := range set {
		for _, f := range fieldPaths(typ, "") {
			// The entries of /top and /suspicious carry no gains.
			if typ == reflect.TypeFor[plugin.Page]() && (strings.HasPrefix(f, "influencers.gains") || strings.HasPrefix(f, "influencers.availableFrom")) {
				continue
			}
			if !seen[f] {
				t.Errorf("plugin.%s.%s is set by none of rankd's answers in %s; rankd no longer writes it, or it is misspelt", typ.Name(), f, rankdGolden)
			}
		}
	}
}

// fieldPaths lists the JSON paths of every field of a struct type, through
// nested structs, pointers and slices (time.Time is one field).
func fieldPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return []string{prefix}
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		out = append(out, fieldPaths(f.Type, prefix+"."+jsonName(f))...)
	}
	if prefix == "" {
		for i := range out {
			out[i] = strings.TrimPrefix(out[i], ".")
		}
	}
	slices.Sort(out)
	return out
}

// markSet records the paths of the fields v sets to a non-zero value.
func markSet(v reflect.Value, prefix string, seen map[string]bool) {
	switch {
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			markSet(v.Elem(), prefix, seen)
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			markSet(v.Index(i), prefix, seen)
		}
	case v.Kind() == reflect.Struct && v.Type() != reflect.TypeFor[time.Time]():
		for i := range v.NumField() {
			p := jsonName(v.Type().Field(i))
			if prefix != "" {
				p = prefix + "." + p
			}
			markSet(v.Field(i), p, seen)
		}
	default:
		if !v.IsZero() {
			seen[prefix] = true
		}
	}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}
