package ingest

import (
	"strings"
	"unicode/utf8"
)

// A body is stored as the server read it, with two exceptions that make
// sure a destination can read only what insertfn judged: of a member name
// an object repeats (names compared after unescaping, at every depth),
// only the first member is kept, as gjson, the functions, the router and
// the consent store read it, while a destination's JSON decoder reads
// the last; and bytes that are not UTF-8 become U+FFFD, as a destination's
// decoder would read them (so "Analytics\xff" and "Analytics\xfe" are one
// name for everyone). scanBody tells whether a body needs it
// (bodyIndex.unclean); cleanBody rewrites it. Honest clients never need
// it, so it is off the hot path and may allocate.

// cleanBody appends to dst the JSON body (valid, as scanBody accepted it)
// with invalid UTF-8 replaced by U+FFFD and, in every object, the members
// whose name an earlier member of the object has dropped. White space
// between tokens is dropped too. It runs in time linear in the body.
func cleanBody(dst []byte, body string) []byte {
	if !utf8.ValidString(body) {
		body = strings.ToValidUTF8(body, "\uFFFD")
	}
	c := cleaner{scanner: scanner{b: body, raw: []byte(body)}}
	c.space()
	dst = c.value(dst)
	return dst
}

// cleaner copies a valid JSON text, dropping repeated members.
type cleaner struct {
	scanner
}

// value copies the value at c.i to dst.
func (c *cleaner) value(dst []byte) []byte {
	switch c.b[c.i] {
	case '{':
		return c.object(dst)
	case '[':
		c.i++
		c.space()
		dst = append(dst, '[')
		for n := 0; c.b[c.i] != ']'; n++ {
			if n > 0 {
				dst = append(dst, ',')
				c.i++ // the comma
				c.space()
			}
			dst = c.value(dst)
			c.space()
		}
		c.i++
		return append(dst, ']')
	}
	start := c.i
	c.scanner.value()
	return append(dst, c.b[start:c.i]...)
}

// object copies the object at c.i to dst, without the members whose name
// an earlier member has.
func (c *cleaner) object(dst []byte) []byte {
	c.i++
	c.space()
	dst = append(dst, '{')
	var small []string
	var large map[string]struct{}
	kept := 0
	for n := 0; c.b[c.i] != '}'; n++ {
		if n > 0 {
			c.i++ // the comma
			c.space()
		}
		keyStart := c.i
		c.str()
		key := c.b[keyStart:c.i]
		c.space()
		c.i++ // the colon
		c.space()
		name := keyName(key)
		seen := false
		if large != nil {
			_, seen = large[name]
			large[name] = struct{}{}
		} else {
			for _, s := range small {
				if s == name {
					seen = true
					break
				}
			}
			if small = append(small, name); len(small) > smallObject {
				large = make(map[string]struct{}, 2*len(small))
				for _, s := range small {
					large[s] = struct{}{}
				}
			}
		}
		if seen {
			c.scanner.value() // skipped
		} else {
			if kept > 0 {
				dst = append(dst, ',')
			}
			kept++
			dst = append(dst, key...)
			dst = append(dst, ':')
			dst = c.value(dst)
		}
		c.space()
	}
	c.i++
	return append(dst, '}')
}
