package fql

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Match reports whether event (JSON) matches the expression: whether the
// expression evaluates to true. Match allocates nothing for expressions
// of fields, literals, comparisons, in, contains, match, length and
// typeof; lowercase allocates where its result must be made (contains,
// match, length, not =). Malformed JSON is read as far as it goes. To
// evaluate several expressions on one event, read it once into an
// [Event] and use MatchEvent.
func (e *Expr) Match(event []byte) bool {
	var ev Event
	ev.Reset(event)
	return e.MatchEvent(&ev)
}

// MatchEvent is Match on an event read into ev.
func (e *Expr) MatchEvent(ev *Event) bool { return e.root.test(ev) }

// FieldJSON returns, when the expression is a field alone (see
// [Expr.FieldPath]), the JSON of its value in the event read into ev, as
// gjson finds it (null is "null"), and whether the event has it.
func (e *Expr) FieldJSON(ev *Event) (string, bool) {
	p, ok := e.root.(*pathNode)
	if !ok {
		return "", false
	}
	m, v, i, ok := p.locate(ev)
	switch {
	case !ok:
		return "", false
	case v != nil && i >= 0:
		return v.exact(i), true
	}
	return exactValue(m), true
}

// viewMembers is how many members of an object an objectView remembers;
// past them a member is looked up in the JSON.
const viewMembers = 32

// maxChildren is how many of an event's top-level objects an Event
// reads into views of their own (properties, context, traits, ...).
const maxChildren = 8

// Event is an event read for evaluating expressions. Its top-level
// members, and the members of the top-level objects a field is looked up
// in, are found by scans that go only as far as the fields looked up so
// far need, and are remembered for the expressions evaluated after: each
// field's lookup reads only its own part of the event, and nothing at
// those two levels is scanned twice (a field deeper down is read from
// the value of its second-level member on, as far as it needs; a list or
// an object is read to its end only where its end matters). The zero
// value is empty; Reset reads an event. An Event is for one goroutine;
// reuse it.
type Event struct {
	top      objectView
	children [maxChildren]struct {
		member int // its index among top's members
		view   objectView
	}
	nchildren int
}

// Reset makes ev the view of event (JSON), which must not change while ev
// is used. Nothing is read until a field is looked up.
func (ev *Event) Reset(event []byte) {
	ev.top.reset(unsafe.String(unsafe.SliceData(event), len(event)))
	ev.nchildren = 0
}

// member returns the top-level member called name (see
// objectView.member). Before the scan skips a member that a child view
// has begun to read, the child reads the rest of it: the bytes are read
// once, and the child's members are there for later lookups.
func (ev *Event) member(name string) (string, int, bool) {
	t := &ev.top
	if m, i, ok := t.lookup(name); ok {
		return m, i, true
	}
	if !t.done {
		if t.open >= 0 && t.openAt >= 0 && t.ends[t.openAt] < 0 {
			for j := range ev.nchildren {
				if c := &ev.children[j]; c.member == t.openAt {
					c.view.finish()
					if c.view.closedAt > 0 {
						t.setEnd(t.openAt, t.starts[t.openAt]+c.view.closedAt)
					}
				}
			}
		}
		if m, i, ok := t.seek(name, true); ok {
			return m, i, true
		}
	}
	return t.overflow(name)
}

// child returns the view of top-level member i, whose value is obj (an
// object), or nil when there is no room for another.
func (ev *Event) child(i int, obj string) *objectView {
	for j := range ev.nchildren {
		if ev.children[j].member == i {
			return &ev.children[j].view
		}
	}
	if ev.nchildren == maxChildren {
		return nil
	}
	c := &ev.children[ev.nchildren]
	ev.nchildren++
	c.member = i
	c.view.reset(obj)
	return &c.view
}

// objectView is a JSON object whose members are found by one scan, as
// far as the lookups so far needed. The scan does not skip the value of
// the member it found last until it must go on: a lookup under that
// member (an Event's child view) may read it first, and tell where it
// ends.
type objectView struct {
	js       string // the object, and whatever follows it
	pos      int    // where the scan goes on, once the value at open is skipped
	begun    bool
	done     bool // the scan reached the end (or could go no further)
	closedAt int  // done at the closing brace: the offset after it
	n        int
	keys     [viewMembers]string
	starts   [viewMembers]int // where each member's value begins in js
	ends     [viewMembers]int // where it ends; -1: not known yet
	open     int              // the start of the value the scan has not skipped; -1: none
	openAt   int              // its index among the members remembered; -1: past them
}

