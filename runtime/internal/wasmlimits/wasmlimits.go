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

	"github.com/insertfn/insertfn/runtime/internal/wasmbin"
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
	r := reader{wasmbin.Reader{B: wasm, Pos: 8}}
	for !r.Done() {
		id, err := r.Byte()
		if err != nil {
			return err
		}
		size, err := r.U32()
		if err != nil {
			return malformed("section %s: size: %v", sectionName(id), err)
		}
		body, err := r.Bytes(int(size))
		if err != nil {
			return malformed("section %s: %d bytes announced, %d left in the module", sectionName(id), size, len(r.B)-r.Pos)
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
	defined   uint32 // the functions the function section declares
	elements  int64  // the entries of the element segments so far
}

func (c *checker) section(id byte, body []byte) error {
	r := reader{wasmbin.Reader{B: body}}
	if id == secCustom {
		name, err := r.Name()
		if err != nil {
			return malformed("a custom section of %d bytes without a name", len(body))
		}
		if string(name) == "name" {
			return c.names(&r)
		}
		return nil
	}
	if int(id) >= len(minItemBytes) || id == secStart || id == secDataCnt {
		return nil // one number, or a section the engine refuses
	}
	n, err := r.U32()
	if err != nil {
		return malformed("section %s: count: %v", sectionName(id), err)
	}
	if minItemBytes[id] > 0 && int64(n)*int64(minItemBytes[id]) > int64(len(body)-r.Pos) {
		return malformed("section %s announces %d entries in %d bytes", sectionName(id), n, len(body)-r.Pos)
	}
	if int(n) > c.l.SectionItems {
		return limitErr("SectionItems", "section %s has %d entries; at most %d are allowed", sectionName(id), n, c.l.SectionItems)
	}
	var walk func(*reader) error // one entry, when the engine allocates from counts inside it
	switch id {
	case secType:
		walk = c.funcType
	case secImport:
		return c.imports(&r, n)
	case secExport:
		walk = export
	case secElement:
		walk = c.element
	case secData:
		walk = data
	case secFunction:
		c.functions += int(n)
		c.defined = n
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
		if n != c.defined { // the engine allocates for n before it compares
			return malformed("%d function bodies for %d functions", n, c.defined)
		}
		return c.code(&r, n, len(body))
	}
	if walk != nil {
		for i := range n {
			if err := walk(&r); err != nil {
				var lim *Error
				if errors.As(err, &lim) {
					return err
				}
				return malformed("section %s, entry %d: %v", sectionName(id), i, err)
			}
		}
	}
	return nil
}

// count reads the count of a vector inside an entry, whose items take at
// least minBytes each, and refuses a count the rest of the section cannot
// hold: the engine allocates for the count before it reads the items.
func (r *reader) count(what string, minBytes int) (uint32, error) {
	n, err := r.U32()
	if err != nil {
		return 0, fmt.Errorf("%s: count: %w", what, err)
	}
	if int64(n)*int64(minBytes) > int64(len(r.B)-r.Pos) {
		return 0, fmt.Errorf("%s: %d announced in %d bytes", what, n, len(r.B)-r.Pos)
	}
	return n, nil
}

// funcType reads a function type: its parameter and result counts are
// checked against the bytes that follow (one per value type at least).
func (c *checker) funcType(r *reader) error {
	form, err := r.Byte()
	if err != nil {
		return err
	}
	if form != 0x60 {
		return fmt.Errorf("type form 0x%02x is not a function type", form)
	}
	for _, what := range []string{"parameters", "results"} {
		n, err := r.count(what, 1)
		if err != nil {
			return err
		}
		for range n {
			if err := r.valueType(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	return nil
}

// export reads an export: a name (which must fit in the section), a kind
// and an index.
func export(r *reader) error {
	if _, err := r.Name(); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if _, err := r.Byte(); err != nil {
		return err
	}
	_, err := r.U32()
	return err
}

// element reads an element segment in any of its eight encodings. Its
// entries (function indexes or constant expressions) must fit in the
// section, and the entries of all segments together are bounded by
// TableElements: the engine holds each entry in 30-odd bytes.
func (c *checker) element(r *reader) error {
	prefix, err := r.U32()
	if err != nil {
		return err
	}
	if prefix > 7 {
		return fmt.Errorf("element segment prefix %d", prefix)
	}
	if prefix&0x02 != 0 && prefix&0x01 == 0 { // 2, 6: an explicit table index
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	if prefix&0x01 == 0 { // 0, 2, 4, 6: active, an offset expression
		if err := r.constExpr(); err != nil {
			return fmt.Errorf("offset: %w", err)
		}
	}
	exprs := prefix&0x04 != 0
	if prefix != 0 && prefix != 4 { // an element kind (0x00) or a reference type
		if exprs {
			err = r.valueType()
		} else {
			_, err = r.Byte()
		}
		if err != nil {
			return err
		}
	}
	minBytes := 1 // a function index
	if exprs {
		minBytes = 2 // an instruction and end
	}
	n, err := r.count("entries", minBytes)
	if err != nil {
		return err
	}
	c.elements += int64(n)
	if c.elements > int64(c.l.TableElements) {
		return limitErr("TableElements", "the element segments hold more than %d entries in all", c.l.TableElements)
	}
	for range n {
		if exprs {
			err = r.constExpr()
		} else {
			_, err = r.U32()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// data reads a data segment: its bytes must fit in the section.
func data(r *reader) error {
	prefix, err := r.U32()
	if err != nil {
		return err
	}
	switch prefix {
	case 0:
		err = r.constExpr()
	case 1:
	case 2:
		if _, err = r.U32(); err == nil {
			err = r.constExpr()
		}
	default:
		return fmt.Errorf("data segment prefix %d", prefix)
	}
	if err != nil {
		return fmt.Errorf("offset: %w", err)
	}
	if _, err := r.Name(); err != nil { // a vector of bytes, read as a name is
		return fmt.Errorf("bytes: %w", err)
	}
	return nil
}

// names checks the "name" custom section, which the engine decodes (its
// function and local name maps, allocated from their counts) while it
// skips every other custom section. The module, function and local name
// subsections must each hold exactly what they announce: the engine
// reads them without regard to their sizes.
func (c *checker) names(r *reader) error {
	for !r.Done() {
		id, err := r.Byte()
		if err != nil {
			return malformed("name section: %v", err)
		}
		size, err := r.U32()
		if err != nil {
			return malformed("name section: subsection %d: size: %v", id, err)
		}
		body, err := r.Bytes(int(size))
		if err != nil {
			return malformed("name section: subsection %d: %d bytes announced, %d left", id, size, len(r.B)-r.Pos)
		}
		sr := reader{wasmbin.Reader{B: body}}
		switch id {
		case 0: // the module's name
			_, err = sr.Name()
		case 1: // function names
			err = c.nameMap(&sr, "function names")
		case 2: // local names: a name map per function
			var n uint32
			if n, err = c.nameCount(&sr, "functions with local names", 2); err == nil {
				for i := uint32(0); i < n && err == nil; i++ {
					if _, err = sr.U32(); err == nil {
						err = c.nameMap(&sr, "local names")
					}
				}
			}
		default:
			continue // the engine skips it
		}
		if err == nil && !sr.Done() {
			err = fmt.Errorf("%d bytes after its content", len(sr.B)-sr.Pos)
		}
		if err != nil {
			var lim *Error
			if errors.As(err, &lim) {
				return err
			}
			return malformed("name section: subsection %d: %v", id, err)
		}
	}
	return nil
}

// nameCount reads the count of a name map (or of the functions of the
// local names), whose entries take at least minBytes each.
func (c *checker) nameCount(r *reader, what string, minBytes int) (uint32, error) {
	n, err := r.count(what, minBytes)
	if err != nil {
		return 0, err
	}
	if int(n) > c.l.SectionItems {
		return 0, limitErr("SectionItems", "the name section has %d %s; at most %d are allowed", n, what, c.l.SectionItems)
	}
	return n, nil
}

// nameMap reads a name map: a count, then an index and a name each.
func (c *checker) nameMap(r *reader, what string) error {
	n, err := c.nameCount(r, what, 2)
	if err != nil {
		return err
	}
	for range n {
		if _, err := r.U32(); err != nil {
			return err
		}
		if _, err := r.Name(); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) imports(r *reader, n uint32) error {
	for range n {
		if _, err := r.Name(); err != nil {
			return malformed("import section: %v", err)
		}
		if _, err := r.Name(); err != nil {
			return malformed("import section: %v", err)
		}
		kind, err := r.Byte()
		if err != nil {
			return malformed("import section: %v", err)
		}
		switch kind {
		case 0: // function: a type index
			c.functions++
			_, err = r.U32()
		case 1:
			err = c.table(r)
		case 2:
			err = c.memory(r)
		case 3: // global: a value type (a reference type with its heap type), mutability
			var vt byte
			if vt, err = r.Byte(); err == nil && (vt == 0x63 || vt == 0x64) {
				_, err = r.LEB(5)
			}
			if err == nil {
				_, err = r.Byte()
			}
		case 4: // tag: an attribute, a type index
			if _, err = r.Byte(); err == nil {
				_, err = r.U32()
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
	rt, err := r.Byte()
	if err != nil {
		return malformed("table: %v", err)
	}
	if rt != 0x70 && rt != 0x6F { // funcref, externref
		return malformed("table of reference type 0x%02x, which is not supported", rt)
	}
	min, _, err := r.Limits()
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
	min, _, err := r.Limits()
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
		bodySize, err := r.U32()
		if err != nil {
			return malformed("function body %d: size: %v", i, err)
		}
		if int64(bodySize) > int64(c.l.FunctionBytes) {
			return limitErr("FunctionBytes", "function body %d is %d bytes; at most %d are allowed", i, bodySize, c.l.FunctionBytes)
		}
		body, err := r.Bytes(int(bodySize))
		if err != nil {
			return malformed("function body %d: %d bytes announced, %d left", i, bodySize, len(r.B)-r.Pos)
		}
		br := reader{wasmbin.Reader{B: body}}
		decls, err := br.U32()
		if err != nil {
			return malformed("function body %d: locals: %v", i, err)
		}
		if int64(decls)*2 > int64(len(body)) {
			return malformed("function body %d announces %d local declarations in %d bytes", i, decls, len(body))
		}
		var locals uint64
		for range decls {
			k, err := br.U32()
			if err != nil {
				return malformed("function body %d: locals: %v", i, err)
			}
			if err := br.valueType(); err != nil {
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

// reader is the binary format's reader with what the check also reads:
// value types, constant expressions, counts checked against the bytes.
type reader struct{ wasmbin.Reader }

// valueType reads a value type: one byte, or a reference type's prefix
// (0x63, 0x64) and its heap type (a signed LEB128 number).
func (r *reader) valueType() error {
	b, err := r.Byte()
	if err != nil {
		return err
	}
	if b == 0x63 || b == 0x64 {
		_, err = r.LEB(5)
	}
	return err
}

// constExpr reads a constant expression up to its end.
func (r *reader) constExpr() error {
	for {
		op, err := r.Byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0B: // end
			return nil
		case 0x41, 0x23, 0xD2: // i32.const, global.get, ref.func
			_, err = r.LEB(5)
		case 0x42: // i64.const
			_, err = r.LEB(10)
		case 0x43: // f32.const
			_, err = r.Bytes(4)
		case 0x44: // f64.const
			_, err = r.Bytes(8)
		case 0xD0: // ref.null: a heap type
			_, err = r.LEB(5)
		case 0xFD: // v128.const
			if _, err = r.U32(); err == nil {
				_, err = r.Bytes(16)
			}
		case 0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E: // extended constant arithmetic
		default:
			return fmt.Errorf("instruction 0x%02x in a constant expression", op)
		}
		if err != nil {
			return err
		}
	}
}
