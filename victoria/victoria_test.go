package victoria

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"go.yaml.in/yaml/v3"

	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

// run runs a binary to completion and returns its combined output.
func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = vmtest.RepoRoot()
	// vmalert-tool keeps a scratch VictoriaMetrics storage under TMPDIR.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// glob lists files matching pattern under the repository root, as paths
// relative to it, and fails when there are none and some are required.
func glob(t *testing.T, pattern string, required bool) []string {
	t.Helper()
	root := vmtest.RepoRoot()
	abs, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil {
		t.Fatalf("bad pattern %q: %v", pattern, err)
	}
	if required && len(abs) == 0 {
		t.Fatalf("no file matches %s under %s", pattern, root)
	}
	rel := make([]string, 0, len(abs))
	for _, a := range abs {
		r, err := filepath.Rel(root, a)
		if err != nil {
			t.Fatalf("cannot make %s relative to %s: %v", a, root, err)
		}
		rel = append(rel, filepath.ToSlash(r))
	}
	return rel
}

func TestRulesDryRun(t *testing.T) {
	vmalert := vmtest.Binary(t, "vmalert")
	files := glob(t, "victoria/rules/*.yml", true)
	for _, want := range []string{"victoria/rules/alerts.yml"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing; found %v", want, files)
		}
	}
	f := func(args ...string) {
		t.Helper()
		if out, err := run(t, vmalert, append([]string{"-dryRun", "-loggerLevel=ERROR"}, args...)...); err != nil {
			t.Errorf("vmalert -dryRun %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var all []string
	for _, file := range files {
		f("-rule=" + file)
		all = append(all, "-rule="+file)
	}
	// Together too: vmalert loads them into one process.
	f(all...)

	// The check must be able to fail: a broken rule is rejected.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: bad\n    rules:\n      - alert: Bad\n        expr: sum(\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, vmalert, "-dryRun", "-loggerLevel=ERROR", "-rule="+bad); err == nil {
		t.Errorf("vmalert -dryRun accepted a rule with expr `sum(`; the dry run checks nothing:\n%s", out)
	}
}

func TestRulesUnit(t *testing.T) {
	vmalertTool := vmtest.Binary(t, "vmalert-tool")
	// One process per file: vmalert-tool stops at the first failing file.
	for _, file := range glob(t, "victoria/rules/tests/*.yml", true) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			out, err := run(t, vmalertTool, "unittest", "--files="+file)
			if err != nil || !strings.Contains(out, "SUCCESS") || strings.Contains(out, "FAILED") {
				t.Errorf("vmalert-tool unittest --files=%s: %v\n%s", file, err, out)
			}
		})
	}
}

