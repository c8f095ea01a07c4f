package fql

import "unicode/utf8"

// globMatch reports whether the glob pattern matches all of s: `*` any
// run of characters (a slash included), `?` one character, `[abc]` and
// `[a-z]` one of a set (`[^...]` or `[!...]` one not in it), `\x` the
// character x. A malformed pattern (an unclosed set) matches nothing.
// It allocates nothing; a star backtracks to the last star only, so the
// time is bounded by the pattern's length times the string's.
func globMatch(pattern, s string) bool {
	var starP, starS = -1, 0 // where to resume after the last star
	p, i := 0, 0
	for i < len(s) || p < len(pattern) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starS = p+1, i
				p++
				continue
			case '?':
				if i < len(s) {
					_, n := utf8.DecodeRuneInString(s[i:])
					p, i = p+1, i+n
					continue
				}
			case '[':
				if i < len(s) {
					r, n := utf8.DecodeRuneInString(s[i:])
					ok, next, valid := matchSet(pattern, p, r)
					if !valid {
						return false
					}
					if ok {
						p, i = next, i+n
						continue
					}
				}
			default:
				c, pn := literalAt(pattern, p)
				if i < len(s) {
					r, n := utf8.DecodeRuneInString(s[i:])
					if r == c {
						p, i = p+pn, i+n
						continue
					}
				}
			}
		}
		if starP < 0 || starS >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starS:])
		starS += n
		p, i = starP, starS
	}
	return true
}

// literalAt returns the character the pattern matches literally at p
// (after a backslash, the escaped one) and the bytes it takes.
func literalAt(pattern string, p int) (rune, int) {
	if pattern[p] == '\\' && p+1 < len(pattern) {
		r, n := utf8.DecodeRuneInString(pattern[p+1:])
		return r, 1 + n
	}
	return utf8.DecodeRuneInString(pattern[p:])
}

// matchSet matches r against the set that starts at pattern[p] ('['):
// whether it matched, where the pattern goes on after the set, and
// whether the set is closed.
func matchSet(pattern string, p int, r rune) (matched bool, next int, valid bool) {
	p++
	negate := p < len(pattern) && (pattern[p] == '^' || pattern[p] == '!')
	if negate {
		p++
	}
	first := true
	for p < len(pattern) {
		if pattern[p] == ']' && !first {
			return matched != negate, p + 1, true
		}
		first = false
		lo, n := literalAt(pattern, p)
		p += n
		hi := lo
		if p+1 < len(pattern) && pattern[p] == '-' && pattern[p+1] != ']' {
			hi, n = literalAt(pattern, p+1)
			p += 1 + n
		}
		if lo <= r && r <= hi {
			matched = true
		}
	}
	return false, p, false
}
