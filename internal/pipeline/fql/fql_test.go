package fql

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// referenceEvent is the event of the examples of Segment's FQL reference.
const referenceEvent = `{"event":"Button Clicked","type":"track","context":{"library":{"name":"analytics.js","version":"1.0"}},"properties":{"features":["discounts","dark-mode"]}}`

func match(t *testing.T, src, event string) bool {
	t.Helper()
	e, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return e.Match([]byte(event))
}

// TestReferenceExamples: the reference's table of statements and results.
func TestReferenceExamples(t *testing.T) {
	for src, want := range map[string]bool{
		`event = 'Button Clicked'`:                                             true,
		`event = 'Screen Tapped'`:                                              false,
		`context.path.path = '/login'`:                                         false,
		`type = 'identify' or type = 'track'`:                                  true,
		`event = 'Button Clicked' and type = 'track'`:                          true,
		`match( context.library.version, '1.*' )`:                              true,
		`match( context.library.version, '2.*' )`:                              false,
		`type = 'track' and ( event = 'Click' or match( event, 'Button *' ) )`: true,
		`!contains( context.library.name, 'js' )`:                              false,
		`'dark-mode' in properties.features`:                                   true,
		`'blink' in properties.features`:                                       false,
	} {
		if got := match(t, src, referenceEvent); got != want {
			t.Errorf("%s = %v, want %v", src, got, want)
		}
	}
}

func TestSemantics(t *testing.T) {
	const ev = `{"type":"track","userId":"u1","anonymousId":null,"event":"Order Completed",
		"properties":{"price":19.99,"priceText":"19.99","qty":2,"free":false,"ok":true,"tags":["a","b"],"empty":[],
		"product 1":{"price":"5"},"a.b":1,"nested":{"x":{"y":[1,{"z":"deep"}]}},"obj":{"a":1,"b":2},"obj2":{"a":1,"b":2},"obj3":{"b":2,"a":1},
		"name":"ÄBC","big":1e3}}`
	for _, c := range []struct {
		src  string
		want bool
	}{
		{`properties.price = 19.99`, true},
		{`properties.priceText = 19.99`, false}, // type-strict
		{`properties.priceText = '19.99'`, true},
		{`properties.price > 10 and properties.price <= 19.99`, true},
		{`properties.priceText > 10`, false}, // numbers only
		{`properties.big = 1000`, true},
		{`properties.qty >= 2.0`, true},
		{`properties.qty < -1`, false},
		{`properties.missing = null`, true}, // an absent field is null
		{`anonymousId = null`, true},
		{`userId != null`, true},
		{`properties.missing != null`, false},
		{`length(properties.missing) = 0`, true},
		{`length(userId) > 0`, true},
		{`length(properties.tags) = 2`, true},
		{`length(properties.empty) = 0`, true},
		{`length(properties.price) = 0`, false}, // no length
		{`length(properties.price) != 0`, true},
		{`length(properties.name) = 4`, true}, // bytes
		{`typeof(properties.tags) = 'list'`, true},
		{`typeof(properties.ok) = 'bool'`, true},
		{`typeof(properties.missing) = 'null'`, true},
		{`typeof(properties.obj) = 'object'`, true},
		{`typeof(properties.price) = 'number'`, true},
		{`properties.ok`, true},
		{`properties.free`, false},
		{`!properties.free`, true},
		{`properties.priceText`, false}, // not a boolean
		{`properties.ok and !properties.free`, true},
		{`properties.free or properties.ok`, true},
		{`properties.product\ 1.price = '5'`, true},
		{`properties.a\.b = 1`, true},
		{`properties.nested.x.y.1.z = 'deep'`, true},
		{`properties.nested.x.y.0 = 1`, true},
		{`properties.tags = ['a', 'b']`, true},
		{`properties.tags = ['b', 'a']`, false},
		{`properties.tags != ['a']`, true},
		{`properties.obj = properties.obj2`, true},
		{`properties.obj = properties.obj3`, false}, // member order counts, as in Segment's evaluators
		{`type in ['track', 'page']`, true},
		{`type in ['page']`, false},
		{`properties.qty in [1, 2]`, true},
		{`'2' in [1, 2]`, false},
		{`null in [null]`, true},
		{`properties.missing in ['x']`, false},
		{`'a' in properties.price`, false},
		{`lowercase(event) = 'order completed'`, true},
		{`lowercase(event) = 'Order Completed'`, false},
		{`lowercase(properties.name) = 'äbc'`, true},
		{`contains(lowercase(event), 'order')`, true},
		{`match(lowercase(event), 'order *')`, true},
		{`lowercase(properties.missing) = null`, true},
		{`lowercase(properties.price) = null`, true},
		{`contains(properties.missing, 'x')`, false},
		{`match(properties.missing, '*')`, false},
		{`contains(properties.price, '19')`, false},
		{`typeof(length(userId)) = 'number'`, true}, // a function in a function
		{`(type = 'track') = true`, true},
		{`!(type in ['track', 'identify'])`, false},
		{`type = "track"`, true},
		{`event = 'Order \'Completed'`, false},
		{`match('ab*d', 'ab\*d')`, true}, // the backslash reaches the pattern
		{`match('abxd', 'ab\*d')`, false},
		{`'a\\b' = "a\\b"`, true},
		{`event == 'Order Completed'`, true},
		{`lowercase(event)`, false}, // a string is not true
		{`true`, true},
		{`null`, false},
	} {
		if got := match(t, c.src, ev); got != c.want {
			t.Errorf("%s = %v, want %v", c.src, got, c.want)
		}
	}
}