// ruleFile is the part of a vmalert rule file the tests read. Expressions are
// nodes so that failures can name their line.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        yaml.Node         `yaml:"expr"`
			For         *string           `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// unitTestFile is the part of a vmalert-tool unittest file the tests read.
type unitTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series yaml.Node `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		MetricsqlExprTests []struct {
			Expr yaml.Node `yaml:"expr"`
		} `yaml:"metricsql_expr_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, file string, dst any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vmtest.RepoRoot(), file))
	if err != nil {
		t.Fatalf("cannot read %s: %v", file, err)
	}
	if err := yaml.Unmarshal(b, dst); err != nil {
		t.Fatalf("cannot parse %s: %v", file, err)
	}
}

// recordingName is the Prometheus naming convention level:metric:operations.
var recordingName = regexp.MustCompile(`^[a-z_]+:[a-z_]+:[a-z_0-9]+$`)

// TestRuleConventions holds every rule to what docs/rules.md promises: a
// deliberate for:, a routable severity and scope, and a text for the human
// who receives the alert.
func TestRuleConventions(t *testing.T) {
	severities := []string{"page", "ticket", "info"}
	scopes := []string{"influencer", "pipeline"}
	seen := map[string]string{}
	for _, file := range glob(t, "victoria/rules/*.yml", true) {
		var rf ruleFile
		readYAML(t, file, &rf)
		for _, g := range rf.Groups {
			if g.Interval == "" {
				t.Errorf("%s: group %s has no interval; set it so its cost per minute is explicit", file, g.Name)
			}
			for _, r := range g.Rules {
				name := r.Alert + r.Record
				where := fmt.Sprintf("%s:%d: %s", file, r.Expr.Line, name)
				if prev, ok := seen[name]; ok {
					t.Errorf("%s: name already used at %s", where, prev)
				}
				seen[name] = where
				if r.Record != "" {
					if !recordingName.MatchString(r.Record) {
						t.Errorf("%s: a recording rule is named level:metric:operations, e.g. mockstagram:influencer_followers:avg", where)
					}
					continue
				}
				if r.For == nil {
					t.Errorf("%s: no for:; say how long the condition must hold (for: 0s when an event cannot be a blip)", where)
				}
				if s := r.Labels["severity"]; !slices.Contains(severities, s) {
					t.Errorf("%s: severity %q; want one of %v", where, s, severities)
				}
				if s := r.Labels["scope"]; !slices.Contains(scopes, s) {
					t.Errorf("%s: scope %q; want one of %v", where, s, scopes)
				}
				for _, a := range []string{"summary", "description"} {
					if r.Annotations[a] == "" {
						t.Errorf("%s: no %s annotation", where, a)
					}
				}
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("found no rule in victoria/rules/*.yml")
	}
}

// TestEveryRuleIsUnitTested checks that rules/tests exercises every alert
// both ways (a case where it fires and one where it stays quiet) and reads
// every recorded series.
func TestEveryRuleIsUnitTested(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	var exprs []string
	for _, file := range glob(t, "victoria/rules/tests/*.yml", true) {
		var tf unitTestFile
		readYAML(t, file, &tf)
		for _, g := range tf.Tests {
			for _, a := range g.AlertRuleTests {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
			for _, e := range g.MetricsqlExprTests {
				exprs = append(exprs, e.Expr.Value)
			}
		}
	}
	n := 0
	for _, file := range glob(t, "victoria/rules/*.yml", true) {
		var rf ruleFile
		readYAML(t, file, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				n++
				switch {
				case r.Alert != "" && !fires[r.Alert]:
					t.Errorf("%s: alert %s has no test case where it fires; add one to victoria/rules/tests/", file, r.Alert)
				case r.Alert != "" && !quiet[r.Alert]:
					t.Errorf("%s: alert %s has no test case where it stays quiet (exp_alerts: []); add one to victoria/rules/tests/", file, r.Alert)
				case r.Record != "" && !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, r.Record) }):
					t.Errorf("%s: recording rule %s is never read by a metricsql_expr_test in victoria/rules/tests/", file, r.Record)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("found no rule in victoria/rules/*.yml")
	}
}

// expression is one MetricsQL expression kept in the repository.
type expression struct {
	where string // file and position, for failure messages
	expr  string
}

// TestEveryExpressionParses parses every MetricsQL expression the repository
// keeps: rule and rule-test expressions, ```metricsql blocks in Markdown, and
// Grafana dashboard targets. A query users copy from the catalogue, or a
// panel, must not be the first place a syntax error shows up.
func TestEveryExpressionParses(t *testing.T) {
	root := vmtest.RepoRoot()
	var all []expression
	count := map[string]int{} // per file, to prove each source was read

	add := func(file string, exprs []expression) {
		count[file] += len(exprs)
		all = append(all, exprs...)
	}
	for _, file := range glob(t, "victoria/rules/*.yml", true) {
		var rf ruleFile
		readYAML(t, file, &rf)
		var exprs []expression
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				where := fmt.Sprintf("%s:%d (group %s, %s)", file, r.Expr.Line, g.Name, r.Alert+r.Record)
				if strings.TrimSpace(r.Expr.Value) == "" {
					t.Errorf("%s: empty expr", where)
				}
				exprs = append(exprs, expression{where, r.Expr.Value})
			}
		}
		add(file, exprs)
	}
	for _, file := range glob(t, "victoria/rules/tests/*.yml", true) {
		var tf unitTestFile
		readYAML(t, file, &tf)
		var exprs []expression
		for _, g := range tf.Tests {
			for _, s := range g.InputSeries {
				exprs = append(exprs, expression{fmt.Sprintf("%s:%d (input series of %q)", file, s.Series.Line, g.Name), s.Series.Value})
			}
			for _, e := range g.MetricsqlExprTests {
				exprs = append(exprs, expression{fmt.Sprintf("%s:%d (metricsql_expr_test of %q)", file, e.Expr.Line, g.Name), e.Expr.Value})
			}
		}
		add(file, exprs)
	}
	mdFiles := append(append(glob(t, "victoria/*.md", true), glob(t, "docs/*.md", false)...), "README.md")
	for _, file := range mdFiles {
		src, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatalf("cannot read %s: %v", file, err)
		}
		exprs, err := metricsqlBlocks(file, src)
		if err != nil {
			t.Error(err)
		}
		add(file, exprs)
	}

	// Everything above is meant to run as written: a Grafana variable in it
	// parses (inside quotes it is just a string) but matches nothing.
	for _, e := range all {
		if v := grafanaVariable.FindString(e.expr); v != "" && !isRegexpBackref(v) {
			t.Errorf("%s: %s is a Grafana variable; write a sample value (pk=\"1000001\", [5m]) so the query runs as written:\n%s", e.where, v, e.expr)
		}
	}

	// Dashboards are added by another part of the pipeline; their variables
	// are replaced by sample values first.
	for _, file := range glob(t, "grafana/dashboards/*.json", false) {
		src, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatalf("cannot read %s: %v", file, err)
		}
		exprs, err := dashboardExprs(file, src)
		if err != nil {
			t.Error(err)
		}
		for i, e := range exprs {
			if exprs[i].expr, err = substituteGrafanaVariables(e.expr); err != nil {
				t.Errorf("%s: %v", e.where, err)
			}
		}
		add(file, exprs)
	}

	for _, e := range all {
		parsed, err := metricsql.Parse(e.expr)
		if err != nil {
			t.Errorf("%s: cannot parse MetricsQL: %v\n%s", e.where, err, e.expr)
			continue
		}
		if metricsql.IsLikelyInvalid(parsed) {
			t.Errorf("%s: an implicit conversion that is almost always wrong (e.g. rate(sum(x))); see https://docs.victoriametrics.com/victoriametrics/metricsql/#implicit-query-conversions\n%s", e.where, e.expr)
		}
	}

	// The test must not pass by finding nothing.
	for _, file := range []string{"victoria/rules/alerts.yml", "victoria/queries.md"} {
		if count[file] == 0 {
			t.Errorf("found no MetricsQL expression in %s", file)
		}
	}
	if count["victoria/queries.md"] < 20 {
		t.Errorf("found only %d ```metricsql blocks in victoria/queries.md; the catalogue has more: is the fence still ```metricsql?", count["victoria/queries.md"])
	}
	t.Logf("parsed %d expressions: %v", len(all), count)
}