func (v *objectView) reset(js string) {
	v.js, v.pos, v.begun, v.done, v.closedAt, v.n, v.open, v.openAt = js, 0, false, false, 0, 0, -1, -1
}

// member returns the value of the member called name as the rest of js
// from its start, and its index among the members remembered (-1 when it
// is past them).
func (v *objectView) member(name string) (string, int, bool) {
	if m, i, ok := v.lookup(name); ok {
		return m, i, true
	}
	if m, i, ok := v.seek(name, true); ok {
		return m, i, true
	}
	return v.overflow(name)
}

// lookup finds name among the members scanned so far.
func (v *objectView) lookup(name string) (string, int, bool) {
	for i := range v.n { // of a name given twice, the first counts, as gjson reads it
		if v.keys[i] == name {
			return v.js[v.starts[i]:], i, true
		}
	}
	return "", -1, false
}

// seek scans on to the member called name (with find; else to the end),
// remembering the members it passes while there is room, and returns
// its value as the rest of js from its start and its index among the
// members remembered (-1 when it is past them). The value of the member
// found is left for the next seek to skip.
func (v *objectView) seek(name string, find bool) (string, int, bool) {
	if v.done {
		return "", -1, false
	}
	js, i := v.js, v.pos
	if !v.begun { // the opening brace
		v.begun = true
		i = skipSpace(js, i)
		if i >= len(js) || js[i] != '{' {
			v.done = true
			return "", -1, false
		}
		i++
	} else if v.open >= 0 {
		end := -1
		if v.openAt >= 0 {
			end = v.ends[v.openAt]
		}
		if end < 0 {
			if end = skipValue(js, v.open); end < 0 {
				v.done = true
				return "", -1, false
			}
			if v.openAt >= 0 {
				v.ends[v.openAt] = end
			}
		}
		v.open, i = -1, end
	}
	for {
		i = skipSpace(js, i)
		if i < len(js) && js[i] == ',' {
			i = skipSpace(js, i+1)
		} else if i < len(js) && js[i] == '}' {
			v.closedAt = i + 1
			break
		}
		if i >= len(js) || js[i] != '"' {
			break
		}
		end, escaped := skipString(js, i)
		if end < 0 {
			break
		}
		key := js[i+1 : end-1]
		if escaped {
			key = gjson.Parse(js[i:end]).Str
		}
		if i = skipSpace(js, end); i >= len(js) || js[i] != ':' {
			break
		}
		start := skipSpace(js, i+1)
		if start >= len(js) {
			break
		}
		at := -1
		if v.n < viewMembers {
			at = v.n
			v.keys[at], v.starts[at], v.ends[at] = key, start, -1
			v.n++
		}
		if find && key == name {
			v.open, v.openAt, v.pos = start, at, start
			return js[start:], at, true
		}
		if js[start] == '"' {
			end, _ = skipString(js, start)
		} else {
			end = skipValue(js, start)
		}
		if end < 0 {
			break
		}
		if at >= 0 {
			v.ends[at] = end
		}
		i = end
	}
	v.done = true
	return "", -1, false
}

// overflow looks name up in the JSON when the object has more members
// than a view remembers.
func (v *objectView) overflow(name string) (string, int, bool) {
	if v.n == viewMembers {
		if r := gjson.Get(v.js, EscapeName(name)); r.Exists() {
			return v.js[r.Index:], -1, r.Index > 0
		}
	}
	return "", -1, false
}

// finish scans the rest of the object.
func (v *objectView) finish() { v.seek("", false) }

// exact returns the JSON of member i's value, finding its end if it is
// not known yet.
func (v *objectView) exact(i int) string {
	if v.ends[i] < 0 {
		end := skipValue(v.js, v.starts[i])
		if end < 0 {
			end = len(v.js)
		}
		v.ends[i] = end
	}
	return v.js[v.starts[i]:v.ends[i]]
}

