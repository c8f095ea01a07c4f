package ingest

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// This file validates a request body in one pass and, while at it, finds
// what the handler needs: the body's top-level members and its context's,
// the elements of its batch array, and each element's members and its
// context's. gjson.ValidBytes followed by gjson's ForEach over the body,
// over the array and over each event read a 500 KB batch four times.

// maxNesting bounds how deep arrays and objects may nest in a body: the
// validator recurses once per level. A body nested deeper is malformed.
const maxNesting = 512

// bodyIndex is what scanBody found: for an object body, its top-level
// members in order and the members of its first member named context;
// for its first member named "batch" that is an array, the elements, and
// for each element that is an object its members and those of its
// context. normalize reads events from these instead of parsing them
// again. Strings are views of the body.
type bodyIndex struct {
	members  []indexedMember // the body's
	context  fieldSpan       // of the body's context, in contexts
	elements []indexedElement
	fields   []indexedMember // the elements' members, by indexedElement.members
	contexts []indexedMember // the members of contexts, by fieldSpan
	sawBatch bool            // a member named batch was read (the first counts)
	hasBatch bool            // and it is an array, whose elements are in elements
	object   bool            // the body is an object (members, context are its)
	// unclean is set when the body must be rewritten by [cleanBody]
	// before it is read: an object somewhere repeats a member name, or a
	// string holds bytes that are not UTF-8.
	unclean bool
	// names is the scanner's stack of the member names of the objects
	// it is inside, kept between bodies for its capacity.
	names []string
}

// indexedMember is one member of an object: its name unescaped, its key
// as written (quoted) and its value as raw JSON.
type indexedMember struct {
	name, key, value string
}

// fieldSpan locates an object's members in one of bodyIndex's member
// lists. ok is false when there is no such object.
type fieldSpan struct {
	lo, hi int32
	ok     bool
}

// indexedElement is one element of a batch: its raw JSON and, when it is
// an object, its members (in bodyIndex.fields) and those of its first
// member named context when that is an object (in bodyIndex.contexts).
type indexedElement struct {
	raw     string
	members fieldSpan
	context fieldSpan
}

// eventView is an event as normalize reads it.
type eventView struct {
	object  bool            // the event is a JSON object
	members []indexedMember // its members
	context []indexedMember // the members of its first context, when that is an object
}

// view returns the element i of the batch as normalize reads it.
func (x *bodyIndex) view(i int) eventView {
	e := &x.elements[i]
	return eventView{object: e.members.ok, members: x.fields[e.members.lo:e.members.hi], context: x.span(x.contexts, e.context)}
}

// bodyView returns the body as an event.
func (x *bodyIndex) bodyView() eventView {
	return eventView{object: x.object, members: x.members, context: x.span(x.contexts, x.context)}
}

func (x *bodyIndex) span(list []indexedMember, s fieldSpan) []indexedMember {
	if !s.ok {
		return nil
	}
	return list[s.lo:s.hi]
}

// member returns the first member named name (Result.Exists is false when
// there is none), parsed as gjson would read it.
func (x *bodyIndex) member(name string) gjson.Result {
	for _, m := range x.members {
		if m.name == name {
			return gjson.Parse(m.value)
		}
	}
	return gjson.Result{}
}

func (x *bodyIndex) reset() {
	x.members, x.elements, x.fields, x.contexts = x.members[:0], x.elements[:0], x.fields[:0], x.contexts[:0]
	x.context, x.sawBatch, x.hasBatch, x.object, x.unclean = fieldSpan{}, false, false, false, false
	x.names = x.names[:0]
}

// release resets x and lets go of its views of the last body.
func (x *bodyIndex) release() {
	clear(x.members[:cap(x.members)])
	clear(x.elements[:cap(x.elements)])
	clear(x.fields[:cap(x.fields)])
	clear(x.contexts[:cap(x.contexts)])
	clear(x.names[:cap(x.names)])
	x.reset()
}

