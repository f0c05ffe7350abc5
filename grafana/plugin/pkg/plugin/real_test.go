package plugin_test

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/experimental/datasourcetest"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg/plugin"
)

// TestRealRankdHandlers: level 1, the datasource's handlers called
// directly, against a real rankd fed by the simulator and two exporters.
func TestRealRankdHandlers(t *testing.T) {
	url := realRankd(t)
	checkAgainstRankd(t, apiFunc{newDS(t, settings(url, ""))}, url)
}

// apiFunc calls one datasource whatever the plugin context says.
type apiFunc struct{ ds *plugin.Datasource }

func (a apiFunc) QueryData(ctx context.Context, r *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	return a.ds.QueryData(ctx, r)
}

func (a apiFunc) CheckHealth(ctx context.Context, r *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	if r.PluginContext.DataSourceInstanceSettings != nil && r.PluginContext.DataSourceInstanceSettings.UID != "rankd" {
		// Another datasource: a fresh instance from its own settings.
		inst, err := plugin.NewDatasource(ctx, *r.PluginContext.DataSourceInstanceSettings)
		if err != nil {
			return nil, err
		}
		return inst.(*plugin.Datasource).CheckHealth(ctx, r)
	}
	return a.ds.CheckHealth(ctx, r)
}

func (a apiFunc) CallResource(ctx context.Context, r *backend.CallResourceRequest, s backend.CallResourceResponseSender) error {
	return a.ds.CallResource(ctx, r, s)
}

// TestRealRankdSDK: level 2, in process through the SDK's gRPC server and
// instance management (experimental/datasourcetest).
func TestRealRankdSDK(t *testing.T) {
	url := realRankd(t)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := datasourcetest.Manage(plugin.NewDatasource, datasourcetest.ManageOpts{Address: fmt.Sprintf("127.0.0.1:%d", ports[0])})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Shutdown() })
	checkAgainstRankd(t, tp.Client, url)
}

// TestRealRankdAsGrafanaRunsIt: level 3, the compiled plugin binary started
// the way Grafana starts it (hashicorp/go-plugin, protocol version 2, the
// datasource magic cookie, gRPC) and called over that connection.
func TestRealRankdAsGrafanaRunsIt(t *testing.T) {
	url := realRankd(t)
	dir := t.TempDir()
	if err := goBuild(".", dir, "github.com/mockstagram-exporter/mockstagram-exporter/grafana/plugin/pkg"); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, fmt.Sprintf("gpx_mockstagram_rankd_%s_%s", runtime.GOOS, runtime.GOARCH))
	if err := exec.Command("mv", filepath.Join(dir, "pkg"), exe).Run(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  grpcplugin.ProtocolVersion,
			MagicCookieKey:   grpcplugin.MagicCookieKey,
			MagicCookieValue: grpcplugin.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{grpcplugin.ProtocolVersion: {
			"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
			"resource":    &grpcplugin.ResourceGRPCPlugin{},
			"data":        &grpcplugin.DataGRPCPlugin{},
			"stream":      &grpcplugin.StreamGRPCPlugin{},
		}},
		Cmd:              exec.Command(exe),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: &logs, Level: hclog.Warn}),
		StartTimeout:     time.Minute,
	})
	t.Cleanup(func() {
		client.Kill()
		if !client.Exited() {
			t.Error("the plugin process did not exit")
		}
	})
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("go-plugin handshake: %v\n%s", err, logs.String())
	}
	dispense := func(name string) any {
		raw, err := rpc.Dispense(name)
		if err != nil {
			t.Fatalf("dispense %s: %v", name, err)
		}
		return raw
	}
	api := grpcAPI{
		data: dispense("data").(pluginv2.DataClient),
		diag: dispense("diagnostics").(pluginv2.DiagnosticsClient),
		res:  dispense("resource").(pluginv2.ResourceClient),
	}
	checkAgainstRankd(t, api, url)
	if err := rpc.Ping(); err != nil {
		t.Fatalf("the plugin process died during the calls: %v\n%s", err, logs.String())
	}
}

// grpcAPI calls a plugin process as Grafana does, converting to and from
// the protocol's messages with the SDK.
type grpcAPI struct {
	data pluginv2.DataClient
	diag pluginv2.DiagnosticsClient
	res  pluginv2.ResourceClient
}

func (g grpcAPI) QueryData(ctx context.Context, r *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp, err := g.data.QueryData(ctx, backend.ToProto().QueryDataRequest(r))
	if err != nil {
		return nil, err
	}
	return backend.FromProto().QueryDataResponse(resp)
}

func (g grpcAPI) CheckHealth(ctx context.Context, r *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	resp, err := g.diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: backend.ToProto().PluginContext(r.PluginContext)})
	if err != nil {
		return nil, err
	}
	return backend.FromProto().CheckHealthResponse(resp), nil
}

func (g grpcAPI) CallResource(ctx context.Context, r *backend.CallResourceRequest, s backend.CallResourceResponseSender) error {
	stream, err := g.res.CallResource(ctx, backend.ToProto().CallResourceRequest(r))
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(backend.FromProto().CallResourceResponse(resp)); err != nil {
			return err
		}
	}
}
