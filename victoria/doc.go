// Package victoria is the VictoriaMetrics side of the pipeline, kept as
// checked-in files rather than code: the MetricsQL catalogue (queries.md),
// the vmalert recording and alerting rules (rules/*.yml) and their unit tests
// (rules/tests/*.yml); docs/rules.md explains every rule.
//
// The package has no Go code of its own. Its tests validate those files with
// the real tools, so that a rule or query that would fail in production fails
// `go test ./victoria/` first: vmalert -dryRun on every rule file,
// vmalert-tool unittest on every test file, and the MetricsQL parser on every
// expression kept anywhere in the repository (rules, Markdown ```metricsql
// blocks, Grafana dashboards).
package victoria
