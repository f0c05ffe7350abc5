package simulator

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// jsNumber converts s the way JavaScript's Number(s) does, because upstream
// looks influencers up by Number(req.params.pk): surrounding white space is
// ignored, "" is 0, decimal literals may carry a sign, a fraction and an
// exponent, 0x/0o/0b literals (without sign) are integers in that radix,
// "Infinity" is infinite and anything else is NaN. Numeric separators ("1_0")
// are not allowed by Number() and are NaN here too.
func jsNumber(s string) float64 {
	s = trimJSSpace(s)
	if s == "" {
		return 0
	}
	// Fast path for the only form a well-behaved client sends.
	if len(s) <= 15 {
		var v int64
		i := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			v = v*10 + int64(s[i]-'0')
		}
		if i == len(s) {
			return float64(v)
		}
	}
	if len(s) > 2 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			return radixNumber(s[2:], 16)
		case 'o', 'O':
			return radixNumber(s[2:], 8)
		case 'b', 'B':
			return radixNumber(s[2:], 2)
		}
	}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	if s[i:] == "Infinity" {
		if s[0] == '-' {
			return math.Inf(-1)
		}
		return math.Inf(1)
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return math.NaN()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp++
		}
		if exp == 0 {
			return math.NaN()
		}
	}
	if i != len(s) {
		return math.NaN()
	}
	// The grammar above is a subset of what ParseFloat accepts, and ParseFloat
	// rounds correctly and overflows to ±Inf like JavaScript. The clone keeps s
	// from escaping through ParseFloat's error, so callers can pass a
	// stack-converted string without an allocation on the fast path.
	v, _ := strconv.ParseFloat(strings.Clone(s), 64)
	return v
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// radixNumber parses the digits of a 0x/0o/0b literal. Past 2^53 the result
// is rounded step by step rather than once as JavaScript does; no pk gets
// anywhere near that.
func radixNumber(s string, base int) float64 {
	var v float64
	for i := 0; i < len(s); i++ {
		d, ok := digitValue(s[i])
		if !ok || d >= base {
			return math.NaN()
		}
		v = v*float64(base) + float64(d)
	}
	return v
}

func digitValue(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// trimJSSpace trims what JavaScript's String.prototype.trim trims: the
// WhiteSpace and LineTerminator code points, which include NBSP, the BOM and
// every Unicode space separator.
func trimJSSpace(s string) string {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if !isJSSpace(r) {
			break
		}
		s = s[n:]
	}
	for len(s) > 0 {
		r, n := utf8.DecodeLastRuneInString(s)
		if !isJSSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0xFEFF, 0x2028, 0x2029:
		return true
	}
	return r > 0x7f && unicode.Is(unicode.Zs, r)
}

// pkFromSegment resolves a percent-decoded path segment to a pk the way
// upstream does: Number(segment) must be an integer inside the range.
func pkFromSegment(seg string, minPK, maxPK int64) (int64, bool) {
	v := jsNumber(seg)
	if v != math.Trunc(v) || v < float64(minPK) || v > float64(maxPK) {
		return 0, false // NaN and ±Inf fail one of these too
	}
	return int64(v), true
}

// decodeURIComponent percent-decodes seg into buf like JavaScript's
// decodeURIComponent, which Express applies to route parameters: '+' stays
// '+', and a malformed escape or a sequence that is not UTF-8 is an error
// (Express then answers 400).
func decodeURIComponent(buf, seg []byte) ([]byte, bool) {
	buf = buf[:0]
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			buf = append(buf, c)
			continue
		}
		if i+2 >= len(seg) {
			return buf, false
		}
		hi, ok1 := digitValue(seg[i+1])
		lo, ok2 := digitValue(seg[i+2])
		if !ok1 || !ok2 {
			return buf, false
		}
		buf = append(buf, byte(hi<<4|lo))
		i += 2
	}
	return buf, utf8.Valid(buf)
}
