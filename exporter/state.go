package exporter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

// The state file keeps what a restart must not lose: every owned pk's last
// values, poll time and verdict with its time, the usernames that differ
// from the canonical one, and the classifier's anchor (where each pk is in
// its check period). Layout, little-endian, then varints:
//
//	magic "MSXS" | version uint32 | written Unix ms int64
//	| range min int64 | range max int64 | shard index uint32 | shard count uint32 | n uint32
//	| suspicious period ns int64 | anchor Unix ms int64
//	| n x (poll time delta zigzag | followers uvarint | following uvarint | verdict delta zigzag)
//	| odd usernames: count uvarint, count x (index uvarint | length uvarint | bytes)
//	| CRC-32C of everything before, uint32
//
// Poll and verdict times are deltas from the previous pk's: neighbours are
// polled and judged a few milliseconds apart, so a pk costs about 7 bytes.
const (
	stateVersion = 1
	stateMagic   = "MSXS"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// StateFile is the state file's name for a shard of a pk range: one
// directory can hold the files of several shards and deployments.
func StateFile(dir string, r pkrange.Range, sh pkrange.Shard) string {
	return filepath.Join(dir, fmt.Sprintf("exporter-%d-%d-shard-%d-of-%d.state", r.Min, r.Max, sh.Index, sh.Count))
}

func (e *Exporter) stateFile() string { return StateFile(e.cfg.StateDir, e.cfg.Range, e.cfg.Shard) }

type stateHeader struct {
	WrittenMs    int64
	Range        pkrange.Range
	Shard        pkrange.Shard
	N            uint32
	PeriodNs     int64
	AnchorMs     int64
	stateVersion uint32
}

// SaveState writes the state file atomically: a temporary file in the same
// directory, fsync, rename over the old file, fsync of the directory. A
// crash at any point leaves the previous file or the new one, never a torn
// one. It returns the bytes written.
func (e *Exporter) SaveState() (int64, error) {
	if e.cfg.StateDir == "" {
		return 0, errors.New("no state.dir")
	}
	e.stateMu.Lock() // the periodic save and the final one never interleave
	defer e.stateMu.Unlock()
	path := e.stateFile()
	tmp, err := os.CreateTemp(e.cfg.StateDir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("cannot write state: %w (is state.dir=%q writable?)", err, e.cfg.StateDir)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	n, err := e.writeState(tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(e.cfg.StateDir)
	}
	if err != nil {
		return 0, fmt.Errorf("cannot write state file %s: %w", path, err)
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (e *Exporter) writeState(w io.Writer) (int64, error) {
	cw := &webserver.CountingWriter{W: w}
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crc), 256<<10)
	s := e.store
	// With the classifier off, the schedule loaded at start is written
	// back unchanged, so that turning it on again resumes it.
	anchor, period := e.loadedAnchorMs, e.loadedPeriodNs
	if e.classifier != nil {
		anchor, period = e.classifier.anchorMs.Load(), int64(e.cfg.Suspicious.Period)
	}
	var hdr []byte
	hdr = append(hdr, stateMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, stateVersion)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(time.Now().UnixMilli()))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(e.cfg.Range.Min))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(e.cfg.Range.Max))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(e.cfg.Shard.Index))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(e.cfg.Shard.Count))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(s.Len()))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(period))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(anchor))
	bw.Write(hdr)
	var prevTs, prevV int64
	var b [4 * binary.MaxVarintLen64]byte
	for i := range s.Len() {
		smp, _ := s.Get(i) // zero when never polled
		v := s.verdicts[i].Load()
		k := binary.AppendVarint(b[:0], smp.TimeMs-prevTs)
		k = binary.AppendUvarint(k, uint64(smp.Followers))
		k = binary.AppendUvarint(k, uint64(smp.Following))
		k = binary.AppendVarint(k, v-prevV)
		bw.Write(k)
		prevTs, prevV = smp.TimeMs, v
	}
	odd := s.oddUsernamesSnapshot()
	bw.Write(binary.AppendUvarint(b[:0], uint64(len(odd))))
	for i, name := range odd {
		k := binary.AppendUvarint(b[:0], uint64(i))
		k = binary.AppendUvarint(k, uint64(len(name)))
		bw.Write(k)
		bw.WriteString(name)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if _, err := cw.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return 0, err
	}
	return cw.N, nil
}

