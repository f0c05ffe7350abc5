package cmdline

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/logging"
)

type testCLI struct {
	Interval time.Duration `name:"poll.interval" default:"${interval}" help:"Interval."`
	Level    string        `name:"log.level" default:"info" env:"CUSTOM_LEVEL" help:"Level."`
}

func TestParse(t *testing.T) {
	f := func(args []string, env map[string]string, want testCLI, wantErr string) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		var c testCLI
		var out bytes.Buffer
		_, err := Parse(&c, "t", "A test.", "T", kong.Vars{"interval": "1m"}, args, &out)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("%q: error %v, want %q", args, err, wantErr)
			}
			return
		}
		if err != nil || c != want {
			t.Fatalf("%q: %+v, %v; want %+v", args, c, err, want)
		}
	}
	f(nil, nil, testCLI{Interval: time.Minute, Level: "info"}, "")
	f([]string{"--poll.interval=5s"}, nil, testCLI{Interval: 5 * time.Second, Level: "info"}, "")
	f(nil, map[string]string{"T_POLL_INTERVAL": "7s", "CUSTOM_LEVEL": "debug"}, testCLI{Interval: 7 * time.Second, Level: "debug"}, "")
	f([]string{"--nope"}, nil, testCLI{}, "unknown flag --nope")
	f([]string{"--help"}, nil, testCLI{}, ErrHelp.Error())
}

func TestHelpGoesToStdout(t *testing.T) {
	var c testCLI
	var out bytes.Buffer
	if _, err := Parse(&c, "t", "A test.", "T", kong.Vars{"interval": "1m"}, []string{"--help"}, &out); !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--poll.interval=1m") || !strings.Contains(out.String(), "$T_POLL_INTERVAL") {
		t.Fatalf("help:\n%s", out.String())
	}
}

func TestDerived(t *testing.T) {
	half := func() time.Duration { return 4 * time.Second }
	if got := Derived(0, half); got != 4*time.Second {
		t.Fatalf("unset: %s", got)
	}
	if got := Derived(6*time.Second, half); got != 6*time.Second {
		t.Fatalf("set: %s", got)
	}
}

// TestStart: --help ends with 0 and no logger; a bad flag or a bad logging
// flag ends with 2 and says why on stderr, prefixed with the name; a good
// command line gives the logger its flags ask for.
func TestStart(t *testing.T) {
	type cli struct {
		Log logging.Flags `embed:""`
	}
	f := func(args []string, wantLogger bool, wantCode int, wantStderr string) {
		t.Helper()
		var c cli
		var stdout, stderr bytes.Buffer
		logger, code := Start("t", func() error {
			_, err := Parse(&c, "t", "A test.", "T", nil, args, &stdout)
			return err
		}, func() logging.Flags { return c.Log }, &stderr)
		if code != wantCode || (logger != nil) != wantLogger {
			t.Fatalf("%q: logger %v, code %d; want code %d", args, logger != nil, code, wantCode)
		}
		if wantStderr == "" && stderr.Len() != 0 || !strings.Contains(stderr.String(), wantStderr) {
			t.Fatalf("%q: stderr %q, want %q", args, stderr.String(), wantStderr)
		}
		if logger != nil {
			logger.Info("hello")
			if !strings.Contains(stderr.String(), "msg=hello") {
				t.Fatalf("%q: the logger does not write logfmt to stderr: %q", args, stderr.String())
			}
		}
	}
	f(nil, true, 0, "")
	f([]string{"--help"}, false, 0, "")
	f([]string{"--nope"}, false, 2, "t: unknown flag --nope")
	f([]string{"--log.level=loud"}, false, 2, "t: --log.level must be one of")
}
