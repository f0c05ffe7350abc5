// Package pkrange describes the influencer pk space and how it is split into
// shards. It is shared by the simulator, the exporter and rankd, so that every
// component agrees on which pk lives where.
package pkrange

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
)

// Mockstagram's influencers are 1,000,000 .. 1,999,999 inclusive.
const (
	DefaultMin = 1_000_000
	DefaultMax = 1_999_999
)

// Range is an inclusive range of pks.
type Range struct {
	Min, Max int64
}

// Validate reports a range that no component can serve.
func (r Range) Validate() error {
	if r.Min < 0 {
		return fmt.Errorf("pk.min=%d is negative; pks are non-negative integers", r.Min)
	}
	if r.Max < r.Min {
		return fmt.Errorf("pk.max=%d is below pk.min=%d; set --pk.max >= --pk.min", r.Max, r.Min)
	}
	if r.Max-r.Min >= 1<<31 {
		return fmt.Errorf("pk range %d..%d holds more than 2^31 pks; split it into shards", r.Min, r.Max)
	}
	return nil
}

// First returns Mockstagram's first n pks: DefaultMin .. DefaultMin+n-1,
// the range every local stack, load run and end-to-end test polls.
func First(n int) Range { return Range{Min: DefaultMin, Max: DefaultMin + int64(n) - 1} }

// Len is the number of pks in the range.
func (r Range) Len() int { return int(r.Max - r.Min + 1) }

// Contains reports whether pk is in the range.
func (r Range) Contains(pk int64) bool { return pk >= r.Min && pk <= r.Max }

// Shard selects the pks with (pk - Range.Min) % Count == Index.
// Interleaving (rather than contiguous blocks) keeps the shards equal in size
// for any range and keeps every shard's pks spread over the whole range.
type Shard struct {
	Index, Count int
}

// Validate reports an impossible shard.
func (s Shard) Validate() error {
	if s.Count < 1 {
		return fmt.Errorf("shard.count=%d must be at least 1", s.Count)
	}
	if s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard.index=%d must be in 0..%d (shard.count-1)", s.Index, s.Count-1)
	}
	return nil
}

// Owns reports whether the shard owns pk within r.
func (s Shard) Owns(r Range, pk int64) bool {
	return r.Contains(pk) && (pk-r.Min)%int64(s.Count) == int64(s.Index)
}

// Slice is the set of pks one shard owns: pk(i) = First + i*Step for i in 0..Len-1.
// Dense per-influencer arrays are indexed by i.
type Slice struct {
	First int64
	Step  int64
	Len   int
}

// Owned returns the pks that shard s owns within r.
func Owned(r Range, s Shard) Slice {
	first := r.Min + int64(s.Index)
	if first > r.Max {
		return Slice{First: first, Step: int64(s.Count)}
	}
	return Slice{First: first, Step: int64(s.Count), Len: int((r.Max-first)/int64(s.Count)) + 1}
}

// PK returns the i-th owned pk.
func (o Slice) PK(i int) int64 { return o.First + int64(i)*o.Step }

// Index returns the position of pk in the slice, or -1 when the slice does not hold it.
func (o Slice) Index(pk int64) int {
	d := pk - o.First
	if d < 0 || d%o.Step != 0 {
		return -1
	}
	i := d / o.Step
	if i >= int64(o.Len) {
		return -1
	}
	return int(i)
}

var ordinalRE = regexp.MustCompile(`-(\d+)$`)

// OrdinalFromHostname returns the StatefulSet ordinal at the end of a hostname
// such as "mockstagram-exporter-3".
func OrdinalFromHostname(hostname string) (int, error) {
	m := ordinalRE.FindStringSubmatch(hostname)
	if m == nil {
		return 0, fmt.Errorf("hostname %q does not end in -<ordinal>; set --shard.index explicitly", hostname)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, fmt.Errorf("hostname %q: cannot parse ordinal: %w", hostname, err)
	}
	return n, nil
}

// Hostname is os.Hostname, replaceable in tests.
var Hostname = os.Hostname
