package snapwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func encode(t *testing.T, h Header, recs []Record) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, h, func(i int) Record { return recs[i] }); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type got struct {
	h    Header
	recs []Record
}

func decode(data []byte) (got, error) {
	var g got
	h, err := Read(bytes.NewReader(data), func(h Header, i int, x Record) {
		if i != len(g.recs) {
			panic("records out of order")
		}
		g.h = h
		g.recs = append(g.recs, x)
	})
	g.h = h
	return g, err
}

// TestRoundTrip: every field comes back, the verdict with its flag, and
// "no verdict" stays distinct from "not suspicious".
func TestRoundTrip(t *testing.T) {
	recs := []Record{
		{Followers: 57166, Following: 1328, TimeMs: 1_763_780_000_123},                                                 // no verdict
		{Followers: 5000, Following: 50, TimeMs: 1_763_780_000_456, VerdictMs: 1_763_700_000_789, Suspicious: true},    // flagged
		{Followers: 250000, Following: 90, TimeMs: 1_763_780_000_999, VerdictMs: 1_763_700_000_001, Suspicious: false}, // cleared
		{}, // never polled
		{Followers: math.MaxUint32, Following: math.MaxUint32, TimeMs: math.MaxInt64, VerdictMs: math.MaxInt64 >> 1, Suspicious: true}, // extremes
	}
	h := Header{First: 1_000_002, Step: 3, N: uint32(len(recs))}
	data := encode(t, h, recs)
	if len(data) != headerSize+len(recs)*RecordSize {
		t.Fatalf("%d bytes for %d records, want %d", len(data), len(recs), headerSize+len(recs)*RecordSize)
	}
	g, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if g.h != h || len(g.recs) != len(recs) {
		t.Fatalf("header %+v with %d records, want %+v with %d", g.h, len(g.recs), h, len(recs))
	}
	for i := range recs {
		if g.recs[i] != recs[i] {
			t.Fatalf("record %d: %+v, want %+v", i, g.recs[i], recs[i])
		}
	}
}

// TestVerdictWithoutTime: a suspicious flag without a verdict time is not a
// verdict; it reads back as no verdict at all.
func TestVerdictWithoutTime(t *testing.T) {
	data := encode(t, Header{First: 1, Step: 1, N: 2}, []Record{{Suspicious: true}, {VerdictMs: -5, Suspicious: true}})
	g, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range g.recs {
		if r.VerdictMs != 0 || r.Suspicious {
			t.Fatalf("record %d: %+v, want no verdict", i, r)
		}
	}
}

// TestLayout pins the bytes: other implementations read this format.
func TestLayout(t *testing.T) {
	data := encode(t, Header{First: 1_000_000, Step: 2, N: 1},
		[]Record{{Followers: 7, Following: 9, TimeMs: 1000, VerdictMs: 3000, Suspicious: true}})
	le := binary.LittleEndian
	if string(data[:4]) != "MSNP" || le.Uint32(data[4:]) != 2 || le.Uint64(data[8:]) != 1_000_000 || le.Uint64(data[16:]) != 2 || le.Uint32(data[24:]) != 1 {
		t.Fatalf("header bytes %x", data[:headerSize])
	}
	r := data[headerSize:]
	if le.Uint32(r[0:]) != 7 || le.Uint32(r[4:]) != 9 || le.Uint64(r[8:]) != 1000 || le.Uint64(r[16:]) != 3000<<1|1 {
		t.Fatalf("record bytes %x", r)
	}
}

func TestEmpty(t *testing.T) {
	g, err := decode(encode(t, Header{First: 5, Step: 1, N: 0}, nil))
	if err != nil || g.h != (Header{First: 5, Step: 1}) || len(g.recs) != 0 {
		t.Fatalf("empty snapshot: %+v, %v", g, err)
	}
}

// TestBadInput: every broken input is an error that says what is wrong,
// never a panic or a silent partial read.
func TestBadInput(t *testing.T) {
	good := encode(t, Header{First: 1_000_000, Step: 1, N: 3}, []Record{{Followers: 1, TimeMs: 1}, {Followers: 2, TimeMs: 2}, {Followers: 3, TimeMs: 3}})
	f := func(name string, data []byte, wantErr string, wantRecords int) {
		t.Helper()
		g, err := decode(data)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("%s: error %v, want one containing %q", name, err, wantErr)
		}
		if len(g.recs) != wantRecords {
			t.Fatalf("%s: %d records delivered before the error, want %d", name, len(g.recs), wantRecords)
		}
	}
	f("nothing", nil, "cannot read snapshot header", 0)
	f("half a header", good[:10], "cannot read snapshot header", 0)
	f("bad magic", append([]byte("MSNQ"), good[4:]...), "not a snapshot (bad magic)", 0)
	f("text", []byte("# HELP mockstagram_influencer_followers The influencer's followerCount\n"), "bad magic", 0)
	wrong := bytes.Clone(good)
	binary.LittleEndian.PutUint32(wrong[4:], 1)
	f("version 1", wrong, "snapshot version 1, this reader knows 2", 0)
	binary.LittleEndian.PutUint32(wrong[4:], 3)
	f("version 3", wrong, "snapshot version 3", 0)
	f("truncated in a record", good[:len(good)-5], "snapshot truncated at record 2 of 3", 2)
	f("truncated after the header", good[:headerSize], "snapshot truncated at record 0 of 3", 0)
	for name, mod := range map[string]func(b []byte){
		"step 0":         func(b []byte) { binary.LittleEndian.PutUint64(b[16:], 0) },
		"negative first": func(b []byte) { binary.LittleEndian.PutUint64(b[8:], uint64(1<<63)) },
		"huge n":         func(b []byte) { binary.LittleEndian.PutUint32(b[24:], MaxN+1) },
	} {
		b := bytes.Clone(good)
		mod(b)
		f(name, b, "implausible snapshot header", 0)
	}
	if _, err := decode(good[:headerSize+1]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a truncated record wraps io.ErrUnexpectedEOF: %v", err)
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		return 0, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	n := 10_000 // more than the writer's buffer
	err := Write(&failingWriter{after: 100_000}, Header{First: 1, Step: 1, N: uint32(n)}, func(int) Record { return Record{} })
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("error %v, want the writer's", err)
	}
}
