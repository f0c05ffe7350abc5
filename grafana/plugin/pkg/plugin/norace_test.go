//go:build !race

package plugin_test

var raceFlags []string
