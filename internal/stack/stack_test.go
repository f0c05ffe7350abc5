package stack_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria/vmtest"
)

// TestArgs pins every spec's command line. The flag names are checked
// against the binaries themselves by TestVictoriaFlagsExist and by the
// stack_args tests beside each of our mains.
func TestArgs(t *testing.T) {
	f := func(spec stack.Spec, want string) {
		t.Helper()
		if got := strings.Join(spec.Args(), " "); got != want {
			t.Fatalf("%s args\n got %s\nwant %s", spec.Binary(), got, want)
		}
	}
	pks := pkrange.First(2000)
	f(stack.Simulator{Addr: "127.0.0.1:1"}, "--web.listen-address=127.0.0.1:1")
	f(stack.Simulator{Addr: "127.0.0.1:1", PKs: pks, Seed: 1, LogLevel: "warn", Extra: []string{"--drift=false"}},
		"--web.listen-address=127.0.0.1:1 --pk.min=1000000 --pk.max=1001999 --seed=1 --log.level=warn --drift=false")

	f(stack.Exporter{Addr: "127.0.0.1:2", Upstreams: []string{"http://a", "http://b"}},
		"--web.listen-address=127.0.0.1:2 --mockstagram.url=http://a,http://b")
	f(stack.Exporter{Addr: "127.0.0.1:2", Upstreams: []string{"http://a"}, PKs: pks, Shard: pkrange.Shard{Index: 0, Count: 2},
		PollInterval: time.Minute, PollTimeout: 5 * time.Second, PollConcurrency: 64, StateDir: "/s", SuspiciousPeriod: time.Hour,
		LogLevel: "warn", Extra: []string{"--poll.pipeline=4"}},
		"--web.listen-address=127.0.0.1:2 --pk.min=1000000 --pk.max=1001999 --shard.index=0 --shard.count=2 "+
			"--poll.interval=1m0s --poll.timeout=5s --poll.concurrency=64 --mockstagram.url=http://a --state.dir=/s "+
			"--suspicious.period=1h0m0s --log.level=warn --poll.pipeline=4")
	f(stack.Exporter{Addr: "127.0.0.1:2", SuspiciousPeriod: time.Hour, SuspiciousOff: true},
		"--web.listen-address=127.0.0.1:2 --no-suspicious.enabled")

	f(stack.Rankd{Addr: "127.0.0.1:3", Exporters: []string{"http://e0", "http://e1"}, Refresh: time.Second,
		RefreshTimeout: 2 * time.Second, LogLevel: "warn", Extra: []string{"--expose.ranks"}},
		"--web.listen-address=127.0.0.1:3 --exporter.url=http://e0 --exporter.url=http://e1 --refresh.interval=1s "+
			"--refresh.timeout=2s --log.level=warn --expose.ranks")

	f(stack.Victoria{Addr: "127.0.0.1:4"}, "-httpListenAddr=127.0.0.1:4 -dedup.minScrapeInterval=1ms")
	f(stack.Victoria{Addr: "127.0.0.1:4", DataDir: "/d", ScrapeConfig: "/s.yml", MaxUniqueTimeseries: 3_000_000,
		QueryFresh: true, LogLevel: "WARN"},
		"-httpListenAddr=127.0.0.1:4 -storageDataPath=/d -promscrape.config=/s.yml -dedup.minScrapeInterval=1ms "+
			"-search.maxUniqueTimeseries=3000000 -search.latencyOffset=0s -loggerLevel=WARN")

	f(stack.VMAgent{Addr: "127.0.0.1:5", BufferDir: "/b", ScrapeConfig: "/s.yml", RemoteWrite: "http://vm",
		FlushInterval: 200 * time.Millisecond, LogLevel: "WARN"},
		"-httpListenAddr=127.0.0.1:5 -remoteWrite.tmpDataPath=/b -promscrape.config=/s.yml "+
			"-remoteWrite.url=http://vm/api/v1/write -remoteWrite.flushInterval=200ms -loggerLevel=WARN")

	f(stack.VMAlert{Addr: "127.0.0.1:6", Datasource: "http://vm", Rules: []string{"a.yml", "b.yml"}},
		"-httpListenAddr=127.0.0.1:6 -datasource.url=http://vm -remoteWrite.url=http://vm -notifier.blackhole -rule=a.yml -rule=b.yml")
	f(stack.VMAlert{Addr: "127.0.0.1:6", Datasource: "http://vm", RemoteRead: true, EvaluationInterval: time.Minute,
		FlushInterval: 200 * time.Millisecond, NoDelay: true, LogLevel: "WARN"},
		"-httpListenAddr=127.0.0.1:6 -datasource.url=http://vm -remoteWrite.url=http://vm -remoteRead.url=http://vm "+
			"-notifier.blackhole -evaluationInterval=1m0s -remoteWrite.flushInterval=200ms "+
			"-group.maxStartDelay=100ms -rule.evalDelay=0s -loggerLevel=WARN")
}