// metricsqlBlocks returns the contents of the ```metricsql fenced blocks of a
// Markdown file, each located by the line of its opening fence.
func metricsqlBlocks(file string, src []byte) ([]expression, error) {
	var (
		exprs []expression
		cur   []string
		start int // line of the open fence; 0 outside a block
	)
	for i, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case start == 0 && trimmed == "```metricsql":
			start, cur = i+1, nil
		case start != 0 && trimmed == "```":
			exprs = append(exprs, expression{fmt.Sprintf("%s:%d", file, start), strings.TrimSpace(strings.Join(cur, "\n"))})
			start = 0
		case start != 0:
			cur = append(cur, line)
		}
	}
	if start != 0 {
		return exprs, fmt.Errorf("%s:%d: ```metricsql block is never closed", file, start)
	}
	return exprs, nil
}

// dashboardExprs returns every "expr" string of a Grafana dashboard, wherever
// it sits (panels, rows of panels, library panels), located by its JSON path.
func dashboardExprs(file string, src []byte) ([]expression, error) {
	var doc any
	if err := json.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: not JSON: %w", file, err)
	}
	var exprs []expression
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if s, ok := v[k].(string); ok && k == "expr" {
					if strings.TrimSpace(s) != "" {
						exprs = append(exprs, expression{fmt.Sprintf("%s: %s.expr", file, path), s})
					}
					continue
				}
				walk(path+"."+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(path+"["+strconv.Itoa(i)+"]", e)
			}
		}
	}
	walk("$", doc)
	return exprs, nil
}

// grafanaVariable matches $name, ${name}, ${name:format} and [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]|\$([A-Za-z0-9_]+)`)

// isRegexpBackref tells $1 in label_replace's replacement from a variable.
func isRegexpBackref(v string) bool {
	_, err := strconv.Atoi(strings.TrimPrefix(v, "$"))
	return err == nil
}

