package validate

import (
	"fmt"
	"regexp"
	"strings"
)

// Flag is one command-line flag as a container passes it: --name=value,
// -name=value (the VictoriaMetrics style) or a bare --name (a boolean).
type Flag struct {
	Name     string
	Value    string
	HasValue bool
}

// ParseArgs splits a container's args into flags. Every arg must be a flag
// in the name=value form: a separate value ("--name value") is ambiguous
// without the binary's flag types, so the deploy files never use it.
func ParseArgs(args []string) ([]Flag, error) {
	var out []Flag
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			if name, ok = strings.CutPrefix(a, "-"); !ok || name == "" {
				return nil, fmt.Errorf("argument %q is not a flag; write flags as --name=value", a)
			}
		}
		n, v, has := strings.Cut(name, "=")
		out = append(out, Flag{Name: n, Value: v, HasValue: has})
	}
	return out, nil
}

// Values returns every value given to the flag name, in order.
func Values(flags []Flag, name string) []string {
	var out []string
	for _, f := range flags {
		if f.Name == name {
			out = append(out, f.Value)
		}
	}
	return out
}

// Value returns the value of a flag that must be given exactly once.
func Value(flags []Flag, name string) (string, error) {
	v := Values(flags, name)
	if len(v) != 1 {
		return "", fmt.Errorf("flag %s is given %d times, want exactly once", name, len(v))
	}
	return v[0], nil
}

// Has reports whether the flag is given at all.
func Has(flags []Flag, name string) bool {
	return len(Values(flags, name)) > 0
}

// Help is what a kong binary's --help says about its flags.
type Help struct {
	// Flags maps every flag name (without dashes) to its default as
	// printed ("" when none).
	Flags map[string]string
	// Envs is every environment variable the flags read.
	Envs map[string]bool
}

var (
	helpFlagRE = regexp.MustCompile(`^\s+(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9.\-]*)(?:=(\S+))?`)
	helpEnvRE  = regexp.MustCompile(`\(\$([A-Z][A-Z0-9_]*)\)`)
)

// ParseHelp reads the flag list of a kong --help text.
func ParseHelp(text string) Help {
	h := Help{Flags: map[string]string{}, Envs: map[string]bool{}}
	for _, line := range strings.Split(text, "\n") {
		if m := helpFlagRE.FindStringSubmatch(line); m != nil {
			def := strings.TrimSuffix(m[2], ",...")
			h.Flags[m[1]] = strings.Trim(def, `"`)
		}
		for _, m := range helpEnvRE.FindAllStringSubmatch(line, -1) {
			h.Envs[m[1]] = true
		}
	}
	return h
}

// ListenPort is the port of a listen address such as ":9866" or
// "0.0.0.0:9866".
func ListenPort(addr string) (string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || i == len(addr)-1 {
		return "", fmt.Errorf("listen address %q has no port", addr)
	}
	return addr[i+1:], nil
}
