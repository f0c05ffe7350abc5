package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/proc"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/stack"
	"github.com/mockstagram-exporter/mockstagram-exporter/victoria"
)

// Component names, as in the logs and the report.
const (
	nameSim     = "mockstagram-sim"
	nameVM      = "victoria-metrics"
	nameAgent   = "vmagent"
	nameRankd   = "rankd"
	nameVMAlert = "vmalert"
)

var exporterNames = []string{"exporter-0", "exporter-1"}

// chaos is the running pipeline and what is measured of it.
type chaos struct {
	c       *cli
	out     io.Writer
	work    string
	tempDir bool // work is ours to remove
	st      *stack.Stack
	rng     *rand.Rand
	client  *http.Client
	began   time.Time

	ns      netns
	diskDir string // the tmpfs mount point; empty when not mounted

	simURL, vmURL, agentURL, rankdURL, alertURL string
	expURLs                                     []string
	scrapeInterval                              time.Duration

	mu sync.Mutex // guards st and the fields below
	// handling names the components a fault is killing and restarting
	// itself, so that the supervisor leaves them alone.
	handling map[string]bool
	// polls counts each exporter's successful polls: those of its ended
	// processes (read just before each kill) plus the running one's.
	polls map[string]*pollCount
	// crashes are exits nobody asked for, restarted by the supervisor.
	crashes []crash
	alerts  *alertWatch

	keep bool // something did not recover: keep the work dir for its logs
}

type pollCount struct {
	ended float64 // successful polls of processes that are gone
	cur   float64 // of the running process, at its last reading
	gen   int     // bumped at each restart; a reading of an older process is dropped
}

type crash struct {
	name string
	at   time.Time
	why  string
}

// setUp starts the pipeline. On error the returned chaos (if not nil) must
// still be torn down.
func setUp(ctx context.Context, c *cli, out io.Writer) (*chaos, error) {
	ch := &chaos{c: c, out: out, rng: rand.New(rand.NewPCG(c.Seed, 0x6368616f73)), client: &http.Client{Timeout: 5 * time.Second},
		handling: map[string]bool{}, polls: map[string]*pollCount{}, began: time.Now()}
	ch.work = c.WorkDir
	if ch.work == "" {
		d, err := os.MkdirTemp("", "mockstagram-chaos-")
		if err != nil {
			return nil, err
		}
		ch.work, ch.tempDir = d, true
	}
	if err := os.MkdirAll(ch.work, 0o755); err != nil {
		return nil, err
	}
	ch.st = &stack.Stack{BinDir: c.BinDir, LogDir: filepath.Join(ch.work, "logs"), ReadyTimeout: 2 * time.Minute,
		StopTimeout: 45 * time.Second}

	// VictoriaMetrics' disk: a tmpfs of its own, so that filling it fills
	// nothing else.
	disk := filepath.Join(ch.work, "vmdisk")
	if err := os.MkdirAll(disk, 0o755); err != nil {
		return ch, err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+c.DiskSize, "tmpfs", disk).CombinedOutput(); err != nil {
		return ch, fmt.Errorf("cannot mount a tmpfs for VictoriaMetrics' data (--disk.size=%s): %v: %s", c.DiskSize, err, out)
	}
	ch.diskDir = disk

	// The simulator in a network namespace behind a veth pair: taking the
	// host end down drops the network between the exporters and it.
	ns, err := newNetns(os.Getpid())
	if err != nil {
		return ch, err
	}
	ch.ns = ns
	ch.st.Wrap = map[string][]string{nameSim: {"ip", "netns", "exec", ns.name}}

	ports, err := proc.FreePorts(6)
	if err != nil {
		return ch, err
	}
	simAddr := ns.inner + ":3000"
	vmAddr, agentAddr, rankdAddr, alertAddr := loop(ports[0]), loop(ports[1]), loop(ports[2]), loop(ports[3])
	expAddrs := []string{loop(ports[4]), loop(ports[5])}
	ch.simURL, ch.vmURL, ch.agentURL, ch.rankdURL, ch.alertURL = "http://"+simAddr, "http://"+vmAddr, "http://"+agentAddr,
		"http://"+rankdAddr, "http://"+alertAddr
	for _, a := range expAddrs {
		ch.expURLs = append(ch.expURLs, "http://"+a)
	}
	ch.scrapeInterval = c.PollInterval / 2

	pks := pkrange.First(c.PKCount)
	fmt.Fprintf(out, "work dir %s; VictoriaMetrics' disk a %s tmpfs; simulator in network namespace %s at %s\n",
		ch.work, c.DiskSize, ns.name, simAddr)
	if _, err := ch.st.Start(ctx, nameSim, stack.Simulator{Addr: simAddr, PKs: pks, Seed: int64(c.Seed)}); err != nil {
		return ch, err
	}
	if _, err := ch.st.Start(ctx, nameVM, stack.Victoria{Addr: vmAddr, DataDir: filepath.Join(disk, "data"), QueryFresh: true,
		Extra: []string{"-http.maxGracefulShutdownDuration=35s"}}); err != nil {
		return ch, err
	}
	vdir := filepath.Join(ch.work, "victoria")
	if err := victoria.WriteScrapeConfig(c.VictoriaDir, vdir, ch.scrapeInterval, map[string][]victoria.TargetGroup{
		"influencers.json":     victoria.InfluencerTargets(expAddrs, victoria.SlicesFor(c.PKCount/2)),
		"exporters.json":       victoria.Hosts(expAddrs...),
		"simulators.json":      victoria.Hosts(simAddr),
		"victoriametrics.json": victoria.Hosts(vmAddr),
		"vmalert.json":         victoria.Hosts(alertAddr),
		"rankd.json":           victoria.Hosts(rankdAddr),
	}); err != nil {
		return ch, err
	}
	if _, err := ch.st.Start(ctx, nameAgent, stack.VMAgent{Addr: agentAddr, BufferDir: filepath.Join(ch.work, "vmagent-buffer"),
		ScrapeConfig: filepath.Join(vdir, "scrape.yml"), RemoteWrite: ch.vmURL, FlushInterval: time.Second}); err != nil {
		return ch, err
	}
	stateDir := filepath.Join(ch.work, "exporters")
	for i, name := range exporterNames {
		ch.polls[name] = &pollCount{}
		if _, err := ch.st.Start(ctx, name, stack.Exporter{Addr: expAddrs[i], Upstreams: []string{ch.simURL}, PKs: pks,
			Shard: pkrange.Shard{Index: i, Count: 2}, PollInterval: c.PollInterval, SuspiciousPeriod: time.Hour,
			StateDir: stateDir}); err != nil {
			return ch, err
		}
	}
	if _, err := ch.st.Start(ctx, nameRankd, stack.Rankd{Addr: rankdAddr, Exporters: ch.expURLs, Refresh: time.Second}); err != nil {
		return ch, err
	}
	rules, _ := filepath.Glob(filepath.Join(c.VictoriaDir, "rules", "*.yml"))
	if len(rules) == 0 {
		return ch, fmt.Errorf("no rule files in %s/rules; run from the repository root or set --victoria.dir", c.VictoriaDir)
	}
	if _, err := ch.st.Start(ctx, nameVMAlert, stack.VMAlert{Addr: alertAddr, Datasource: ch.vmURL, RemoteRead: true, Rules: rules,
		EvaluationInterval: c.PollInterval}); err != nil {
		return ch, err
	}
	ch.alerts = newAlertWatch(ch.client, ch.alertURL)
	go ch.alerts.run(ctx)
	go ch.supervise(ctx)
	go ch.observe(ctx)
	return ch, nil
}

