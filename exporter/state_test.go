package exporter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/memnet"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/simulator/simtest"
)

// exposition renders a store's whole plain exposition.
func exposition(t *testing.T, s *exporter.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	x := exporter.NewExposition(s)
	if _, err := x.Write(&buf, 0, s.Len()); err != nil {
		t.Fatal(err)
	}
	if _, err := x.WriteInfo(&buf, 0, s.Len()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stateConfig polls nothing reachable: what the store holds after a load
// is exactly what the state file carried.
func stateConfig(dir string, max int64, sh pkrange.Shard) exporter.Config {
	cfg := testConfig([]string{"http://127.0.0.1:1"}, max, sh)
	cfg.StateDir = dir
	cfg.Suspicious = exporter.SuspiciousConfig{Enabled: true, Period: time.Hour, Concurrency: 4, Timeout: time.Second}
	return cfg
}

// filledState polls a simulator with the classifier on until every pk has
// a sample and a verdict, stops, and leaves its state file in dir. It runs
// on a fake clock (the file's times are in the bubble's year 2000, which a
// load on the real clock takes as an old file, as it is).
func filledState(t *testing.T, dir string, max int64, sh pkrange.Shard) (want []byte) {
	t.Helper()
	inBubble(t, func(t *testing.T, n *memnet.Network) {
		_, url := simtest.StartMem(t, simtest.Config(pkMin, max, false), n)
		cfg := suspiciousConfig(url, max, 2*time.Second, 32)
		cfg.Shard = sh
		cfg.StateDir = dir
		s := startShardMem(t, n, cfg)
		s.WaitVerdicts(t)
		s.StopPolling() // saves the state
		// A username Mockstagram never sends, with characters to escape.
		s.E.Store().SetUsername(0, []byte(`renamed "one"`))
		if _, err := s.E.SaveState(); err != nil {
			t.Fatal(err)
		}
		want = exposition(t, s.E.Store())
	})
	return want
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sh := pkrange.Shard{Index: 1, Count: 2}
	want := filledState(t, dir, pkMin+599, sh)
	if !bytes.Contains(want, []byte(exporter.MetricSuspicious+`{pk="1000001"}`)) || !bytes.Contains(want, []byte(`username="renamed \"one\""`)) {
		t.Fatalf("the saved exporter lacks verdicts or the odd username:\n%.2000s", want)
	}
	e, err := exporter.New(stateConfig(dir, pkMin+599, sh))
	if err != nil {
		t.Fatal(err)
	}
	res := e.LoadState()
	if !res.Loaded || res.Influencers != 300 || res.Verdicts != 300 || res.Reason != nil {
		t.Fatalf("load: %+v, want 300 influencers and 300 verdicts", res)
	}
	if got := exposition(t, e.Store()); !bytes.Equal(got, want) {
		t.Fatalf("exposition after a load differs from before the save:\n got %.1500s\nwant %.1500s", got, want)
	}
}

// TestStateRejectedFiles: a file that cannot be this shard's state is set
// aside with the reason, the exporter starts cold and does not fail.
func TestStateRejectedFiles(t *testing.T) {
	src := t.TempDir()
	sh := pkrange.Shard{Index: 0, Count: 2}
	filledState(t, src, pkMin+199, sh)
	good, err := os.ReadFile(exporter.StateFile(src, pkrange.Range{Min: pkMin, Max: pkMin + 199}, sh))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x10; return b }
	// written an hour in this clock's future, with a valid checksum
	future := bytes.Clone(good)
	binary.LittleEndian.PutUint64(future[8:], uint64(time.Now().Add(time.Hour).UnixMilli()))
	binary.LittleEndian.PutUint32(future[len(future)-4:], crc32.Checksum(future[:len(future)-4], crc32.MakeTable(crc32.Castagnoli)))
	cases := []struct {
		name string
		data []byte
		cfg  func(dir string) exporter.Config
		want string
	}{
		{"corrupt", flip(len(good) / 2), nil, "checksum mismatch"},
		{"truncated", good[:len(good)-100], nil, "checksum mismatch"},
		{"empty", nil, nil, "too short"},
		{"foreign", good, func(dir string) exporter.Config {
			return stateConfig(dir, pkMin+299, sh) // another range: same file name, other pks
		}, "belongs to shard 0 of 2 over pks 1000000..1000199 (100 pks); this exporter is shard 0 of 2 over pks 1000000..1000299"},
		{"version", flip(4), nil, "state file version"},
		{"future", future, nil, "in the future of this clock"},
		{"not state", []byte("mockstagram_influencer_followers{pk=\"1\"} 5\n"), nil, "not an exporter state file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := stateConfig(dir, pkMin+199, sh)
			if c.cfg != nil {
				cfg = c.cfg(dir)
			}
			path := exporter.StateFile(dir, cfg.Range, sh)
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := exporter.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res := e.LoadState()
			if res.Loaded || res.Reason == nil || !strings.Contains(res.Reason.Error(), c.want) {
				t.Fatalf("load: %+v (reason %v), want a cold start because %q", res, res.Reason, c.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("the rejected file is still in place: %v", err)
			}
			aside, err := os.ReadFile(res.SetAside)
			if err != nil || !bytes.Equal(aside, c.data) {
				t.Fatalf("the rejected file was not kept aside intact at %q: %v", res.SetAside, err)
			}
			if n := bytes.Count(exposition(t, e.Store()), []byte("\nmockstagram_influencer_followers{")); n != 0 {
				t.Fatalf("%d samples after a rejected state, want a cold start", n)
			}
			// The next save and load work: the bad file is out of the way.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			e.Run(ctx)
			e2, _ := exporter.New(cfg)
			if res := e2.LoadState(); !res.Loaded {
				t.Fatalf("state written after the rejection does not load: %+v", res)
			}
		})
	}
}

// TestStateInterruptedWrite: a write killed before its rename leaves the
// previous state, which loads; the leftover temporary file is removed.
func TestStateInterruptedWrite(t *testing.T) {
	dir := t.TempDir()
	sh := pkrange.Shard{Count: 1}
	want := filledState(t, dir, pkMin+99, sh)
	path := exporter.StateFile(dir, pkrange.Range{Min: pkMin, Max: pkMin + 99}, sh)
	good, _ := os.ReadFile(path)
	torn := path + ".tmp-123456"
	if err := os.WriteFile(torn, good[:len(good)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	e, _ := exporter.New(stateConfig(dir, pkMin+99, sh))
	if res := e.LoadState(); !res.Loaded {
		t.Fatalf("load next to a torn temporary file: %+v", res)
	}
	if got := exposition(t, e.Store()); !bytes.Equal(got, want) {
		t.Fatal("the loaded state is not the last complete one")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestStateUnreadableIsKept: a file that cannot be read (here: a
// directory in its place) is not the file's fault; it stays where it is and
// the exporter starts cold.
func TestStateUnreadableIsKept(t *testing.T) {
	dir := t.TempDir()
	cfg := stateConfig(dir, pkMin+9, pkrange.Shard{Count: 1})
	path := exporter.StateFile(dir, cfg.Range, cfg.Shard)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := e.LoadState()
	if res.Loaded || res.Reason == nil || res.SetAside != "" || !strings.Contains(res.Reason.Error(), "cannot read state file") {
		t.Fatalf("load: %+v (reason %v), want a cold start that leaves the path alone", res, res.Reason)
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		t.Fatalf("the unreadable path was moved: %v", err)
	}
}

// TestStateDirMustExist: a typo in --state.dir is a configuration error,
// not a silent cold start on every restart.
func TestStateDirMustExist(t *testing.T) {
	cfg := stateConfig(filepath.Join(t.TempDir(), "nope"), pkMin+9, pkrange.Shard{Count: 1})
	if _, err := exporter.New(cfg); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Fatalf("New: %v, want a state.dir error", err)
	}
}
