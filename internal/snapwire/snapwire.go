// Package snapwire is the compact binary snapshot an exporter serves to
// rankd: every owned influencer's latest counts, poll time and suspicious
// verdict, 24 bytes each, so that rankd refreshes 1M influencers from a 24 MB
// read instead of parsing 207 MB of text.
//
// Layout, little-endian:
//
//	magic "MSNP" | version uint32 | first pk int64 | step int64 | n uint32
//	n x (followers uint32 | following uint32 | poll time Unix ms int64; 0 = never polled
//	     | verdict int64: 0 = no verdict, else verdict time Unix ms << 1 | suspicious)
package snapwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the layout version this package reads and writes.
const Version = 2

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

func packVerdict(x Record) uint64 {
	if x.VerdictMs <= 0 {
		return 0
	}
	v := uint64(x.VerdictMs) << 1
	if x.Suspicious {
		v |= 1
	}
	return v
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
		binary.LittleEndian.PutUint64(r[16:], packVerdict(x))
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
		v := binary.LittleEndian.Uint64(rec[16:])
		put(h, i, Record{
			Followers:  binary.LittleEndian.Uint32(rec[0:]),
			Following:  binary.LittleEndian.Uint32(rec[4:]),
			TimeMs:     int64(binary.LittleEndian.Uint64(rec[8:])),
			VerdictMs:  int64(v >> 1),
			Suspicious: v&1 == 1,
		})
	}
	return h, nil
}