// setEnd records where member i's value ends (a child view read it whole).
func (v *objectView) setEnd(i, end int) {
	if i >= 0 && v.ends[i] < 0 {
		v.ends[i] = end
	}
}

// exactValue returns the JSON of the value at the start of rest.
func exactValue(rest string) string {
	if end := skipValue(rest, 0); end >= 0 {
		return rest[:end]
	}
	return rest
}

func skipSpace(js string, i int) int {
	for i < len(js) && js[i] <= ' ' && (js[i] == ' ' || js[i] == '\t' || js[i] == '\n' || js[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string that begins at js[i] ('"')
// and whether it has escapes; -1 when it does not end.
func skipString(js string, i int) (int, bool) {
	b := unsafe.Slice(unsafe.StringData(js), len(js))
	for i++; i+8 <= len(b); i += 8 {
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if b[i] == '"' {
				return i + 1, false
			}
			return skipEscaped(b, i)
		}
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, false
		case '\\':
			return skipEscaped(b, i)
		}
	}
	return -1, false
}

// skipEscaped is skipString from the first backslash, at b[i], on.
func skipEscaped(b []byte, i int) (int, bool) {
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			i++
		}
	}
	return -1, true
}

// Bytes eight at a time, for quoteOrBackslash.
const (
	ones   = 0x0101010101010101
	highs  = 0x8080808080808080
	quotes = '"' * ones
	slashs = '\\' * ones
)

// quoteOrBackslash returns the bytes of w (eight of the JSON, the first
// lowest) that are '"' or '\\', each as its high bit: a byte that is zero
// after xor with the one looked for sets its high bit in (x - ones) &^ x.
// Bytes after the first found may be set too (a borrow), never bytes
// before it: the lowest bit set is the first found.
func quoteOrBackslash(w uint64) uint64 {
	q, s := w^quotes, w^slashs
	return ((q-ones)&^q | (s-ones)&^s) & highs
}