// scanBody reports whether body is valid JSON (the grammar of RFC 8259,
// as gjson.Valid and encoding/json.Valid take it: strings are not checked
// for UTF-8), nested at most maxNesting deep. When body is an object and
// index is not nil, index receives what bodyIndex lists: the body's
// members and its first context's; if a member named "batch" is an
// array, its elements, with the members of each object element and of
// its first context. index.unclean then tells whether some object in the
// body repeats a member name or some string is not UTF-8.
func scanBody(body string, index *bodyIndex) bool {
	s := scanner{b: body, raw: unsafe.Slice(unsafe.StringData(body), len(body))}
	if index != nil {
		s.names = index.names[:0]
		defer func() { index.names, index.unclean = s.names[:0], s.unclean }()
	}
	s.space()
	if index != nil && s.i < len(s.b) && s.b[s.i] == '{' {
		if !s.indexed(index, &index.members, &index.context, true) {
			return false
		}
		index.object = true
	} else if !s.value() {
		return false
	}
	s.space()
	return s.i == len(s.b)
}

// scanner is a validating reader of JSON positioned at b[i]. raw is b's
// bytes, for loading 8 at a time.
type scanner struct {
	b     string
	raw   []byte
	i     int
	depth int
	// names holds the member names of the objects being read, innermost
	// last, to find a name an object repeats.
	names []string
	// unclean: a repeated member name or a string that is not UTF-8 was
	// read.
	unclean bool
}

// smallObject is how many members of an object are compared one by one
// with each new member's name; an object with more is checked by sorting
// its names when it ends, so that the check stays O(n log n).
const smallObject = 16

// member notes the name of a member of the object whose names start at
// names[from].
func (s *scanner) member(from int, name string) {
	if !s.unclean && len(s.names)-from < smallObject {
		for _, n := range s.names[from:] {
			if n == name {
				s.unclean = true
				break
			}
		}
	}
	s.names = append(s.names, name)
}

// endObject forgets the names of the object whose names start at
// names[from], after checking the names of a large one.
func (s *scanner) endObject(from int) {
	if ns := s.names[from:]; !s.unclean && len(ns) > smallObject {
		slices.Sort(ns)
		for i := 1; i < len(ns); i++ {
			if ns[i] == ns[i-1] {
				s.unclean = true
				break
			}
		}
	}
	clear(s.names[from:])
	s.names = s.names[:from]
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value reads one value at s.i (no white space before it).
func (s *scanner) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		return s.str()
	case '{':
		return s.object()
	case '[':
		return s.array(nil)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return s.number()
		}
		return false
	}
}

func (s *scanner) literal(word string) bool {
	if !strings.HasPrefix(s.b[s.i:], word) {
		return false
	}
	s.i += len(word)
	return true
}

// Bit tricks over 8 bytes at a time, for the runs of plain characters
// that make most of a string: a byte below 0x20, a quote or a backslash
// ends a run.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// specialMask returns, for the 8 bytes of x (the first in the low bits),
// a word whose lowest set bit is the high bit of the first byte below
// 0x20, '"', '\\' or from 0x80 up (0 when there is none). (x - ones*n) &
// ^x & highs flags the bytes below n (n <= 0x80); a byte equal to c is a
// zero byte of x^(ones*c). A borrow may flag bytes after the first such
// byte, never before it.
func specialMask(x uint64) uint64 {
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((x-ones*0x20)&^x | (q-ones)&^q | (b-ones)&^b | x) & highs
}

// str reads a string at s.i, which is its opening quote.
func (s *scanner) str() bool {
	s.i++
	for {
		for s.i+8 <= len(s.raw) {
			if m := specialMask(binary.LittleEndian.Uint64(s.raw[s.i:])); m != 0 {
				s.i += bits.TrailingZeros64(m) >> 3
				break
			}
			s.i += 8
		}
		for s.i < len(s.b) && s.b[s.i] >= 0x20 && s.b[s.i] < utf8.RuneSelf && s.b[s.i] != '"' && s.b[s.i] != '\\' {
			s.i++
		}
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case '"':
			s.i++
			return true
		case '\\':
			if s.i+1 >= len(s.b) {
				return false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return false
				}
				for j := s.i + 2; j < s.i+6; j++ {
					if h := s.b[j]; !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 6
			default:
				return false
			}
		default:
			if s.b[s.i] < 0x20 { // a control character
				return false
			}
			r, n := utf8.DecodeRuneInString(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				s.unclean = true
			}
			s.i += n
		}
	}
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return false
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if !s.digits() {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits reads one or more decimal digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// enter opens the object or array at s.i (its opening byte). It reports
// whether the container is empty (closing follows, and is read), and
// false in ok when it nests too deep.
func (s *scanner) enter(closing byte) (empty, ok bool) {
	if s.depth++; s.depth > maxNesting {
		return false, false
	}
	s.i++
	s.space()
	if s.i < len(s.b) && s.b[s.i] == closing {
		s.i++
		s.depth--
		return true, true
	}
	return false, true
}

// next reads what follows a member or an element: a comma (another one
// comes: more) or the container's closing byte (it ends); ok is false for
// anything else.
func (s *scanner) next(closing byte) (more, ok bool) {
	s.space()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.space()
		return true, true
	case closing:
		s.i++
		s.depth--
		return false, true
	}
	return false, false
}

