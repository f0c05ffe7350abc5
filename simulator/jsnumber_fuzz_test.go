package simulator

import (
	"math"
	"math/big"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The forms JavaScript's Number(string) accepts after trimming
// (ECMA-262 StringNumericLiteral), written independently of jsNumber.
var (
	jsDecimal = regexp.MustCompile(`^[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$`)
	jsRadix   = regexp.MustCompile(`^0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)$`)
)

// jsSpace is ECMA-262's WhiteSpace and LineTerminator: Go's unicode.IsSpace
// without NEL (U+0085), plus the BOM and every space separator.
func jsSpace(r rune) bool {
	if r == 0x85 {
		return false
	}
	return r == 0xFEFF || unicode.IsSpace(r) || unicode.Is(unicode.Zs, r)
}

// oracleNumber is Number(s) read from the specification, with ParseFloat
// (correctly rounded, overflowing to ±Inf) for decimals and big.Int for
// radix literals. exact is false where jsNumber documents that it may
// round differently: radix literals past 2^53.
func oracleNumber(s string) (v float64, exact bool) {
	s = strings.TrimFunc(s, jsSpace)
	switch {
	case s == "":
		return 0, true
	case jsDecimal.MatchString(s):
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && !math.IsInf(v, 0) {
			panic("the oracle's grammar let through " + strconv.Quote(s))
		}
		return v, true
	case jsRadix.MatchString(s):
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[s[1]]
		n, _ := new(big.Int).SetString(s[2:], base)
		f, _ := new(big.Float).SetInt(n).Float64() // nearest, ±Inf past MaxFloat64
		return f, n.BitLen() <= 53
	}
	return math.NaN(), true
}

func sameNumber(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b && math.Signbit(a) == math.Signbit(b)
}

// FuzzJSNumber checks the simulator's reading of a pk path segment against
// JavaScript's semantics: Number() of any string agrees with an independent
// oracle, a pk is accepted exactly when that number is an integer in range,
// and percent-decoding agrees with url.PathUnescape plus a UTF-8 check,
// which is what decodeURIComponent does.
func FuzzJSNumber(f *testing.F) {
	for _, s := range []string{
		"1000001", "01000001", "+1000001", "-1000001", "1000001.0", "1000001.", "1000001.5",
		".5", "5.", ".", "1e6", "1E6", "1e+6", "1e-6", "1e", "1e+", "10000010e-1", "-0", "+0", "0",
		"1e400", "-1e400", "1e-400", "Infinity", "-Infinity", "+Infinity", "infinity", "inf", "NaN", "nan",
		"0x10", "0X0f4241", "0o3641101", "0b11110100001001000001", "0x", "0xg", "-0x10", "+0x10", "0x1p3",
		"0b2", "0o8", "1_000_001", "1,000,001", "", " ", " 1000001 ", "\t1000001\n", "\u00a01000001\ufeff",
		"\u20281000001\u2029", "\u30001000001", "\u00851000001", "1000001\x00", "１０００００１",
		"123456789012345678901234567890", "0x1fffffffffffff", "0x20000000000001", "0x" + strings.Repeat("f", 300),
		"9007199254740993", "1000001%20", "%31000001", "%E2%80%A81000001", "%", "%4", "%zz", "%C0%AF", "%ff", "+",
		"1.7976931348623157e308", "1.7976931348623159e308", "4.9e-324", "2e-324", "00x10", "0.0e0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := jsNumber(s)
		want, exact := oracleNumber(s)
		if exact && !sameNumber(got, want) {
			t.Fatalf("jsNumber(%q) = %v, Number() gives %v", s, got, want)
		}
		if !exact && !(math.Abs(got-want) <= 1e-9*math.Abs(want) || got == want) {
			t.Fatalf("jsNumber(%q) = %v, Number() gives %v: more than rounding apart", s, got, want)
		}

		const lo, hi = 1_000_000, 1_999_999
		pk, ok := pkFromSegment(s, lo, hi)
		wantOK := want == math.Trunc(want) && want >= lo && want <= hi
		if ok != wantOK || (ok && float64(pk) != want) {
			t.Fatalf("pkFromSegment(%q) = %d, %t; Number() is %v", s, pk, ok, want)
		}
		if ok {
			// The canonical form of an accepted pk reads back as the pk.
			if back, ok := pkFromSegment(strconv.FormatInt(pk, 10), lo, hi); !ok || back != pk {
				t.Fatalf("pk %d from %q does not read back from its decimal form: %d, %t", pk, s, back, ok)
			}
		}

		dec, ok := decodeURIComponent(nil, []byte(s))
		ref, err := url.PathUnescape(s)
		wantOK = err == nil && utf8.ValidString(ref)
		if ok != wantOK || (ok && string(dec) != ref) {
			t.Fatalf("decodeURIComponent(%q) = %q, %t; want %q, %t", s, dec, ok, ref, wantOK)
		}
	})
}
