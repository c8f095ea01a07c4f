package fql

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Step is one comparison or function call of an expression, or a field
// read alone as a condition, evaluated on an event: what an author reads
// to see why an expression matched or not.
type Step struct {
	// Expr is the comparison, call or field, written in FQL.
	Expr string `json:"expr"`
	// Depth is how many other steps it is inside: a call that is an
	// operand of a comparison is one deeper than the comparison.
	Depth int `json:"depth"`
	// Fields are the event's fields it reads, in the order written, each
	// once.
	Fields []Field `json:"fields,omitempty"`
	// Result is its value on the event, as JSON: true, false, a number, a
	// string, a list, an object or null (null too for the length of what
	// has none, an object or a number).
	Result json.RawMessage `json:"result"`
}

// Field is a field of the event, as an expression reads it.
type Field struct {
	// Path is the field, written in FQL.
	Path string `json:"path"`
	// Value is the field's JSON in the event; nil when the event does not
	// have it.
	Value json.RawMessage `json:"value,omitempty"`
	// Absent is set when the event does not have the field, which FQL
	// reads as null.
	Absent bool `json:"absent,omitempty"`
}

// Explain evaluates each comparison and function call of the expression on
// event (JSON), and each field the expression reads alone as a condition,
// and returns them in the order written, outer ones before the ones they
// contain. Every step is evaluated, also those that [Expr.Match] skips
// because an and or an or was decided before them. It is for people trying
// an expression, not for the event path: it allocates.
func (e *Expr) Explain(event []byte) []Step {
	x := explainer{js: string(event)}
	x.ev.Reset(event)
	x.walk(e.root, 0, true)
	return x.steps
}

// explainer collects the steps of an expression.
type explainer struct {
	js    string // the event
	ev    Event
	steps []Step
}

// walk adds the steps of n at depth; cond says whether n is read as a
// condition (a field alone is then a step of its own).
func (x *explainer) walk(n node, depth int, cond bool) {
	switch n := n.(type) {
	case *logicNode:
		x.walk(n.l, depth, true)
		x.walk(n.r, depth, true)
	case *notNode:
		x.walk(n.x, depth, true)
	case *pathNode:
		if cond {
			x.add(n, depth)
		}
	case *compareNode:
		x.add(n, depth)
		x.walk(n.l, depth+1, false)
		x.walk(n.r, depth+1, false)
	case *callNode:
		x.add(n, depth)
		for _, a := range n.args {
			x.walk(a, depth+1, false)
		}
	}
}

// add adds the step of n.
func (x *explainer) add(n node, depth int) {
	s := Step{Expr: format(n), Depth: depth, Result: valueJSON(n.eval(&x.ev))}
	seen := make(map[string]bool)
	paths(n, func(p *pathNode) {
		f := Field{Path: format(p)}
		if seen[f.Path] {
			return
		}
		seen[f.Path] = true
		if raw, ok := x.raw(p); ok {
			f.Value = json.RawMessage(raw)
		} else {
			f.Absent = true
		}
		s.Fields = append(s.Fields, f)
	})
	x.steps = append(x.steps, s)
}

// raw returns the JSON of the field p in the event, and whether the event
// has it.
func (x *explainer) raw(p *pathNode) (string, bool) {
	path := EscapeName(p.names[0])
	if p.rest != "" {
		path += "." + p.rest
	}
	r := gjson.Get(x.js, path)
	return r.Raw, r.Exists()
}

// paths calls f with each field under n, in the order written.
func paths(n node, f func(*pathNode)) {
	switch n := n.(type) {
	case *pathNode:
		f(n)
	case *logicNode:
		paths(n.l, f)
		paths(n.r, f)
	case *notNode:
		paths(n.x, f)
	case *compareNode:
		paths(n.l, f)
		paths(n.r, f)
	case *callNode:
		for _, a := range n.args {
			paths(a, f)
		}
	}
}

// valueJSON returns v as JSON.
func valueJSON(v value) json.RawMessage {
	return json.RawMessage(appendJSON(nil, v))
}

