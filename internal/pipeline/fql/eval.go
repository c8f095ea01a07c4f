package fql

import (
	"math"
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
func (e *Expr) MatchEvent(ev *Event) bool { return e.root.eval(ev).truth() }

// viewMembers is how many members of an object an objectView remembers;
// past them a member is looked up in the JSON.
const viewMembers = 32

// maxChildren is how many of an event's top-level objects an Event
// reads into views of their own (properties, context, traits, ...).
const maxChildren = 8

// Event is an event read for evaluating expressions. Its top-level
// members, and the members of the top-level objects a field is looked up
// in, are found by scans that go only as far as the fields looked up so
// far need: each field's lookup reads only its own part of the event, and
// nothing is scanned twice. The zero value is empty; Reset reads an event.
// An Event is for one goroutine; reuse it.
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
	for !t.done {
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
		key, start, i, ok := t.next()
		if ok && key == name {
			return t.js[start:], i, true
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
	for !v.done {
		key, start, i, ok := v.next()
		if ok && key == name {
			return v.js[start:], i, true
		}
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

// next scans the next member and remembers it if there is room.
func (v *objectView) next() (key string, start, i int, ok bool) {
	key, start, ok = v.scan()
	if !ok {
		v.done = true
		return "", 0, -1, false
	}
	i = -1
	if v.n < viewMembers {
		i = v.n
		v.keys[i], v.starts[i], v.ends[i] = key, start, -1
		v.n++
	}
	v.openAt = i
	return key, start, i, true
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
func (v *objectView) finish() {
	for !v.done {
		v.next()
	}
}

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

// scan reads the next member: its key (unescaped only if it has escapes)
// and where its value begins; it skips the value of the member before.
func (v *objectView) scan() (key string, start int, ok bool) {
	js, i := v.js, v.pos
	if !v.begun { // the opening brace
		v.begun = true
		i = skipSpace(js, i)
		if i >= len(js) || js[i] != '{' {
			return "", 0, false
		}
		i++
	} else if v.open >= 0 {
		end := -1
		if v.openAt >= 0 {
			end = v.ends[v.openAt]
		}
		if end < 0 {
			if end = skipValue(js, v.open); end < 0 {
				return "", 0, false
			}
			if v.openAt >= 0 {
				v.ends[v.openAt] = end
			}
		}
		v.open, i = -1, end
	}
	i = skipSpace(js, i)
	if i < len(js) && js[i] == ',' {
		i = skipSpace(js, i+1)
	} else if i < len(js) && js[i] == '}' {
		v.closedAt = i + 1
		return "", 0, false
	}
	if i >= len(js) || js[i] != '"' {
		return "", 0, false
	}
	end, escaped := skipString(js, i)
	if end < 0 {
		return "", 0, false
	}
	key = js[i+1 : end-1]
	if escaped {
		key = gjson.Parse(js[i:end]).Str
	}
	i = skipSpace(js, end)
	if i >= len(js) || js[i] != ':' {
		return "", 0, false
	}
	start = skipSpace(js, i+1)
	if start >= len(js) {
		return "", 0, false
	}
	v.open, v.pos = start, start
	return key, start, true
}

// exactValue returns the JSON of the value at the start of rest.
func exactValue(rest string) string {
	if end := skipValue(rest, 0); end >= 0 {
		return rest[:end]
	}
	return rest
}

func skipSpace(js string, i int) int {
	for i < len(js) && (js[i] == ' ' || js[i] == '\t' || js[i] == '\n' || js[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string that begins at js[i] ('"')
// and whether it has escapes; -1 when it does not end. Short strings (most
// keys and values) are read byte by byte; past 16 bytes IndexByte finds
// the next quote.
func skipString(js string, i int) (int, bool) {
	escaped := false
	i++
	for n := 0; i < len(js); i++ {
		switch js[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			i++
			continue
		}
		if n++; n == 16 {
			break
		}
	}
	for i < len(js) {
		q := strings.IndexByte(js[i:], '"')
		if q < 0 {
			return -1, escaped
		}
		if !escaped && strings.IndexByte(js[i:i+q], '\\') >= 0 {
			escaped = true
		}
		q += i
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		b := q
		for b > i && js[b-1] == '\\' {
			b--
		}
		if (q-b)%2 == 0 {
			return q + 1, escaped
		}
		i = q + 1
	}
	return -1, escaped
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
		depth := 0
		for ; i < len(js); i++ {
			c := js[i]
			if !structural[c] {
				continue
			}
			switch c {
			case '"':
				// The string's closing quote, inline: most strings in an
				// event are short and have no escapes.
				j := i + 1
				for j < len(js) && js[j] != '"' {
					if js[j] == '\\' {
						j++
					}
					j++
				}
				if j >= len(js) {
					return -1
				}
				i = j
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
	n     float64
	s     string
	lower bool         // s is read lowercased (lowercase's result, made only where needed)
	res   gjson.Result // kindList, kindObject: the event's
	lit   []value      // kindList: a literal list's elements
}

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
	}
	return fromJSON(gjson.Parse(m))
}

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
			return value{kind: kindList, res: r}
		}
		return value{kind: kindObject, res: r}
	}
	return value{}
}

// node is a node of a parsed expression.
type node interface {
	// eval evaluates the node on the event.
	eval(ev *Event) value
	// appendIR appends the node's tsub IR to b.
	appendIR(b []byte) []byte
}

// literalNode is a literal value.
type literalNode struct {
	v   value
	pos int
}

func (n *literalNode) eval(*Event) value { return n.v }

// pathNode is a field of the event.
type pathNode struct {
	names []string // unescaped
	rest  string   // the gjson path under the top-level member names[0]
	deep  string   // the gjson path under names[0].names[1]
}

func newPathNode(names []string) *pathNode {
	join := func(names []string) string {
		var b strings.Builder
		for i, name := range names {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(EscapeName(name))
		}
		return b.String()
	}
	n := &pathNode{names: names, rest: join(names[1:])}
	if len(names) > 2 {
		n.deep = join(names[2:])
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

func (n *pathNode) eval(ev *Event) value {
	m, i, ok := ev.member(n.names[0])
	switch {
	case !ok:
		return value{}
	case len(n.names) == 1:
		if i >= 0 {
			return parseValue(ev.top.exact(i))
		}
		return parseValue(exactValue(m))
	}
	var child *objectView
	if i >= 0 && len(m) > 0 && m[0] == '{' {
		child = ev.child(i, m)
	}
	if len(m) == 0 || m[0] != '{' && m[0] != '[' { // a field under a scalar
		return value{}
	}
	if child == nil {
		if i >= 0 {
			return fromJSON(gjson.Get(ev.top.exact(i), n.rest))
		}
		return fromJSON(gjson.Get(exactValue(m), n.rest))
	}
	m, j, ok := child.member(n.names[1])
	if child.done && child.closedAt > 0 {
		ev.top.setEnd(i, ev.top.starts[i]+child.closedAt)
	}
	if !ok {
		return value{}
	}
	if j >= 0 {
		m = child.exact(j)
	} else {
		m = exactValue(m)
	}
	if n.deep == "" {
		return parseValue(m)
	}
	if len(m) == 0 || m[0] != '{' && m[0] != '[' { // a field under a scalar
		return value{}
	}
	return fromJSON(gjson.Get(m, n.deep))
}

// logicNode is and (or with or set).
type logicNode struct {
	or   bool
	l, r node
}

func (n *logicNode) eval(ev *Event) value {
	l := n.l.eval(ev).truth()
	if l == n.or { // true or ..., false and ...: decided
		return value{kind: kindBool, b: l}
	}
	return value{kind: kindBool, b: n.r.eval(ev).truth()}
}

// notNode is !.
type notNode struct{ x node }

func (n *notNode) eval(ev *Event) value { return value{kind: kindBool, b: !n.x.eval(ev).truth()} }

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
}

func (n *compareNode) eval(ev *Event) value {
	l, r := n.l.eval(ev), n.r.eval(ev)
	var b bool
	switch n.op {
	case opEq:
		b = equal(l, r)
	case opNe:
		b = !equal(l, r)
	case opIn:
		b = in(l, r)
	default:
		if l.kind == kindNumber && r.kind == kindNumber {
			switch n.op {
			case opLt:
				b = l.n < r.n
			case opLe:
				b = l.n <= r.n
			case opGt:
				b = l.n > r.n
			case opGe:
				b = l.n >= r.n
			}
		}
	}
	return value{kind: kindBool, b: b}
}

// equal reports whether a and b have the same type and are strictly
// equal (lists element by element, objects member by member in order).
func equal(a, b value) bool {
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
		return equalLists(a, b)
	}
	return equalObjects(a.res, b.res)
}

// equalStrings compares two strings, either of which may be read
// lowercased, without making the lowercased copy.
func equalStrings(a, b value) bool {
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
	if v.lit != nil || !v.res.Exists() {
		return len(v.lit)
	}
	n := 0
	v.res.ForEach(func(_, _ gjson.Result) bool { n++; return true })
	return n
}

// listEach calls f with each element of a list value until f returns
// false.
func listEach(v value, f func(value) bool) {
	if !v.res.Exists() {
		for _, e := range v.lit {
			if !f(e) {
				return
			}
		}
		return
	}
	v.res.ForEach(func(_, e gjson.Result) bool { return f(fromJSON(e)) })
}

func equalLists(a, b value) bool {
	if listLen(a) != listLen(b) {
		return false
	}
	if b.res.Exists() && a.res.Exists() {
		ae, be := a.res.Array(), b.res.Array()
		for i := range ae {
			if !equal(fromJSON(ae[i]), fromJSON(be[i])) {
				return false
			}
		}
		return true
	}
	if a.res.Exists() {
		a, b = b, a // a is the literal
	}
	i, same := 0, true
	listEach(b, func(e value) bool {
		same = equal(a.lit[i], e)
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
		if i == len(am) || am[i].k != k.Str || !equal(fromJSON(am[i].v), fromJSON(v)) {
			same = false
			return false
		}
		i++
		return true
	})
	return same && i == len(am)
}

// in reports whether a is an element of the list l (false when l is not
// a list).
func in(a, l value) bool {
	if l.kind != kindList {
		return false
	}
	found := false
	listEach(l, func(e value) bool {
		found = equal(a, e)
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
}

func (n *callNode) eval(ev *Event) value {
	a := n.args[0].eval(ev)
	switch n.fn {
	case fnContains, fnMatch:
		b := n.args[1].eval(ev)
		if a.kind != kindString || b.kind != kindString {
			return value{kind: kindBool}
		}
		if n.fn == fnContains {
			return value{kind: kindBool, b: strings.Contains(a.str(), b.str())}
		}
		return value{kind: kindBool, b: globMatch(b.str(), a.str())}
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
