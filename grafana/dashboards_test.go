// Package grafana_test checks the dashboards and provisioning files Grafana
// is given. There is no Grafana server here, so the tests do what Grafana
// does with them: decode every dashboard with the schema of the Grafana
// Foundation SDK (strict: an unknown field or a wrong type fails), and run
// every VictoriaMetrics query a dashboard sends, with its template
// variables substituted the way Grafana's frontend and Prometheus backend
// substitute them, against a real VictoriaMetrics fed by the simulator, the
// exporter, rankd and vmalert. Every query must return data and none may
// read the whole population of influencers.
package grafana_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter/exportertest"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/rankd"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

const (
	rankdType      = "mockstagram-rankd-datasource"
	prometheusType = "prometheus"
)

// wantDashboards are the dashboards that ship, by file. Alerts and other
// dashboards link to them by uid.
var wantDashboards = map[string]string{
	"influencer.json":  "mockstagram-influencer",
	"leaderboard.json": "mockstagram-leaderboard",
	"pipeline.json":    "mockstagram-pipeline",
}

func init() {
	plugins.RegisterDefaultPlugins()
	cog.NewRuntime().RegisterDataqueryVariant(variants.DataqueryConfig{
		Identifier:                 rankdType,
		DataqueryUnmarshaler:       func(raw []byte) (variants.Dataquery, error) { return decodeRankdQuery(raw) },
		StrictDataqueryUnmarshaler: func(raw []byte) (variants.Dataquery, error) { return decodeRankdQuery(raw) },
	})
}

// rankdQuery is the query model of the rankd data source plugin. It is
// registered with the SDK's runtime so that the strict decoder checks the
// targets of rankd panels as it checks Prometheus ones.
type rankdQuery struct {
	RefID      string                `json:"refId"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	Hide       *bool                 `json:"hide,omitempty"`
	QueryType  string                `json:"queryType"`
	PK         *string               `json:"pk,omitempty"`
	N          *int                  `json:"n,omitempty"`
	Offset     *int                  `json:"offset,omitempty"`
	Limit      *int                  `json:"limit,omitempty"`
	Window     *string               `json:"window,omitempty"`
	Order      *string               `json:"order,omitempty"`
}

// decodeRankdQuery rejects unknown fields and wrong types, then validates.
func decodeRankdQuery(raw []byte) (*rankdQuery, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var q rankdQuery
	if err := dec.Decode(&q); err != nil {
		return nil, fmt.Errorf("rankd query %s: %w", raw, err)
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return &q, nil
}

func (q *rankdQuery) ImplementsDataqueryVariant() {}
func (q *rankdQuery) DataqueryType() string       { return rankdType }
func (q *rankdQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(*rankdQuery)
	return ok && reflect.DeepEqual(q, o)
}

// pkValue is a pk as rankd accepts it, or one Grafana variable; windowValue
// a gains window or one variable.
var (
	pkValue     = regexp.MustCompile(`^(\d+|\$[A-Za-z_]\w*|\$\{[A-Za-z_]\w*\})$`)
	windowValue = regexp.MustCompile(`^(\d+[smhdwy]|\$[A-Za-z_]\w*|\$\{[A-Za-z_]\w*\})$`)
)

// Validate checks the fields each query type reads, and that no other is
// set (a field the plugin ignores is a query that does not do what it says).
func (q *rankdQuery) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if q.RefID == "" {
		bad("rankd query without refId")
	}
	type field struct {
		name string
		set  bool
	}
	allowed := map[string][]string{"influencer": {"pk"}, "average": {}, "top": {"n", "offset"}, "suspicious": {"limit", "offset"},
		"gains": {"pk"}, "movers": {"window", "order", "limit", "offset"}}
	want, ok := allowed[q.QueryType]
	if !ok {
		bad("rankd query %s: queryType %q; want influencer, average, top, suspicious, gains or movers", q.RefID, q.QueryType)
	}
	for _, f := range []field{{"pk", q.PK != nil}, {"n", q.N != nil}, {"offset", q.Offset != nil}, {"limit", q.Limit != nil},
		{"window", q.Window != nil}, {"order", q.Order != nil}} {
		if ok && f.set && !slices.Contains(want, f.name) {
			bad("rankd query %s: queryType %s does not read %s", q.RefID, q.QueryType, f.name)
		}
	}
	switch {
	case (q.QueryType == "influencer" || q.QueryType == "gains") && (q.PK == nil || !pkValue.MatchString(*q.PK)):
		bad("rankd query %s: an %s query needs pk, an integer or one variable such as $pk, as a string", q.RefID, q.QueryType)
	case q.QueryType == "movers" && (q.Window == nil || !windowValue.MatchString(*q.Window)):
		bad("rankd query %s: a movers query needs window, a duration such as 24h or one variable such as $window", q.RefID)
	case q.Order != nil && *q.Order != "gainers" && *q.Order != "losers":
		bad("rankd query %s: order=%q, want gainers or losers", q.RefID, *q.Order)
	case q.N != nil && (*q.N < 1 || *q.N > 1000):
		bad("rankd query %s: n=%d, want 1..1000", q.RefID, *q.N)
	case q.Limit != nil && (*q.Limit < 1 || *q.Limit > 1000):
		bad("rankd query %s: limit=%d, want 1..1000", q.RefID, *q.Limit)
	case q.Offset != nil && *q.Offset < 0:
		bad("rankd query %s: offset=%d, want >= 0", q.RefID, *q.Offset)
	}
	return errors.Join(errs...)
}

// repoPath is a path under the repository root.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{vmtest.RepoRoot()}, elem...)...)
}

// board is one dashboard file, decoded.
type board struct {
	file string
	raw  []byte
	d    dashboard.Dashboard
}

// parseDashboard decodes a dashboard as strictly as the SDK can and runs
// its validation. The SDK (v0.0.12) decodes a panel's fieldConfig loosely
// and takes any panel type; both are checked here too.
func parseDashboard(raw []byte) (dashboard.Dashboard, error) {
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(raw); err != nil {
		return d, fmt.Errorf("does not match the dashboard schema: %w", err)
	}
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("fails validation: %w", err)
	}
	var doc struct {
		Panels []struct {
			Type        string          `json:"type"`
			Title       string          `json:"title"`
			FieldConfig json.RawMessage `json:"fieldConfig"`
			Panels      []struct {
				Type        string          `json:"type"`
				Title       string          `json:"title"`
				FieldConfig json.RawMessage `json:"fieldConfig"`
			} `json:"panels"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return d, err
	}
	var errs []error
	check := func(typ, title string, fc json.RawMessage) {
		if _, ok := cog.ConfigForPanelcfgVariant(typ); !ok && typ != "row" {
			errs = append(errs, fmt.Errorf("panel %q: type %q is not a Grafana panel plugin", title, typ))
		}
		if fc != nil {
			if err := new(dashboard.FieldConfigSource).UnmarshalJSONStrict(fc); err != nil {
				errs = append(errs, fmt.Errorf("panel %q: fieldConfig: %w", title, err))
			}
		}
	}
	for _, p := range doc.Panels {
		check(p.Type, p.Title, p.FieldConfig)
		for _, c := range p.Panels {
			check(c.Type, c.Title, c.FieldConfig)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return d, fmt.Errorf("does not match the dashboard schema: %w", err)
	}
	return d, nil
}