func loop(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// supervise restarts a component that exited without a fault asking for
// it, after a second, as systemd's Restart=always with RestartSec=1 does.
func (ch *chaos) supervise(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		ch.mu.Lock()
		var dead []*stack.Proc
		for _, p := range ch.st.Procs {
			select {
			case <-p.Done():
				if !ch.handling[p.Name] {
					dead = append(dead, p)
				}
			default:
			}
		}
		for _, p := range dead {
			why := fmt.Sprintf("exited (%v): %s", p.Err(), lastLine(p.Tail(5)))
			ch.crashes = append(ch.crashes, crash{name: p.Name, at: time.Now(), why: why})
			fmt.Fprintf(ch.out, "  supervisor: %s %s; restarting it in 1s\n", p.Name, why)
			ch.endProcessLocked(p.Name)
			time.Sleep(time.Second)
			if _, err := ch.st.Restart(ctx, p.Name); err != nil {
				fmt.Fprintf(ch.out, "  supervisor: restart of %s failed: %v\n", p.Name, firstLine(err.Error()))
			}
		}
		ch.mu.Unlock()
	}
}

// endProcessLocked books the polls of a gone exporter process as ended.
func (ch *chaos) endProcessLocked(name string) {
	if pc := ch.polls[name]; pc != nil {
		pc.ended += pc.cur
		pc.cur = 0
		pc.gen++
	}
}

// tearDown stops everything it started, the namespace and the tmpfs too.
func (ch *chaos) tearDown() {
	ch.mu.Lock()
	if err := ch.st.Stop(); err != nil {
		fmt.Fprintf(ch.out, "stop: %v\n", err)
	}
	ch.mu.Unlock()
	if ch.ns.name != "" {
		ch.ns.remove()
	}
	if ch.diskDir != "" {
		if out, err := exec.Command("umount", ch.diskDir).CombinedOutput(); err != nil {
			fmt.Fprintf(ch.out, "umount %s: %v %s\n", ch.diskDir, err, out)
		}
	}
	if ch.tempDir && !ch.keep {
		os.RemoveAll(ch.work)
	} else {
		fmt.Fprintf(ch.out, "logs kept in %s\n", filepath.Join(ch.work, "logs"))
	}
}

// netns is a network namespace joined to the host by a veth pair.
type netns struct {
	name, hostIf, inner string
}

// newNetns creates namespace mschaos-<id> with 10.213.<id%250>.2 inside
// and .1 on the host end.
func newNetns(id int) (netns, error) {
	n := netns{name: fmt.Sprintf("mschaos-%d", id), hostIf: fmt.Sprintf("msc%dh", id%100000)}
	sub := fmt.Sprintf("10.213.%d", id%250)
	n.inner = sub + ".2"
	inner := fmt.Sprintf("msc%dn", id%100000)
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", inner},
		{"link", "set", inner, "netns", n.name},
		{"addr", "add", sub + ".1/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"netns", "exec", n.name, "ip", "addr", "add", n.inner + "/30", "dev", inner},
		{"netns", "exec", n.name, "ip", "link", "set", inner, "up"},
		{"netns", "exec", n.name, "ip", "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			n.remove()
			return netns{}, fmt.Errorf("cannot set up the simulator's network namespace (ip %s): %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return n, nil
}

// link takes the host end of the veth up or down.
func (n netns) link(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", n.hostIf, state).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set %s %s: %v: %s", n.hostIf, state, err, out)
	}
	return nil
}

func (n netns) remove() {
	exec.Command("ip", "link", "del", n.hostIf).Run()
	exec.Command("ip", "netns", "del", n.name).Run()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