// TestVictoriaFlagsExist runs each VictoriaMetrics binary with every flag
// its spec can produce and -version: the standard flag package refuses an
// unknown flag (exit 2) before -version prints and exits 0.
func TestVictoriaFlagsExist(t *testing.T) {
	f := func(spec stack.Spec) {
		t.Helper()
		args := append(spec.Args(), "-version")
		out, err := exec.Command(vmtest.Binary(t, spec.Binary()), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", spec.Binary(), strings.Join(args, " "), err, out)
		}
	}
	f(stack.Victoria{Addr: "127.0.0.1:1", DataDir: "/d", ScrapeConfig: "/s.yml", MaxUniqueTimeseries: 1, QueryFresh: true, LogLevel: "WARN"})
	f(stack.VMAgent{Addr: "127.0.0.1:1", BufferDir: "/b", ScrapeConfig: "/s.yml", RemoteWrite: "http://vm", FlushInterval: time.Second, LogLevel: "WARN"})
	f(stack.VMAlert{Addr: "127.0.0.1:1", Datasource: "http://vm", Rules: []string{"a.yml"}, RemoteRead: true,
		EvaluationInterval: time.Minute, FlushInterval: time.Second, NoDelay: true, LogLevel: "WARN"})
}

// TestStartStop: a component without an address gets a loopback port, is
// ready when Start returns, and Stop ends every component.
func TestStartStop(t *testing.T) {
	vmtest.Binary(t, "victoria-metrics")
	vmtest.Binary(t, "vmagent")
	dir := t.TempDir()
	s := &stack.Stack{BinDir: filepath.Join(vmtest.RepoRoot(), "bin"), LogDir: dir, StopTimeout: 20 * time.Second}
	t.Cleanup(func() { s.Stop() })
	ctx := context.Background()
	vm, err := s.Start(ctx, "vm", stack.Victoria{DataDir: filepath.Join(dir, "vm"), LogLevel: "WARN"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vm.Addr, "127.0.0.1:") || vm.URL != "http://"+vm.Addr || vm.Spec.Listen() != vm.Addr {
		t.Fatalf("started on %q (%q, spec %q), want a 127.0.0.1 port", vm.Addr, vm.URL, vm.Spec.Listen())
	}
	agent, err := s.Start(ctx, "agent", stack.VMAgent{BufferDir: filepath.Join(dir, "buf"), RemoteWrite: vm.URL, LogLevel: "WARN"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Exited(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*stack.Proc{vm, agent} {
		select {
		case <-p.Done():
		default:
			t.Fatalf("%s still runs after Stop", p.Name)
		}
	}
}

// TestStartFails names the binary it could not start.
func TestStartFails(t *testing.T) {
	s := &stack.Stack{BinDir: t.TempDir(), LogDir: t.TempDir()}
	_, err := s.Start(context.Background(), "sim", stack.Simulator{})
	if err == nil || !strings.Contains(err.Error(), "mockstagram-sim") {
		t.Fatalf("want an error naming mockstagram-sim, got %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAndWrap: a component killed with SIGKILL restarts on the same
// address in its old place, and a Wrap prefix runs the binary under
// another command (here env, which execs it like ip netns exec does).
func TestRestartAndWrap(t *testing.T) {
	vmtest.Binary(t, "victoria-metrics")
	dir := t.TempDir()
	s := &stack.Stack{BinDir: filepath.Join(vmtest.RepoRoot(), "bin"), LogDir: dir, StopTimeout: 20 * time.Second,
		Wrap: map[string][]string{"vm": {"env", "WRAPPED=1"}}}
	t.Cleanup(func() { s.Stop() })
	ctx := context.Background()
	vm, err := s.Start(ctx, "vm", stack.Victoria{DataDir: filepath.Join(dir, "vm"), LogLevel: "WARN"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", vm.Cmd.Process.Pid))
	if err != nil || !strings.Contains(string(env), "WRAPPED=1") {
		t.Fatalf("vm does not run under its Wrap prefix: %v, environment %q", err, env)
	}
	if s.Get("vm") != vm || s.Get("nothing") != nil {
		t.Fatal("Get does not find the components by name")
	}
	vm.Cmd.Process.Kill()
	<-vm.Done()
	again, err := s.Restart(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if again == vm || again.Addr != vm.Addr || s.Get("vm") != again || len(s.Procs) != 1 {
		t.Fatalf("restarted on %s (was %s), %d procs", again.Addr, vm.Addr, len(s.Procs))
	}
	if _, err := s.Restart(ctx, "nothing"); err == nil || !strings.Contains(err.Error(), "no such component") {
		t.Fatalf("restart of an unknown component: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again.Done():
	default:
		t.Fatal("the restarted vm still runs after Stop")
	}
}

// TestStopTogether stops the named components at once and leaves the
// others to Stop.
func TestStopTogether(t *testing.T) {
	vmtest.Binary(t, "victoria-metrics")
	dir := t.TempDir()
	s := &stack.Stack{BinDir: filepath.Join(vmtest.RepoRoot(), "bin"), LogDir: dir, StopTimeout: 20 * time.Second}
	t.Cleanup(func() { s.Stop() })
	ctx := context.Background()
	var ps []*stack.Proc
	for _, name := range []string{"a", "b", "c"} {
		p, err := s.Start(ctx, name, stack.Victoria{DataDir: filepath.Join(dir, name), LogLevel: "WARN"})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if err := s.StopTogether("a", "c"); err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		select {
		case <-p.Done():
			if i == 1 {
				t.Fatal("b stopped with a and c")
			}
		default:
			if i != 1 {
				t.Fatalf("%s still runs after StopTogether", p.Name)
			}
		}
	}
	if len(s.Procs) != 1 || s.Procs[0] != ps[1] {
		t.Fatalf("%d procs left, want b", len(s.Procs))
	}
}