// TestGlob: the reference's glob table, and more.
func TestGlob(t *testing.T) {
	for _, c := range []struct {
		s, pattern string
		want       bool
	}{
		{"abcd", "a*d", true},
		{"", "*", true},
		{"abc", "ab", false},
		{"abcd", "a??d", true},
		{"abcd", "*d", true},
		{"ab*d", `ab\*d`, true},
		{"abxd", `ab\*d`, false},
		{"abCd", "ab[cC]d", true},
		{"abcd", "ab[a-z]d", true},
		{"abcd", "ab[A-Z]d", false},
		{"ab/c", "a*", true},
		{"abc", "abc*", true},
		{"abc", "*abc*", true},
		{"aXbXc", "a*b*c", true},
		{"aXbXd", "a*b*c", false},
		{"héllo", "h?llo", true},
		{"abd", "ab[^c]", true},
		{"abb", "ab[^a-c]", false},
		{"abc", "ab[^c]", false},
		{"ab]", `ab[\]]`, true},
		{"ab-", `ab[\-]`, true},
		{"abc", "ab[c", false},   // unclosed
		{"]", "[]]", false},      // an empty set
		{"a-", "a[-]", false},    // a lone -
		{"axb", "a[x-]b", false}, // a range without its end
		{`a\`, `a\`, false},      // a trailing backslash
		{"abd", "ab[!c]", false}, // ! is not negation
		{"ab!", "ab[!c]", true},
		{"", "?", false},
		{"a", "", false},
		{"", "", true},
		{strings.Repeat("a", 50), strings.Repeat("*a", 20) + "b", false},
		{"/checkout/done", "/checkout/*", true},
		{"/cart", "/checkout/*", false},
		{"jane@company.com", "*@company.com", true},
		{"jane@company.co", "*@company.com", false},
		{"an order", "*order*", true},
		{"ab", "**", true},
		{"x*", "*x**", true},
		{"héllo", "h\u00e9*", true},
		{"h\xffllo", "h\xfe*", true}, // invalid bytes are U+FFFD, alike
		{"h\xffllo", "h\ufffd*", true},
	} {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.s, c.pattern, got, c.want)
		}
		if got := compileGlob(c.pattern).match(c.s); got != c.want {
			t.Errorf("match(%q, %q) = %v as a literal pattern, want %v", c.s, c.pattern, got, c.want)
		}
	}
}

// FuzzGlob: a pattern read once matches as globMatch does.
func FuzzGlob(f *testing.F) {
	for _, p := range []string{"a*", "*a", "*a*", "a", "*", "", "a?*", "[a]*", "\\**", "\xfe*"} {
		f.Add(p, "abc")
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if got, want := compileGlob(pattern).match(s), globMatch(pattern, s); got != want {
			t.Fatalf("match(%q, %q) = %v read once, %v by globMatch", s, pattern, got, want)
		}
	})
}

func TestSyntaxErrors(t *testing.T) {
	for _, c := range []struct {
		src  string
		pos  int
		want string
	}{
		{``, 0, "empty"},
		{`userId = oops"`, 13, `not closed`},
		{`type = `, 7, "expected a value"},
		{`type = 'a' 'b'`, 11, "expected and, or, or the end"},
		{`(type = 'a'`, 11, "closing parenthesis"},
		{`upper(event)`, 0, `no function "upper"`},
		{`contains(event)`, 14, "contains takes 2 arguments, not 1"},
		{`type in 'track'`, 8, "right side of in must be a list"},
		{`['a', type]`, 6, "a string, a number"},
		{`properties.`, 11, "field name after the dot"},
		{`properties.price $ 3`, 17, `unexpected '$'`},
		{`1abc = 2`, 0, "is not a number"},
		{`a = 1 = 2`, 6, "expected and, or"},
		{strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100), MaxDepth, "nests more than"},
		{`x\`, 1, "backslash at the end"},
	} {
		_, err := Parse(c.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): %v, want a *SyntaxError", c.src, err)
			continue
		}
		if se.Pos != c.pos || !strings.Contains(se.Msg, c.want) {
			t.Errorf("Parse(%q): %v, want at position %d: ...%s...", c.src, err, c.pos, c.want)
		}
	}
}

func TestIR(t *testing.T) {
	for src, want := range map[string]string{
		`type = 'track'`: `["=","type",{"value":"track"}]`,
		`type = 'track' and !contains(event, "x") or properties.n >= 2.5`: `["or",["and",["=","type",{"value":"track"}],["!",["contains","event",{"value":"x"}]]],[">=","properties.n",{"value":2.5}]]`,
		`type in ['a', 1, true, null]`:                                    `["in","type",{"value":[{"value":"a"},{"value":1},{"value":true},{"value":null}]}]`,
		`'x' in properties.list`:                                          `["in",{"value":"x"},"properties.list"]`,
		`properties.ok`:                                                   `"properties.ok"`,
		`properties.product\ 1.price = '19'`:                              `["=","properties.product 1.price",{"value":"19"}]`,
		`length(lowercase(userId)) > 0`:                                   `[">",["length",["lowercase","userId"]],{"value":0}]`,
		`match(event, 'a*') and typeof(x) != 'null'`:                      `["and",["match","event",{"value":"a*"}],["!=",["typeof","x"],{"value":"null"}]]`,
	} {
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if got := string(e.IR()); got != want {
			t.Errorf("IR of %s:\n got %s\nwant %s", src, got, want)
		}
		if !json.Valid(e.IR()) {
			t.Errorf("IR of %s is not JSON", src)
		}
	}
}

// TestMatchAllocatesNothing: the common expressions evaluate without
// allocating.
func TestMatchAllocatesNothing(t *testing.T) {
	ev := []byte(`{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}},"properties":{"price":19.99,"tags":["a","b"],"name":"Shoe"}}`)
	for _, src := range []string{
		`type = 'track' and event = 'Order Completed'`,
		`properties.price > 10 or !properties.free`,
		`context.consent.categoryPreferences.Advertising = true`,
		`type in ['track', 'page', 'screen']`,
		`'b' in properties.tags`,
		`contains(event, 'Order') and match(properties.name, 'S*e')`,
		`length(userId) > 0 and typeof(properties.tags) = 'list'`,
		`lowercase(properties.name) = 'shoe'`,
	} {
		e, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		var view Event
		if n := testing.AllocsPerRun(100, func() { view.Reset(ev); e.MatchEvent(&view) }); n != 0 {
			t.Errorf("%s: %v allocations per Match", src, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`type = 'track'`, `!(a in [1, 'x', null]) or match(b, '[a-z]*')`, `length(x\ y.z) >= -1.5e3`, `contains(lowercase(event), "a\"b")`} {
		f.Add(s, `{"type":"track","a":[1,2],"b":"abc","x y":{"z":3}}`)
	}
	f.Fuzz(func(t *testing.T, src, event string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Pos < 0 || se.Pos > len(src) {
				t.Fatalf("Parse(%q): %v: not a SyntaxError within the source", src, err)
			}
			return
		}
		if !json.Valid(e.IR()) {
			t.Fatalf("IR of %q is not JSON: %s", src, e.IR())
		}
		e.Match([]byte(event)) // must not panic
		if e.String() != src {
			t.Fatalf("String() = %q, want the source", e.String())
		}
	})
}

// TestEventScan: the one scan of an event's members reads what gjson
// reads: escaped keys, whitespace, a repeated name (the first counts),
// more members than an Event remembers, and malformed JSON as far as it
// goes.
func TestEventScan(t *testing.T) {
	var many strings.Builder
	many.WriteString(`{`)
	for i := range viewMembers + 10 {
		fmt.Fprintf(&many, `"m%d":%d,`, i, i)
	}
	many.WriteString(`"last":"yes"}`)
	for _, c := range []struct {
		event, src string
		want       bool
	}{
		{` { "type" : "track" , "event":"x\"y" , "properties" : { "a" : [1, "]}\\\"[", "\\", {"b": 2}] } } `, `properties.a.3.b = 2`, true},
		{`{"type":"track","event":"x\"y"}`, `event = 'x"y'`, true},
		{`{"ty\u0070e":"track"}`, `type = 'track'`, true},
		{`{"type":"track","type":"page"}`, `type = 'track'`, true},
		{many.String(), `last = 'yes' and m40 = 40 and m3 = 3`, true},
		{`{"type":"track","event":`, `type = 'track'`, true},
		{`{"type":"track","event":`, `event = null`, true},
		{`not json`, `type = null`, true},
		{`{"a":{"b":"c"}}`, `a = null`, false},
		{`{"a":-1.5e2,"b":true}`, `a < -100 and b`, true},
		// A string compared as the event writes it: escapes, and where
		// the event ends in the middle of it.
		{`{"type":"tr\u0061ck"}`, `type = 'track'`, true},
		{`{"type":"tr\u0061ck"}`, `type != 'track'`, false},
		{`{"type":"tr\u0061ck"}`, `type in ['page', 'track']`, true},
		{`{"type":"track\u0020"}`, `type = 'track'`, false},
		{`{"type":"track\"x"}`, `type = 'track'`, false},
		{`{"type":"trac"}`, `type = 'track'`, false},
		{`{"type":"tracks"}`, `type = 'track'`, false},
		{`{"type":"track"}`, `type in ['page', 'screen']`, false},
		{`{"type":"track"}`, `type != 'track'`, false},
		{`{"type":"track"}`, `type = 'track'`, true},
		{`{"type":"track"}`, `event != 'track'`, true},
		{`{"type":7}`, `type = '7'`, false},
		{`{"type":["track"]}`, `type in ['track']`, false},
		{`{"type":"track`, `type = 'track'`, true},
		{`{"type":"it's \"x\""}`, `type = 'it\'s "x"'`, true},
		{`{"a":{"b":{"c":"d\u00e9"}}}`, `a.b.c = 'dé'`, true},
		{`{"a":{"b":[{"c":"x"},{"c":"y"}]}}`, `a.b.1.c = 'y' and a.b.0.c != 'y'`, true},
	} {
		if got := match(t, c.src, c.event); got != c.want {
			t.Errorf("%s on %s = %v, want %v", c.src, c.event, got, c.want)
		}
	}
}

// FuzzEventLookup: a field read through an Event's scan is the field
// gjson reads from the whole event, for valid JSON objects.
func FuzzEventLookup(f *testing.F) {
	f.Add(`{"a":{"b":[1,"x\"y",{"c":true}]},"d":"e"}`, "a", "b")
	f.Add(` {"k\u0041":1, "kA":2} `, "kA", "")
	f.Add(`{"x":"\\","y":[{"}":"]"}],"z":null}`, "y", "0")
	f.Fuzz(func(t *testing.T, event, top, sub string) {
		if !json.Valid([]byte(event)) || !strings.HasPrefix(strings.TrimSpace(event), "{") || top == "" || repeatsName(event) {
			return
		}
		names := []string{top}
		if sub != "" {
			names = append(names, sub)
		}
		n := newPathNode(names)
		var ev Event
		ev.Reset([]byte(event))
		got := n.eval(&ev)
		full := EscapeName(top)
		if sub != "" {
			full += "." + EscapeName(sub)
		}
		r := gjson.Get(event, full)
		want := fromJSON(r)
		if got.kind != want.kind || got.b != want.b || (got.n != want.n && got.n == got.n) || got.json() != want.json() {
			t.Fatalf("%v on %s: %+v through the Event, %+v through gjson", names, event, got, want)
		}
		checkFieldJSON(t, n, event, r)
	})
}

// FuzzEventPath: a field three names deep read through an Event is the
// field gjson reads from the whole event, for valid JSON objects.
func FuzzEventPath(f *testing.F) {
	f.Add(`{"a":{"b":[1,"x\"y",{"c":true}]},"d":"e"}`, "a", "b", "2")
	f.Add(`{"a":{"b":{"c":{"d":1},"c":{"e":2}}}}`, "a", "b", "c")
	f.Add(`{"a":{"b":[{"c":1},{"c":2}]}}`, "a", "b", "c")
	f.Add(`{"a":{"b":[[1],[2,3]]}}`, "a", "b", "01")
	f.Add(`{"a":[{"b":{"c":"d"}}]}`, "a", "0", "b")
	f.Add(`{"a":{"b":{"c\u0041":3}}}`, "a", "b", "cA")
	f.Add(`{"a":{"b":[1,2]}}`, "a", "b", "#")
	f.Add(`{"a":{"b":[1,2]}}`, "a", "b", "99999999999999999999999")
	f.Fuzz(func(t *testing.T, event, a, b, c string) {
		if !json.Valid([]byte(event)) || !strings.HasPrefix(strings.TrimSpace(event), "{") || a == "" || b == "" || c == "" || repeatsName(event) {
			return
		}
		names := []string{a, b, c}
		n := newPathNode(names)
		var ev Event
		ev.Reset([]byte(event))
		got := n.eval(&ev)
		r := gjson.Get(event, EscapeName(a)+"."+EscapeName(b)+"."+EscapeName(c))
		want := fromJSON(r)
		if got.kind != want.kind || got.b != want.b || (got.n != want.n && got.n == got.n) || got.json() != want.json() {
			t.Fatalf("%v on %s: %+v through the Event, %+v through gjson", names, event, got, want)
		}
		checkFieldJSON(t, n, event, r)
	})
}

// repeatsName reports whether an object of event (valid JSON) gives a
// name twice, a list or an object first. There the Event and gjson part:
// the Event reads the first member of a name, gjson goes on to the next
// when the rest of the path is not under the first.
func repeatsName(event string) bool {
	dec := json.NewDecoder(strings.NewReader(event))
	// value reads a value; it returns whether it was a list or an object,
	// and whether a name is repeated in it.
	var value func() (container, repeats bool)
	value = func() (bool, bool) {
		tok, err := dec.Token()
		if d, ok := tok.(json.Delim); err != nil || !ok {
			return false, false
		} else if d == '[' {
			for dec.More() {
				if _, r := value(); r {
					return true, true
				}
			}
			_, _ = dec.Token()
			return true, false
		}
		first := map[string]bool{} // a name: whether its first value is a container
		for dec.More() {
			tok, _ := dec.Token()
			name, _ := tok.(string)
			c, r := value()
			if r || first[name] {
				return true, true
			}
			if _, seen := first[name]; !seen {
				first[name] = c
			}
		}
		_, _ = dec.Token()
		return true, false
	}
	_, r := value()
	return r
}

// FuzzSimpleNumber: a number simpleNumber reads is the number
// strconv.ParseFloat reads (gjson reads the others).
func FuzzSimpleNumber(f *testing.F) {
	for _, m := range []string{"0", "-0", "27.5", "19.99", "0.1", "-1.5", "123456789012345", "1234567890.12345", "0.000000000000001", "007", "1.", ".5", "-", "1e2", "9007199254740993"} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, m string) {
		if m == "" {
			return
		}
		got, ok := simpleNumber(m)
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(m, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("simpleNumber(%q) = %v, ParseFloat: %v, %v", m, got, want, err)
		}
	})
}

// checkFieldJSON checks that FieldJSON reads the field n as gjson read
// it (r), on a fresh Event and on one that has read the field before.
func checkFieldJSON(t *testing.T, n *pathNode, event string, r gjson.Result) {
	t.Helper()
	e := &Expr{root: n}
	var ev Event
	ev.Reset([]byte(event))
	for range 2 {
		if raw, ok := e.FieldJSON(&ev); raw != r.Raw || ok != r.Exists() {
			t.Fatalf("FieldJSON of %v on %s: %q, %v; gjson: %q, %v", n.names, event, raw, ok, r.Raw, r.Exists())
		}
	}
}
