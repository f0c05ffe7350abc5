//go:build mage
// +build mage

// The standard backend build of Grafana plugins (the SDK's build package,
// as @grafana/create-plugin scaffolds it): `go tool mage -v build:linux
// build:linuxARM64` writes dist/gpx_mockstagram_rankd_linux_{amd64,arm64}
// and dist/go_plugin_build_manifest; `make plugin` runs it.
package main

import (
	// mage:import
	build "github.com/grafana/grafana-plugin-sdk-go/build"
)

// Default configures the default target.
var Default = build.BuildAll
