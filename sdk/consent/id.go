package consent

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInexactID is wrapped by [AppendNumberID] and [NumberID] for a number
// that is not an identifier: one JavaScript cannot hold exactly (an
// integer beyond 2^53 that is not a multiple of the lost precision, more
// significant digits than a double keeps), or one outside a double's
// range. Two people's ids could then read as one, so such an id is
// refused rather than rounded: send it as a string.
var ErrInexactID = errors.New("the number cannot be an id exactly; send the id as a string")

// maxCanonicalDigits is the longest integer written in plain digits that
// is always its own canonical form: every integer of up to 15 digits is
// exact in a double, and String(n) writes it as it is.
const maxCanonicalDigits = 15

// NumberID returns the identifier a JSON number stands for: the number as
// JavaScript's String(n) writes it, so that 123, 123.0, 1.23e2 and 123e0
// are all the id "123", as they are for analytics.js and for every store.
//
// # Parameters
//
//   - raw: a JSON number as written (gjson.Result.Raw of a Number).
//
// # Results
//
//   - the canonical id;
//   - an error wrapping [ErrInexactID] when raw is not a number whose
//     JavaScript form denotes exactly the value written.
func NumberID(raw string) (string, error) {
	if canonicalInteger(raw) {
		return raw, nil
	}
	b, err := AppendNumberID(nil, raw)
	return string(b), err
}

// AppendNumberID appends the canonical id of the JSON number raw to dst,
// as [NumberID] writes it, and returns the extended buffer. On an error
// dst is returned unchanged.
func AppendNumberID(dst []byte, raw string) ([]byte, error) {
	if canonicalInteger(raw) {
		return append(dst, raw...), nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("number %s: %w", clip(raw), ErrInexactID)
	}
	if f == 0 && !zeroMantissa(raw) { // an underflow: 1e-400 is not 0
		return dst, fmt.Errorf("number %s: %w", clip(raw), ErrInexactID)
	}
	n := len(dst)
	dst = appendJSNumber(dst, f)
	if !sameDecimal(raw, string(dst[n:])) {
		return dst[:n], fmt.Errorf("number %s would be the id %s: %w", clip(raw), dst[n:], ErrInexactID)
	}
	return dst, nil
}

// canonicalInteger reports whether raw is an integer that is its own
// canonical form: an optional minus, then 1 to 15 digits without a
// leading zero (JSON allows none), and not "-0".
func canonicalInteger(raw string) bool {
	s := raw
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > maxCanonicalDigits || (s[0] == '0' && (len(s) > 1 || len(raw) > 1)) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendJSNumber appends f as ECMAScript's Number::toString(10) writes
// it: the shortest digits that read back as f, in plain notation when the
// decimal exponent is within [-6, 21), else as d.ddde±x.
func appendJSNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // -0 too
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d[.ddd]e±xx
	mant, exp := e, 0
	for i, c := range e {
		if c == 'e' {
			mant = e[:i]
			x, _ := strconv.Atoi(string(e[i+1:]))
			exp = x
			break
		}
	}
	var digits [24]byte
	k := 0
	for _, c := range mant {
		if c != '.' {
			digits[k] = c
			k++
		}
	}
	d := digits[:k]
	n := exp + 1 // the value is 0.d × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for i := k; i < n; i++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, "0."...)
		for i := n; i < 0; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// sameDecimal reports whether the JSON numbers a and b denote the same
// value, comparing their significant digits and the power of ten they
// are scaled by (no big-number arithmetic: the guest SDK links this too).
func sameDecimal(a, b string) bool {
	na, da, ea, ok1 := decimalParts(a)
	nb, db, eb, ok2 := decimalParts(b)
	if !ok1 || !ok2 {
		return false
	}
	if da == "" || db == "" { // zero, of either sign
		return da == db
	}
	return na == nb && da == db && ea == eb
}

// decimalParts reads the JSON number s as neg, digits × 10^exp, digits
// without leading or trailing zeros ("" for zero). ok is false for an
// exponent too long to be a double's.
func decimalParts(s string) (neg bool, digits string, exp int, ok bool) {
	if s != "" && s[0] == '-' {
		neg, s = true, s[1:]
	}
	mant := s
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		x := s[i+1:]
		if len(x) > 9 {
			return false, "", 0, false
		}
		var err error
		if exp, err = strconv.Atoi(x); err != nil {
			return false, "", 0, false
		}
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		n := len(frac)
		frac = strings.TrimLeft(frac, "0")
		exp -= n - len(frac)
	}
	frac = strings.TrimRight(frac, "0")
	exp -= len(frac)
	if frac == "" {
		t := strings.TrimRight(intPart, "0")
		exp += len(intPart) - len(t)
		intPart = t
	}
	return neg, intPart + frac, exp, true
}

// zeroMantissa reports whether the digits of the JSON number raw before
// its exponent are all zero.
func zeroMantissa(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == 'e' || c == 'E':
			return true
		case c >= '1' && c <= '9':
			return false
		}
	}
	return true
}

// clip shortens a number for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