// structural marks the bytes skipValue stops at inside an object or
// a list.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// skipValue returns the end of the value that begins at js[i]; -1 when
// it does not end.
func skipValue(js string, i int) int {
	switch js[i] {
	case '"':
		end, _ := skipString(js, i)
		return end
	case '{', '[':
		b := unsafe.Slice(unsafe.StringData(js), len(js))
		depth := 0
		for ; i < len(b); i++ {
			c := b[i]
			if !structural[c] {
				continue
			}
			switch c {
			case '"':
				// The string's closing quote, inline: an event has many
				// strings.
				for i++; ; i++ { // i++: past a quote, then an escaped byte
					for i+8 <= len(b) {
						m := quoteOrBackslash(binary.LittleEndian.Uint64(b[i:]))
						if m != 0 {
							i += bits.TrailingZeros64(m) >> 3
							break
						}
						i += 8
					}
					for i < len(b) && b[i] != '"' && b[i] != '\\' {
						i++
					}
					if i+1 >= len(b) {
						return -1 // no quote, or one with nothing after it
					}
					if b[i] == '"' {
						break
					}
					i++ // the backslash
				}
			case '{', '[':
				depth++
			default:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(js); i++ {
		switch js[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// kind is the type of an FQL value.
type kind uint8

const (
	kindNull kind = iota // also a field the event does not have
	kindBool
	kindNumber
	kindString
	kindList
	kindObject
)

// typeNames are the names typeof returns, by kind.
var typeNames = [...]string{kindNull: "null", kindBool: "bool", kindNumber: "number", kindString: "string", kindList: "list", kindObject: "object"}

// value is an FQL value: a literal, or a view of the event (strings and
// the event's lists and objects are read in place).
type value struct {
	kind  kind
	b     bool
	lower bool // s is read lowercased (lowercase's result, made only where needed)
	open  bool // kindList, kindObject: s runs on past the value's end
	n     float64
	// s is a string's value; for the event's lists and objects, their JSON
	// (empty for a literal list).
	s   string
	lit *[]value // kindList: a literal list's elements
}

// json returns the JSON of one of the event's lists or objects.
func (v value) json() string {
	if v.open {
		return exactValue(v.s)
	}
	return v.s
}

// result returns one of the event's lists or objects for gjson.
func (v value) result() gjson.Result { return gjson.Result{Type: gjson.JSON, Raw: v.json()} }

// truth reports whether v is true: anything but the boolean true is not.
func (v value) truth() bool { return v.kind == kindBool && v.b }

// str returns v's string, lowercased if it is to be read so.
func (v value) str() string {
	if v.lower {
		return strings.ToLower(v.s)
	}
	return v.s
}

// parseValue returns the value of the JSON of one value, reading strings
// without escapes and literals directly (most fields are those), and the
// rest with gjson.
func parseValue(m string) value {
	if len(m) == 0 {
		return value{}
	}
	switch m[0] {
	case '"':
		if len(m) >= 2 && m[len(m)-1] == '"' && strings.IndexByte(m[1:len(m)-1], '\\') < 0 {
			return value{kind: kindString, s: m[1 : len(m)-1]}
		}
	case 't':
		if m == "true" {
			return value{kind: kindBool, b: true}
		}
	case 'f':
		if m == "false" {
			return value{kind: kindBool}
		}
	case 'n':
		if m == "null" {
			return value{}
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if n, ok := simpleNumber(m); ok {
			return value{kind: kindNumber, n: n}
		}
	}
	return fromJSON(gjson.Parse(m))
}

// simpleNumber reads a JSON number of at most 15 digits without an
// exponent (most of an event's), exactly as strconv.ParseFloat does: the
// digits and the power of ten are exact float64s, and a division is
// rounded correctly.
func simpleNumber(m string) (float64, bool) {
	i := 0
	if m[0] == '-' {
		i++
	}
	var digits uint64
	n, frac := 0, -1 // digits read; where the fraction begins
	for ; i < len(m); i++ {
		c := m[i]
		if c == '.' && frac < 0 && n > 0 {
			frac = n
			continue
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		digits = digits*10 + uint64(c-'0')
		n++
	}
	if n == 0 || n > 15 || frac == n {
		return 0, false
	}
	f := float64(digits)
	if frac >= 0 {
		f /= pow10[n-frac]
	}
	if m[0] == '-' {
		f = -f
	}
	return f, true
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// fromJSON returns the value of r.
func fromJSON(r gjson.Result) value {
	switch r.Type {
	case gjson.False:
		return value{kind: kindBool}
	case gjson.True:
		return value{kind: kindBool, b: true}
	case gjson.Number:
		return value{kind: kindNumber, n: r.Num}
	case gjson.String:
		return value{kind: kindString, s: r.Str}
	case gjson.JSON:
		if r.IsArray() {
			return value{kind: kindList, s: r.Raw}
		}
		return value{kind: kindObject, s: r.Raw}
	}
	return value{}
}

// node is a node of a parsed expression.
type node interface {
	// eval evaluates the node on the event.
	eval(ev *Event) value
	// test is eval(ev).truth(), without making the value where it can.
	test(ev *Event) bool
	// appendIR appends the node's tsub IR to b.
	appendIR(b []byte) []byte
}

// literalNode is a literal value.
type literalNode struct {
	v   value
	pos int
}

func (n *literalNode) eval(*Event) value { return n.v }

func (n *literalNode) test(*Event) bool { return n.v.truth() }

// pathNode is a field of the event.
type pathNode struct {
	names []string // unescaped
	rest  string   // the gjson path under the top-level member names[0]
	// paths[k] is the gjson path of names[k:], for what find leaves to
	// gjson.
	paths []string
}

func newPathNode(names []string) *pathNode {
	n := &pathNode{names: names, paths: make([]string, len(names))}
	for k := len(names) - 1; k >= 0; k-- {
		n.paths[k] = EscapeName(names[k])
		if k+1 < len(names) {
			n.paths[k] += "." + n.paths[k+1]
		}
	}
	if len(names) > 1 {
		n.rest = n.paths[1]
	}
	return n
}

// EscapeName escapes one member's name for a gjson or sjson path: every
// byte outside {a-z A-Z 0-9 _ -} is the name's own, not path syntax.
func EscapeName(name string) string {
	clean := true
	for j := 0; j < len(name); j++ {
		clean = clean && nameByte(name[j])
	}
	if clean {
		return name
	}
	var b strings.Builder
	for j := 0; j < len(name); j++ {
		if !nameByte(name[j]) {
			b.WriteByte('\\')
		}
		b.WriteByte(name[j])
	}
	return b.String()
}

func (n *pathNode) test(ev *Event) bool { return n.eval(ev).truth() }

func (n *pathNode) eval(ev *Event) value {
	m, v, i, ok := n.locate(ev)
	if !ok {
		return value{}
	}
	return memberValue(v, i, m)
}

// locate finds the field in the event: its JSON from the start of its
// value on, and, when it is member i (≥ 0) of a view v, the view, which
// knows where it ends or will.
func (n *pathNode) locate(ev *Event) (m string, v *objectView, i int, ok bool) {
	m, i, ok = ev.member(n.names[0])
	switch {
	case !ok:
		return "", nil, -1, false
	case len(n.names) == 1:
		return m, &ev.top, i, true
	}
	if len(m) == 0 || m[0] != '{' && m[0] != '[' { // a field under a scalar
		return "", nil, -1, false
	}
	var child *objectView
	if i >= 0 && m[0] == '{' {
		child = ev.child(i, m)
	}
	if child == nil {
		return findOrGet(m, n, 1)
	}
	m, j, ok := child.member(n.names[1])
	if child.done && child.closedAt > 0 {
		ev.top.setEnd(i, ev.top.starts[i]+child.closedAt)
	}
	switch {
	case !ok:
		return "", nil, -1, false
	case len(n.names) == 2:
		return m, child, j, true
	case m[0] != '{' && m[0] != '[': // a field under a scalar
		return "", nil, -1, false
	}
	return findOrGet(m, n, 2)
}

// findOrGet is find, or gjson where find leaves the field to it: gjson
// reads the path in the value whose JSON begins js.
func findOrGet(js string, n *pathNode, k int) (string, *objectView, int, bool) {
	m, ok, read := find(js, n, k)
	if !read {
		r := gjson.Get(exactValue(js), n.paths[k])
		m, ok = r.Raw, r.Exists()
	}
	return m, nil, -1, ok
}

// memberValue returns the value of member i of v (-1 or nil: not a
// member v remembers), whose JSON begins m. A list or an object is read
// where it begins, its end found only when needed.
func memberValue(v *objectView, i int, m string) value {
	if v == nil || i < 0 {
		return valueAt(m)
	}
	switch m[0] {
	case '{', '[':
		if v.ends[i] >= 0 {
			return container(v.js[v.starts[i]:v.ends[i]], false)
		}
		return container(m, true)
	case '"':
		if v.ends[i] < 0 {
			end, escaped := skipString(m, 0)
			if end < 0 || escaped {
				return valueAt(m)
			}
			v.ends[i] = v.starts[i] + end
			return value{kind: kindString, s: m[1 : end-1]}
		}
	}
	return parseValue(v.exact(i))
}

// container returns the list or object whose JSON begins js (and runs on
// past its end if open).
func container(js string, open bool) value {
	if js[0] == '[' {
		return value{kind: kindList, s: js, open: open}
	}
	return value{kind: kindObject, s: js, open: open}
}

// valueAt returns the value whose JSON begins m.
func valueAt(m string) value {
	if len(m) == 0 {
		return value{}
	}
	switch m[0] {
	case '{', '[':
		return container(m, true)
	case '"':
		if end, escaped := skipString(m, 0); end > 0 && !escaped {
			return value{kind: kindString, s: m[1 : end-1]}
		}
	}
	return parseValue(exactValue(m))
}

// find finds the field names[k:] of n under the list or object whose
// JSON begins js, as gjson finds it: in an object, under the first member
// of the name in which the rest of the path is found (a name may be given
// twice); in a list, at the element a name of digits numbers. It returns
// the field's JSON from the start of its value on, and whether it is
// there; or, with read false, that it leaves the field to gjson: where
// the path names a list's element by other than digits (gjson reads such
// names in its own way), and where the JSON is malformed (gjson reads on
// as far as it can).
func find(js string, n *pathNode, k int) (m string, ok, read bool) {
	name, last := n.names[k], k == len(n.names)-1
	if js[0] == '[' {
		idx, ok := index(name)
		if !ok {
			return "", false, false
		}
		i := skipSpace(js, 1)
		if i < len(js) && js[i] == ']' {
			return "", false, true
		}
		for h := 0; i < len(js); h++ {
			if h == idx {
				switch {
				case js[i] == '{' || js[i] == '[':
					if last {
						return js[i:], true, true
					}
					return find(js[i:], n, k+1)
				case last:
					return js[i:], true, skipMember(js, i) >= 0
				}
				return "", false, skipMember(js, i) >= 0
			}
			if i = skipMember(js, i); i < 0 {
				break
			}
			if i = skipSpace(js, i); i < len(js) && js[i] == ']' {
				return "", false, true
			}
			if i >= len(js) || js[i] != ',' {
				break
			}
			i = skipSpace(js, i+1)
		}
		return "", false, false
	}
	i := skipSpace(js, 1)
	if i < len(js) && js[i] == '}' {
		return "", false, true
	}
	for i < len(js) && js[i] == '"' {
		end, escaped := skipString(js, i)
		if end < 0 {
			break
		}
		key := js[i+1 : end-1]
		if escaped {
			key = gjson.Parse(js[i:end]).Str
		}
		if i = skipSpace(js, end); i >= len(js) || js[i] != ':' {
			break
		}
		if i = skipSpace(js, i+1); i >= len(js) {
			break
		}
		if key == name {
			switch {
			case js[i] == '{' || js[i] == '[':
				if last {
					return js[i:], true, true
				}
				if m, ok, read := find(js[i:], n, k+1); ok || !read {
					return m, ok, read
				}
			case last:
				return js[i:], true, skipMember(js, i) >= 0
			}
		}
		if i = skipMember(js, i); i < 0 {
			break
		}
		if i = skipSpace(js, i); i < len(js) && js[i] == '}' {
			return "", false, true
		}
		if i >= len(js) || js[i] != ',' {
			break
		}
		i = skipSpace(js, i+1)
	}
	return "", false, false
}

// skipMember is skipValue, but for a number, true, false or null that
// has bytes no JSON value has (-1: gjson reads them in its own way).
func skipMember(js string, i int) int {
	switch js[i] {
	case '"', '{', '[':
		return skipValue(js, i)
	}
	return scalarEnd(js, i)
}

// scalarEnd returns the end of the number, true, false or null at js[i],
// or -1 when it has bytes no JSON value has.
func scalarEnd(js string, i int) int {
	switch js[i] {
	case 't', 'f', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		return -1
	}
	for ; i < len(js); i++ {
		switch c := js[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '+':
		case c == ',', c == '}', c == ']', c == ' ', c == '\t', c == '\n', c == '\r':
			return i
		default:
			return -1
		}
	}
	return i
}

// index returns the index of a list's element a name of digits numbers
// (-1 when no list is that long).
func index(name string) (int, bool) {
	if name == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n >= 0 {
			if n = n*10 + int(c-'0'); n > 1<<40 {
				n = -1 // no list is that long
			}
		}
	}
	return n, true
}

// logicNode is and (or with or set).
type logicNode struct {
	or   bool
	l, r node
}

func (n *logicNode) eval(ev *Event) value { return value{kind: kindBool, b: n.test(ev)} }

func (n *logicNode) test(ev *Event) bool {
	if l := n.l.test(ev); l == n.or { // true or ..., false and ...: decided
		return l
	}
	return n.r.test(ev)
}

// notNode is !.
type notNode struct{ x node }

func (n *notNode) eval(ev *Event) value { return value{kind: kindBool, b: !n.x.test(ev)} }

func (n *notNode) test(ev *Event) bool { return !n.x.test(ev) }

// op is a comparison operator.
type op uint8

const (
	opEq op = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
)

var opNames = [...]string{opEq: "=", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=", opIn: "in"}

// compareNode is a comparison.
type compareNode struct {
	op   op
	l, r node
	lit  *value // r's value when r is a literal
	// A field (path) compared with =, != or in with strings that JSON
	// writes as they are between quotes (no quote, backslash or control
	// character) is compared with the event's JSON as it is: quoted are
	// those strings in quotes.
	path   *pathNode
	quoted []string
}

func newCompareNode(o op, l, r node) *compareNode {
	n := &compareNode{op: o, l: l, r: r}
	lit, ok := r.(*literalNode)
	if !ok {
		return n
	}
	n.lit = &lit.v
	var strs []value
	switch {
	case o == opEq || o == opNe:
		strs = []value{lit.v}
	case o == opIn && lit.v.kind == kindList:
		strs = *lit.v.lit
	}
	var quoted []string
	for _, v := range strs {
		if v.kind != kindString || strings.ContainsFunc(v.s, func(r rune) bool { return r == '"' || r == '\\' || r < ' ' }) {
			return n
		}
		quoted = append(quoted, `"`+v.s+`"`)
	}
	if p, ok := l.(*pathNode); ok && len(quoted) > 0 {
		n.path, n.quoted = p, quoted
	}
	return n
}

func (n *compareNode) eval(ev *Event) value { return value{kind: kindBool, b: n.test(ev)} }

func (n *compareNode) test(ev *Event) bool {
	if n.path != nil {
		m, v, i, ok := n.path.locate(ev)
		if !ok { // null
			return n.op == opNe
		}
		for _, q := range n.quoted {
			switch quotedAt(m, q) {
			case yes:
				return n.op != opNe
			case unsure:
				l := memberValue(v, i, m)
				return compare(n.op, &l, n.lit)
			}
		}
		return n.op == opNe
	}
	l := n.l.eval(ev)
	if n.lit != nil {
		return compare(n.op, &l, n.lit)
	}
	r := n.r.eval(ev)
	return compare(n.op, &l, &r)
}

type answer uint8

const (
	no answer = iota
	yes
	unsure
)

// quotedAt reports whether the JSON value at the start of m is the string
// quoted is (a string in quotes that needs no escapes): whether m begins
// with quoted; and, where they part, unsure when m has an escape there
// (or ends, or is malformed), which only reading the value can tell.
func quotedAt(m, quoted string) answer {
	k := 0
	for k < len(quoted) && k < len(m) && m[k] == quoted[k] {
		k++
	}
	switch {
	case k == len(quoted):
		return yes
	case k == len(m) || m[k] == '\\' || m[k] < ' ':
		return unsure // and where the JSON is malformed, gjson reads it in its own way
	}
	return no
}

// compare returns l op r.
func compare(o op, l, r *value) bool {
	switch o {
	case opEq:
		return equal(l, r)
	case opNe:
		return !equal(l, r)
	case opIn:
		if r.lit != nil {
			for i := range *r.lit {
				if equal(l, &(*r.lit)[i]) {
					return true
				}
			}
			return false
		}
		return in(*l, *r)
	}
	if l.kind != kindNumber || r.kind != kindNumber {
		return false
	}
	switch o {
	case opLt:
		return l.n < r.n
	case opLe:
		return l.n <= r.n
	case opGt:
		return l.n > r.n
	}
	return l.n >= r.n
}

// equal reports whether a and b have the same type and are strictly
// equal (lists element by element, objects member by member in order).
func equal(a, b *value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindNull:
		return true
	case kindBool:
		return a.b == b.b
	case kindNumber:
		return a.n == b.n
	case kindString:
		return equalStrings(a, b)
	case kindList:
		return equalLists(*a, *b)
	}
	return equalObjects(a.result(), b.result())
}

// equalStrings compares two strings, either of which may be read
// lowercased, without making the lowercased copy.
func equalStrings(a, b *value) bool {
	if !a.lower && !b.lower {
		return a.s == b.s
	}
	if !ascii(a.s) || !ascii(b.s) {
		return a.str() == b.str() // a rune may lowercase to several
	}
	x, y := a.s, b.s
	for len(x) > 0 && len(y) > 0 {
		rx, nx := utf8.DecodeRuneInString(x)
		ry, ny := utf8.DecodeRuneInString(y)
		if a.lower {
			rx = toLower(rx)
		}
		if b.lower {
			ry = toLower(ry)
		}
		if rx != ry {
			return false
		}
		x, y = x[nx:], y[ny:]
	}
	return len(x) == 0 && len(y) == 0
}

// toLower lowercases an ASCII character.
func toLower(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		r += 'a' - 'A'
	}
	return r
}

// ascii reports whether s is all ASCII.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// listLen returns the number of elements of a list value.
func listLen(v value) int {
	if v.lit != nil {
		return len(*v.lit)
	}
	n := 0
	v.result().ForEach(func(_, _ gjson.Result) bool { n++; return true })
	return n
}

// listEach calls f with each element of a list value until f returns
// false.
func listEach(v value, f func(value) bool) {
	if v.lit != nil {
		for _, e := range *v.lit {
			if !f(e) {
				return
			}
		}
		return
	}
	v.result().ForEach(func(_, e gjson.Result) bool { return f(fromJSON(e)) })
}

func equalLists(a, b value) bool {
	if listLen(a) != listLen(b) {
		return false
	}
	if a.lit == nil && b.lit == nil {
		ae, be := a.result().Array(), b.result().Array()
		for i := range ae {
			if x, y := fromJSON(ae[i]), fromJSON(be[i]); !equal(&x, &y) {
				return false
			}
		}
		return true
	}
	if a.lit == nil {
		a, b = b, a // a is the literal
	}
	i, same := 0, true
	listEach(b, func(e value) bool {
		same = equal(&(*a.lit)[i], &e)
		i++
		return same
	})
	return same
}

// equalObjects compares two of the event's objects member by member, in
// order (as Segment's evaluators compare objects by their serialization).
func equalObjects(a, b gjson.Result) bool {
	type member struct {
		k string
		v gjson.Result
	}
	var am []member
	a.ForEach(func(k, v gjson.Result) bool { am = append(am, member{k.Str, v}); return true })
	i, same := 0, true
	b.ForEach(func(k, v gjson.Result) bool {
		if i == len(am) || am[i].k != k.Str || !equalJSON(am[i].v, v) {
			same = false
			return false
		}
		i++
		return true
	})
	return same && i == len(am)
}

// equalJSON compares two of the event's values.
func equalJSON(a, b gjson.Result) bool {
	x, y := fromJSON(a), fromJSON(b)
	return equal(&x, &y)
}

// in reports whether a is an element of the list l (false when l is not
// a list).
func in(a, l value) bool {
	if l.kind != kindList {
		return false
	}
	found := false
	listEach(l, func(e value) bool {
		found = equal(&a, &e)
		return !found
	})
	return found
}

// function is an FQL function.
type function uint8

const (
	fnContains function = iota
	fnMatch
	fnLowercase
	fnLength
	fnTypeof
)

var functionNames = [...]string{fnContains: "contains", fnMatch: "match", fnLowercase: "lowercase", fnLength: "length", fnTypeof: "typeof"}

// callNode is a function call.
type callNode struct {
	fn   function
	args []node
	glob *glob // match's pattern when it is a literal
}

func (n *callNode) test(ev *Event) bool {
	if n.fn != fnContains && n.fn != fnMatch {
		return n.eval(ev).truth()
	}
	if n.glob != nil {
		a := n.args[0].eval(ev)
		return a.kind == kindString && n.glob.match(a.str())
	}
	a, b := n.args[0].eval(ev), n.args[1].eval(ev)
	if a.kind != kindString || b.kind != kindString {
		return false
	}
	if n.fn == fnContains {
		return strings.Contains(a.str(), b.str())
	}
	return globMatch(b.str(), a.str())
}

func (n *callNode) eval(ev *Event) value {
	switch n.fn {
	case fnContains, fnMatch:
		return value{kind: kindBool, b: n.test(ev)}
	}
	a := n.args[0].eval(ev)
	switch n.fn {
	case fnLowercase:
		if a.kind != kindString {
			return value{}
		}
		a.lower = true
		return a
	case fnLength:
		switch a.kind {
		case kindNull:
			return value{kind: kindNumber}
		case kindString:
			return value{kind: kindNumber, n: float64(len(a.str()))}
		case kindList:
			return value{kind: kindNumber, n: float64(listLen(a))}
		}
		return value{kind: kindNumber, n: math.NaN()} // no length: every comparison is false
	}
	return value{kind: kindString, s: typeNames[a.kind]} // typeof
}
