// Package snapwire is the compact binary snapshot an exporter serves to
// rankd: every owned influencer's latest counts, poll time and suspicious
// verdict, 24 bytes each, so that rankd refreshes 1M influencers from a 24 MB
// read instead of parsing 207 MB of text.
//
// Layout, little-endian:
//
//	magic "MSNP" | version uint32 | first pk int64 | step int64 | n uint32
//	n x (followers uint32 | following uint32 | poll time Unix ms int64; 0 = never polled
//	     | verdict int64: the verdict word of PackVerdict, 0 = no verdict)
package snapwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Version is the layout version this package reads and writes.
const Version = 2

// Path is where an exporter serves the snapshot and where rankd reads it,
// below the exporter's base URL. Both sides use this constant, so the
// route cannot drift between them.
const Path = "/api/v1/snapshot"

var magic = [4]byte{'M', 'S', 'N', 'P'}

// Header describes the pks a snapshot holds: First + i*Step for i < N.
type Header struct {
	First, Step int64
	N           uint32
}

// Record is one influencer.
type Record struct {
	Followers, Following uint32
	TimeMs               int64 // poll time, Unix ms; 0 = never polled
	VerdictMs            int64 // when the classifier judged it, Unix ms; 0 = no verdict yet
	Suspicious           bool  // the verdict; meaningful only when VerdictMs > 0
}

// MaxVerdictMs is the latest verdict time a verdict word holds; later
// times are stored as this one. It is far beyond any real clock.
const MaxVerdictMs = math.MaxInt64 >> 1

// PackVerdict returns the verdict word: 0 for no verdict (ms <= 0), else
// ms << 1 | suspicious. The word is what a snapshot record carries, and
// the exporter keeps its verdicts in the same form, so that one atomic
// word holds a verdict and the snapshot writer copies it unchanged. It is
// always positive when there is a verdict, and a later verdict has a
// larger word.
func PackVerdict(ms int64, suspicious bool) int64 {
	if ms <= 0 {
		return 0
	}
	v := min(ms, MaxVerdictMs) << 1
	if suspicious {
		v |= 1
	}
	return v
}

// UnpackVerdict is the inverse of PackVerdict; a word <= 0 is no verdict
// (ms 0, not suspicious).
func UnpackVerdict(w int64) (ms int64, suspicious bool) {
	if w <= 0 {
		return 0, false
	}
	return w >> 1, w&1 == 1
}

const headerSize = 4 + 4 + 8 + 8 + 4

// RecordSize is the bytes per influencer on the wire.
const RecordSize = 24

// Write writes a snapshot; rec(i) returns the i-th record.
func Write(w io.Writer, h Header, rec func(i int) Record) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var b [headerSize]byte
	copy(b[:4], magic[:])
	binary.LittleEndian.PutUint32(b[4:], Version)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.First))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.Step))
	binary.LittleEndian.PutUint32(b[24:], h.N)
	if _, err := bw.Write(b[:]); err != nil {
		return err
	}
	var r [RecordSize]byte
	for i := range int(h.N) {
		x := rec(i)
		binary.LittleEndian.PutUint32(r[0:], x.Followers)
		binary.LittleEndian.PutUint32(r[4:], x.Following)
		binary.LittleEndian.PutUint64(r[8:], uint64(x.TimeMs))
		binary.LittleEndian.PutUint64(r[16:], uint64(PackVerdict(x.VerdictMs, x.Suspicious)))
		if _, err := bw.Write(r[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// MaxN bounds a snapshot's size so that a corrupt header cannot make the
// reader allocate without limit.
const MaxN = 1 << 26

// Read reads a snapshot, calling put for each record.
func Read(r io.Reader, put func(h Header, i int, x Record)) (Header, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var b [headerSize]byte
	if _, err := io.ReadFull(br, b[:]); err != nil {
		return Header{}, fmt.Errorf("cannot read snapshot header: %w", err)
	}
	if [4]byte(b[:4]) != magic {
		return Header{}, errors.New("not a snapshot (bad magic); is the URL an exporter's?")
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != Version {
		return Header{}, fmt.Errorf("snapshot version %d, this reader knows %d; upgrade rankd and the exporters together", v, Version)
	}
	h := Header{
		First: int64(binary.LittleEndian.Uint64(b[8:])),
		Step:  int64(binary.LittleEndian.Uint64(b[16:])),
		N:     binary.LittleEndian.Uint32(b[24:]),
	}
	if h.N > MaxN || h.Step < 1 || h.First < 0 {
		return Header{}, fmt.Errorf("implausible snapshot header %+v", h)
	}
	var rec [RecordSize]byte
	for i := range int(h.N) {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return Header{}, fmt.Errorf("snapshot truncated at record %d of %d: %w", i, h.N, err)
		}
		vms, susp := UnpackVerdict(int64(binary.LittleEndian.Uint64(rec[16:])))
		put(h, i, Record{
			Followers:  binary.LittleEndian.Uint32(rec[0:]),
			Following:  binary.LittleEndian.Uint32(rec[4:]),
			TimeMs:     int64(binary.LittleEndian.Uint64(rec[8:])),
			VerdictMs:  vms,
			Suspicious: susp,
		})
	}
	return h, nil
}
