package exporter_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/exporter"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
)

// The fuzzed state belongs to shard 1 of 2 over pkMin..pkMin+9: 5 pks.
var fuzzStateShard = pkrange.Shard{Index: 1, Count: 2}

const fuzzStateMax = pkMin + 9

const stateHeaderLen = 60 // magic .. anchor, as laid out in state.go

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func withCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(b), crc32.Checksum(b, castagnoli))
}

// fuzzStateFile makes the state file for mode and data: 0 data as it is,
// 1 data with its checksum appended (a header the fuzzer chooses), 2 this
// shard's header, then data, then the checksum (records and usernames the
// fuzzer chooses).
func fuzzStateFile(mode uint8, data, header []byte) []byte {
	switch mode % 3 {
	case 0:
		return data
	case 1:
		return withCRC(data)
	}
	return withCRC(append(bytes.Clone(header), data...))
}

// loadFuzzState writes file as the shard's state in a fresh directory and
// loads it into a new exporter.
func loadFuzzState(t testing.TB, file []byte) (*exporter.Exporter, exporter.StateLoad, exporter.Config) {
	dir := t.TempDir()
	cfg := stateConfig(dir, fuzzStateMax, fuzzStateShard)
	if err := os.WriteFile(exporter.StateFile(dir, cfg.Range, cfg.Shard), file, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, e.LoadState(), cfg
}

// sameStores compares every slot: sample, verdict and username.
func sameStores(t testing.TB, a, b *exporter.Store) {
	t.Helper()
	for i := range a.Len() {
		sa, oka := a.Get(i)
		sb, okb := b.Get(i)
		if sa != sb || oka != okb || a.Verdict(i) != b.Verdict(i) || a.Username(i) != b.Username(i) {
			t.Fatalf("index %d: %+v %v %+v %q, then %+v %v %+v %q", i, sa, oka, a.Verdict(i), a.Username(i), sb, okb, b.Verdict(i), b.Username(i))
		}
	}
}

// FuzzStateLoad gives the state loader any file: as it is, with a valid
// checksum, or with this shard's header and a valid checksum around any
// body. The loader must never panic or fail; it rejects the file (set
// aside, the store left empty) or loads it, and what it loaded saves and
// loads again to the same store, twice over.
func FuzzStateLoad(f *testing.F) {
	// A real file: samples, verdicts of both kinds, a pk never polled,
	// usernames to escape and one that is not UTF-8.
	dir := f.TempDir()
	cfg := stateConfig(dir, fuzzStateMax, fuzzStateShard)
	e, err := exporter.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	s := e.Store()
	for i := range s.Len() - 1 {
		s.Set(i, exporter.Sample{Followers: uint32(5000 + 999*i), Following: uint32(50 + i), TimeMs: 1_763_780_000_000 + int64(i)})
		s.SetVerdict(i, exporter.Verdict{TimeMs: 1_763_700_000_000 + int64(7*i), Suspicious: i%2 == 0})
	}
	s.SetUsername(1, []byte(`we"ird\name`+"\n"))
	s.SetUsername(2, []byte("\xff\xfe"))
	if _, err := e.SaveState(); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(exporter.StateFile(dir, cfg.Range, cfg.Shard))
	if err != nil {
		f.Fatal(err)
	}
	header, body := good[:stateHeaderLen], good[stateHeaderLen:len(good)-4]
	f.Add(uint8(0), good)
	f.Add(uint8(0), good[:len(good)-1])
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte("MSXS"))
	f.Add(uint8(1), good[:len(good)-4])
	f.Add(uint8(2), body)
	f.Add(uint8(2), body[:len(body)-1])
	f.Add(uint8(2), append(bytes.Clone(body), 0))
	f.Add(uint8(2), []byte{})
	// One record per pk, then a username section claiming more names or
	// longer names than there are.
	recs := bytes.Repeat([]byte{2, 1, 1, 2}, 5)
	f.Add(uint8(2), append(bytes.Clone(recs), 6, 0, 1, 'x'))
	f.Add(uint8(2), append(bytes.Clone(recs), 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Add(uint8(2), append(bytes.Clone(recs), 1, 9, 1, 'x'))
	f.Add(uint8(2), append(bytes.Clone(recs), 2, 0, 1, 'x', 0, 1, 'y'))
	// Counts beyond uint32, a poll time that wraps, a negative verdict.
	f.Add(uint8(2), append([]byte{2, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 2}, 0))
	f.Add(uint8(2), append(append([]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 1, 1}, recs[4:]...), 0))
	f.Add(uint8(2), append(append([]byte{2, 1, 1, 1}, recs[4:]...), 0))
	// Headers of another shard, a huge n, the future.
	other := bytes.Clone(header)
	binary.LittleEndian.PutUint32(other[40:], 1<<32-1)
	f.Add(uint8(1), append(other, body...))
	future := bytes.Clone(header)
	binary.LittleEndian.PutUint64(future[8:], uint64(time.Now().Add(time.Hour).UnixMilli()))
	f.Add(uint8(1), append(future, body...))

	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		file := fuzzStateFile(mode, data, header)
		e, res, _ := loadFuzzState(t, file)
		empty, _ := exporter.New(stateConfig(t.TempDir(), fuzzStateMax, fuzzStateShard))
		if !res.Loaded {
			// Rejected (set aside, with the reason), not an I/O error (which
			// leaves the file in place).
			if res.Reason == nil || res.SetAside == "" {
				t.Fatalf("not loaded, yet not a clean rejection: %+v", res)
			}
			sameStores(t, e.Store(), empty.Store()) // a bad file changes nothing
			return
		}
		if res.Reason != nil || res.SetAside != "" {
			t.Fatalf("loaded, yet %+v", res)
		}
		st := e.Store()
		polled, judged := 0, 0
		for i := range st.Len() {
			if _, ok := st.Get(i); ok {
				polled++
			}
			if st.Verdict(i).TimeMs > 0 {
				judged++
			}
		}
		if polled != res.Influencers || judged != res.Verdicts {
			t.Fatalf("load reports %d influencers and %d verdicts, the store holds %d and %d", res.Influencers, res.Verdicts, polled, judged)
		}
		// Save, load into another exporter, save and load again: the same
		// store each time.
		if _, err := e.SaveState(); err != nil {
			t.Fatal(err)
		}
		saved1, err := os.ReadFile(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		e2, res2, _ := loadFuzzState(t, saved1)
		if !res2.Loaded {
			t.Fatalf("a saved state does not load: %v", res2.Reason)
		}
		sameStores(t, st, e2.Store())
		if _, err := e2.SaveState(); err != nil {
			t.Fatal(err)
		}
		saved2, _ := os.ReadFile(res2.Path)
		// The usernames are written in map order, so only the length of
		// the file is the same; the stores say the rest.
		if len(saved1) != len(saved2) {
			t.Fatalf("saving a loaded state changes it:\n%x\n%x", saved1, saved2)
		}
		e3, res3, _ := loadFuzzState(t, saved2)
		if !res3.Loaded {
			t.Fatalf("a state saved twice does not load: %v", res3.Reason)
		}
		sameStores(t, st, e3.Store())
	})
}