// loadDashboards reads every grafana/dashboards/*.json and requires the
// shipped set.
func loadDashboards(t *testing.T) []board {
	t.Helper()
	files, err := filepath.Glob(repoPath("grafana", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []board
	seen := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		seen[name] = true
		d, err := parseDashboard(raw)
		if err != nil {
			t.Errorf("grafana/dashboards/%s %v", name, err)
			continue
		}
		out = append(out, board{file: name, raw: raw, d: d})
	}
	for name := range wantDashboards {
		if !seen[name] {
			t.Errorf("grafana/dashboards/%s is missing", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// panels flattens rows: a collapsed row holds its panels, an open one is
// followed by them.
func panels(d dashboard.Dashboard) []dashboard.Panel {
	var out []dashboard.Panel
	for _, p := range d.Panels {
		if p.Panel != nil {
			out = append(out, *p.Panel)
		}
		if p.RowPanel != nil {
			out = append(out, p.RowPanel.Panels...)
		}
	}
	return out
}

func title(p dashboard.Panel) string {
	if p.Title == nil {
		return fmt.Sprintf("panel %d", deref(p.Id))
	}
	return *p.Title
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func TestDashboardsParseStrictly(t *testing.T) {
	boards := loadDashboards(t)
	for _, b := range boards {
		if want := wantDashboards[b.file]; deref(b.d.Uid) != want {
			t.Errorf("%s: uid %q, want %q (alerts and links open /d/%s/...)", b.file, deref(b.d.Uid), want, want)
		}
		n := 0
		for _, p := range panels(b.d) {
			n += len(p.Targets)
		}
		if n == 0 {
			t.Errorf("%s: no query at all", b.file)
		}
	}

	// The decoder is strict: each of these breaks a good dashboard in one
	// place, and each must be rejected.
	var base map[string]any
	if err := json.Unmarshal(boards[0].raw, &base); err != nil {
		t.Fatal(err)
	}
	f := func(what string, mutate func(d map[string]any), wantErr string) {
		t.Helper()
		var d map[string]any
		json.Unmarshal(boards[0].raw, &d)
		mutate(d)
		raw, _ := json.Marshal(d)
		_, err := parseDashboard(raw)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: parse error %v, want one containing %q", what, err, wantErr)
		}
	}
	firstPanel := func(d map[string]any) map[string]any { return d["panels"].([]any)[0].(map[string]any) }
	firstTarget := func(d map[string]any) map[string]any {
		for _, p := range d["panels"].([]any) {
			p := p.(map[string]any)
			if ts, ok := p["targets"].([]any); ok && len(ts) > 0 && p["datasource"].(map[string]any)["type"] == prometheusType {
				return ts[0].(map[string]any)
			}
		}
		t.Fatal("no Prometheus target")
		return nil
	}
	f("unknown dashboard field", func(d map[string]any) { d["refreshh"] = "1m" }, "unexpected field 'refreshh'")
	f("unknown panel field", func(d map[string]any) { firstPanel(d)["titel"] = "x" }, "unexpected field 'titel'")
	f("wrong type in panel options", func(d map[string]any) {
		firstPanel(d)["options"].(map[string]any)["wideLayout"] = "yes"
	}, "wideLayout")
	f("unknown Prometheus target field", func(d map[string]any) { firstTarget(d)["exprr"] = "up" }, "unexpected field 'exprr'")
	f("missing templating", func(d map[string]any) { delete(d, "templating") }, "templating")
	f("unknown field default", func(d map[string]any) {
		firstPanel(d)["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["unitt"] = "s"
	}, "unexpected field 'unitt'")
	f("unknown panel type", func(d map[string]any) { firstPanel(d)["type"] = "graph2" }, `type "graph2" is not a Grafana panel plugin`)
	// rankd query models.
	rq := func(q string, wantErr string) {
		t.Helper()
		_, err := decodeRankdQuery([]byte(q))
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("decodeRankdQuery(%s) = %v, want %q", q, err, wantErr)
		}
	}
	rq(`{"refId":"A","queryType":"influencer","pk":"$pk"}`, "")
	rq(`{"refId":"A","queryType":"influencer","pk":"1000001"}`, "")
	rq(`{"refId":"A","queryType":"top","n":100,"offset":0}`, "")
	rq(`{"refId":"A","queryType":"suspicious","limit":100,"offset":0}`, "")
	rq(`{"refId":"A","queryType":"average"}`, "")
	rq(`{"refId":"A","queryType":"gains","pk":"$pk"}`, "")
	rq(`{"refId":"A","queryType":"movers","window":"$window","order":"losers","limit":100,"offset":0}`, "")
	rq(`{"refId":"A","queryType":"movers","window":"24h"}`, "")
	rq(`{"refId":"A","queryType":"movers"}`, "needs window")
	rq(`{"refId":"A","queryType":"movers","window":"24h","order":"up"}`, `order="up"`)
	rq(`{"refId":"A","queryType":"gains","window":"24h","pk":"1"}`, "does not read window")
	rq(`{"refId":"A","queryType":"rank","pk":"1"}`, `queryType "rank"`)
	rq(`{"refId":"A","queryType":"influencer","pk":1000001}`, "cannot unmarshal number")
	rq(`{"refId":"A","queryType":"influencer","pk":"abc"}`, "needs pk")
	rq(`{"refId":"A","queryType":"influencer"}`, "needs pk")
	rq(`{"refId":"A","queryType":"top","n":"100"}`, "cannot unmarshal string")
	rq(`{"refId":"A","queryType":"top","n":5000}`, "n=5000")
	rq(`{"refId":"A","queryType":"top","limit":5}`, "does not read limit")
	rq(`{"refId":"A","queryType":"suspicious","limit":0}`, "limit=0")
	rq(`{"refId":"A","queryType":"average","pkk":"1"}`, `unknown field "pkk"`)
	rq(`{"queryType":"average"}`, "without refId")
}

// dsRef says which data source a panel, target or variable uses.
func dsRef(r *common.DataSourceRef) string {
	if r == nil {
		return "<none>"
	}
	return deref(r.Type) + "/" + deref(r.Uid)
}

var (
	vmRef    = prometheusType + "/${datasource}"
	rankdRef = rankdType + "/${rankd}"
)

// TestDashboardConventions checks what makes the dashboards portable and
// navigable: data sources only through the two variables, every link to a
// dashboard that exists with the time range kept, a sane grid.
func TestDashboardConventions(t *testing.T) {
	boards := loadDashboards(t)
	uids := map[string]bool{}
	for _, b := range boards {
		uids[deref(b.d.Uid)] = true
	}
	for _, b := range boards {
		vars := map[string]dashboard.VariableModel{}
		for _, v := range b.d.Templating.List {
			vars[v.Name] = v
		}
		dsVar := func(name, plugin string) {
			v, ok := vars[name]
			if !ok {
				t.Errorf("%s: no variable %q; data sources are picked through variables so that the dashboards work with any data source name or uid", b.file, name)
				return
			}
			if v.Type != dashboard.VariableTypeDatasource || v.Query == nil || deref(v.Query.String) != plugin {
				t.Errorf("%s: variable %s is %s over %v, want a data source variable over %s", b.file, name, v.Type, v.Query, plugin)
			}
		}
		dsVar("datasource", prometheusType)
		usesRankd := false
		ids := map[uint32]string{}
		occupied := map[int]string{}
		for _, r := range b.d.Panels {
			if r.RowPanel != nil {
				ids[r.RowPanel.Id] = "row " + deref(r.RowPanel.Title)
			}
		}
		for _, p := range panels(b.d) {
			name := title(p)
			if p.Id == nil {
				t.Errorf("%s: panel %q has no id", b.file, name)
			} else if prev, dup := ids[*p.Id]; dup {
				t.Errorf("%s: panels %q and %q share id %d", b.file, prev, name, *p.Id)
			} else {
				ids[*p.Id] = name
			}
			if g := p.GridPos; g == nil || g.W < 1 || g.X+g.W > 24 || g.H < 1 {
				t.Errorf("%s: panel %q gridPos %+v is outside the 24-column grid", b.file, name, g)
			} else {
			cells:
				for y := g.Y; y < g.Y+g.H; y++ {
					for x := g.X; x < g.X+g.W; x++ {
						if other, taken := occupied[int(y)*24+int(x)]; taken {
							t.Errorf("%s: panels %q and %q overlap at x=%d y=%d", b.file, other, name, x, y)
							break cells
						}
						occupied[int(y)*24+int(x)] = name
					}
				}
			}
			ref := dsRef(p.Datasource)
			if ref != vmRef && ref != rankdRef {
				t.Errorf("%s: panel %q uses data source %s, want %s or %s", b.file, name, ref, vmRef, rankdRef)
			}
			usesRankd = usesRankd || ref == rankdRef
			for _, q := range p.Targets {
				var tref string
				switch q := q.(type) {
				case *prometheus.Dataquery:
					tref = dsRef(q.Datasource)
					if strings.TrimSpace(q.Expr) == "" {
						t.Errorf("%s: panel %q has an empty query", b.file, name)
					}
				case *rankdQuery:
					tref = dsRef(q.Datasource)
				default:
					t.Errorf("%s: panel %q has a target of unknown type %T; set its datasource", b.file, name, q)
				}
				if tref != ref {
					t.Errorf("%s: panel %q: a target uses %s, the panel %s", b.file, name, tref, ref)
				}
			}
		}
		if usesRankd {
			dsVar("rankd", rankdType)
		}
		for _, v := range b.d.Templating.List {
			if v.Type == dashboard.VariableTypeQuery && dsRef(v.Datasource) != vmRef {
				t.Errorf("%s: variable %s queries %s, want %s", b.file, v.Name, dsRef(v.Datasource), vmRef)
			}
		}
		for _, a := range b.d.Annotations.List {
			if deref(a.BuiltIn) == 1 {
				continue
			}
			q, ok := a.Target.(*prometheus.Dataquery)
			if !ok || dsRef(a.Datasource) != vmRef || dsRef(q.Datasource) != vmRef {
				t.Errorf("%s: annotation %q must be a Prometheus query on %s", b.file, a.Name, vmRef)
			}
		}

		// Links: every /d/<uid> exists; dashboard links keep the time range,
		// data links pass it on.
		linked := map[string]bool{}
		for _, l := range b.d.Links {
			uid := linkedUID(deref(l.Url))
			if uid == "" || !uids[uid] {
				t.Errorf("%s: link %q goes to %q, not to a shipped dashboard", b.file, l.Title, deref(l.Url))
			}
			if !l.KeepTime {
				t.Errorf("%s: link %q drops the time range; set keepTime", b.file, l.Title)
			}
			linked[uid] = true
		}
		for uid := range uids {
			if uid != deref(b.d.Uid) && !linked[uid] {
				t.Errorf("%s: no link to dashboard %s", b.file, uid)
			}
		}
		for _, u := range dataLinks(b.raw) {
			uid := linkedUID(u)
			if uid == "" || !uids[uid] {
				t.Errorf("%s: data link %q does not open a shipped dashboard", b.file, u)
			}
			if !strings.Contains(u, "${__url_time_range}") {
				t.Errorf("%s: data link %q drops the time range; add &${__url_time_range}", b.file, u)
			}
			if uid == "mockstagram-influencer" && !strings.Contains(u, "var-pk=") {
				t.Errorf("%s: data link %q opens the influencer dashboard without var-pk", b.file, u)
			}
		}
	}

	// The influencer dashboard opens on a pk typed in, with a default.
	for _, b := range boards {
		if deref(b.d.Uid) != "mockstagram-influencer" {
			continue
		}
		var pk *dashboard.VariableModel
		for i, v := range b.d.Templating.List {
			if v.Name == "pk" {
				pk = &b.d.Templating.List[i]
			}
		}
		if pk == nil || pk.Type != dashboard.VariableTypeCustom || !deref(pk.Multi) || !deref(pk.AllowCustomValue) || deref(pk.IncludeAll) ||
			!slices.Equal(currentValues(pk.Current), []string{"1000001"}) {
			t.Errorf("influencer.json: want a custom multi-value variable pk that takes typed pks, without All, with default 1000001, got %+v", pk)
		}
	}
}

// linkedUID returns the uid of a /d/<uid>/... URL, or "".
func linkedUID(u string) string {
	rest, ok := strings.CutPrefix(u, "/d/")
	if !ok {
		return ""
	}
	uid, _, _ := strings.Cut(rest, "/")
	uid, _, _ = strings.Cut(uid, "?")
	return uid
}

// dataLinks returns the url of every data link (field links in defaults or
// in overrides), wherever it sits.
func dataLinks(raw []byte) []string {
	var doc any
	json.Unmarshal(raw, &doc)
	var out []string
	var walk func(v any, inLinks bool)
	walk = func(v any, inLinks bool) {
		switch v := v.(type) {
		case map[string]any:
			if inLinks {
				if u, ok := v["url"].(string); ok {
					out = append(out, u)
				}
			}
			for k, e := range v {
				walk(e, k == "links" || (k == "value" && v["id"] == "links"))
			}
		case []any:
			for _, e := range v {
				walk(e, inLinks)
			}
		}
	}
	// Dashboard-level links are checked above; only panels here.
	if m, ok := doc.(map[string]any); ok {
		walk(m["panels"], false)
	}
	return out
}

// Provisioning files, as much of Grafana's schema as they use; unknown
// keys fail the decode.
type datasourcesFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name           string            `yaml:"name"`
		UID            string            `yaml:"uid"`
		Type           string            `yaml:"type"`
		Access         string            `yaml:"access"`
		URL            string            `yaml:"url"`
		IsDefault      bool              `yaml:"isDefault"`
		Editable       bool              `yaml:"editable"`
		JSONData       map[string]any    `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

type dashboardsFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		FolderUID             string `yaml:"folderUid"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func readYAMLStrict(t *testing.T, path string, dst any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// scrapeInterval reads the global scrape_interval of victoria/scrape.yml.
func scrapeInterval(t *testing.T) string {
	t.Helper()
	var cfg struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
		} `yaml:"global"`
	}
	raw, err := os.ReadFile(repoPath("victoria", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil || cfg.Global.ScrapeInterval == "" {
		t.Fatalf("victoria/scrape.yml: no global scrape_interval (%v)", err)
	}
	return cfg.Global.ScrapeInterval
}

func TestProvisioning(t *testing.T) {
	var ds datasourcesFile
	readYAMLStrict(t, repoPath("grafana", "provisioning", "datasources", "mockstagram.yml"), &ds)
	if ds.APIVersion != 1 {
		t.Errorf("datasources: apiVersion %d, want 1", ds.APIVersion)
	}
	byType := map[string]int{}
	for _, d := range ds.Datasources {
		byType[d.Type]++
		if d.UID == "" || d.Name == "" || d.URL == "" {
			t.Errorf("datasource %+v: name, uid and url are required", d)
		}
		switch d.Type {
		case prometheusType:
			// $__rate_interval is max($__interval + timeInterval, 4 x
			// timeInterval): with any other value than the scrape interval
			// a rate() window holds too few samples or smooths too much.
			if got, want := d.JSONData["timeInterval"], scrapeInterval(t); got != want {
				t.Errorf("datasource %s: jsonData.timeInterval %v, want %s, the scrape_interval of victoria/scrape.yml", d.Name, got, want)
			}
			if !d.IsDefault {
				t.Errorf("datasource %s: set isDefault, so the dashboards' datasource variable picks it", d.Name)
			}
		case rankdType:
			if u, _ := d.JSONData["url"].(string); !strings.HasPrefix(u, "http") {
				t.Errorf("datasource %s: jsonData.url %q, want rankd's base URL", d.Name, u)
			}
		default:
			t.Errorf("datasource %s: unexpected type %s", d.Name, d.Type)
		}
	}
	if byType[prometheusType] != 1 || byType[rankdType] != 1 {
		t.Errorf("datasources by type %v, want one %s and one %s", byType, prometheusType, rankdType)
	}

	var db dashboardsFile
	readYAMLStrict(t, repoPath("grafana", "provisioning", "dashboards", "mockstagram.yml"), &db)
	if db.APIVersion != 1 || len(db.Providers) != 1 {
		t.Fatalf("dashboards: apiVersion %d with %d providers, want 1 and 1", db.APIVersion, len(db.Providers))
	}
	p := db.Providers[0]
	if p.Type != "file" || !filepath.IsAbs(p.Options.Path) {
		t.Errorf("dashboard provider %s: type %q path %q, want type file and the absolute path grafana/dashboards is mounted at", p.Name, p.Type, p.Options.Path)
	}
}

// --- Grafana's query interpolation -----------------------------------------

// grafanaQuery is everything Grafana works out before it sends a query:
// the range, the step and the built-in interval variables.
type grafanaQuery struct {
	from, to      time.Time
	intervalMs    time.Duration // the frontend's $__interval (before the backend's minimums)
	step          time.Duration // the backend's final step, also $__interval
	rateInterval  time.Duration
	maxDataPoints int64
}

// dashboardWidthPx is the browser width the test assumes; a panel's
// maxDataPoints is its width in pixels unless it sets one.
const dashboardWidthPx = 1600

// planQuery follows Grafana: the frontend's interval is range /
// maxDataPoints rounded, at least the panel's min interval or else the data
// source's timeInterval (rangeutil.calculateInterval); the Prometheus
// backend then takes the step as that interval, at least the target's own
// interval and at least range / 11000 (promlib models.Parse), and
// $__rate_interval as max(interval + timeInterval, 4 x timeInterval).
func planQuery(from, to time.Time, maxDataPoints int64, panelInterval, targetInterval string, timeInterval time.Duration) (grafanaQuery, error) {
	q := grafanaQuery{from: from, to: to, maxDataPoints: maxDataPoints}
	rng := to.Sub(from)
	low := timeInterval
	if panelInterval != "" {
		d, err := parseGrafanaDuration(panelInterval)
		if err != nil {
			return q, fmt.Errorf("panel interval: %w", err)
		}
		low = d
	}
	q.intervalMs = max(roundInterval(rng/time.Duration(maxDataPoints)), low)

	minInterval := q.intervalMs
	if targetInterval != "" && !strings.Contains(targetInterval, "$") {
		d, err := parseGrafanaDuration(targetInterval)
		if err != nil {
			return q, fmt.Errorf("target interval: %w", err)
		}
		minInterval = d
	}
	calculated := minInterval
	if per := rng / time.Duration(maxDataPoints); per >= minInterval {
		calculated = roundInterval(per)
	}
	q.step = max(calculated, roundInterval(rng/11000))
	scrape := timeInterval
	if targetInterval != "" && !strings.Contains(targetInterval, "$") {
		scrape = minInterval
	}
	q.rateInterval = max(q.intervalMs+scrape, 4*scrape)
	return q, nil
}

// interpolate replaces Grafana's built-in variables the way promlib's
// InterpolateVariables does.
func (q grafanaQuery) interpolate(expr string) string {
	rng := q.to.Sub(q.from)
	rangeS := strconv.FormatInt(int64(math.Round(float64(rng.Milliseconds())/1000)), 10)
	r := strings.NewReplacer(
		"${__interval_ms}", strconv.FormatInt(q.step.Milliseconds(), 10), "$__interval_ms", strconv.FormatInt(q.step.Milliseconds(), 10),
		"${__interval}", formatInterval(q.step), "$__interval", formatInterval(q.step),
		"${__range_ms}", strconv.FormatInt(rng.Milliseconds(), 10), "$__range_ms", strconv.FormatInt(rng.Milliseconds(), 10),
		"${__range_s}", rangeS, "$__range_s", rangeS,
		"${__range}", rangeS+"s", "$__range", rangeS+"s",
		"${__rate_interval_ms}", strconv.FormatInt(q.rateInterval.Milliseconds(), 10), "$__rate_interval_ms", strconv.FormatInt(q.rateInterval.Milliseconds(), 10),
		"${__rate_interval}", q.rateInterval.String(), "$__rate_interval", q.rateInterval.String(),
	)
	return r.Replace(expr)
}

// roundInterval is Grafana's gtime.RoundInterval.
func roundInterval(d time.Duration) time.Duration {
	ms := time.Millisecond
	table := []struct{ upTo, to time.Duration }{
		{10 * ms, 1 * ms}, {15 * ms, 10 * ms}, {35 * ms, 20 * ms}, {75 * ms, 50 * ms}, {150 * ms, 100 * ms},
		{350 * ms, 200 * ms}, {750 * ms, 500 * ms}, {1500 * ms, time.Second}, {3500 * ms, 2 * time.Second},
		{7500 * ms, 5 * time.Second}, {12500 * ms, 10 * time.Second}, {17500 * ms, 15 * time.Second},
		{25 * time.Second, 20 * time.Second}, {45 * time.Second, 30 * time.Second}, {90 * time.Second, time.Minute},
		{210 * time.Second, 2 * time.Minute}, {450 * time.Second, 5 * time.Minute}, {750 * time.Second, 10 * time.Minute},
		{1050 * time.Second, 15 * time.Minute}, {1500 * time.Second, 20 * time.Minute}, {2700 * time.Second, 30 * time.Minute},
		{5400 * time.Second, time.Hour}, {9000 * time.Second, 2 * time.Hour}, {16200 * time.Second, 3 * time.Hour},
		{32400 * time.Second, 6 * time.Hour}, {24 * time.Hour, 12 * time.Hour}, {48 * time.Hour, 24 * time.Hour},
		{7 * 24 * time.Hour, 24 * time.Hour}, {21 * 24 * time.Hour, 7 * 24 * time.Hour},
	}
	for _, e := range table {
		if d <= e.upTo {
			return e.to
		}
	}
	if d < 730*24*time.Hour {
		return 30 * 24 * time.Hour
	}
	return 365 * 24 * time.Hour
}

// formatInterval is Grafana's gtime.FormatInterval: the largest whole unit.
func formatInterval(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{365 * 24 * time.Hour, "y"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d >= u.d {
			return strconv.FormatInt(int64(d/u.d), 10) + u.unit
		}
	}
	return "1ms"
}

// parseGrafanaDuration reads "30s", "1m", "500ms", "1d" and "1w".
func parseGrafanaDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		return time.Duration(v) * 24 * time.Hour, err
	}
	if n, ok := strings.CutSuffix(s, "w"); ok {
		v, err := strconv.Atoi(n)
		return time.Duration(v) * 7 * 24 * time.Hour, err
	}
	return time.ParseDuration(s)
}

func TestGrafanaIntervals(t *testing.T) {
	now := time.Date(2025, 11, 22, 12, 0, 0, 0, time.UTC)
	f := func(rng time.Duration, maxDP int64, panelInterval, targetInterval string, scrape time.Duration, wantStep, wantRate time.Duration, expr, wantExpr string) {
		t.Helper()
		q, err := planQuery(now.Add(-rng), now, maxDP, panelInterval, targetInterval, scrape)
		if err != nil {
			t.Fatal(err)
		}
		if q.step != wantStep || q.rateInterval != wantRate {
			t.Errorf("range %s, %d points, intervals %q/%q, scrape %s: step %s rate %s, want %s and %s", rng, maxDP, panelInterval, targetInterval, scrape, q.step, q.rateInterval, wantStep, wantRate)
		}
		if got := q.interpolate(expr); got != wantExpr {
			t.Errorf("interpolate(%q) = %q, want %q", expr, got, wantExpr)
		}
	}
	// Production: 30 s scrapes. 6 h over 800 px is 27 s a point, below
	// the 30 s floor; the rate window is 4 scrapes.
	f(6*time.Hour, 800, "", "", 30*time.Second, 30*time.Second, 2*time.Minute,
		`rate(x[$__rate_interval]) [$__interval] $__range`, `rate(x[2m0s]) [30s] 21600s`)
	// 7 days over 1600 px: 378 s a point, rounded to 5 m; the rate window
	// is one interval plus a scrape.
	f(7*24*time.Hour, 1600, "", "", 30*time.Second, 5*time.Minute, 5*time.Minute+30*time.Second,
		`x[${__interval}] ${__range_s} $__interval_ms`, `x[5m] 604800 300000`)
	// The test's scale: 1 s scrapes over 5 minutes.
	f(5*time.Minute, 533, "", "", time.Second, time.Second, 4*time.Second, `[$__rate_interval]`, `[4s]`)
	// A panel min interval raises both.
	f(5*time.Minute, 533, "1m", "", time.Second, time.Minute, time.Minute+time.Second, `[$__interval]`, `[1m]`)
	// A target interval sets the step floor and the scrape the rate uses.
	f(time.Hour, 1000, "", "10s", time.Second, 10*time.Second, 40*time.Second, `[$__rate_interval]`, `[40s]`)
}

// --- template variables ------------------------------------------------------

// prometheusRegularEscape and prometheusSpecialRegexEscape are how the
// Prometheus data source's frontend formats variable values: a single-value
// variable is escaped for a quoted string, a multi-value or include-All one
// for a regexp inside a quoted string, several values joined as (a|b).
func prometheusRegularEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\\'`).Replace(v)
}

func prometheusSpecialRegexEscape(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '\\':
			b.WriteString(`\\\\`)
		case strings.ContainsRune(`$^*{}[]'+?.()|`, r):
			b.WriteString(`\\`)
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// variable is a template variable with the values Grafana would select.
type variable struct {
	model  dashboard.VariableModel
	values []string
}

func (v variable) format() string {
	multi := deref(v.model.Multi) || deref(v.model.IncludeAll)
	if !multi {
		return prometheusRegularEscape(v.values[0])
	}
	esc := make([]string, len(v.values))
	for i, s := range v.values {
		esc[i] = prometheusSpecialRegexEscape(s)
	}
	if len(esc) == 1 {
		return esc[0]
	}
	return "(" + strings.Join(esc, "|") + ")"
}

var userVariable = regexp.MustCompile(`\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\[\[([A-Za-z_]\w*)\]\]|\$([A-Za-z_]\w*)`)

// substitute replaces the dashboard's own variables; the built-in $__ ones
// are left to interpolate, as Grafana's frontend leaves them to the backend.
func substitute(expr string, vars map[string]variable) (string, error) {
	var unknown []string
	out := userVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sm := userVariable.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		if strings.HasPrefix(name, "__") {
			return m
		}
		v, ok := vars[name]
		if !ok || len(v.values) == 0 {
			unknown = append(unknown, m)
			return m
		}
		return v.format()
	})
	if len(unknown) > 0 {
		return out, fmt.Errorf("variables without a value: %s", strings.Join(unknown, ", "))
	}
	return out, nil
}

func currentValues(o *dashboard.VariableOption) []string {
	if o == nil {
		return nil
	}
	if o.Value.String != nil {
		return []string{*o.Value.String}
	}
	return o.Value.ArrayOfString
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.*),\s*([A-Za-z_]\w*)\)$`)

// resolveVariables gives every variable the value Grafana would: a
// textbox its text, a query variable the current selection if it is among
// the values the query returns (all of them for All), else the first.
func resolveVariables(t *testing.T, b board, api *promAPI, q grafanaQuery) map[string]variable {
	t.Helper()
	vars := map[string]variable{}
	for _, m := range b.d.Templating.List {
		v := variable{model: m}
		switch m.Type {
		case dashboard.VariableTypeDatasource:
			continue // chosen by type; no query runs
		case dashboard.VariableTypeCustom:
			// Grafana's selection: the current values (typed ones too when
			// allowCustomValue), else the first option.
			v.values = currentValues(m.Current)
			if len(v.values) == 0 && len(m.Options) > 0 {
				v.values = currentValues(&m.Options[0])
			}
		case dashboard.VariableTypeTextbox:
			v.values = currentValues(m.Current)
			if len(v.values) == 0 && m.Query != nil {
				v.values = []string{deref(m.Query.String)}
			}
		case dashboard.VariableTypeQuery:
			query := deref(m.Definition)
			if m.Query != nil && m.Query.Map != nil {
				query, _ = m.Query.Map["query"].(string)
			}
			sm := labelValuesQuery.FindStringSubmatch(query)
			if sm == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label); the test runs only those", b.file, m.Name, query)
				continue
			}
			sel, err := substitute(sm[1], vars)
			if err != nil {
				t.Errorf("%s: variable %s: %v", b.file, m.Name, err)
				continue
			}
			checkCheap(t, b.file+": variable "+m.Name, sel)
			all, err := api.labelValues(sm[2], sel, q.from, q.to)
			if err != nil || len(all) == 0 {
				t.Errorf("%s: variable %s: label_values(%s, %s) returned %v (%v); want values", b.file, m.Name, sel, sm[2], all, err)
				continue
			}
			cur := currentValues(m.Current)
			switch {
			case slices.Contains(cur, "$__all"):
				v.values = all
			case len(cur) > 0 && slices.Contains(all, cur[0]):
				v.values = cur
			default:
				v.values = all[:1]
			}
		default:
			t.Errorf("%s: variable %s has type %s, which the test cannot resolve", b.file, m.Name, m.Type)
			continue
		}
		vars[m.Name] = v
	}
	return vars
}

// --- cost ----------------------------------------------------------------

// checkCheap fails an expression that reads every influencer: a selector of
// an influencer series without an exact pk, or one without a metric name.
// Recorded series (level:metric:ops), exporter and rankd telemetry and
// ALERTS are bounded by the number of targets or alerts.
func checkCheap(t *testing.T, where, expr string) {
	t.Helper()
	if err := cheap(expr); err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
	}
}

// pkList is a regexp that matches only listed pks: the multi-value pk
// variable as Grafana formats it, (1000001|1000002), or one pk.
var pkList = regexp.MustCompile(`^\(?\d+(\|\d+)*\)?$`)

func cheap(expr string) error {
	e, err := metricsql.Parse(expr)
	if err != nil {
		return fmt.Errorf("cannot parse MetricsQL: %w", err)
	}
	var errs []error
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		me, ok := e.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, lfs := range me.LabelFilterss {
			name, pk := "", false
			for _, lf := range lfs {
				exact := !lf.IsRegexp && !lf.IsNegative && lf.Value != ""
				if lf.Label == "__name__" && exact {
					name = lf.Value
				}
				if lf.Label == "pk" && (exact || lf.IsRegexp && !lf.IsNegative && pkList.MatchString(lf.Value)) {
					pk = true
				}
			}
			switch {
			case name == "":
				errs = append(errs, fmt.Errorf("selector %s has no exact metric name, so it may read every influencer series; name the metric", me.AppendString(nil)))
			case strings.HasPrefix(name, "mockstagram_influencer_") && !pk:
				errs = append(errs, fmt.Errorf("selector %s reads every influencer (1M series, 3-24 s per evaluation); add pk=\"$pk\" or use rankd or the recording rule", me.AppendString(nil)))
			}
		}
	})
	return errors.Join(errs...)
}

func TestCheapCheck(t *testing.T) {
	f := func(expr, wantErr string) {
		t.Helper()
		err := cheap(expr)
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("cheap(%q) = %v, want %q", expr, err, wantErr)
		}
	}
	f(`mockstagram_influencer_followers{pk="1000001"}`, "")
	f(`last_over_time(mockstagram_influencer_followers{pk="1"}[1h]) / (last_over_time(mockstagram_influencer_following{pk="1"}[1h]) > 0)`, "")
	f(`mockstagram_population_followers_average`, "")
	f(`sum by (outcome) (rate(mockstagram_exporter_polls_total[4s]))`, "")
	f(`count(ALERTS{alertname="InfluencerFollowerJump"}) or vector(0)`, "")
	f(`mockstagram_influencer_followers`, "reads every influencer")
	f(`topk(10, last_over_time(mockstagram_influencer_followers[5m]))`, "reads every influencer")
	f(`mockstagram_influencer_followers{pk=~"(1000001|1000002)"}`, "")
	f(`delta(mockstagram_influencer_followers{pk=~"1000001"}[1d])`, "")
	f(`mockstagram_influencer_followers{pk=~"(1000001|.*)"}`, "reads every influencer")
	f(`mockstagram_influencer_followers{pk!~"(1000001)"}`, "reads every influencer")
	f(`mockstagram_influencer_followers{pk=~".+"}`, "reads every influencer")
	f(`mockstagram_influencer_followers{pk!="1"}`, "reads every influencer")
	f(`mockstagram_influencer_followers{pk="1"} / mockstagram_influencer_following`, "reads every influencer")
	f(`{__name__=~"mockstagram_influencer_.*", pk="1"}`, "no exact metric name")
	f(`{job="mockstagram_influencers"}`, "no exact metric name")
	f(`sum(`, "cannot parse")
}

// TestQueriesNeverScanThePopulation runs the cost check over every
// expression the dashboards hold, without a database.
func TestQueriesNeverScanThePopulation(t *testing.T) {
	n := 0
	for _, b := range loadDashboards(t) {
		for _, e := range exprs(b) {
			s, err := substitute(e.expr, sampleVars)
			if err != nil {
				t.Errorf("%s: %v", e.where, err)
				continue
			}
			checkCheap(t, e.where, (grafanaQuery{from: time.Unix(0, 0), to: time.Unix(3600, 0), step: time.Minute, rateInterval: 2 * time.Minute}).interpolate(s))
			n++
		}
	}
	if n < 30 {
		t.Errorf("checked only %d expressions; the dashboards hold more", n)
	}
}

// sampleVars are values for the cost check, which needs no database.
var sampleVars = map[string]variable{
	"pk":       {values: []string{"1000001"}},
	"username": {values: []string{"influencer-1000001"}},
	"instance": {model: dashboard.VariableModel{IncludeAll: new(true)}, values: []string{"exporter-0:9866", "exporter-1:9866"}},
}

// expr is one VictoriaMetrics query of a dashboard and what Grafana needs
// to plan it.
type expr struct {
	where    string
	expr     string
	instant  bool
	panel    *dashboard.Panel // nil for annotations and variables
	interval string           // the target's min step
}

// exprs lists the Prometheus queries of panels and annotations.
func exprs(b board) []expr {
	var out []expr
	for _, p := range panels(b.d) {
		for _, q := range p.Targets {
			pq, ok := q.(*prometheus.Dataquery)
			if !ok || deref(pq.Hide) {
				continue
			}
			out = append(out, expr{
				where: fmt.Sprintf("%s: panel %q query %s", b.file, title(p), deref(pq.RefId)),
				expr:  pq.Expr, instant: deref(pq.Instant) && !deref(pq.Range), panel: &p, interval: deref(pq.Interval),
			})
		}
	}
	for _, a := range b.d.Annotations.List {
		if pq, ok := a.Target.(*prometheus.Dataquery); ok && a.Enable {
			out = append(out, expr{where: fmt.Sprintf("%s: annotation %q", b.file, a.Name), expr: pq.Expr, interval: deref(pq.Interval)})
		}
	}
	return out
}

// --- the Prometheus HTTP API -------------------------------------------------

type promAPI struct{ base string }

type promResult struct {
	series, points int
}

func (a *promAPI) call(path string, form url.Values, data any) error {
	resp, err := http.PostForm(a.base+path, form)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: HTTP %d %.200s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// query sends a query the way promlib's client does: a range query over
// the range aligned down to the step, an instant query at the range's end.
func (a *promAPI) query(expr string, q grafanaQuery, instant bool) (promResult, error) {
	var data struct {
		Result []struct {
			Value  []any   `json:"value"`
			Values [][]any `json:"values"`
		} `json:"result"`
	}
	var err error
	if instant {
		err = a.call("/api/v1/query", url.Values{"query": {expr}, "time": {unixSeconds(q.to)}}, &data)
	} else {
		align := func(t time.Time) time.Time {
			return time.UnixMilli(t.UnixMilli() / q.step.Milliseconds() * q.step.Milliseconds())
		}
		err = a.call("/api/v1/query_range", url.Values{"query": {expr}, "start": {unixSeconds(align(q.from))}, "end": {unixSeconds(align(q.to))},
			"step": {strconv.FormatFloat(q.step.Seconds(), 'f', -1, 64)}}, &data)
	}
	var r promResult
	for _, s := range data.Result {
		r.series++
		r.points += len(s.Values)
		if len(s.Value) == 2 {
			r.points++
		}
	}
	return r, err
}

// labelValues is what a label_values(selector, label) variable asks.
func (a *promAPI) labelValues(label, selector string, from, to time.Time) ([]string, error) {
	var vals []string
	err := a.call("/api/v1/label/"+label+"/values", url.Values{"match[]": {selector}, "start": {unixSeconds(from)}, "end": {unixSeconds(to)}}, &vals)
	return vals, err
}

// instant is a query the test itself asks, to wait for data.
func (a *promAPI) instant(expr string) (float64, bool) {
	var data struct {
		Result []struct {
			Value []any `json:"value"`
		} `json:"result"`
	}
	if err := a.call("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil || len(data.Result) == 0 {
		return 0, false
	}
	s, _ := data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// --- the stack ---------------------------------------------------------------

const (
	pks = 2000
	// The influencer the dashboards open on. The test makes it suspicious
	// (ratio 2) from the start and gives it a follower jump later (still
	// suspicious, ratio 4), so every panel about it has something to show.
	pk             = 1_000_001
	pollInterval   = 2 * time.Second
	scrapeEvery    = time.Second // twice per poll, as victoria/scrape.yml scrapes 60 s polls every 30 s
	testTimeWindow = 5 * time.Minute
)

type testStack struct {
	vm       *vmtest.Proc
	api      *promAPI
	rankdURL string
}

// setInfluencer sets an influencer's counts through the simulator's admin API.
func setInfluencer(t *testing.T, simURL string, pk, followers, following int64) {
	t.Helper()
	body := fmt.Sprintf(`{"followerCount":%d,"followingCount":%d}`, followers, following)
	resp, err := http.Post(fmt.Sprintf("%s/admin/influencers/%d", simURL, pk), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /admin/influencers/%d: %d %s", pk, resp.StatusCode, b)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("waited %s for %s", d, what)
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
	return true
}

// startStack runs the pipeline the dashboards read: simulator, two
// exporter shards, rankd, VictoriaMetrics scraping all of them (and itself
// and vmalert) with the checked-in scrape config, and vmalert with the
// checked-in rules once a follower jump is stored.
func startStack(t *testing.T) *testStack {
	t.Helper()
	// VictoriaMetrics scrapes itself and vmalert: their ports are in the
	// targets before they start.
	ports, err := proc.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	vmAddr, vmalertAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	s := &testStack{}

	r := pkrange.First(pks)
	_, simURL := simtest.Start(t, simtest.Config(r.Min, r.Max, true))
	setInfluencer(t, simURL, pk, 100_000, 50_000)

	var shardURLs, hosts []string
	for i := range 2 {
		cfg := exportertest.Config([]string{simURL}, r.Min, r.Max, pkrange.Shard{Index: i, Count: 2})
		cfg.Interval, cfg.Timeout, cfg.Concurrency, cfg.Pipeline = pollInterval, 500*time.Millisecond, 32, 8
		cfg.Suspicious.Period = 5 * time.Second // every pk judged within the test, at 400 checks/s
		sh := exportertest.Start(t, cfg)
		shardURLs = append(shardURLs, sh.URL)
		hosts = append(hosts, strings.TrimPrefix(sh.URL, "http://"))
	}

	// rankd's gains read their baselines from the VictoriaMetrics below,
	// which holds a month of imported history (importHistory).
	windows, err := rankd.ParseWindows(rankd.DefaultWindows)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rankd.New(rankd.Config{Sources: shardURLs, Refresh: time.Second, Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler),
		Victoria: "http://" + vmAddr, Windows: windows, GainsRefresh: time.Second, GainsLookback: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rkSrv := httptest.NewServer(rk.Handler())
	s.rankdURL = rkSrv.URL

	// victoria/scrape.yml at the test's scrape interval.
	dir := t.TempDir()
	raw, err := os.ReadFile(repoPath("victoria", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	global := cfg["global"].(map[string]any)
	global["scrape_interval"], global["scrape_timeout"] = scrapeEvery.String(), scrapeEvery.String()
	// Jobs with an interval of their own (the 10-minute info job) at the
	// test's pace too, or the first scrape could come minutes later.
	for _, j := range cfg["scrape_configs"].([]any) {
		if job := j.(map[string]any); job["scrape_interval"] != nil {
			job["scrape_interval"] = scrapeEvery.String()
		}
	}
	out, _ := yaml.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "scrape.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := victoria.WriteTargets(dir, map[string][]victoria.TargetGroup{
		"influencers.json":     victoria.InfluencerTargets(hosts, 2),
		"exporters.json":       victoria.Hosts(hosts...),
		"rankd.json":           victoria.Hosts(strings.TrimPrefix(rkSrv.URL, "http://")),
		"simulators.json":      victoria.Hosts(strings.TrimPrefix(simURL, "http://")),
		"victoriametrics.json": victoria.Hosts(vmAddr),
		"vmalert.json":         victoria.Hosts(vmalertAddr),
	}); err != nil {
		t.Fatal(err)
	}
	s.vm = vmtest.Run(t, stack.Victoria{Addr: vmAddr, DataDir: filepath.Join(dir, "vm"),
		ScrapeConfig: filepath.Join(dir, "scrape.yml"), QueryFresh: true, LogLevel: "WARN"})
	s.api = &promAPI{base: s.vm.URL}
	importHistory(t, s.vm, r, windows)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rk.Run(ctx); close(done) }()
	t.Cleanup(func() { rkSrv.Close(); cancel(); <-done })

	sel := fmt.Sprintf(`mockstagram_influencer_followers{pk="%d"}`, pk)
	waitFor(t, 30*time.Second, "three polls of pk 1000001 in VictoriaMetrics", func() bool {
		s.vm.Flush(t)
		v, ok := s.api.instant(fmt.Sprintf(`count_over_time(%s[1h])`, sel))
		return ok && v >= 3
	})
	// The jump: +500,000 followers in one poll; following rises too, so
	// the ratio stays under the classifier's 5.64.
	setInfluencer(t, simURL, pk, 600_000, 150_000)
	waitFor(t, 30*time.Second, "the jump to be stored", func() bool {
		s.vm.Flush(t)
		v, ok := s.api.instant(fmt.Sprintf(`last_over_time(%s[1m])`, sel))
		return ok && v > 400_000
	})

	rules, _ := filepath.Glob(repoPath("victoria", "rules", "*.yml"))
	vmtest.Run(t, stack.VMAlert{Addr: vmalertAddr, Datasource: s.vm.URL, Rules: rules,
		FlushInterval: 200 * time.Millisecond, NoDelay: true, LogLevel: "WARN"})
	return s
}

// importHistory writes, through VictoriaMetrics' import API, each
// influencer's counts one minute before the start of each gains window and
// one sample a day for 30 days: the history the gains panels and the daily
// bars read, which a test cannot wait for.
func importHistory(t *testing.T, vm *vmtest.Proc, r pkrange.Range, windows []rankd.Window) {
	t.Helper()
	var b bytes.Buffer
	now := time.Now()
	var agos []time.Duration
	for _, w := range windows {
		agos = append(agos, w.D+time.Minute)
	}
	for d := 1; d <= 30; d++ {
		agos = append(agos, time.Duration(d)*24*time.Hour-time.Hour)
	}
	for pk := r.Min; pk <= r.Max; pk++ {
		for _, ago := range agos {
			f := 90_000 + pk%7*1000 - int64(ago/time.Hour)*3
			fmt.Fprintf(&b, "mockstagram_influencer_followers{pk=\"%d\"} %d %d\n", pk, f, now.Add(-ago).UnixMilli())
			fmt.Fprintf(&b, "mockstagram_influencer_following{pk=\"%d\"} %d %d\n", pk, 900+pk%5, now.Add(-ago).UnixMilli())
		}
	}
	vm.Import(t, "/api/v1/import/prometheus", &b)
}

// waitForData waits until the series the dashboards read have enough
// samples for a rate() over the test's rate window. A series that does
// not come is reported by the panels that read it.
func (s *testStack) waitForData(t *testing.T) {
	t.Helper()
	f := func(d time.Duration, what, expr string) {
		t.Helper()
		waitFor(t, d, what, func() bool {
			s.vm.Flush(t)
			_, ok := s.api.instant(expr)
			return ok
		})
	}
	f(30*time.Second, "the jump alert in ALERTS", fmt.Sprintf(`ALERTS{alertname="InfluencerFollowerJump",alertstate="firing",pk="%d"}`, pk))
	f(30*time.Second, "vmalert's firing alert scraped", `vmalert_alerts_firing{alertname="InfluencerFollowerJump"} > 0`)
	// up counts failed scrapes too: vmalert's own series prove it answered.
	f(30*time.Second, "six scrapes of every job", `min(count_over_time(up[1m])) >= 6 and min(count_over_time(vmalert_iteration_total[1m])) >= 6`)
	// Verdicts come from the exporters' classifier and rankd's list.
	f(30*time.Second, "a suspicious verdict for pk 1000001", fmt.Sprintf(`last_over_time(mockstagram_influencer_suspicious{pk="%d"}[1h]) == 1`, pk))
	s.vm.Flush(t)
}

// --- the queries ---------------------------------------------------------------

// TestDashboardQueriesReturnData runs every query of every dashboard, as
// Grafana would send it over the last five minutes, against the stack.
func TestDashboardQueriesReturnData(t *testing.T) {
	boards := loadDashboards(t)
	s := startStack(t)
	s.waitForData(t)

	// The datasource's timeInterval is the scrape interval, as provisioned.
	now := time.Now()
	window := grafanaQuery{from: now.Add(-testTimeWindow), to: now}
	ran := 0
	for _, b := range boards {
		t.Run(strings.TrimSuffix(b.file, ".json"), func(t *testing.T) {
			vars := resolveVariables(t, b, s.api, window)
			for _, e := range exprs(b) {
				maxDP := int64(dashboardWidthPx)
				panelInterval := ""
				if e.panel != nil {
					maxDP = int64(math.Round(float64(e.panel.GridPos.W) * dashboardWidthPx / 24))
					if e.panel.MaxDataPoints != nil {
						maxDP = int64(*e.panel.MaxDataPoints)
					}
					panelInterval = deref(e.panel.Interval)
				}
				from := window.from
				if e.panel != nil && deref(e.panel.TimeFrom) != "" { // the panel's relative time overrides the dashboard's
					d, err := parseGrafanaDuration(deref(e.panel.TimeFrom))
					if err != nil {
						t.Errorf("%s: timeFrom: %v", e.where, err)
						continue
					}
					from = window.to.Add(-d)
				}
				q, err := planQuery(from, window.to, maxDP, panelInterval, e.interval, scrapeEvery)
				if err != nil {
					t.Errorf("%s: %v", e.where, err)
					continue
				}
				sub, err := substitute(e.expr, vars)
				if err != nil {
					t.Errorf("%s: %v", e.where, err)
					continue
				}
				final := q.interpolate(sub)
				checkCheap(t, e.where, final)
				r, err := s.api.query(final, q, e.instant)
				ran++
				switch {
				case err != nil:
					t.Errorf("%s: %v\n%s", e.where, err, final)
				case r.points == 0:
					t.Errorf("%s: no data%s\n%s", e.where, pendingNote(final), final)
				}
			}
			checkRankdTargets(t, b, s.rankdURL, vars)
		})
	}
	if ran < 40 {
		t.Errorf("ran only %d queries; the dashboards hold more", ran)
	}
}

// producers names where the less obvious series come from, so that a
// failure points at the component that should have produced them.
var producers = map[string]string{
	"mockstagram_influencer_suspicious": "the exporters' suspicious classifier",
	"mockstagram_exporter_suspicious_":  "the exporters' classifier telemetry",
	"mockstagram_population_suspicious": "rankd's suspicious gauges",
	"mockstagram_population_verdicts":   "rankd's suspicious gauges",
	"ALERTS":                            "vmalert's remote write",
	"vmalert_":                          "VictoriaMetrics' scrape of vmalert",
	"rankd_":                            "VictoriaMetrics' scrape of rankd",
}

func pendingNote(expr string) string {
	for k, v := range producers {
		if strings.Contains(expr, k) {
			return " (the data comes from " + v + ")"
		}
	}
	return ""
}

// checkRankdTargets asks rankd what each rankd panel's query asks through
// the plugin, and checks that the fields the panel shows are in the
// answer. The plugin names its frame fields after rankd's JSON keys.
func checkRankdTargets(t *testing.T, b board, rankdURL string, vars map[string]variable) {
	t.Helper()
	for _, p := range panels(b.d) {
		for _, tq := range p.Targets {
			q, ok := tq.(*rankdQuery)
			if !ok {
				continue
			}
			where := fmt.Sprintf("%s: panel %q rankd query %s", b.file, title(p), q.RefID)
			var path string
			switch q.QueryType {
			case "influencer":
				pkv, err := substitute(*q.PK, vars)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				path = "/api/v1/influencers/" + pkv
			case "average":
				path = "/api/v1/average"
			case "top":
				path = fmt.Sprintf("/api/v1/top?n=%d&offset=%d", deref(q.N), deref(q.Offset))
			case "suspicious":
				path = fmt.Sprintf("/api/v1/suspicious?limit=%d&offset=%d", deref(q.Limit), deref(q.Offset))
			case "gains":
				pkv, err := substitute(*q.PK, vars)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				// The plugin asks for each pk of the list; the first stands for all.
				first, _, _ := strings.Cut(strings.Trim(pkv, "()"), "|")
				path = "/api/v1/influencers/" + first
			case "movers":
				w, err := substitute(*q.Window, vars)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				path = fmt.Sprintf("/api/v1/movers?window=%s&order=%s&limit=%d&offset=%d", w, deref(q.Order), deref(q.Limit), deref(q.Offset))
			}
			resp, err := http.Get(rankdURL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: rankd GET %s: %d %s", where, path, resp.StatusCode, body)
				continue
			}
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil {
				t.Errorf("%s: rankd GET %s: %v", where, path, err)
				continue
			}
			fields := obj
			if list, ok := obj["influencers"].([]any); ok {
				if len(list) == 0 {
					t.Errorf("%s: rankd GET %s lists no influencer", where, path)
					continue
				}
				fields = list[0].(map[string]any)
			}
			switch q.QueryType {
			case "movers": // the plugin adds each row's username
				items, _ := obj["items"].([]any)
				if len(items) == 0 {
					t.Errorf("%s: rankd GET %s lists no mover", where, path)
					continue
				}
				fields = items[0].(map[string]any)
				fields["username"] = ""
			case "gains": // a row per window: the window's gains, or when it will have them
				gains, _ := obj["gains"].(map[string]any)
				if len(gains) == 0 {
					t.Errorf("%s: rankd GET %s has no gains", where, path)
					continue
				}
				fields = map[string]any{"pk": 0, "username": "", "window": "", "availableFrom": ""}
				for _, g := range gains {
					for k, v := range g.(map[string]any) {
						fields[k] = v
					}
				}
			}
			for _, f := range shownFields(p) {
				re, err := regexp.Compile(f)
				if err != nil {
					t.Errorf("%s: field matcher %q: %v", where, f, err)
					continue
				}
				if !slices.ContainsFunc(slices.Collect(mapKeys(fields)), re.MatchString) {
					t.Errorf("%s: shows field %q, which rankd's answer to %s does not have (%v)", where, f, path, slices.Sorted(mapKeys(fields)))
				}
			}
		}
	}
}

func mapKeys(m map[string]any) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// shownFields are the field names a panel selects, as regexps: a stat's
// reduceOptions.fields and the byName matchers of its overrides.
func shownFields(p dashboard.Panel) []string {
	var out []string
	raw, _ := json.Marshal(p.Options)
	var opts struct {
		ReduceOptions struct {
			Fields string `json:"fields"`
		} `json:"reduceOptions"`
	}
	json.Unmarshal(raw, &opts)
	if f := opts.ReduceOptions.Fields; f != "" {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(f, "/"), "/"))
	}
	if p.FieldConfig != nil {
		for _, o := range p.FieldConfig.Overrides {
			if o.Matcher.Id == "byName" {
				if name, ok := o.Matcher.Options.(string); ok {
					out = append(out, "^"+regexp.QuoteMeta(name)+"$")
				}
			}
		}
	}
	return out
}
