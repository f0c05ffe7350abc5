//go:build race

package plugin_test

// raceFlags build the binaries the tests start like the test itself, so
// that they reuse its compiled packages and are checked for races too.
var raceFlags = []string{"-race"}
