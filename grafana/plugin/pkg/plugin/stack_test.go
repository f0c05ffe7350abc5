package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real pipeline behind the tests that need a real rankd: the simulator
// (frozen data, instant classifier), two exporter shards and rankd, built
// from the root module and run as processes on loopback, started once for
// the package and stopped by TestMain.
//
// The root module builds these command lines in internal/stack; this
// starter keeps its own because the plugin is a module of its own
// (docs/grafana-plugin.md says why) and cannot import the root module's
// internal packages, and a replace directive would pull the root module's
// dependency graph into the plugin's. No root command starts this cut of
// the pipeline either: the launcher adds VictoriaMetrics and vmalert and
// does not expose the frozen, instant simulator these tests need. A
// mistyped flag still fails here: every binary refuses a flag it does not
// know, and the error carries the tails of the logs.
const (
	rootModule = "github.com/mockstagram-exporter/mockstagram-exporter"
	pkMin      = 1_000_000
	pkMax      = 1_000_299
	population = pkMax - pkMin + 1
	// The simulator's classifier flags followers/following <= this.
	suspiciousRatio = 5.64
)

type stack struct {
	dir      string
	rankdURL string
	procs    []*exec.Cmd
	logs     []string
}

var (
	stackOnce sync.Once
	theStack  *stack
	stackErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theStack != nil {
		theStack.stop()
		if code == 0 {
			os.RemoveAll(theStack.dir)
		} else {
			fmt.Fprintf(os.Stderr, "pipeline logs kept in %s\n", theStack.dir)
		}
	}
	os.Exit(code)
}

// realRankd returns the base URL of a real rankd whose snapshot holds every
// influencer with a verdict.
func realRankd(t *testing.T) string {
	t.Helper()
	stackOnce.Do(func() { theStack, stackErr = startStack() })
	if stackErr != nil {
		t.Fatalf("cannot start the pipeline for the real-rankd tests: %v", stackErr)
	}
	return theStack.rankdURL
}

// repoRoot is the root module's directory, above this one.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+rootModule+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the root module " + rootModule + " is not above the test's directory")
		}
		dir = parent
	}
}

// goBuild builds pkgs (package paths) into dir from the module at modDir.
func goBuild(modDir, dir string, pkgs ...string) error {
	args := append(append([]string{"build"}, raceFlags...), "-o", dir+string(filepath.Separator))
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = modDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return nil
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func (s *stack) start(name string, args ...string) error {
	logPath := filepath.Join(s.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.dir, strings.TrimRight(name, "-0123456789")), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("cannot start %s: %w", name, err)
	}
	go func() { cmd.Wait(); f.Close() }()
	s.procs = append(s.procs, cmd)
	s.logs = append(s.logs, logPath)
	return nil
}

// stop ends the processes, the last started first.
func (s *stack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i].Process
		p.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			for p.Signal(syscall.Signal(0)) == nil {
				time.Sleep(20 * time.Millisecond)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Kill()
		}
	}
}

func (s *stack) tails() string {
	var b strings.Builder
	for _, p := range s.logs {
		out, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(p), strings.Join(lines, "\n"))
	}
	return b.String()
}

