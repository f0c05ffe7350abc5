package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
)

// count stops the launcher as an operator does (SIGINT: the exporters stop
// polling and wait for their final scrape, VictoriaMetrics stops after
// them), reads each shard's successful polls from its stop line, then
// starts VictoriaMetrics alone on the data the run left and counts the
// follower and following samples it stored. up is when the pipeline was
// up; the exporters polled from shortly before it to the stop.
func count(ctx context.Context, c *cli, launcher *proc.Proc, up time.Time) (*CountResult, error) {
	stopAt := time.Now()
	if err := launcher.Cmd.Process.Signal(os.Interrupt); err != nil {
		return nil, fmt.Errorf("cannot stop the launcher: %w", err)
	}
	select {
	case <-launcher.Done():
	case <-time.After(3 * time.Minute):
		return nil, fmt.Errorf("the launcher did not stop within 3 minutes of SIGINT:\n%s", launcher.Tail(20))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := &CountResult{Polled: stopAt.Sub(up).Round(time.Second).String(), StopSeconds: time.Since(stopAt).Seconds()}
	logs := filepath.Join(c.WorkDir, "logs")
	for i := range c.Shards {
		b, err := os.ReadFile(filepath.Join(logs, fmt.Sprintf("exporter-%d.log", i)))
		if err != nil {
			return nil, err
		}
		n, ok := stoppedPolls(string(b))
		if !ok {
			// An exporter older than the count (a before run): the other
			// figures stand; this one cannot be taken.
			r.NotCounted = fmt.Sprintf("exporter %d logged no stop line with successful_polls (older than the count?); see %s",
				i, filepath.Join(logs, fmt.Sprintf("exporter-%d.log", i)))
			return r, nil
		}
		r.Polls += n
		r.ShardsReported++
		if strings.Contains(string(b), "final scrape done") {
			r.FinalScrapes++
		}
	}
	st := &stack.Stack{BinDir: c.BinDir, LogDir: filepath.Join(c.WorkDir, "count-logs"), ReadyTimeout: 2 * time.Minute, StopTimeout: time.Minute}
	defer st.Stop()
	vm, err := st.Start(ctx, "victoria-metrics", stack.Victoria{DataDir: filepath.Join(c.WorkDir, "victoria", "data"),
		MaxUniqueTimeseries: 3_000_000, QueryFresh: true, Extra: []string{"-search.maxQueryDuration=10m"}})
	if err != nil {
		return nil, fmt.Errorf("cannot start VictoriaMetrics on the run's data: %w", err)
	}
	// The whole run is within a day of now; every sample carries its poll
	// time (honor_timestamps), so this counts each stored sample once.
	for _, m := range []struct {
		name string
		n    *int64
	}{{"mockstagram_influencer_followers", &r.Followers}, {"mockstagram_influencer_following", &r.Following}} {
		if *m.n, err = instantCount(ctx, vm.URL, fmt.Sprintf("sum(count_over_time(%s[1d]))", m.name)); err != nil {
			return nil, err
		}
	}
	r.LostFollowers, r.LostFollowing = r.Polls-r.Followers, r.Polls-r.Following
	return r, nil
}

var pollsRe = regexp.MustCompile(`msg=stopped .*successful_polls=(\d+)|"msg":"stopped".*"successful_polls":(\d+)`)

// stoppedPolls is the successful_polls of the last stop line in an
// exporter's log (logfmt or JSON).
func stoppedPolls(log string) (int64, bool) {
	m := pollsRe.FindAllStringSubmatch(log, -1)
	if len(m) == 0 {
		return 0, false
	}
	last := m[len(m)-1]
	n, err := strconv.ParseInt(last[1]+last[2], 10, 64)
	return n, err == nil
}

// instantCount runs a query whose answer is one number.
func instantCount(ctx context.Context, vm, q string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", vm+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s: cannot decode the answer: %w", q, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("%s: %s", q, body.Error)
	}
	if len(body.Data.Result) == 0 {
		return 0, nil // nothing stored
	}
	v, _ := body.Data.Result[0].Value[1].(string)
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a number: %q", q, v)
	}
	return int64(n), nil
}
