package plugin

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// ID is the plugin id of plugin.json.
const ID = "mockstagram-rankd-datasource"

// Settings is one datasource's configuration: jsonData {"url"} and
// secureJsonData {"token"}.
type Settings struct {
	URL   string `json:"url"`
	Token string `json:"-"`
}

// exampleURL is the form of URL the error messages suggest.
const exampleURL = "http://rankd:9867"

// LoadSettings reads s; a missing or malformed URL is an error that says
// what to set.
func LoadSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	var out Settings
	if len(s.JSONData) > 0 {
		if err := json.Unmarshal(s.JSONData, &out); err != nil {
			return out, fmt.Errorf("cannot read the datasource settings (%v); save them again in the datasource settings page", err)
		}
	}
	out.URL = strings.TrimRight(strings.TrimSpace(out.URL), "/")
	out.Token = s.DecryptedSecureJSONData["token"]
	if out.URL == "" {
		return out, fmt.Errorf("no rankd URL: set the rankd URL in the datasource settings (for example %s)", exampleURL)
	}
	u, err := url.Parse(out.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return out, fmt.Errorf("rankd URL %q is not an http(s) URL: set the rankd URL in the datasource settings (for example %s)", out.URL, exampleURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return out, fmt.Errorf("rankd URL %q has a query or fragment: set the rankd URL in the datasource settings to rankd's base URL (for example %s)", out.URL, exampleURL)
	}
	return out, nil
}