func startStack() (*stack, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rankd-plugin-test-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir}
	if err := goBuild(root, dir, "./simulator/cmd/mockstagram-sim", "./exporter/cmd/mockstagram_exporter", "./rankd/cmd/rankd"); err != nil {
		return s, err
	}
	// VictoriaMetrics holds the history rankd's gains start from: `make
	// tools` puts it in the root's bin/, else it is built from the version
	// the root module pins.
	vmBin := filepath.Join(root, "bin", "victoria-metrics")
	if _, err := os.Stat(vmBin); err != nil {
		if err := goBuild(root, dir, "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics"); err != nil {
			return s, err
		}
		vmBin = filepath.Join(dir, "victoria-metrics")
	}
	if err := os.Symlink(vmBin, filepath.Join(dir, "victoria")); err != nil {
		return s, err
	}
	ports, err := freePorts(5)
	if err != nil {
		return s, err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	pks := []string{fmt.Sprintf("--pk.min=%d", pkMin), fmt.Sprintf("--pk.max=%d", pkMax)}
	fail := func(err error) (*stack, error) {
		s.stop()
		return s, fmt.Errorf("%w\n%s", err, s.tails())
	}
	if err := s.start("mockstagram-sim", append(pks, "--web.listen-address="+addr(0), "--seed=42", "--drift=false",
		"--suspicious.delay.mean=0s", "--suspicious.delay.stddev=0s", "--log.level=warn")...); err != nil {
		return fail(err)
	}
	var exporters []string
	for i := range 2 {
		if err := s.start(fmt.Sprintf("mockstagram_exporter-%d", i), append(pks, "--mockstagram.url=http://"+addr(0),
			fmt.Sprintf("--shard.index=%d", i), "--shard.count=2", "--poll.interval=1s", "--poll.timeout=400ms",
			"--poll.concurrency=16", "--poll.pipeline=4", "--poll.retry-backoff=50ms",
			"--suspicious.period=2s", "--suspicious.timeout=1s", "--suspicious.retry-backoff=100ms",
			"--web.listen-address="+addr(1+i))...); err != nil {
			return fail(err)
		}
		exporters = append(exporters, "http://"+addr(1+i))
	}
	if err := s.start("victoria", "-httpListenAddr="+addr(4), "-storageDataPath="+filepath.Join(dir, "vm-data"), "-loggerLevel=WARN"); err != nil {
		return fail(err)
	}
	if err := importHistory("http://" + addr(4)); err != nil {
		return fail(err)
	}
	if err := s.start("rankd", "--exporter.url="+strings.Join(exporters, ","), "--refresh.interval=500ms",
		"--refresh.timeout=2s", "--web.listen-address="+addr(3), "--victoria.url=http://"+addr(4),
		"--gains.windows="+gainsWindows, "--gains.refresh=1s", "--gains.lookback=30m"); err != nil {
		return fail(err)
	}
	s.rankdURL = "http://" + addr(3)
	// Ready: every influencer in the snapshot, each with a verdict.
	var last string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var avg struct {
			Count    int `json:"count"`
			Verdicts int `json:"verdicts"`
		}
		code, body, err := getJSON(s.rankdURL+"/api/v1/average", &avg)
		last = fmt.Sprintf("%d %s %v", code, body, err)
		if code == 200 && avg.Count == population && avg.Verdicts == population && strings.Contains(body, `"24h":{`) && strings.Contains(body, `"1h":{`) {
			return s, nil
		}
	}
	return fail(fmt.Errorf("rankd did not hold %d influencers with verdicts and gains within 90s; last /api/v1/average: %s", population, last))
}

// getJSON GETs url and decodes a 200 answer into into.
func getJSON(url string, into any) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode == 200 && into != nil {
		err = json.Unmarshal(b.Bytes(), into)
	}
	return resp.StatusCode, b.String(), err
}

// gainsWindows are rankd's gains windows in the tests: every influencer
// has history an hour old, the even pks a day old too.
const gainsWindows = "1h,24h"

// importHistory writes, through VictoriaMetrics' import API, one sample of
// each influencer's counts 65 minutes ago, and of the even pks 24h05m ago:
// with --gains.lookback=30m those are the baselines for half an hour.
func importHistory(vmURL string) error {
	var b bytes.Buffer
	now := time.Now()
	for pk := int64(pkMin); pk <= pkMax; pk++ {
		for _, ago := range []time.Duration{65 * time.Minute, 24*time.Hour + 5*time.Minute} {
			if ago > time.Hour && pk%2 == 1 {
				continue
			}
			ts := now.Add(-ago).UnixMilli()
			fmt.Fprintf(&b, "mockstagram_influencer_followers{pk=\"%d\"} %d %d\n", pk, 90_000+pk%7*1000, ts)
			fmt.Fprintf(&b, "mockstagram_influencer_following{pk=\"%d\"} %d %d\n", pk, 900+pk%5, ts)
		}
	}
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var resp *http.Response
		resp, err = http.Post(vmURL+"/api/v1/import/prometheus", "text/plain", bytes.NewReader(b.Bytes()))
		if err != nil {
			continue // not listening yet
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("import into VictoriaMetrics: HTTP %d", resp.StatusCode)
		}
		if resp, err := http.Get(vmURL + "/internal/force_flush"); err == nil {
			resp.Body.Close()
		}
		return nil
	}
	return fmt.Errorf("VictoriaMetrics did not accept the history within 30s: %w", err)
}
