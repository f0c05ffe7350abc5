// Package stack builds and supervises the pipeline's processes: the
// simulator, exporter shards, rankd and the VictoriaMetrics components,
// each from a typed spec (Simulator, Exporter, Rankd, Victoria, VMAgent,
// VMAlert) whose Args is its command line. The launcher, the load tests
// and the end-to-end tests start them through a Stack, which runs them in
// order on loopback ports, waits until each is ready, and stops them in
// reverse order.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
)

// Stack is a set of started components.
type Stack struct {
	BinDir string // where the binaries are
	LogDir string // component <name> logs to <LogDir>/<name>.log
	// Tee, when set, also receives a component's output.
	Tee func(name string) io.Writer
	// ReadyTimeout bounds the wait for one component (default one minute);
	// StopTimeout its SIGTERM before a kill (default 15 s).
	ReadyTimeout time.Duration
	StopTimeout  time.Duration
	// Wrap, when it has an entry for a component, runs that component
	// under a command prefix, for example {"ip", "netns", "exec", "ns"} to
	// start it in a network namespace. The prefix must exec the binary (so
	// that signals reach it), as ip netns exec and nsenter do.
	Wrap map[string][]string
	// Procs are the started components, in start order.
	Procs []*Proc
}

// Proc is a started component.
type Proc struct {
	*proc.Proc
	Spec Spec   // as started, with its address
	Addr string // host:port
	URL  string // http://Addr
}

// Start runs spec as component name and waits until it is ready. A spec
// without an address gets a free port on 127.0.0.1. A component that is
// started but never ready stays in Procs, for Stop.
func (s *Stack) Start(ctx context.Context, name string, spec Spec) (*Proc, error) {
	if spec.Listen() == "" {
		ports, err := proc.FreePorts(1)
		if err != nil {
			return nil, err
		}
		spec = spec.withAddr("127.0.0.1:" + strconv.Itoa(ports[0]))
	}
	sp, err := s.run(name, spec)
	if err != nil {
		return nil, err
	}
	s.Procs = append(s.Procs, sp)
	return sp, s.wait(ctx, sp)
}

// Get returns the component started as name, nil if there is none.
func (s *Stack) Get(name string) *Proc {
	for _, p := range s.Procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Restart starts component name again with the same spec and address, as
// a supervisor does after a crash, and waits until it is ready. A process
// still running is stopped first (SIGTERM, then a kill after StopTimeout).
// The new process takes the old one's place in the stop order.
func (s *Stack) Restart(ctx context.Context, name string) (*Proc, error) {
	for i, old := range s.Procs {
		if old.Name != name {
			continue
		}
		// Gone after Stop in any case; how it ended is the caller's to read
		// (old.Err) before the restart.
		old.Stop(orDefault(s.StopTimeout, 15*time.Second))
		sp, err := s.run(name, old.Spec)
		if err != nil {
			return nil, err
		}
		s.Procs[i] = sp
		return sp, s.wait(ctx, sp)
	}
	return nil, fmt.Errorf("cannot restart %s: no such component", name)
}

// run starts spec as name, under its Wrap prefix if any.
func (s *Stack) run(name string, spec Spec) (*Proc, error) {
	var tee io.Writer
	if s.Tee != nil {
		tee = s.Tee(name)
	}
	bin, args := filepath.Join(s.BinDir, spec.Binary()), spec.Args()
	if w := s.Wrap[name]; len(w) > 0 {
		bin, args = w[0], append(append(w[1:len(w):len(w)], bin), args...)
	}
	p, err := proc.Start(name, bin, args, filepath.Join(s.LogDir, name+".log"), tee)
	if err != nil {
		return nil, err
	}
	return &Proc{Proc: p, Spec: spec, Addr: spec.Listen(), URL: "http://" + spec.Listen()}, nil
}

// wait waits until sp answers its ready path.
func (s *Stack) wait(ctx context.Context, sp *Proc) error {
	wctx, cancel := context.WithTimeout(ctx, orDefault(s.ReadyTimeout, time.Minute))
	defer cancel()
	return proc.WaitHTTP(wctx, sp.URL+sp.Spec.ReadyPath(), sp.Proc)
}

// Stop stops the components, the last started first, and reports those
// that did not end cleanly, one line each.
func (s *Stack) Stop() error {
	var errs []error
	for i := len(s.Procs) - 1; i >= 0; i-- {
		p := s.Procs[i]
		if err := p.Stop(orDefault(s.StopTimeout, 15*time.Second)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	s.Procs = nil
	return errors.Join(errs...)
}

// StopTogether stops the named components at the same time, for parts that
// each wait on something of their own before they exit (every exporter
// shard waits for its final scrape), so that the stop takes the longest
// wait, not their sum. They leave Procs; errors are reported as by Stop.
func (s *Stack) StopTogether(names ...string) error {
	var stop []*Proc
	kept := s.Procs[:0]
	for _, p := range s.Procs {
		if slices.Contains(names, p.Name) {
			stop = append(stop, p)
		} else {
			kept = append(kept, p)
		}
	}
	s.Procs = kept
	errs := make([]error, len(stop))
	var wg sync.WaitGroup
	for i, p := range stop {
		wg.Go(func() {
			if err := p.Stop(orDefault(s.StopTimeout, 15*time.Second)); err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Exited reports the first component that has exited, with the tail of its
// log; nil while all run.
func (s *Stack) Exited() error {
	ps := make([]*proc.Proc, len(s.Procs))
	for i, p := range s.Procs {
		ps[i] = p.Proc
	}
	return proc.Exited(ps)
}

// orDefault is d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
