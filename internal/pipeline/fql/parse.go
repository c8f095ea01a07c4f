package fql

import (
	"fmt"
	"strings"
)

// MaxLength bounds an expression's length in bytes, and MaxDepth how
// deeply its parentheses, lists, functions and ! may nest: a filter is a
// line of configuration, not a program, and parsing stays bounded.
const (
	MaxLength = 64 << 10
	MaxDepth  = 64
)

// Expr is a parsed FQL expression. It is immutable and safe for
// concurrent use.
type Expr struct {
	src  string
	root node
}

// Parse parses an FQL expression.
//
// # Results
//   - the expression;
//   - a *SyntaxError saying where and what was expected when src does
//     not parse (or is longer than MaxLength, or nests deeper than
//     MaxDepth).
func Parse(src string) (*Expr, error) {
	if len(src) > MaxLength {
		return nil, &SyntaxError{Pos: MaxLength, Msg: fmt.Sprintf("the expression is %d bytes; at most %d are read", len(src), MaxLength)}
	}
	p := &parser{lex: lexer{src: src}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return nil, &SyntaxError{Pos: 0, Msg: "the expression is empty"}
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.expected("and, or, or the end of the expression")
	}
	return &Expr{src: src, root: root}, nil
}

// String returns the expression as it was given to Parse.
func (e *Expr) String() string { return e.src }

// parser is a recursive-descent parser over a lexer, one token ahead.
type parser struct {
	lex   lexer
	tok   token
	depth int
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) expected(what string) error {
	return &SyntaxError{Pos: p.tok.pos, Msg: fmt.Sprintf("expected %s, found %s", what, p.tok.describe())}
}

// enter counts a level of nesting and refuses one too deep.
func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return &SyntaxError{Pos: p.tok.pos, Msg: fmt.Sprintf("the expression nests more than %d levels deep", MaxDepth)}
	}
	return nil
}

// or := and ('or' and)*
func (p *parser) or() (node, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tokOr {
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		left = &logicNode{or: true, l: left, r: right}
	}
	return left, nil
}

// and := unary ('and' unary)*
func (p *parser) and() (node, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tokAnd {
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = &logicNode{l: left, r: right}
	}
	return left, nil
}

// unary := '!' unary | comparison
func (p *parser) unary() (node, error) {
	if p.tok.kind != tokNot {
		return p.comparison()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	return &notNode{x: x}, nil
}

// comparisonOps maps comparison tokens to their operators.
var comparisonOps = map[tokenKind]op{tokEq: opEq, tokNe: opNe, tokLt: opLt, tokLe: opLe, tokGt: opGt, tokGe: opGe, tokIn: opIn}

// comparison := value (op value)?
func (p *parser) comparison() (node, error) {
	left, err := p.value()
	if err != nil {
		return nil, err
	}
	o, ok := comparisonOps[p.tok.kind]
	if !ok {
		return left, nil
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	right, err := p.value()
	if err != nil {
		return nil, err
	}
	if o == opIn {
		if l, ok := right.(*literalNode); ok && l.v.kind != kindList {
			return nil, &SyntaxError{Pos: l.pos, Msg: "the right side of in must be a list: ['a', 'b'] or a field holding one"}
		}
	}
	return newCompareNode(o, left, right), nil
}

const valueWanted = "a value (a field, a string, a number, true, false, null, a list, a function or a parenthesized expression)"

// value := literal | list | path | function '(' args ')' | '(' or ')'
func (p *parser) value() (node, error) {
	t := p.tok
	switch t.kind {
	case tokString, tokNumber, tokTrue, tokFalse, tokNull:
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &literalNode{v: literal(t), pos: t.pos}, nil
	case tokLBrack:
		return p.list()
	case tokLParen:
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			return nil, p.expected("a closing parenthesis")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return x, nil
	case tokPath:
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tokLParen && len(t.names) == 1 && !strings.Contains(t.text, "\\") {
			return p.call(t)
		}
		return newPathNode(t.names), nil
	}
	return nil, p.expected(valueWanted)
}

// list := '[' (literal (',' literal)*)? ']'
func (p *parser) list() (node, error) {
	start := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	var elems []value
	for p.tok.kind != tokRBrack {
		if len(elems) > 0 {
			if p.tok.kind != tokComma {
				return nil, p.expected("a comma or ]")
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		switch t := p.tok; t.kind {
		case tokString, tokNumber, tokTrue, tokFalse, tokNull:
			elems = append(elems, literal(t))
			if err := p.advance(); err != nil {
				return nil, err
			}
		default:
			return nil, p.expected("a string, a number, true, false or null in the list")
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return &literalNode{v: value{kind: kindList, lit: &elems}, pos: start}, nil
}

// functions are FQL's functions by name, with their number of arguments.
var functions = map[string]struct {
	fn    function
	arity int
}{
	"contains":  {fnContains, 2},
	"match":     {fnMatch, 2},
	"lowercase": {fnLowercase, 1},
	"length":    {fnLength, 1},
	"typeof":    {fnTypeof, 1},
}

// call parses the arguments of the function named by t (the current token
// is its opening parenthesis).
func (p *parser) call(t token) (node, error) {
	f, ok := functions[t.names[0]]
	if !ok {
		return nil, &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf("no function %q: FQL has contains, match, lowercase, length and typeof", t.names[0])}
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if err := p.advance(); err != nil {
		return nil, err
	}
	c := &callNode{fn: f.fn}
	for p.tok.kind != tokRParen {
		if len(c.args) > 0 {
			if p.tok.kind != tokComma {
				return nil, p.expected("a comma or )")
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		arg, err := p.or()
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, arg)
	}
	if len(c.args) != f.arity {
		return nil, &SyntaxError{Pos: p.tok.pos, Msg: fmt.Sprintf("%s takes %d argument%s, not %d", t.names[0], f.arity, map[bool]string{true: "s"}[f.arity > 1], len(c.args))}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if l, ok := c.args[len(c.args)-1].(*literalNode); ok && c.fn == fnMatch && l.v.kind == kindString {
		c.glob = compileGlob(l.v.s)
	}
	return c, nil
}

// literal returns the value of a literal token.
func literal(t token) value {
	switch t.kind {
	case tokString:
		return value{kind: kindString, s: t.str}
	case tokNumber:
		return value{kind: kindNumber, n: t.num}
	case tokTrue:
		return value{kind: kindBool, b: true}
	case tokFalse:
		return value{kind: kindBool}
	}
	return value{}
}
