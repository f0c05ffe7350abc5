package victoria

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Alert is one alert vmalert holds: pending or firing.
type Alert struct {
	Name   string            `json:"name"`
	State  string            `json:"state"` // pending or firing
	Labels map[string]string `json:"labels"`
}

// Alerts reads the alerts vmalert holds now from its /api/v1/alerts, given
// vmalert's base URL (http://host:port); c nil means http.DefaultClient.
func Alerts(c *http.Client, vmalert string) ([]Alert, error) {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(vmalert + "/api/v1/alerts")
	if err != nil {
		return nil, fmt.Errorf("cannot read vmalert's alerts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot read vmalert's alerts: %s", resp.Status)
	}
	var body struct {
		Data struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("cannot decode vmalert's alerts: %w", err)
	}
	return body.Data.Alerts, nil
}