// saveLoop writes the state every StateInterval until ctx ends.
func (e *Exporter) saveLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.StateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.saveAndReport("periodic")
		}
	}
}

// saveAndReport saves the state and accounts for it in logs and telemetry.
func (e *Exporter) saveAndReport(why string) {
	start := time.Now()
	n, err := e.SaveState()
	d := time.Since(start)
	if err != nil {
		e.tel.stateErrors.Inc()
		e.log.Error("state not saved; a restart now would lose verdicts", "why", why, "err", err)
		return
	}
	e.tel.stateBytes.Set(float64(n))
	e.tel.stateSeconds.Set(d.Seconds())
	e.tel.stateLast.SetToCurrentTime()
	lvl := slog.LevelDebug
	if why != "periodic" {
		lvl = slog.LevelInfo
	}
	e.log.Log(context.Background(), lvl, "state saved", "why", why, "path", e.stateFile(),
		"bytes", n, "duration", d.Round(time.Millisecond))
}

// StateLoad describes what LoadState found.
type StateLoad struct {
	Path        string
	Loaded      bool          // the file was read and applied
	Cold        bool          // no usable file: the exporter starts empty
	SetAside    string        // where a rejected file was moved
	Reason      error         // why the file was rejected (nil when loaded or absent)
	Age         time.Duration // how old the file was
	Influencers int           // pks with a sample
	Verdicts    int           // pks with a verdict
}

// LoadState reads the shard's state file into the exporter before Run. A
// missing file is a cold start. A file that cannot be used (corrupt,
// truncated, another shard's or range's, another version) is renamed aside
// with a .rejected-<time> suffix and the exporter starts cold: it reports
// the reason but never fails on it, so a bad file cannot crash-loop a pod.
// Leftover temporary files of interrupted writes are removed.
func (e *Exporter) LoadState() StateLoad {
	path := e.stateFile()
	res := StateLoad{Path: path, Cold: true}
	if entries, err := os.ReadDir(e.cfg.StateDir); err == nil {
		prefix := filepath.Base(path) + ".tmp-"
		for _, d := range entries {
			if strings.HasPrefix(d.Name(), prefix) {
				os.Remove(filepath.Join(e.cfg.StateDir, d.Name()))
			}
		}
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return res
	}
	if err != nil {
		// Not the file's fault (permissions, I/O): it stays where it is
		// for the next start, and this one starts cold.
		res.Reason = fmt.Errorf("cannot read state file: %w", err)
		return res
	}
	if err = e.applyState(data, &res); err != nil {
		res.Reason = err
		aside := fmt.Sprintf("%s.rejected-%s", path, time.Now().UTC().Format("20060102T150405.000Z"))
		if rerr := os.Rename(path, aside); rerr == nil {
			res.SetAside = aside
		}
		return res
	}
	res.Loaded, res.Cold = true, false
	return res
}

// errState marks a file that is not usable state for this exporter.
type errState struct{ msg string }

func (e *errState) Error() string { return e.msg }

func stateErr(format string, a ...any) error { return &errState{fmt.Sprintf(format, a...)} }

