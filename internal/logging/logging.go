// Package logging builds the slog logger every binary uses, from the same
// --log.level and --log.format flags.
package logging

import (
	"fmt"
	"io"
	"log/slog"
)

// Flags are embedded into each binary's kong struct.
type Flags struct {
	Level  string `name:"log.level" default:"info" enum:"debug,info,warn,error" help:"Only log messages at or above this level: ${enum}."`
	Format string `name:"log.format" default:"logfmt" enum:"logfmt,json" help:"Log line format: ${enum}."`
}

// New returns a logger writing to w.
func (f Flags) New(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, fmt.Errorf("cannot parse --log.level=%q: %w", f.Level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
