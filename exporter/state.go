package exporter

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/mockstagram-exporter/mockstagram-exporter/internal/pkrange"
	"github.com/mockstagram-exporter/mockstagram-exporter/internal/webserver"
)

// The state file keeps what a restart must not lose: every owned pk's last
// values, poll time and verdict with its time, the usernames that differ
// from the canonical one, and the classifier's schedule (where each pk is in
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
//
// This file only encodes and decodes; statefile.go writes and reads files,
// and persist.go applies a decoded state to a running exporter.
const (
	stateVersion = 1
	stateMagic   = "MSXS"
	stateHdrLen  = 4 + 4 + 8 + 8 + 8 + 4 + 4 + 4 + 8 + 8
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Schedule is where the classifier's walk stands: position 0 of period k is
// due at AnchorMs + k*Period. The zero value is no walk yet.
type Schedule struct {
	AnchorMs int64
	Period   time.Duration
}

// StateHeader identifies whose state a file is and when it was written.
type StateHeader struct {
	WrittenMs int64
	Range     pkrange.Range
	Shard     pkrange.Shard
	Schedule  Schedule
}

// State is a decoded state file: a plain value, indexed by store position.
type State struct {
	StateHeader
	Samples   []Sample         // TimeMs 0: never polled
	Verdicts  []Verdict        // TimeMs 0: no verdict
	Usernames map[int32]string // the non-canonical ones
}

// stateSource is what encodeState reads: a Store, or anything shaped like
// one.
type stateSource interface {
	Len() int
	Get(i int) (Sample, bool)
	Verdict(i int) Verdict
	OddUsernames() map[int32]string
}

// encodeState writes h and src's records in the state file format and
// returns the bytes written.
func encodeState(w io.Writer, h StateHeader, src stateSource) (int64, error) {
	cw := &webserver.CountingWriter{W: w}
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crc), 256<<10)
	le := binary.LittleEndian
	hdr := make([]byte, 0, stateHdrLen)
	hdr = append(hdr, stateMagic...)
	hdr = le.AppendUint32(hdr, stateVersion)
	hdr = le.AppendUint64(hdr, uint64(h.WrittenMs))
	hdr = le.AppendUint64(hdr, uint64(h.Range.Min))
	hdr = le.AppendUint64(hdr, uint64(h.Range.Max))
	hdr = le.AppendUint32(hdr, uint32(h.Shard.Index))
	hdr = le.AppendUint32(hdr, uint32(h.Shard.Count))
	hdr = le.AppendUint32(hdr, uint32(src.Len()))
	hdr = le.AppendUint64(hdr, uint64(h.Schedule.Period))
	hdr = le.AppendUint64(hdr, uint64(h.Schedule.AnchorMs))
	bw.Write(hdr)
	var prevTs, prevV int64
	var b [4 * binary.MaxVarintLen64]byte
	for i := range src.Len() {
		smp, _ := src.Get(i) // zero when never polled
		v := packVerdict(src.Verdict(i))
		k := binary.AppendVarint(b[:0], smp.TimeMs-prevTs)
		k = binary.AppendUvarint(k, uint64(smp.Followers))
		k = binary.AppendUvarint(k, uint64(smp.Following))
		k = binary.AppendVarint(k, v-prevV)
		bw.Write(k)
		prevTs, prevV = smp.TimeMs, v
	}
	odd := src.OddUsernames()
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
	if _, err := cw.Write(le.AppendUint32(nil, crc.Sum32())); err != nil {
		return 0, err
	}
	return cw.N, nil
}

// errState marks a file that is not usable state.
type errState struct{ msg string }

func (e *errState) Error() string { return e.msg }

func stateErr(format string, a ...any) error { return &errState{fmt.Sprintf(format, a...)} }

// decodeState reads a whole state file. It checks the format and the
// checksum, not whose state it is: that is the caller's to judge. It never
// allocates more than the data can hold: every record takes at least four
// bytes, so a header claiming more records than that is refused first.
func decodeState(data []byte) (*State, error) {
	if len(data) >= 4 && string(data[:4]) != stateMagic {
		return nil, stateErr("not an exporter state file (bad magic %q)", data[:4])
	}
	if len(data) < stateHdrLen+4 {
		return nil, stateErr("state file is %d bytes, too short for a header: truncated", len(data))
	}
	le := binary.LittleEndian
	if v := le.Uint32(data[4:]); v != stateVersion {
		return nil, stateErr("state file version %d, this exporter reads version %d", v, stateVersion)
	}
	body, sum := data[:len(data)-4], le.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, stateErr("state file checksum mismatch: corrupt or truncated")
	}
	st := &State{StateHeader: StateHeader{
		WrittenMs: int64(le.Uint64(data[8:])),
		Range:     pkrange.Range{Min: int64(le.Uint64(data[16:])), Max: int64(le.Uint64(data[24:]))},
		Shard:     pkrange.Shard{Index: int(le.Uint32(data[32:])), Count: int(le.Uint32(data[36:]))},
		Schedule:  Schedule{Period: time.Duration(le.Uint64(data[44:])), AnchorMs: int64(le.Uint64(data[52:]))},
	}}
	n := le.Uint32(data[40:])
	p := body[stateHdrLen:]
	if uint64(n)*4 > uint64(len(p)) {
		return nil, stateErr("state file claims %d records in %d bytes: truncated or corrupt", n, len(p))
	}
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
	st.Samples = make([]Sample, n)
	st.Verdicts = make([]Verdict, n)
	for i := range st.Samples {
		dt, ok1 := next(true)
		fo, ok2 := next(false)
		fg, ok3 := next(false)
		dv, ok4 := next(true)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, stateErr("state file record %d of %d does not decode", i, n)
		}
		prevTs += dt
		prevV += dv
		st.Samples[i] = Sample{Followers: uint32(fo), Following: uint32(fg), TimeMs: prevTs}
		st.Verdicts[i] = unpackVerdict(prevV)
	}
	count, ok := next(false)
	if !ok || count > int64(n) {
		return nil, stateErr("state file username section does not decode")
	}
	st.Usernames = make(map[int32]string, count)
	for range count {
		i, ok1 := next(false)
		l, ok2 := next(false)
		if !ok1 || !ok2 || i >= int64(n) || l > int64(len(p)) {
			return nil, stateErr("state file username section does not decode")
		}
		st.Usernames[int32(i)] = string(p[:l])
		p = p[l:]
	}
	if len(p) != 0 {
		return nil, stateErr("state file has %d bytes of trailing garbage", len(p))
	}
	return st, nil
}
