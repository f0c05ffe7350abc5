package pkrange

import "testing"

func TestOwnedPartitionsTheRange(t *testing.T) {
	f := func(min, max int64, count int) {
		t.Helper()
		r := Range{Min: min, Max: max}
		seen := map[int64]int{}
		for i := range count {
			s := Shard{Index: i, Count: count}
			o := Owned(r, s)
			for k := range o.Len {
				pk := o.PK(k)
				if !s.Owns(r, pk) {
					t.Fatalf("shard %d/%d lists pk %d it does not own", i, count, pk)
				}
				if o.Index(pk) != k {
					t.Fatalf("Index(%d) = %d, want %d", pk, o.Index(pk), k)
				}
				seen[pk]++
			}
			if o.Index(o.PK(0)-1) != -1 || o.Index(o.PK(o.Len)) != -1 {
				t.Fatalf("shard %d/%d: Index of a pk outside the slice must be -1", i, count)
			}
		}
		if len(seen) != r.Len() {
			t.Fatalf("%d shards over %d..%d cover %d pks, want %d", count, min, max, len(seen), r.Len())
		}
		for pk, n := range seen {
			if n != 1 {
				t.Fatalf("pk %d owned by %d shards", pk, n)
			}
		}
	}
	f(1000000, 1000000, 1)
	f(1000000, 1000009, 1)
	f(1000000, 1000009, 3)
	f(1000000, 1000009, 10)
	f(1000000, 1000009, 16) // more shards than pks: some own nothing
	f(0, 9999, 7)
}

func TestValidate(t *testing.T) {
	f := func(err error, want string) {
		t.Helper()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Fatalf("error %q, want %q", got, want)
		}
	}
	f(Range{Min: 1, Max: 1}.Validate(), "")
	f(Range{Min: -1, Max: 1}.Validate(), "pk.min=-1 is negative; pks are non-negative integers")
	f(Range{Min: 5, Max: 4}.Validate(), "pk.max=4 is below pk.min=5; set --pk.max >= --pk.min")
	f(Range{Min: 0, Max: 1 << 31}.Validate(), "pk range 0..2147483648 holds more than 2^31 pks; split it into shards")
	f(Shard{Index: 0, Count: 1}.Validate(), "")
	f(Shard{Index: 0, Count: 0}.Validate(), "shard.count=0 must be at least 1")
	f(Shard{Index: 3, Count: 3}.Validate(), "shard.index=3 must be in 0..2 (shard.count-1)")
	f(Shard{Index: -1, Count: 3}.Validate(), "shard.index=-1 must be in 0..2 (shard.count-1)")
}

func TestOrdinalFromHostname(t *testing.T) {
	f := func(host string, want int, wantErr bool) {
		t.Helper()
		got, err := OrdinalFromHostname(host)
		if (err != nil) != wantErr || got != want {
			t.Fatalf("OrdinalFromHostname(%q) = %d, %v", host, got, err)
		}
	}
	f("mockstagram-exporter-0", 0, false)
	f("exporter-12", 12, false)
	f("exporter", 0, true)
	f("exporter-", 0, true)
	f("exporter-1a", 0, true)
}

func TestFirst(t *testing.T) {
	f := func(n int, want Range) {
		t.Helper()
		if got := First(n); got != want || got.Len() != n {
			t.Fatalf("First(%d) = %+v (len %d), want %+v", n, got, got.Len(), want)
		}
	}
	f(1, Range{Min: 1_000_000, Max: 1_000_000})
	f(2000, Range{Min: 1_000_000, Max: 1_001_999})
	f(1_000_000, Range{Min: DefaultMin, Max: DefaultMax})
}