// grafanaSamples are the values dashboards' variables take for parsing.
var grafanaSamples = map[string]string{
	"pk":              "1000001",
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__interval_ms":   "60000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
	"__auto_interval": "1m",
	"__from":          "1763800000000",
	"__to":            "1763803600000",
	"__dashboard":     "influencer",
	"__org":           "1",
	"__user":          "admin",
	"upstream":        "http://mockstagram-0:3000",
	"instance":        "exporter-0:9866",
	"job":             "mockstagram_influencers",
	"interval":        "5m",
}

// substituteGrafanaVariables replaces every Grafana variable with its sample
// value, and names an unknown one so that it can be added above.
func substituteGrafanaVariables(expr string) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		if isRegexpBackref(v) {
			return v
		}
		m := grafanaVariable.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		s, ok := grafanaSamples[name]
		if !ok {
			unknown = append(unknown, v)
			return v
		}
		return s
	})
	if len(unknown) > 0 {
		return out, fmt.Errorf("unknown Grafana variable %s; add a sample value for it to grafanaSamples in victoria/victoria_test.go", strings.Join(unknown, ", "))
	}
	return out, nil
}

func TestMetricsqlBlocks(t *testing.T) {
	f := func(src string, want []expression, wantErr string) {
		t.Helper()
		got, err := metricsqlBlocks("x.md", []byte(src))
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("metricsqlBlocks(%q) error = %v; want %q", src, err, wantErr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("metricsqlBlocks(%q) = %q; want %q", src, got, want)
		}
	}
	f("no code\n", nil, "")
	f("```promql\nfoo\n```\n```sh\nls\n```\n", nil, "")
	f("text\n```metricsql\nfoo{pk=\"1\"}\n```\n", []expression{{"x.md:2", `foo{pk="1"}`}}, "")
	f("- item:\n\n  ```metricsql\n  sum(\n    foo)\n  ```\n", []expression{{"x.md:3", "sum(\n    foo)"}}, "")
	f("```metricsql\na\n```\n```metricsql\nb\n```", []expression{{"x.md:1", "a"}, {"x.md:4", "b"}}, "")
	f("```metricsql\nfoo\n", nil, "x.md:1: ```metricsql block is never closed")
}

func TestDashboardExprs(t *testing.T) {
	f := func(src string, want []expression, wantErr string) {
		t.Helper()
		got, err := dashboardExprs("d.json", []byte(src))
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("dashboardExprs(%s) error = %v; want %q", src, err, wantErr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("dashboardExprs(%s) = %q; want %q", src, got, want)
		}
	}
	f(`{"panels":[]}`, nil, "")
	f(`{"panels":[{"targets":[{"expr":"up","refId":"A"},{"expr":""}]}]}`,
		[]expression{{"d.json: $.panels[0].targets[0].expr", "up"}}, "")
	// Rows nest panels; every level is walked.
	f(`{"panels":[{"type":"row","panels":[{"targets":[{"expr":"a"}]}]},{"targets":[{"expr":"b"}]}]}`,
		[]expression{{"d.json: $.panels[0].panels[0].targets[0].expr", "a"}, {"d.json: $.panels[1].targets[0].expr", "b"}}, "")
	f(`{"panels":`, nil, "d.json: not JSON")
}

func TestSubstituteGrafanaVariables(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		got, err := substituteGrafanaVariables(in)
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("substituteGrafanaVariables(%q) error = %v; want %q", in, err, wantErr)
		}
		if got != want {
			t.Fatalf("substituteGrafanaVariables(%q) = %q; want %q", in, got, want)
		}
	}
	f(`up`, `up`, "")
	f(`mockstagram_influencer_followers{pk="$pk"}`, `mockstagram_influencer_followers{pk="1000001"}`, "")
	f(`rate(x{pk=~"${pk:regex}"}[$__rate_interval])`, `rate(x{pk=~"1000001"}[5m])`, "")
	f(`delta(x{pk="[[pk]]"}[$__range]) / $__interval_ms`, `delta(x{pk="1000001"}[1h]) / 60000`, "")
	f(`avg_over_time(x[$__interval])`, `avg_over_time(x[1m])`, "")
	f(`label_replace(x, "a", "$1", "b", "(.*)")`, `label_replace(x, "a", "$1", "b", "(.*)")`, "")
	f(`x{a="$nosuch"}`, `x{a="$nosuch"}`, "unknown Grafana variable $nosuch; add a sample value")
}
