// Package wasmlimits checks a WebAssembly binary against size and count
// limits before anything allocates for it: its total size, the size of its
// code and of each function body, the number of functions, tables, table
// entries, locals and of the entries of every section, and the memory it
// declares. It reads section headers, vector counts, table and memory
// types and the local declarations of function bodies, nothing else, in
// one pass without allocating.
//
// A decoder that trusts a module's counts allocates before it reads the
// entries they announce: a 20-byte module that claims four billion
// functions makes it ask for 16 GB. Compilation, which runs later, costs
// memory and time in proportion to the code. Checking both beforehand
// bounds what a module can cost the host before it is refused.
//
// It validates nothing else: a module that passes is still decoded and
// validated by the engine.
package wasmlimits

import (
	"errors"
	"fmt"
)

// Limits are the bounds a module is checked against. Every field must be
// positive.
type Limits struct {
	// ModuleBytes bounds the module's size.
	ModuleBytes int
	// CodeBytes bounds the code section (all function bodies).
	CodeBytes int
	// FunctionBytes bounds one function body.
	FunctionBytes int
	// Functions bounds the functions, imported and defined.
	Functions int
	// Locals bounds the locals one function declares.
	Locals int
	// Tables bounds the tables, imported and defined.
	Tables int
	// TableElements bounds a table's initial size, in entries.
	TableElements int
	// SectionItems bounds the entries of any one section (types, imports,
	// globals, exports, element and data segments, ...).
	SectionItems int
	// MemoryPages is the memory cap: a memory whose declared minimum is
	// larger cannot be instantiated.
	MemoryPages uint32
}

// Error is a module that breaks a limit, or whose structure could not be
// read far enough to check one.
type Error struct {
	// Limit names the limit broken, as in [Limits] ("ModuleBytes", ...);
	// empty when the module is malformed.
	Limit string
	// Msg says what was found and what is allowed.
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Section ids of the binary format.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secData     = 11
	secDataCnt  = 12
	secTag      = 13
)

var sectionNames = [...]string{"custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count", "tag"}

// minItemBytes is the fewest bytes an entry of each vector section takes:
// a count that the section's size cannot hold is a lie.
var minItemBytes = [...]int{
	secType:     3, // 0x60, no params, no results
	secImport:   4, // two empty names, kind, index
	secFunction: 1,
	secTable:    3,
	secMemory:   2,
	secGlobal:   3, // type, mutability, end
	secExport:   3, // empty name, kind, index
	secElement:  1,
	secCode:     2, // size, no locals... and at least an end
	secData:     2,
	secTag:      2,
}

// Check checks wasm against l.
//
// # Results
//   - nil when the module is within every limit, as far as it can be read;
//   - an [*Error] naming the first limit broken (or saying where the
//     module is malformed).
func Check(wasm []byte, l Limits) error {
	if len(wasm) > l.ModuleBytes {
		return limitErr("ModuleBytes", "the module is %d bytes; at most %d are allowed", len(wasm), l.ModuleBytes)
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return malformed("not a WebAssembly binary (no \\0asm header)")
	}
	c := checker{l: l}
	r := reader{b: wasm, pos: 8}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return malformed("section %s: size: %v", sectionName(id), err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return malformed("section %s: %d bytes announced, %d left in the module", sectionName(id), size, len(r.b)-r.pos)
		}
		if err := c.section(id, body); err != nil {
			return err
		}
	}
	if c.functions > l.Functions {
		return limitErr("Functions", "the module has %d functions (imported and defined); at most %d are allowed", c.functions, l.Functions)
	}
	return nil
}

func sectionName(id byte) string {
	if int(id) < len(sectionNames) {
		return sectionNames[id]
	}
	return fmt.Sprintf("%d", id)
}

