// Package promtext reads a Prometheus text exposition over HTTP and sums
// its series: how the launcher, the load test and the end-to-end tests read
// the components' telemetry.
package promtext

import (
	"fmt"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a parsed exposition, by metric name.
type Families map[string]*dto.MetricFamily

// Fetch GETs url with client and parses the answer.
func Fetch(client *http.Client, url string) (Families, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", url, err)
	}
	return Families(mfs), nil
}

// Sum adds the values of the gauges, counters and untyped series named
// name whose labels match the name/value pairs given.
func (f Families) Sum(name string, labelPairs ...string) float64 {
	var v float64
	mf := f[name]
	if mf == nil {
		return 0
	}
	for _, m := range mf.Metric {
		if matches(m, labelPairs) {
			v += m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return v
}

// Series returns the series named name.
func (f Families) Series(name string) []*dto.Metric {
	if mf := f[name]; mf != nil {
		return mf.Metric
	}
	return nil
}

// Label returns the value of m's label name ("" when absent).
func Label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func matches(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if Label(m, pairs[i]) != pairs[i+1] {
			return false
		}
	}
	return true
}
