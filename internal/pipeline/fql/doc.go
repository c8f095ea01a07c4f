// Package fql is Segment's Filter Query Language (FQL), the language of
// destination filters: a parser that refuses what does not parse with
// the position and what was expected, an evaluator over an event's JSON
// that allocates nothing for the common expressions, and a compiler to
// the intermediate representation (IR) that Segment's own evaluator,
// @segment/tsub, takes.
//
// The language is the one Segment's public reference ("Destination Filter
// Query Language") documents:
//
//   - field paths: `event`, `context.library.version`, `properties.items.0`;
//     a character outside {a-z A-Z 0-9 _ -} in a name is escaped with a
//     backslash: `properties.product\ 1.price`;
//   - literals: strings in single or double quotes (backslash escapes the
//     quote and itself), numbers, `true`, `false`, `null`, and lists
//     `['track', 'page']`;
//   - `=` and `!=` (true when both sides have the same type and are
//     strictly equal: "19.99" = 19.99 is false), `<`, `<=`, `>`, `>=`
//     (numbers only; anything else is false), `in` (the left side is an
//     element of the list on the right, a literal or a field), `and`,
//     `or`, `!`, and parentheses;
//   - the functions `contains(s, sub)`, `match(s, glob)` (`*`, `?`,
//     `[abc]`, `[a-z]`, `\x`; the whole string must match),
//     `lowercase(s)`, `length(list or string)` (a string's length in
//     bytes) and `typeof(x)` ("string", "number", "list", "bool",
//     "null", or "object"), with the reference's defaults for null:
//     contains and match of null are false, length of null is 0,
//     lowercase of null is null, typeof null is "null".
//
// A field the event does not have is null, as the reference's idiom
// `length(userId) > 0` needs. A value that is not a boolean where one is
// expected (a field alone, an operand of and, or, !) is false unless it
// is true. Where @segment/tsub answers differently, this package follows
// the reference; DIFFERENCES.md lists each case.
package fql