func limitErr(limit, format string, args ...any) error {
	return &Error{Limit: limit, Msg: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return &Error{Msg: "malformed module: " + fmt.Sprintf(format, args...)}
}

type checker struct {
	l         Limits
	functions int
	tables    int
}

func (c *checker) section(id byte, body []byte) error {
	r := reader{b: body}
	if id == secCustom {
		if _, err := r.name(); err != nil {
			return malformed("a custom section of %d bytes without a name", len(body))
		}
		return nil
	}
	if int(id) >= len(minItemBytes) || id == secStart || id == secDataCnt {
		return nil // one number, or a section the engine refuses
	}
	n, err := r.u32()
	if err != nil {
		return malformed("section %s: count: %v", sectionName(id), err)
	}
	if minItemBytes[id] > 0 && int64(n)*int64(minItemBytes[id]) > int64(len(body)-r.pos) {
		return malformed("section %s announces %d entries in %d bytes", sectionName(id), n, len(body)-r.pos)
	}
	if int(n) > c.l.SectionItems {
		return limitErr("SectionItems", "section %s has %d entries; at most %d are allowed", sectionName(id), n, c.l.SectionItems)
	}
	switch id {
	case secImport:
		return c.imports(&r, n)
	case secFunction:
		c.functions += int(n)
	case secTable:
		for range n {
			if err := c.table(&r); err != nil {
				return err
			}
		}
	case secMemory:
		for range n {
			if err := c.memory(&r); err != nil {
				return err
			}
		}
	case secCode:
		return c.code(&r, n, len(body))
	}
	return nil
}

func (c *checker) imports(r *reader, n uint32) error {
	for range n {
		if _, err := r.name(); err != nil {
			return malformed("import section: %v", err)
		}
		if _, err := r.name(); err != nil {
			return malformed("import section: %v", err)
		}
		kind, err := r.byte()
		if err != nil {
			return malformed("import section: %v", err)
		}
		switch kind {
		case 0: // function: a type index
			c.functions++
			_, err = r.u32()
		case 1:
			err = c.table(r)
		case 2:
			err = c.memory(r)
		case 3: // global: a value type (a reference type with its heap type), mutability
			var vt byte
			if vt, err = r.byte(); err == nil && (vt == 0x63 || vt == 0x64) {
				_, err = r.leb(5)
			}
			if err == nil {
				_, err = r.byte()
			}
		case 4: // tag: an attribute, a type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return malformed("import section: import kind 0x%02x", kind)
		}
		if err != nil {
			var lim *Error
			if errors.As(err, &lim) {
				return err
			}
			return malformed("import section: %v", err)
		}
	}
	return nil
}

// table reads a table type (reference type, limits) and checks the
// table count and its initial size.
func (c *checker) table(r *reader) error {
	c.tables++
	if c.tables > c.l.Tables {
		return limitErr("Tables", "the module has more than %d tables", c.l.Tables)
	}
	rt, err := r.byte()
	if err != nil {
		return malformed("table: %v", err)
	}
	if rt != 0x70 && rt != 0x6F { // funcref, externref
		return malformed("table of reference type 0x%02x, which is not supported", rt)
	}
	min, _, err := r.limits()
	if err != nil {
		return malformed("table: %v", err)
	}
	if min > uint64(c.l.TableElements) {
		return limitErr("TableElements", "a table starts with %d entries; at most %d are allowed", min, c.l.TableElements)
	}
	return nil
}

// memory reads a memory type and checks its minimum against the cap.
func (c *checker) memory(r *reader) error {
	min, _, err := r.limits()
	if err != nil {
		return malformed("memory: %v", err)
	}
	if min > uint64(c.l.MemoryPages) {
		return limitErr("MemoryPages", "the module's memory starts at %d pages of 64 KiB; the function's memory cap is %d pages", min, c.l.MemoryPages)
	}
	return nil
}

// code checks the code section: its size, each body's size and locals.
func (c *checker) code(r *reader, n uint32, size int) error {
	if size > c.l.CodeBytes {
		return limitErr("CodeBytes", "the code section is %d bytes; at most %d are allowed", size, c.l.CodeBytes)
	}
	for i := range n {
		bodySize, err := r.u32()
		if err != nil {
			return malformed("function body %d: size: %v", i, err)
		}
		if int64(bodySize) > int64(c.l.FunctionBytes) {
			return limitErr("FunctionBytes", "function body %d is %d bytes; at most %d are allowed", i, bodySize, c.l.FunctionBytes)
		}
		body, err := r.bytes(int(bodySize))
		if err != nil {
			return malformed("function body %d: %d bytes announced, %d left", i, bodySize, len(r.b)-r.pos)
		}
		br := reader{b: body}
		decls, err := br.u32()
		if err != nil {
			return malformed("function body %d: locals: %v", i, err)
		}
		if int64(decls)*2 > int64(len(body)) {
			return malformed("function body %d announces %d local declarations in %d bytes", i, decls, len(body))
		}
		var locals uint64
		for range decls {
			k, err := br.u32()
			if err != nil {
				return malformed("function body %d: locals: %v", i, err)
			}
			if _, err := br.byte(); err != nil { // the type; a reference type's heap type follows
				return malformed("function body %d: locals: %v", i, err)
			}
			locals += uint64(k)
			if locals > uint64(c.l.Locals) {
				return limitErr("Locals", "function body %d declares more than %d locals", i, c.l.Locals)
			}
		}
	}
	return nil
}

var errShort = errors.New("unexpected end")

// reader decodes the binary format; every method fails rather than read
// past the end.
type reader struct {
	b   []byte
	pos int
}

func (r *reader) done() bool { return r.pos >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.pos {
		return nil, errShort
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s, nil
}

// leb reads an unsigned LEB128 number of at most maxBytes bytes.
func (r *reader) leb(maxBytes int) (uint64, error) {
	var v uint64
	for i := range maxBytes {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 number too long")
}

func (r *reader) u32() (uint32, error) {
	v, err := r.leb(5)
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, errors.New("u32 out of range")
	}
	return uint32(v), nil
}

func (r *reader) name() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n))
}

// limits reads a limits type: flags, minimum and, when flagged, maximum
// (64-bit numbers for memory64 and table64).
func (r *reader) limits() (min, max uint64, err error) {
	flags, err := r.byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 0x07 {
		return 0, 0, fmt.Errorf("limits flags 0x%02x", flags)
	}
	width := 5
	if flags&0x04 != 0 {
		width = 10
	}
	if min, err = r.leb(width); err != nil {
		return 0, 0, err
	}
	if flags&0x01 != 0 {
		if max, err = r.leb(width); err != nil {
			return 0, 0, err
		}
	}
	return min, max, nil
}
