package stack

import (
	"strconv"
	"strings"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// Spec is one component's command line: which binary, where it listens,
// how it says it is ready, and its flags. The specs below are the only
// ones; the flag names are each binary's own, checked against its parser
// by the binaries' tests (ours) and by running it with -version (the
// VictoriaMetrics ones).
type Spec interface {
	// Binary is the file name under the bin dir.
	Binary() string
	// Listen is the host:port it serves on; empty until Stack.Start picks one.
	Listen() string
	// ReadyPath answers 200 once the component serves.
	ReadyPath() string
	// Args is the command line without the binary. The listen address
	// comes first, so that a process is findable by it.
	Args() []string

	withAddr(addr string) Spec
}

// Simulator is mockstagram-sim.
type Simulator struct {
	Addr     string
	PKs      pkrange.Range // zero: the binary's default, all of Mockstagram
	Seed     int64         // zero: a random seed
	LogLevel string        // --log.level; empty: info
	Extra    []string      // more flags, appended as given
}

// Binary implements Spec.
func (Simulator) Binary() string { return "mockstagram-sim" }

// Listen implements Spec.
func (s Simulator) Listen() string { return s.Addr }

// ReadyPath implements Spec.
func (Simulator) ReadyPath() string { return "/-/ready" }

// Args implements Spec.
func (s Simulator) Args() []string {
	a := args{"--web.listen-address=" + s.Addr}
	a.pks(s.PKs)
	a.int("--seed", s.Seed)
	a.str("--log.level", s.LogLevel)
	return append(a, s.Extra...)
}

func (s Simulator) withAddr(addr string) Spec { s.Addr = addr; return s }

// Exporter is one mockstagram_exporter shard.
type Exporter struct {
	Addr      string
	Upstreams []string      // Mockstagram base URLs
	PKs       pkrange.Range // the whole range, all shards; zero: the binary's default
	Shard     pkrange.Shard // zero Count: one shard
	// Zero durations and counts leave the binary's defaults.
	PollInterval    time.Duration
	PollTimeout     time.Duration
	PollConcurrency int
	// SuspiciousPeriod is how often every pk gets a verdict;
	// SuspiciousOff turns the classifier calls off instead.
	SuspiciousPeriod time.Duration
	SuspiciousOff    bool
	StateDir         string // --state.dir; empty: every start is cold
	LogLevel         string
	Extra            []string
}

// Binary implements Spec.
func (Exporter) Binary() string { return "mockstagram_exporter" }

// Listen implements Spec.
func (e Exporter) Listen() string { return e.Addr }

// ReadyPath implements Spec.
func (Exporter) ReadyPath() string { return "/-/ready" }

// Args implements Spec.
func (e Exporter) Args() []string {
	a := args{"--web.listen-address=" + e.Addr}
	a.pks(e.PKs)
	if e.Shard.Count > 0 {
		a = append(a, "--shard.index="+strconv.Itoa(e.Shard.Index), "--shard.count="+strconv.Itoa(e.Shard.Count))
	}
	a.dur("--poll.interval", e.PollInterval)
	a.dur("--poll.timeout", e.PollTimeout)
	a.int("--poll.concurrency", int64(e.PollConcurrency))
	a.str("--mockstagram.url", strings.Join(e.Upstreams, ","))
	a.str("--state.dir", e.StateDir)
	if e.SuspiciousOff {
		a = append(a, "--no-suspicious.enabled")
	} else {
		a.dur("--suspicious.period", e.SuspiciousPeriod)
	}
	a.str("--log.level", e.LogLevel)
	return append(a, e.Extra...)
}

func (e Exporter) withAddr(addr string) Spec { e.Addr = addr; return e }

// Rankd is the ranking sidecar.
type Rankd struct {
	Addr      string
	Exporters []string // exporter shard base URLs
	// Zero durations leave the binary's defaults.
	Refresh        time.Duration
	RefreshTimeout time.Duration
	// Gains: Victoria is the VictoriaMetrics base URL the baselines are read
	// from (empty: gains off); empty windows and zero durations leave the
	// binary's defaults.
	Victoria      string
	GainsWindows  string
	GainsRefresh  time.Duration
	GainsLookback time.Duration
	LogLevel      string
	Extra         []string
}

// Binary implements Spec.
func (Rankd) Binary() string { return "rankd" }

// Listen implements Spec.
func (r Rankd) Listen() string { return r.Addr }

// ReadyPath implements Spec. Not /-/ready: that waits for every exporter's
// first complete read, which takes a whole poll cycle.
func (Rankd) ReadyPath() string { return "/-/healthy" }

// Args implements Spec.
func (r Rankd) Args() []string {
	a := args{"--web.listen-address=" + r.Addr}
	for _, u := range r.Exporters {
		a = append(a, "--exporter.url="+u)
	}
	a.dur("--refresh.interval", r.Refresh)
	a.dur("--refresh.timeout", r.RefreshTimeout)
	a.str("--victoria.url", r.Victoria)
	a.str("--gains.windows", r.GainsWindows)
	a.dur("--gains.refresh", r.GainsRefresh)
	a.dur("--gains.lookback", r.GainsLookback)
	a.str("--log.level", r.LogLevel)
	return append(a, r.Extra...)
}

func (r Rankd) withAddr(addr string) Spec { r.Addr = addr; return r }

// Victoria is single-node VictoriaMetrics. It always deduplicates to one
// sample per poll (-dedup.minScrapeInterval=1ms, see docs/victoria.md): a
// sample scraped twice has the same timestamp and is dropped.
type Victoria struct {
	Addr                string
	DataDir             string // -storageDataPath
	ScrapeConfig        string // -promscrape.config; empty: no scraping
	MaxUniqueTimeseries int    // -search.maxUniqueTimeseries; zero: the default
	// QueryFresh makes what was just written queryable at once
	// (-search.latencyOffset=0s): tests query right after a flush.
	QueryFresh bool
	LogLevel   string // -loggerLevel (INFO, WARN, ...)
	Extra      []string
}

// Binary implements Spec.
func (Victoria) Binary() string { return "victoria-metrics" }

// Listen implements Spec.
func (v Victoria) Listen() string { return v.Addr }

// ReadyPath implements Spec.
func (Victoria) ReadyPath() string { return "/health" }

// Args implements Spec.
func (v Victoria) Args() []string {
	a := args{"-httpListenAddr=" + v.Addr}
	a.str("-storageDataPath", v.DataDir)
	a.str("-promscrape.config", v.ScrapeConfig)
	a = append(a, "-dedup.minScrapeInterval=1ms")
	a.int("-search.maxUniqueTimeseries", int64(v.MaxUniqueTimeseries))
	if v.QueryFresh {
		a = append(a, "-search.latencyOffset=0s")
	}
	a.str("-loggerLevel", v.LogLevel)
	return append(a, v.Extra...)
}

func (v Victoria) withAddr(addr string) Spec { v.Addr = addr; return v }

// VMAgent scrapes and remote-writes to VictoriaMetrics, buffering on disk
// while it is away.
type VMAgent struct {
	Addr          string
	BufferDir     string // -remoteWrite.tmpDataPath
	ScrapeConfig  string // -promscrape.config
	RemoteWrite   string // VictoriaMetrics base URL
	FlushInterval time.Duration
	LogLevel      string
	Extra         []string
}

// Binary implements Spec.
func (VMAgent) Binary() string { return "vmagent" }

// Listen implements Spec.
func (v VMAgent) Listen() string { return v.Addr }

// ReadyPath implements Spec.
func (VMAgent) ReadyPath() string { return "/health" }

// Args implements Spec.
func (v VMAgent) Args() []string {
	a := args{"-httpListenAddr=" + v.Addr}
	a.str("-remoteWrite.tmpDataPath", v.BufferDir)
	a.str("-promscrape.config", v.ScrapeConfig)
	if v.RemoteWrite != "" {
		a = append(a, "-remoteWrite.url="+v.RemoteWrite+"/api/v1/write")
	}
	a.dur("-remoteWrite.flushInterval", v.FlushInterval)
	a.str("-loggerLevel", v.LogLevel)
	return append(a, v.Extra...)
}

func (v VMAgent) withAddr(addr string) Spec { v.Addr = addr; return v }

// VMAlert evaluates rule files against VictoriaMetrics and writes the
// results (ALERTS, recording rules) back to it. Notifications go nowhere
// (-notifier.blackhole): alerts are read from VictoriaMetrics and vmalert.
type VMAlert struct {
	Addr       string
	Datasource string   // VictoriaMetrics base URL, read and written
	Rules      []string // rule files
	// RemoteRead restores the alerts' state from VictoriaMetrics after a
	// restart, so that a pending alert does not start over.
	RemoteRead         bool
	EvaluationInterval time.Duration // zero: the default
	FlushInterval      time.Duration // -remoteWrite.flushInterval; zero: the default
	// NoDelay starts the groups and evaluates at once: tests wait for
	// an alert, not for vmalert's spread of group starts.
	NoDelay  bool
	LogLevel string
	Extra    []string
}

// Binary implements Spec.
func (VMAlert) Binary() string { return "vmalert" }

// Listen implements Spec.
func (v VMAlert) Listen() string { return v.Addr }

// ReadyPath implements Spec.
func (VMAlert) ReadyPath() string { return "/health" }

// Args implements Spec.
func (v VMAlert) Args() []string {
	a := args{"-httpListenAddr=" + v.Addr}
	a.str("-datasource.url", v.Datasource)
	a.str("-remoteWrite.url", v.Datasource)
	if v.RemoteRead {
		a.str("-remoteRead.url", v.Datasource)
	}
	a = append(a, "-notifier.blackhole")
	a.dur("-evaluationInterval", v.EvaluationInterval)
	a.dur("-remoteWrite.flushInterval", v.FlushInterval)
	if v.NoDelay {
		a = append(a, "-group.maxStartDelay=100ms", "-rule.evalDelay=0s")
	}
	for _, r := range v.Rules {
		a = append(a, "-rule="+r)
	}
	a.str("-loggerLevel", v.LogLevel)
	return append(a, v.Extra...)
}

func (v VMAlert) withAddr(addr string) Spec { v.Addr = addr; return v }

// args appends a flag only when its value is set, so that a zero field
// leaves the binary's default.
type args []string

func (a *args) str(flag, v string) {
	if v != "" {
		*a = append(*a, flag+"="+v)
	}
}

func (a *args) int(flag string, v int64) {
	if v != 0 {
		*a = append(*a, flag+"="+strconv.FormatInt(v, 10))
	}
}

func (a *args) dur(flag string, v time.Duration) {
	if v != 0 {
		*a = append(*a, flag+"="+v.String())
	}
}

func (a *args) pks(r pkrange.Range) {
	if r != (pkrange.Range{}) {
		*a = append(*a, "--pk.min="+strconv.FormatInt(r.Min, 10), "--pk.max="+strconv.FormatInt(r.Max, 10))
	}
}
