package snapwire

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
)

// header builds a snapshot header with any field values, true or not.
func header(magic string, version uint32, first, step int64, n uint32) []byte {
	b := append([]byte(nil), magic...)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint64(b, uint64(first))
	b = binary.LittleEndian.AppendUint64(b, uint64(step))
	return binary.LittleEndian.AppendUint32(b, n)
}

func fuzzSeeds() [][]byte {
	var whole bytes.Buffer
	Write(&whole, Header{First: 1_000_001, Step: 3, N: 4}, func(i int) Record {
		return []Record{
			{Followers: 57166, Following: 1328, TimeMs: 1_763_780_000_123, VerdictMs: 1_763_700_000_789, Suspicious: true},
			{Followers: 5000, Following: 50, TimeMs: 1_763_780_000_124, VerdictMs: 1_763_700_000_790},
			{}, // never polled
			{Followers: 1<<32 - 1, Following: 0, TimeMs: 1},
		}[i]
	})
	w := whole.Bytes()
	return [][]byte{
		w,
		w[:len(w)-1],               // truncated in a record
		w[:headerSize],             // a header and nothing else
		w[:headerSize-1],           // a truncated header
		nil,                        // nothing
		append(bytes.Clone(w), 0),  // a trailing byte
		header("MSNP", 1, 1, 1, 0), // an older version
		header("MSNP", Version, 1, 1, MaxN),
		header("MSNP", Version, 1, 1, MaxN+1),
		header("MSNP", Version, 1, 1, 1<<32-1), // claims 4G records
		header("MSNP", Version, -1, 1, 1),
		header("MSNP", Version, 1, 0, 1),
		header("MSNP", Version, 1, -1, 1),
		header("MSNP", Version, 1<<63-1, 1<<63-1, 2),
		header("PNSM", Version, 1, 1, 0),
		[]byte("HTTP/1.1 200 OK\r\n\r\n"),
	}
}

// FuzzRead feeds any bytes to the reader, as an exporter or anything
// pretending to be one could send them. It must error or succeed, never
// panic; a header it accepts stays within the bounds rankd relies on; it
// calls put once per record, in order, only for records that arrived
// whole; and what it read writes back as the same bytes.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []Record
		var hs []Header
		h, err := Read(bytes.NewReader(data), func(h Header, i int, x Record) {
			if i != len(recs) {
				t.Fatalf("put for record %d after %d records", i, len(recs))
			}
			recs, hs = append(recs, x), append(hs, h)
		})
		if max := max(len(data)-headerSize, 0) / RecordSize; len(recs) > max {
			t.Fatalf("%d records from %d bytes, at most %d fit", len(recs), len(data), max)
		}
		for _, ph := range hs {
			if ph.N > MaxN || ph.Step < 1 || ph.First < 0 {
				t.Fatalf("put saw implausible header %+v", ph)
			}
		}
		if err != nil {
			if h != (Header{}) {
				t.Fatalf("error %v with header %+v", err, h)
			}
			if len(hs) > 0 && len(data) >= headerSize+int(hs[0].N)*RecordSize {
				t.Fatalf("error %v with all %d records present", err, hs[0].N)
			}
			return
		}
		if h.N > MaxN || h.Step < 1 || h.First < 0 || len(recs) != int(h.N) {
			t.Fatalf("accepted header %+v with %d records", h, len(recs))
		}
		n := headerSize + int(h.N)*RecordSize
		var out bytes.Buffer
		if err := Write(&out, h, func(i int) Record { return recs[i] }); err != nil {
			t.Fatal(err)
		}
		// A verdict word of 1 (no time, suspicious) or with the top bit
		// set (negative as an int64) means no verdict (UnpackVerdict) and
		// is written back as 0.
		want := bytes.Clone(data[:n])
		for k := headerSize + 16; k < n; k += RecordSize {
			if w := int64(binary.LittleEndian.Uint64(want[k:])); w == 1 || w < 0 {
				binary.LittleEndian.PutUint64(want[k:], 0)
			}
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("read then written back differs:\n got %x\nwant %x", out.Bytes(), want)
		}
	})
}

// TestReadLyingHeaderAllocatesLittle: a header that claims the most
// records the reader accepts, followed by none, costs the reader its
// buffer and no more; it never sizes anything by what the header claims.
func TestReadLyingHeaderAllocatesLittle(t *testing.T) {
	for _, n := range []uint32{MaxN, MaxN + 1, 1<<32 - 1} {
		data := header("MSNP", Version, 0, 1, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Read(bytes.NewReader(data), func(Header, int, Record) {})
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("N=%d with no records: no error", n)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
			t.Fatalf("N=%d: the reader allocated %d bytes for a %d-byte input", n, got, len(data))
		}
	}
}