func (e *Exporter) applyState(data []byte, res *StateLoad) error {
	const hdrLen = 4 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 8 + 8
	if len(data) >= 4 && string(data[:4]) != stateMagic {
		return stateErr("not an exporter state file (bad magic %q)", data[:4])
	}
	if len(data) < hdrLen+4 {
		return stateErr("state file is %d bytes, too short for a header: truncated", len(data))
	}
	le := binary.LittleEndian
	if v := le.Uint32(data[4:]); v != stateVersion {
		return stateErr("state file version %d, this exporter reads version %d", v, stateVersion)
	}
	body, sum := data[:len(data)-4], le.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return stateErr("state file checksum mismatch: corrupt or truncated")
	}
	h := stateHeader{
		WrittenMs: int64(le.Uint64(data[8:])),
		Range:     pkrange.Range{Min: int64(le.Uint64(data[16:])), Max: int64(le.Uint64(data[24:]))},
		Shard:     pkrange.Shard{Index: int(le.Uint32(data[32:])), Count: int(le.Uint32(data[36:]))},
		N:         le.Uint32(data[40:]),
		PeriodNs:  int64(le.Uint64(data[44:])),
		AnchorMs:  int64(le.Uint64(data[52:])),
	}
	if h.Range != e.cfg.Range || h.Shard != e.cfg.Shard || int(h.N) != e.store.Len() {
		return stateErr("state file belongs to shard %d of %d over pks %d..%d (%d pks); this exporter is shard %d of %d over pks %d..%d",
			h.Shard.Index, h.Shard.Count, h.Range.Min, h.Range.Max, h.N, e.cfg.Shard.Index, e.cfg.Shard.Count, e.cfg.Range.Min, e.cfg.Range.Max)
	}
	res.Age = time.Since(time.UnixMilli(h.WrittenMs))
	if res.Age < -time.Minute {
		// Its poll and verdict times would be in this clock's future: every
		// new poll would be refused as older until the clock caught up.
		return stateErr("state file was written %s in the future of this clock (at %s); one of the clocks is wrong",
			(-res.Age).Round(time.Second), time.UnixMilli(h.WrittenMs).UTC().Format(time.RFC3339))
	}
	// Decode everything before applying anything: a bad file changes nothing.
	type rec struct {
		smp Sample
		v   int64
	}
	recs := make([]rec, h.N)
	p := body[hdrLen:]
	var prevTs, prevV int64
	next := func(signed bool) (int64, bool) {
		var x int64
		var k int
		if signed {
			x, k = binary.Varint(p)
		} else {
			var u uint64
			u, k = binary.Uvarint(p)
			x = int64(u)
			if u > 1<<32-1 {
				return 0, false
			}
		}
		if k <= 0 {
			return 0, false
		}
		p = p[k:]
		return x, true
	}
	for i := range recs {
		dt, ok1 := next(true)
		fo, ok2 := next(false)
		fg, ok3 := next(false)
		dv, ok4 := next(true)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return stateErr("state file record %d of %d does not decode", i, h.N)
		}
		prevTs += dt
		prevV += dv
		recs[i] = rec{smp: Sample{Followers: uint32(fo), Following: uint32(fg), TimeMs: prevTs}, v: prevV}
	}
	count, ok := next(false)
	if !ok || count > int64(h.N) {
		return stateErr("state file username section does not decode")
	}
	names := make(map[int]string, count)
	for range count {
		i, ok1 := next(false)
		l, ok2 := next(false)
		if !ok1 || !ok2 || i >= int64(h.N) || l > int64(len(p)) {
			return stateErr("state file username section does not decode")
		}
		names[int(i)] = string(p[:l])
		p = p[l:]
	}
	if len(p) != 0 {
		return stateErr("state file has %d bytes of trailing garbage", len(p))
	}
	for i, r := range recs {
		if e.store.Set(i, r.smp) {
			res.Influencers++
		}
		if e.store.SetVerdict(i, unpackVerdict(r.v)) {
			res.Verdicts++
		}
	}
	for i, name := range names {
		e.store.SetUsername(i, []byte(name))
	}
	e.loadedAnchorMs, e.loadedPeriodNs = h.AnchorMs, h.PeriodNs
	if e.classifier != nil && h.AnchorMs > 0 && time.Duration(h.PeriodNs) == e.cfg.Suspicious.Period {
		e.classifier.anchorMs.Store(h.AnchorMs)
		e.classifier.resumed = true
	}
	return nil
}

// IsStateRejection reports whether err is LoadState's reason for setting a
// file aside (as opposed to an I/O error).
func IsStateRejection(err error) bool {
	var s *errState
	return errors.As(err, &s)
}
