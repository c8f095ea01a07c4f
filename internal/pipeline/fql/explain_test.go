package fql

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestExplain: each comparison, call and field read alone is a step, in
// the order written, with the fields it read as the event has them (an
// absent one said to be absent) and its value; the steps an and decided
// before are evaluated too.
func TestExplain(t *testing.T) {
	event := []byte(`{"type":"track","event":"Order Completed","userId":null,
		"context":{"traits":{"email":"A@Example.com"}},"properties":{"flag":true,"items":[1, 2]}}`)
	e, err := Parse(`type = 'page' and lowercase(context.traits.email) = 'a@example.com' or !properties.flag or length(properties.items) > anonymousId or userId = null`)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	want := []Step{
		{Expr: `type = 'page'`, Fields: []Field{{Path: "type", Value: raw(`"track"`)}}, Result: raw(`false`)},
		{Expr: `lowercase(context.traits.email) = 'a@example.com'`,
			Fields: []Field{{Path: "context.traits.email", Value: raw(`"A@Example.com"`)}}, Result: raw(`true`)},
		{Expr: `lowercase(context.traits.email)`, Depth: 1,
			Fields: []Field{{Path: "context.traits.email", Value: raw(`"A@Example.com"`)}}, Result: raw(`"a@example.com"`)},
		{Expr: `properties.flag`, Fields: []Field{{Path: "properties.flag", Value: raw(`true`)}}, Result: raw(`true`)},
		{Expr: `length(properties.items) > anonymousId`,
			Fields: []Field{{Path: "properties.items", Value: raw(`[1, 2]`)}, {Path: "anonymousId", Absent: true}}, Result: raw(`false`)},
		{Expr: `length(properties.items)`, Depth: 1, Fields: []Field{{Path: "properties.items", Value: raw(`[1, 2]`)}}, Result: raw(`2`)},
		{Expr: `userId = null`, Fields: []Field{{Path: "userId", Value: raw(`null`)}}, Result: raw(`true`)},
	}
	if got := e.Explain(event); !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("Explain:\n%s", g)
	}
}

// TestExplainResults: a step's result is what its expression alone
// evaluates to (a boolean step's is Match's answer), and a step's text
// parses.
func TestExplainResults(t *testing.T) {
	event := []byte(`{"type":"track","event":"Signed Up","properties":{"plan":"Pro","n":3,"tags":["a","b"],"o":{"x":1}}}`)
	for _, src := range []string{
		`contains(event, 'Sign') and match(properties.plan, 'P*')`,
		`properties.n >= 3 or properties.tags = ['a', 'b']`,
		`typeof(properties.o) = 'object' and length(properties.o) = 0`,
		`'a' in properties.tags and !(type in ['page', 'screen'])`,
		`lowercase(lowercase(properties.plan)) = 'pro'`,
		`properties.missing`,
	} {
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for _, s := range e.Explain(event) {
			se, err := Parse(s.Expr)
			if err != nil {
				t.Errorf("%s: the step %q does not parse: %v", src, s.Expr, err)
				continue
			}
			if got := string(valueJSON(se.root.eval(newEvent(event)))); got != string(s.Result) {
				t.Errorf("%s: step %q: result %s, but it evaluates to %s", src, s.Expr, s.Result, got)
			}
			if (string(s.Result) == "true") != se.Match(event) && s.Depth == 0 {
				t.Errorf("%s: step %q: result %s, Match %v", src, s.Expr, s.Result, se.Match(event))
			}
		}
	}
}

func newEvent(event []byte) *Event {
	var ev Event
	ev.Reset(event)
	return &ev
}

// formatCases are expressions whose written form must parse back to the
// same expression: precedence, escapes, keywords and numbers as names.
var formatCases = []string{
	`a or b and c`,
	`(a or b) and c`,
	`a and (b and c)`,
	`a or (b or c)`,
	`!(a = 1) and !!b`,
	`(a = 1) = true`,
	`a = (b = c)`,
	`!(a or b)`,
	`contains(a or b, 'x')`,
	`properties.product\ 1.price > -1.5e3`,
	`\true = true and \and.or = null`,
	`\0abc = 0 and \-1 = .5`,
	`properties.\é = 'it''s'`,
	`a = 'it\'s \\ \* "q"'`,
	`x in ['a', 1, true, null]`,
	`typeof(length(lowercase(a))) != 'number'`,
	`properties.items.0 = 'x'`,
	`a\.b = 1`,
}

func TestFormatParsesBack(t *testing.T) {
	for _, src := range formatCases {
		e, err := Parse(src)
		if err != nil {
			continue // the written form of what does not parse is not at stake
		}
		checkFormat(t, e)
	}
}

func checkFormat(t *testing.T, e *Expr) {
	t.Helper()
	text := format(e.root)
	back, err := Parse(text)
	if err != nil {
		t.Fatalf("%q is written %q, which does not parse: %v", e.String(), text, err)
	}
	if got, want := string(back.IR()), string(e.IR()); got != want {
		t.Fatalf("%q is written %q, which parses to %s, not %s", e.String(), text, got, want)
	}
	// The IR does not tell a\.b from a.b: the written form does.
	if again := format(back.root); again != text {
		t.Fatalf("%q is written %q, which is written %q when parsed", e.String(), text, again)
	}
}

// FuzzFormat: whatever parses is written in a form that parses back to
// the same expression.
func FuzzFormat(f *testing.F) {
	for _, s := range formatCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		checkFormat(t, e)
		_ = e.Explain([]byte(`{"a":1,"b":"x","properties":{"c":[1]}}`))
	})
}