func appendJSON(b []byte, v value) []byte {
	switch v.kind {
	case kindBool:
		return strconv.AppendBool(b, v.b)
	case kindNumber:
		if math.IsNaN(v.n) || math.IsInf(v.n, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v.n, 'g', -1, 64)
	case kindString:
		return appendString(b, v.str())
	case kindList, kindObject:
		if v.lit == nil {
			return append(b, v.json()...)
		}
		b = append(b, '[')
		for i, e := range *v.lit {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

// format writes n in FQL: Parse reads it back as the same expression.
func format(n node) string {
	var b strings.Builder
	writeNode(&b, n)
	return b.String()
}

func writeNode(b *strings.Builder, n node) {
	switch n := n.(type) {
	case *literalNode:
		writeLiteral(b, n.v)
	case *pathNode:
		writePath(b, n.names)
	case *logicNode:
		word := " and "
		if n.or {
			word = " or "
		}
		// and binds tighter than or: an or inside an and needs parentheses.
		writeOperand(b, n.l, func(c node) bool { l, ok := c.(*logicNode); return ok && l.or && !n.or })
		b.WriteString(word)
		writeOperand(b, n.r, func(c node) bool { l, ok := c.(*logicNode); return ok && (l.or || !n.or) })
	case *notNode:
		b.WriteByte('!')
		writeOperand(b, n.x, func(c node) bool {
			switch c.(type) {
			case *logicNode, *compareNode:
				return true
			}
			return false
		})
	case *compareNode:
		complex := func(c node) bool {
			switch c.(type) {
			case *logicNode, *compareNode, *notNode:
				return true
			}
			return false
		}
		writeOperand(b, n.l, complex)
		b.WriteString(" " + opNames[n.op] + " ")
		writeOperand(b, n.r, complex)
	case *callNode:
		b.WriteString(functionNames[n.fn])
		b.WriteByte('(')
		for i, a := range n.args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeNode(b, a)
		}
		b.WriteByte(')')
	}
}

// writeOperand writes c, in parentheses when paren says it needs them.
func writeOperand(b *strings.Builder, c node, paren func(node) bool) {
	if paren(c) {
		b.WriteByte('(')
		writeNode(b, c)
		b.WriteByte(')')
		return
	}
	writeNode(b, c)
}

// writeLiteral writes a literal value in FQL.
func writeLiteral(b *strings.Builder, v value) {
	switch v.kind {
	case kindNull:
		b.WriteString("null")
	case kindBool:
		b.WriteString(strconv.FormatBool(v.b))
	case kindNumber:
		b.WriteString(strconv.FormatFloat(v.n, 'g', -1, 64))
	case kindString:
		b.WriteByte('\'')
		for i := 0; i < len(v.s); i++ {
			if c := v.s[i]; c == '\'' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v.s[i])
		}
		b.WriteByte('\'')
	case kindList:
		b.WriteByte('[')
		for i, e := range *v.lit {
			if i > 0 {
				b.WriteString(", ")
			}
			writeLiteral(b, e)
		}
		b.WriteByte(']')
	}
}

// writePath writes a field path in FQL, escaping with a backslash each
// character outside {a-z A-Z 0-9 _ -}, and what would otherwise read as a
// keyword or a number.
func writePath(b *strings.Builder, names []string) {
	for i, name := range names {
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(name); {
			r, size := utf8.DecodeRuneInString(name[j:])
			escape := size > 1 || !nameByte(name[j])
			if i == 0 && j == 0 {
				// A leading digit or - could begin a number, a bare
				// keyword would be the keyword: escape the first character.
				switch {
				case r >= '0' && r <= '9', r == '-':
					escape = true
				case len(names) == 1 && keyword(name):
					escape = true
				}
			}
			if escape {
				b.WriteByte('\\')
			}
			b.WriteString(name[j : j+size]) // the bytes as they are, valid UTF-8 or not
			j += size
		}
	}
}

// keyword reports whether a name alone reads as a keyword.
func keyword(name string) bool {
	switch name {
	case "true", "false", "null", "and", "or", "in":
		return true
	}
	return false
}
