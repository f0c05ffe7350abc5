// Command gpx_mockstagram_rankd is the backend of the
// mockstagram-rankd-datasource Grafana plugin. Grafana starts it (through
// hashicorp/go-plugin over gRPC) and talks to it; it has no flags.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg/plugin"
)

func main() {
	if err := datasource.Manage(plugin.ID, plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("plugin stopped", "err", err)
		os.Exit(1)
	}
}
