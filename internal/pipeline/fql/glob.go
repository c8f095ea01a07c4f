package fql

import (
	"strings"
	"unicode/utf8"
)

// globMatch reports whether the glob pattern matches all of s, by the
// rules of Segment's glob matcher (Go's path.Match without a special
// slash): `*` any run of characters, `?` one character, `[abc]` and
// `[a-z]` one of a set, `[^...]` one not in it, `\x` the character x. In
// a set, `-` and `]` are escaped with a backslash (a set cannot be empty).
// A malformed pattern (an unclosed or empty set, a lone `-` in a set, a
// trailing backslash) matches nothing. It allocates nothing; a star
// backtracks to the last star only, so the time is bounded by the
// pattern's length times the string's.
func globMatch(pattern, s string) bool {
	if !validGlob(pattern) {
		return false
	}
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
					if ok, next := matchSet(pattern, p, r); ok {
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

// validGlob reports whether pattern is well formed: every set closed and
// not empty, its ranges of a character (or an escaped one) on each side
// of `-`, no backslash at the end.
func validGlob(pattern string) bool {
	for p := 0; p < len(pattern); {
		switch pattern[p] {
		case '\\':
			if p+1 == len(pattern) {
				return false
			}
			_, n := utf8.DecodeRuneInString(pattern[p+1:])
			p += 1 + n
		case '[':
			end, ok := setEnd(pattern, p)
			if !ok {
				return false
			}
			p = end
		default:
			p++
		}
	}
	return true
}

// setChar reads one character of a set at p: escaped, or any but `-`,
// `]` and the end.
func setChar(pattern string, p int) (r rune, next int, ok bool) {
	if p >= len(pattern) || pattern[p] == '-' || pattern[p] == ']' {
		return 0, p, false
	}
	if pattern[p] == '\\' {
		p++
		if p == len(pattern) {
			return 0, p, false
		}
	}
	r, n := utf8.DecodeRuneInString(pattern[p:])
	return r, p + n, true
}

// setEnd returns where the set that starts at pattern[p] ('[') ends, and
// whether it is well formed.
func setEnd(pattern string, p int) (int, bool) {
	p++
	if p < len(pattern) && pattern[p] == '^' {
		p++
	}
	for first := true; ; first = false {
		if p < len(pattern) && pattern[p] == ']' && !first {
			return p + 1, true
		}
		var ok bool
		if _, p, ok = setChar(pattern, p); !ok {
			return p, false
		}
		if p < len(pattern) && pattern[p] == '-' {
			if _, p, ok = setChar(pattern, p+1); !ok {
				return p, false
			}
		}
	}
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

// matchSet matches r against the well-formed set that starts at
// pattern[p] ('['): whether it matched, and where the pattern goes on
// after the set.
func matchSet(pattern string, p int, r rune) (bool, int) {
	p++
	negate := pattern[p] == '^'
	if negate {
		p++
	}
	matched := false
	for first := true; ; first = false {
		if pattern[p] == ']' && !first {
			return matched != negate, p + 1
		}
		lo, next, _ := setChar(pattern, p)
		hi := lo
		p = next
		if pattern[p] == '-' {
			hi, p, _ = setChar(pattern, p+1)
		}
		if lo <= r && r <= hi {
			matched = true
		}
	}
}

// glob is a pattern given as a literal, read once, when the expression is
// parsed: a well-formed pattern of literal characters with a star at
// either end or both (the common ones: 'Order *', '*@company.com') is
// matched as a comparison of bytes, which is what globMatch's runes come
// to when those characters are valid UTF-8 without U+FFFD (an invalid
// byte of s is read as U+FFFD, and could match one).
type glob struct {
	pattern string
	how     globHow
	lit     string // the characters between the stars
}

type globHow uint8

const (
	globAny      globHow = iota // globMatch
	globNone                    // malformed: nothing matches
	globExact                   // lit
	globPrefix                  // lit*
	globSuffix                  // *lit
	globContains                // *lit*
)

func compileGlob(pattern string) *glob {
	g := &glob{pattern: pattern}
	if !validGlob(pattern) {
		g.how = globNone
		return g
	}
	lit, lead, trail := pattern, false, false
	if strings.HasPrefix(lit, "*") {
		lit, lead = lit[1:], true
	}
	if strings.HasSuffix(lit, "*") {
		lit, trail = lit[:len(lit)-1], true
	}
	if strings.ContainsAny(lit, "*?[\\") || !utf8.ValidString(lit) || strings.ContainsRune(lit, utf8.RuneError) {
		return g
	}
	g.lit = lit
	switch {
	case lead && trail:
		g.how = globContains
	case lead:
		g.how = globSuffix
	case trail:
		g.how = globPrefix
	default:
		g.how = globExact
	}
	return g
}

// match reports whether the pattern matches all of s, as globMatch does.
func (g *glob) match(s string) bool {
	switch g.how {
	case globNone:
		return false
	case globExact:
		return s == g.lit
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globSuffix:
		return strings.HasSuffix(s, g.lit)
	case globContains:
		return strings.Contains(s, g.lit)
	}
	return globMatch(g.pattern, s)
}
