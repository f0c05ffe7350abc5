package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// StaleAfter is how many refresh intervals old rankd's snapshot may be
// before the health check calls it stale.
const StaleAfter = 3

// CheckHealth tells whether rankd answers, how fresh its snapshot is and
// how many of its exporters are healthy.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	return d.health(ctx), nil
}

func unhealthy(format string, a ...any) *backend.CheckHealthResult {
	return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: fmt.Sprintf(format, a...)}
}

func (d *Datasource) health(ctx context.Context) *backend.CheckHealthResult {
	if d.err != nil {
		return unhealthy("%v", d.err)
	}
	var st Status
	if err := d.client.Get(ctx, "/api/v1/status", nil, &st); err != nil {
		return unhealthy("%v", err)
	}
	healthy := 0
	var failing []string
	for _, s := range st.Sources {
		if s.Healthy {
			healthy++
			continue
		}
		since := "never answered"
		if !s.LastSuccess.IsZero() {
			since = "last answered " + time.Since(s.LastSuccess).Round(time.Second).String() + " ago"
		}
		failing = append(failing, fmt.Sprintf("%s (%s: %s)", s.URL, since, s.LastError))
	}
	exporters := fmt.Sprintf("%d/%d exporters healthy", healthy, len(st.Sources))
	if !st.Complete {
		msg := fmt.Sprintf("rankd answers but has no complete snapshot yet (%s; it waits until every exporter has answered once)", exporters)
		if len(failing) > 0 {
			msg += ": " + strings.Join(failing, "; ")
		}
		return unhealthy("%s", msg)
	}
	if st.SnapshotAgeSeconds == nil {
		return unhealthy("rankd at %s answered /api/v1/status without snapshotAgeSeconds; is the URL pointing at rankd?", d.settings.URL)
	}
	age := *st.SnapshotAgeSeconds
	if every, err := time.ParseDuration(st.RefreshInterval); err == nil && age > StaleAfter*every.Seconds() {
		return unhealthy("rankd's snapshot is %.1f s old, more than %d refresh intervals of %s: rankd has stopped refreshing; check its logs and restart it",
			age, StaleAfter, every)
	}
	var avg Average
	if err := d.client.Get(ctx, "/api/v1/average", nil, &avg); err != nil {
		return unhealthy("rankd answers /api/v1/status but not /api/v1/average: %v", err)
	}
	msg := fmt.Sprintf("rankd answers: %d influencers, snapshot %.1f s old, %s", avg.Count, age, exporters)
	if avg.Verdicts != nil && avg.Suspicious != nil {
		msg += fmt.Sprintf(", suspicious verdicts for %d (%d flagged)", *avg.Verdicts, *avg.Suspicious)
	}
	if len(failing) > 0 {
		return unhealthy("%s; the influencers of the failing ones keep their last values: %s", msg, strings.Join(failing, "; "))
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg}
}
