package fql

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// IR returns the expression in the intermediate representation that
// Segment's evaluator @segment/tsub takes (the "ir" of an "fql" matcher):
// a field is its dotted path as a JSON string, a literal {"value": x}, a
// list literal {"value": [{"value": a}, ...]}, an operator or a function
// an array of its name and operands: ["and", a, b], ["!", x],
// ["=", "type", {"value": "track"}], ["contains", "event", {"value": "x"}].
// A field whose names hold a dot cannot be said in it (tsub splits paths
// at dots).
func (e *Expr) IR() []byte { return e.root.appendIR(nil) }

// appendString appends s as a JSON string (<, > and & as they are, as
// tsub's JSON.parse reads them either way).
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

func appendValue(b []byte, v value) []byte {
	switch v.kind {
	case kindNull:
		return append(b, "null"...)
	case kindBool:
		return strconv.AppendBool(b, v.b)
	case kindNumber:
		return strconv.AppendFloat(b, v.n, 'g', -1, 64)
	case kindString:
		return appendString(b, v.s)
	}
	b = append(b, '[')
	for i, e := range *v.lit {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendLiteralIR(b)
	}
	return append(b, ']')
}

func (v value) appendLiteralIR(b []byte) []byte {
	b = append(b, `{"value":`...)
	return append(appendValue(b, v), '}')
}

func (n *literalNode) appendIR(b []byte) []byte { return n.v.appendLiteralIR(b) }

func (n *pathNode) appendIR(b []byte) []byte { return appendString(b, strings.Join(n.names, ".")) }

func appendOp(b []byte, name string, args ...node) []byte {
	b = appendString(append(b, '['), name)
	for _, a := range args {
		b = a.appendIR(append(b, ','))
	}
	return append(b, ']')
}

func (n *logicNode) appendIR(b []byte) []byte {
	if n.or {
		return appendOp(b, "or", n.l, n.r)
	}
	return appendOp(b, "and", n.l, n.r)
}

func (n *notNode) appendIR(b []byte) []byte { return appendOp(b, "!", n.x) }

func (n *compareNode) appendIR(b []byte) []byte { return appendOp(b, opNames[n.op], n.l, n.r) }

func (n *callNode) appendIR(b []byte) []byte { return appendOp(b, functionNames[n.fn], n.args...) }

// FieldPath reports whether the expression is a field alone, and if so
// returns its gjson path (each name escaped): how other parts of a filter
// (a sample's path, the objects of a properties action) name a field
// the way FQL does.
func (e *Expr) FieldPath() (string, bool) {
	p, ok := e.root.(*pathNode)
	if !ok {
		return "", false
	}
	if p.rest == "" {
		return EscapeName(p.names[0]), true
	}
	return EscapeName(p.names[0]) + "." + p.rest, true
}