// object reads an object at s.i, its opening brace.
func (s *scanner) object() bool {
	empty, ok := s.enter('}')
	if empty || !ok {
		return ok
	}
	from := len(s.names)
	for {
		keyStart := s.i
		if s.i >= len(s.b) || s.b[s.i] != '"' || !s.str() {
			return false
		}
		s.member(from, keyName(s.b[keyStart:s.i]))
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		if !s.value() {
			return false
		}
		if more, ok := s.next('}'); !more {
			s.endObject(from)
			return ok
		}
	}
}

// indexed reads an object at s.i, its opening brace, appending its
// members to *into. The members of its first member named context, when
// that is an object, go to x.contexts, located by *context. With body
// (the request body), the elements of its first member named batch, when
// that is an array, go to x.elements.
func (s *scanner) indexed(x *bodyIndex, into *[]indexedMember, context *fieldSpan, body bool) bool {
	empty, ok := s.enter('}')
	if empty || !ok {
		return ok
	}
	from := len(s.names)
	sawContext := false
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		keyStart := s.i
		if !s.str() {
			return false
		}
		key := s.b[keyStart:s.i]
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		valueStart := s.i
		name := keyName(key)
		s.member(from, name)
		opens := byte(0)
		if s.i < len(s.b) {
			opens = s.b[s.i]
		}
		switch {
		case context != nil && name == "context" && !sawContext && opens == '{':
			lo := len(x.contexts)
			ok = s.indexed(x, &x.contexts, nil, false)
			*context = fieldSpan{lo: int32(lo), hi: int32(len(x.contexts)), ok: true}
		case body && name == "batch" && !x.sawBatch && opens == '[':
			x.hasBatch = true
			ok = s.array(x)
		default:
			ok = s.value()
		}
		if !ok {
			return false
		}
		sawContext = sawContext || name == "context"
		if body {
			x.sawBatch = x.sawBatch || name == "batch"
		}
		*into = append(*into, indexedMember{name: name, key: key, value: s.b[valueStart:s.i]})
		if more, ok := s.next('}'); !more {
			s.endObject(from)
			return ok
		}
	}
}

// array reads an array at s.i, its opening bracket; with index, it
// records the elements.
func (s *scanner) array(index *bodyIndex) bool {
	empty, ok := s.enter(']')
	if empty || !ok {
		return ok
	}
	for {
		start := s.i
		if index == nil {
			if !s.value() {
				return false
			}
		} else if s.i < len(s.b) && s.b[s.i] == '{' {
			var e indexedElement
			lo := len(index.fields)
			if !s.indexed(index, &index.fields, &e.context, false) {
				return false
			}
			e.raw, e.members = s.b[start:s.i], fieldSpan{lo: int32(lo), hi: int32(len(index.fields)), ok: true}
			index.elements = append(index.elements, e)
		} else {
			if !s.value() {
				return false
			}
			index.elements = append(index.elements, indexedElement{raw: s.b[start:s.i]})
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// keyName returns a quoted key without its quotes, unescaped (gjson's
// reading) when it has escapes.
func keyName(quoted string) string {
	inner := quoted[1 : len(quoted)-1]
	if strings.IndexByte(inner, '\\') < 0 {
		return inner
	}
	return gjson.Parse(quoted).Str
}
