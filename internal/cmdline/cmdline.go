// Package cmdline is the one way the daemons read their command line: a
// kong struct per binary, every flag also an environment variable, kong's
// exit turned into an error so that tests can parse, and defaults that
// live in Go passed in as kong variables so they are written down once.
package cmdline

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/alecthomas/kong"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/logging"
)

// ErrHelp means kong printed the help: the process should end with status 0.
var ErrHelp = errors.New("help printed")

// Parse reads args into cli, a pointer to the binary's kong struct. A flag
// without an env tag is also read from envPrefix_FLAG_NAME
// (--poll.interval: MOCKSTAGRAM_EXPORTER_POLL_INTERVAL). vars fill the
// ${name} references of the struct tags, so that a default a Go package
// already defines is not written again in a tag. Help goes to stdout.
func Parse(cli any, name, description, envPrefix string, vars kong.Vars, args []string, stdout io.Writer) (*kong.Context, error) {
	exited := false
	p, err := kong.New(cli,
		kong.Name(name),
		kong.Description(description),
		kong.DefaultEnvars(envPrefix),
		vars,
		kong.Writers(stdout, stdout),
		kong.Exit(func(int) { exited = true }),
	)
	if err != nil {
		return nil, err
	}
	kctx, err := p.Parse(args)
	if exited {
		return nil, ErrHelp
	}
	return kctx, err
}

// Derived returns v, or derive() when v is zero: the value of a flag whose
// default depends on another flag. Such a flag has no default tag (its help
// says how the default is derived), so zero means "not given", and only a
// value the user chose can be refused for clashing with the other flag.
func Derived[T comparable](v T, derive func() T) T {
	var zero T
	if v == zero {
		return derive()
	}
	return v
}

// Start is the first step of every daemon's run: parse (the binary's own
// reader of its command line, which sets what log returns), then the
// logger from its logging flags. A nil logger means run must end at once
// with code: 0 after --help, 2 for a bad command line, which Start has
// told stderr, prefixed with name.
func Start(name string, parse func() error, log func() logging.Flags, stderr io.Writer) (logger *slog.Logger, code int) {
	err := parse()
	if errors.Is(err, ErrHelp) {
		return nil, 0
	}
	if err == nil {
		logger, err = log().New(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, 2
	}
	return logger, 0
}
