package fql

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokenKind is the kind of a lexical token.
type tokenKind uint8

const (
	tokEOF    tokenKind = iota
	tokPath             // a field path: names holds its names, unescaped
	tokString           // a string literal, unescaped
	tokNumber           // a number literal
	tokTrue
	tokFalse
	tokNull
	tokAnd
	tokOr
	tokIn
	tokNot    // !
	tokEq     // =
	tokNe     // !=
	tokLt     // <
	tokLe     // <=
	tokGt     // >
	tokGe     // >=
	tokLParen // (
	tokRParen // )
	tokLBrack // [
	tokRBrack // ]
	tokComma  // ,
)

// token is one lexical token of an expression.
type token struct {
	kind  tokenKind
	pos   int      // byte offset in the source
	text  string   // the source text of the token
	str   string   // tokString: the value
	num   float64  // tokNumber: the value
	names []string // tokPath: the path's names, unescaped
}

// describe says what t is, for messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "the end of the expression"
	case tokString:
		return "the string " + strconv.Quote(t.str)
	case tokPath:
		return "the field " + t.text
	}
	return strconv.Quote(t.text)
}

// SyntaxError is an expression that does not parse: where and why.
type SyntaxError struct {
	// Pos is the byte offset in the expression where the problem is.
	Pos int
	// Msg says what was found and what was expected there.
	Msg string
}

// Error returns "fql: at position N: MSG".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fql: at position %d: %s", e.Pos, e.Msg)
}

// lexer splits an expression into tokens.
type lexer struct {
	src string
	pos int
}

// nameByte reports whether c may appear unescaped in a field name.
func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && strings.IndexByte(" \t\r\n", l.src[l.pos]) >= 0 {
		l.pos++
	}
	start := l.pos
	if l.pos == len(l.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	one := func(k tokenKind) (token, error) {
		l.pos++
		return token{kind: k, pos: start, text: l.src[start:l.pos]}, nil
	}
	two := func(k1 tokenKind, second byte, k2 tokenKind) (token, error) {
		if l.pos+1 < len(l.src) && l.src[l.pos+1] == second {
			l.pos += 2
			return token{kind: k2, pos: start, text: l.src[start:l.pos]}, nil
		}
		return one(k1)
	}
	switch {
	case c == '(':
		return one(tokLParen)
	case c == ')':
		return one(tokRParen)
	case c == '[':
		return one(tokLBrack)
	case c == ']':
		return one(tokRBrack)
	case c == ',':
		return one(tokComma)
	case c == '=':
		return two(tokEq, '=', tokEq) // == is read as =
	case c == '!':
		return two(tokNot, '=', tokNe)
	case c == '<':
		return two(tokLt, '=', tokLe)
	case c == '>':
		return two(tokGt, '=', tokGe)
	case c == '\'' || c == '"':
		return l.string(c)
	case c >= '0' && c <= '9' || c == '-' && l.pos+1 < len(l.src) && (l.src[l.pos+1] >= '0' && l.src[l.pos+1] <= '9' || l.src[l.pos+1] == '.'):
		return l.number()
	case c == '.' && l.pos+1 < len(l.src) && l.src[l.pos+1] >= '0' && l.src[l.pos+1] <= '9':
		return l.number()
	case nameByte(c) || c == '\\':
		return l.path()
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("unexpected %q: a character outside {a-z A-Z 0-9 _ -} in a field name is escaped with a backslash", r)}
}

// string reads a string literal quoted by q.
func (l *lexer) string(q byte) (token, error) {
	start := l.pos
	l.pos++
	var b strings.Builder
	plain := true // no escapes: the value is a slice of the source
	from := l.pos
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == q:
			l.pos++
			s := l.src[from : l.pos-1]
			if !plain {
				s = b.String()
			}
			return token{kind: tokString, pos: start, text: l.src[start:l.pos], str: s}, nil
		case c == '\\' && l.pos+1 < len(l.src) && (l.src[l.pos+1] == q || l.src[l.pos+1] == '\\'):
			// \' (or \") is the quote, \\ a backslash; any other
			// backslash stays, for match's patterns: 'ab\*d'.
			if plain {
				b.WriteString(l.src[from:l.pos])
				plain = false
			}
			b.WriteByte(l.src[l.pos+1])
			l.pos += 2
		default:
			if !plain {
				b.WriteByte(c)
			}
			l.pos++
		}
	}
	return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("a string opened with %c is not closed", q)}
}

// number reads a number literal.
func (l *lexer) number() (token, error) {
	start := l.pos
	if l.src[l.pos] == '-' {
		l.pos++
	}
	digits := func() {
		for l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '9' {
			l.pos++
		}
	}
	digits()
	if l.pos < len(l.src) && l.src[l.pos] == '.' {
		l.pos++
		digits()
	}
	if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
		l.pos++
		if l.pos < len(l.src) && (l.src[l.pos] == '+' || l.src[l.pos] == '-') {
			l.pos++
		}
		digits()
	}
	text := l.src[start:l.pos]
	n, err := strconv.ParseFloat(text, 64)
	if err != nil || l.pos < len(l.src) && (nameByte(l.src[l.pos]) || l.src[l.pos] == '.') {
		for l.pos < len(l.src) && (nameByte(l.src[l.pos]) || l.src[l.pos] == '.') {
			l.pos++
		}
		return token{}, &SyntaxError{Pos: start, Msg: fmt.Sprintf("%q is not a number (a field name cannot begin with a digit)", l.src[start:l.pos])}
	}
	return token{kind: tokNumber, pos: start, text: text, num: n}, nil
}

// path reads a field path or a keyword.
func (l *lexer) path() (token, error) {
	start := l.pos
	var names []string
	var b strings.Builder
	for {
		b.Reset()
		nameStart := l.pos
		for l.pos < len(l.src) {
			c := l.src[l.pos]
			if c == '\\' {
				if l.pos+1 == len(l.src) {
					return token{}, &SyntaxError{Pos: l.pos, Msg: "a backslash at the end of the expression escapes nothing"}
				}
				_, size := utf8.DecodeRuneInString(l.src[l.pos+1:])
				b.WriteString(l.src[l.pos+1 : l.pos+1+size])
				l.pos += 1 + size
				continue
			}
			if !nameByte(c) {
				break
			}
			b.WriteByte(c)
			l.pos++
		}
		if l.pos == nameStart {
			return token{}, &SyntaxError{Pos: l.pos, Msg: "expected a field name after the dot"}
		}
		names = append(names, b.String())
		if l.pos < len(l.src) && l.src[l.pos] == '.' {
			l.pos++
			continue
		}
		break
	}
	text := l.src[start:l.pos]
	if len(names) == 1 && !strings.Contains(text, "\\") {
		switch text {
		case "true":
			return token{kind: tokTrue, pos: start, text: text}, nil
		case "false":
			return token{kind: tokFalse, pos: start, text: text}, nil
		case "null":
			return token{kind: tokNull, pos: start, text: text}, nil
		case "and":
			return token{kind: tokAnd, pos: start, text: text}, nil
		case "or":
			return token{kind: tokOr, pos: start, text: text}, nil
		case "in":
			return token{kind: tokIn, pos: start, text: text}, nil
		}
	}
	return token{kind: tokPath, pos: start, text: text, names: names}, nil
}
