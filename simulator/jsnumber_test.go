package simulator

import (
	"math"
	"testing"
)

func TestJSNumber(t *testing.T) {
	f := func(in string, want float64) {
		t.Helper()
		got := jsNumber(in)
		if math.IsNaN(want) {
			if !math.IsNaN(got) {
				t.Errorf("Number(%q) = %v, want NaN", in, got)
			}
			return
		}
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("Number(%q) = %v, want %v", in, got, want)
		}
	}
	nan := math.NaN()

	// Plain and loose decimal forms.
	f("1000001", 1000001)
	f("01000001", 1000001)
	f("+1000001", 1000001)
	f("-1000001", -1000001)
	f("1000001.0", 1000001)
	f("1000001.", 1000001)
	f("1000001.5", 1000001.5)
	f(".5", 0.5)
	f("1e6", 1e6)
	f("1E6", 1e6)
	f("1e+6", 1e6)
	f("10000010e-1", 1000001)
	f("-0", math.Copysign(0, -1))
	f("1e400", math.Inf(1))
	f("-1e400", math.Inf(-1))
	f("123456789012345678901234567890", 123456789012345678901234567890)

	// White space, including the non-ASCII kinds String.prototype.trim knows.
	f("", 0)
	f("   ", 0)
	f(" 1000001 ", 1000001)
	f("\t\n\v\f\r1000001\r\n", 1000001)
	f("\u00a01000001\ufeff", 1000001)
	f("\u20001000001\u3000", 1000001)
	f("\u2028\u2029", 0)
	f("1000 001", nan)

	// Radix literals: no sign, at least one digit.
	f("0xF4241", 1000001)
	f("0Xf4241", 1000001)
	f("0o3641101", 1000001)
	f("0b11110100001001000001", 1000001)
	f("0x", nan)
	f("0xg", nan)
	f("0o8", nan)
	f("0b2", nan)
	f("-0x10", nan)
	f("+0x10", nan)

	// Infinity is spelled out and case-sensitive.
	f("Infinity", math.Inf(1))
	f("+Infinity", math.Inf(1))
	f("-Infinity", math.Inf(-1))
	f("infinity", nan)
	f("Inf", nan)

	// Everything else is NaN, including forms Go's parsers would accept.
	f("abc", nan)
	f("1000001abc", nan)
	f("NaN", nan)
	f(".", nan)
	f("+", nan)
	f("-", nan)
	f("e5", nan)
	f("1e", nan)
	f("1e+", nan)
	f("1_000_001", nan)
	f("0x1p4", nan)
	f("1..0", nan)
	f("++1", nan)
	f("inf", nan)
	f("0x1_0", nan)
}

func TestPKFromSegment(t *testing.T) {
	f := func(in string, want int64, wantOK bool) {
		t.Helper()
		got, ok := pkFromSegment(in, 1_000_000, 1_999_999)
		if got != want || ok != wantOK {
			t.Errorf("pkFromSegment(%q) = %d, %t; want %d, %t", in, got, ok, want, wantOK)
		}
	}
	f("1000001", 1000001, true)
	f("1000000", 1000000, true)
	f("1999999", 1999999, true)
	f("01000001", 1000001, true)
	f("1e6", 1000000, true)
	f("1000001.0", 1000001, true)
	f("+1000001", 1000001, true)
	f("0xF4241", 1000001, true)
	f(" 1000001 ", 1000001, true)
	f("999999", 0, false)
	f("2000000", 0, false)
	f("1000001.5", 0, false)
	f("", 0, false)
	f("Infinity", 0, false)
	f("-Infinity", 0, false)
	f("abc", 0, false)
	f("-1000001", 0, false)
}

func TestDecodeURIComponent(t *testing.T) {
	f := func(in, want string, wantOK bool) {
		t.Helper()
		got, ok := decodeURIComponent(nil, []byte(in))
		if ok != wantOK || (ok && string(got) != want) {
			t.Errorf("decodeURIComponent(%q) = %q, %t; want %q, %t", in, got, ok, want, wantOK)
		}
	}
	f("1000001", "1000001", true)
	f("%31000001", "1000001", true)
	f("%201000001%20", " 1000001 ", true)
	f("a+b", "a+b", true)
	f("%C2%A0", "\u00a0", true)
	f("%e2%80%a8", "\u2028", true)
	f("%", "", false)
	f("%2", "", false)
	f("%zz", "", false)
	f("%FF", "", false) // not UTF-8
	f("%C2", "", false)
}
