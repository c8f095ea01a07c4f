// Package loopcheck rewrites a WebAssembly module so that the host can stop
// it from another goroutine, and so that a long-running guest lets the Go
// scheduler in, at the cost of a few instructions per loop iteration and
// per function call.
//
// [Instrument] adds two mutable i32 globals: an interrupt flag, exported
// under a name the host chooses, and a fuel counter. It inserts at the head
// of every loop and at the entry of every function
//
//	fuel = fuel - 1
//	if fuel <= 0 {
//	  fuel = FuelPerYield
//	  drop(memory.grow(0))     ;; a call into the engine's Go code
//	  if interrupt { unreachable }
//	}
//
// and after every bulk memory or table operation (memory.copy, fill and
// init; table.copy, fill and init) the same with one unit of fuel per 4 KiB
// of its length, so that one instruction that moves megabytes counts for
// what it costs.
//
// Work without end needs loops or calls: a loop's iterations and a call
// tree's calls (even one that recurses no deeper than n, with 2^n calls)
// each spend fuel. So once the host sets the flag to a non-zero value, the
// guest traps within FuelPerYield units of work. The host tells that trap
// from a guest's own `unreachable` by knowing it raised the flag.
//
// The memory.grow(0) matters as much as the flag. Compiled wasm is not
// preemptible: a goroutine in a tight wasm loop never reaches a Go safe
// point, so a garbage collection that stops the world waits for it, and the
// timer that would raise the flag is stopped with the world: a deadlock.
// memory.grow leaves the guest for the engine's Go code (wazero compiles it
// as an exit to Go), which is a safe point, every FuelPerYield units.
//
// A module's start function would run inside instantiation, before the host
// can reach the flag; Instrument removes the start section and exports the
// function instead, for the host to call under a time limit.
//
// Instrument checks what an unvalidated module could use to get around the
// check: a global.get or global.set of an index past the module's own
// globals (the fuel and the flag, once added) is refused, and so is an
// export of one.
//
// This is the idea of Wasmtime's epoch interruption and fuel, done on the
// module so that it works with any engine. insertfn uses it instead of
// wazero's WithCloseOnContextDone, which leaves the guest for Go on every
// loop iteration and starts a goroutine per call (see RATIONALE.md).
//
// The rewrite keeps every index of the module: the globals are appended
// after the module's own, no import or function is added, and only function
// bodies (plus one i32 local where there are bulk operations), the global
// and export sections and the start section change. It decodes every
// instruction of the MVP and of the extensions wazero runs (sign extension,
// saturating truncation, bulk memory, reference types, multi-value, SIMD,
// threads, tail calls, exceptions); a module using anything else is refused
// with an error that says where.
package loopcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/runtime/internal/wasmbin"
)

// FuelPerYield is the units of work (loop iterations, calls, 4 KiB of bulk
// operations) between two visits to the engine's Go code, where the
// goroutine can be preempted and the interrupt flag is read. Each visit
// costs tens of nanoseconds; a tight loop runs this many iterations in tens
// of microseconds.
const FuelPerYield = 10000

// ErrNoMemory is Instrument's error for a module without a memory, whose
// loops could not yield (the yield is a memory.grow).
var ErrNoMemory = errors.New("loopcheck: the module has no memory (the check needs memory.grow to yield)")

// Section ids of the binary format.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secCode     = 10
)

// Options are the names of the exports Instrument adds, which the module
// must not export itself, and a bound on the blocks of a function.
type Options struct {
	// Interrupt is the mutable i32 global the host sets to stop the guest.
	Interrupt string
	// Start is the module's start function, when it has one. Instrument
	// removes the start section, whose function would otherwise run inside
	// instantiation, before the host can reach the interrupt global: the
	// host calls this export right after instantiation, under a time limit.
	Start string
	// MaxBlocks bounds the block, loop, if, try and try_table instructions
	// of one function; 0: no bound. wazero 1.12's compiler takes time in
	// proportion to a function's blocks times its reads of locals (10 000
	// of each took 1.2 s, 10 000 blocks and 100 000 reads 8.5 s).
	MaxBlocks int
	// RefuseTableGrow refuses a module that uses table.grow: a table
	// without a declared maximum could grow to 2^32-1 entries, 8 bytes
	// each, outside any memory bound the host keeps.
	RefuseTableGrow bool
}

// BlocksError is Instrument's error for a function with more blocks than
// Options.MaxBlocks.
type BlocksError struct {
	Function uint32 // its index, imports included
	Max      int
}

func (e *BlocksError) Error() string {
	return fmt.Sprintf("function %d has more than %d blocks (block, loop, if, try)", e.Function, e.Max)
}

// Instrument returns a copy of wasm whose loops, function entries and bulk
// memory and table operations spend fuel, and which yields to Go and checks
// an exported interrupt global whenever the fuel runs out.
//
// # Parameters
//   - wasm: a module in the binary format. It is not changed, and need not
//     have been validated: what Instrument cannot decode it refuses, and
//     what it passes on is validated by the engine that compiles it.
//   - names: the names of the exports it adds, and the bound on blocks.
//
// # Results
//   - the rewritten module; the same input always gives the same output,
//     so compilation caches keyed by the module's bytes keep working;
//   - an error when wasm cannot be decoded, uses an instruction this package
//     does not know, refers to a global it does not have (it would reach
//     the fuel or the flag once they are added), has no memory
//     ([ErrNoMemory]), already exports one of the names, or has a
//     function of more than names.MaxBlocks blocks ([*BlocksError]). Debug sections
//     (".debug_*", DWARF) are dropped, as the code offsets they describe
//     move.
func Instrument(wasm []byte, names Options) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("loopcheck: not a WebAssembly binary (no \\0asm header)")
	}
	if binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("loopcheck: binary format version %d; only version 1 is known", binary.LittleEndian.Uint32(wasm[4:8]))
	}
	var secs []section
	r := reader{wasmbin.Reader{B: wasm, Pos: 8}}
	for !r.Done() {
		id, err := r.Byte()
		if err != nil {
			return nil, err
		}
		size, err := r.U32()
		if err != nil {
			return nil, fmt.Errorf("loopcheck: section %d: size: %w", id, err)
		}
		body, err := r.Bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("loopcheck: section %d: %w", id, err)
		}
		secs = append(secs, section{id: id, body: body})
	}

	var m moduleInfo
	globalAt, exportAt, codeAt, startAt := -1, -1, -1, -1
	for i, s := range secs {
		var err error
		switch s.id {
		case secType:
			m.params, err = paramCounts(s.body)
		case secImport:
			err = m.countImports(s.body)
		case secFunction:
			m.funcTypes, err = u32Vec(s.body)
		case secMemory:
			var n uint32
			n, err = vecCount(s.body)
			m.memories += n
		case secGlobal:
			globalAt = i
			m.definedGlobals, err = vecCount(s.body)
		case secExport:
			exportAt = i
		case secStart:
			startAt = i
			sr := reader{wasmbin.Reader{B: s.body}}
			m.start, err = sr.U32()
			if err != nil {
				err = fmt.Errorf("loopcheck: start section: %w", err)
			}
		case secCode:
			codeAt = i
		}
		if err != nil {
			return nil, err
		}
	}
	if m.memories == 0 {
		return nil, ErrNoMemory
	}
	globals := m.importedGlobals + m.definedGlobals
	if exportAt >= 0 {
		if err := checkExports(secs[exportAt].body, names, globals); err != nil {
			return nil, err
		}
	}
	interrupt, fuel := globals, globals+1

	if codeAt >= 0 {
		code, err := m.instrumentCode(secs[codeAt].body, interrupt, fuel, names)
		if err != nil {
			return nil, err
		}
		secs[codeAt].body = code
	}

	// The new globals: mutable i32s, the flag at 0 and the fuel full.
	newGlobals := []byte{0x7F, 0x01, 0x41, 0x00, 0x0B, 0x7F, 0x01, 0x41}
	newGlobals = appendS32(newGlobals, FuelPerYield)
	newGlobals = append(newGlobals, 0x0B)
	if globalAt >= 0 {
		secs[globalAt].body = appendToVec(secs[globalAt].body, m.definedGlobals, 2, newGlobals)
	} else {
		insertSection(&secs, section{id: secGlobal, body: append([]byte{2}, newGlobals...)})
	}

	newExports := appendName(nil, names.Interrupt)
	newExports = append(newExports, 0x03) // export kind: global
	newExports = appendU32(newExports, interrupt)
	added := uint32(1)
	if startAt >= 0 {
		newExports = appendName(newExports, names.Start)
		newExports = append(newExports, 0x00) // export kind: function
		newExports = appendU32(newExports, m.start)
		added++
	}
	exportAt = -1
	for i, s := range secs {
		switch s.id {
		case secExport:
			exportAt = i
		case secStart:
			secs[i].id = secCustom // dropped below
			secs[i].body = nil
		}
	}
	if exportAt >= 0 {
		n, _ := vecCount(secs[exportAt].body)
		secs[exportAt].body = appendToVec(secs[exportAt].body, n, added, newExports)
	} else {
		insertSection(&secs, section{id: secExport, body: append(appendU32(nil, added), newExports...)})
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/16+64)
	out = append(out, wasm[:8]...)
	for _, s := range secs {
		if s.id == secCustom && (s.body == nil || isDebugSection(s.body)) {
			continue
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
}

// moduleInfo is what the rewrite needs to know of the module.
type moduleInfo struct {
	params          []uint32 // parameter count per type index
	funcTypes       []uint32 // type index per defined function
	importedFuncs   uint32
	importedGlobals uint32
	definedGlobals  uint32
	memories        uint32
	start           uint32 // the start function, when there is a start section
}

type section struct {
	id   byte
	body []byte
}

// order is where a known section goes in a module (the tag section of the
// exception-handling proposal sits between memory and global).
func order(id byte) int {
	switch id {
	case 1, 2, 3, 4, 5:
		return int(id)
	case 13: // tag
		return 6
	case 6, 7, 8, 9:
		return int(id) + 1
	case 12: // data count
		return 11
	case 10, 11:
		return int(id) + 2
	}
	return -1
}

// insertSection puts s before the first known section that must follow it,
// and returns its position.
func insertSection(secs *[]section, s section) int {
	at := len(*secs)
	for i, t := range *secs {
		if t.id != secCustom && order(t.id) > order(s.id) {
			at = i
			break
		}
	}
	*secs = append(*secs, section{})
	copy((*secs)[at+1:], (*secs)[at:])
	(*secs)[at] = s
	return at
}

func isDebugSection(body []byte) bool {
	r := reader{wasmbin.Reader{B: body}}
	name, err := r.Name()
	return err == nil && bytes.HasPrefix(name, []byte(".debug_"))
}

// appendToVec returns a vector's body (of n elements) with added more
// elements, encoded in elems.
func appendToVec(body []byte, n, added uint32, elems []byte) []byte {
	r := reader{wasmbin.Reader{B: body}}
	_, _ = r.U32() // callers have decoded the count once already
	out := appendU32(make([]byte, 0, len(body)+len(elems)+5), n+added)
	out = append(out, body[r.Pos:]...)
	return append(out, elems...)
}

func vecCount(body []byte) (uint32, error) {
	r := reader{wasmbin.Reader{B: body}}
	n, err := r.U32()
	if err != nil {
		return 0, fmt.Errorf("loopcheck: vector count: %w", err)
	}
	return n, nil
}

// countImports counts the functions, globals and memories a module imports.
func (m *moduleInfo) countImports(body []byte) error {
	r := reader{wasmbin.Reader{B: body}}
	n, err := r.U32()
	if err != nil {
		return fmt.Errorf("loopcheck: import section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.Name(); err != nil {
			return fmt.Errorf("loopcheck: import %d: module name: %w", i, err)
		}
		if _, err := r.Name(); err != nil {
			return fmt.Errorf("loopcheck: import %d: name: %w", i, err)
		}
		kind, err := r.Byte()
		if err != nil {
			return fmt.Errorf("loopcheck: import %d: %w", i, err)
		}
		switch kind {
		case 0x00: // function: type index
			m.importedFuncs++
			_, err = r.U32()
		case 0x01: // table: reference type, limits
			if _, err = r.Byte(); err == nil {
				_, _, err = r.Limits()
			}
		case 0x02: // memory: limits
			m.memories++
			_, _, err = r.Limits()
		case 0x03: // global: value type, mutability
			m.importedGlobals++
			_, err = r.Bytes(2)
		case 0x04: // tag: attribute, type index
			if _, err = r.Byte(); err == nil {
				_, err = r.U32()
			}
		default:
			return fmt.Errorf("loopcheck: import %d: unknown kind 0x%02x", i, kind)
		}
		if err != nil {
			return fmt.Errorf("loopcheck: import %d: %w", i, err)
		}
	}
	return nil
}

// paramCounts decodes the type section into the parameter count of each
// function type.
func paramCounts(body []byte) ([]uint32, error) {
	r := reader{wasmbin.Reader{B: body}}
	n, err := r.U32()
	if err != nil {
		return nil, fmt.Errorf("loopcheck: type section: %w", err)
	}
	params := make([]uint32, 0, min(n, uint32(len(body))))
	for i := uint32(0); i < n; i++ {
		form, err := r.Byte()
		if err != nil {
			return nil, fmt.Errorf("loopcheck: type %d: %w", i, err)
		}
		if form != 0x60 {
			return nil, fmt.Errorf("loopcheck: type %d: form 0x%02x is not a function type", i, form)
		}
		var counts [2]uint32
		for j := range counts {
			if counts[j], err = r.U32(); err != nil {
				return nil, fmt.Errorf("loopcheck: type %d: %w", i, err)
			}
			for k := uint32(0); k < counts[j]; k++ {
				if err := r.valueType(); err != nil {
					return nil, fmt.Errorf("loopcheck: type %d: %w", i, err)
				}
			}
		}
		params = append(params, counts[0])
	}
	return params, nil
}

// u32Vec decodes a vector of u32 (the function section).
func u32Vec(body []byte) ([]uint32, error) {
	r := reader{wasmbin.Reader{B: body}}
	n, err := r.U32()
	if err != nil {
		return nil, fmt.Errorf("loopcheck: function section: %w", err)
	}
	v := make([]uint32, 0, min(n, uint32(len(body))))
	for i := uint32(0); i < n; i++ {
		x, err := r.U32()
		if err != nil {
			return nil, fmt.Errorf("loopcheck: function section: %w", err)
		}
		v = append(v, x)
	}
	return v, nil
}

// checkExports refuses exports of the reserved names, and of globals past
// the module's own (which would be the fuel or the flag).
func checkExports(body []byte, names Options, globals uint32) error {
	r := reader{wasmbin.Reader{B: body}}
	n, err := r.U32()
	if err != nil {
		return fmt.Errorf("loopcheck: export section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		name, err := r.Name()
		if err != nil {
			return fmt.Errorf("loopcheck: export %d: %w", i, err)
		}
		if string(name) == names.Interrupt || string(name) == names.Start {
			return fmt.Errorf("loopcheck: the module already exports %q, a name the host reserves", name)
		}
		kind, err := r.Byte()
		if err != nil {
			return fmt.Errorf("loopcheck: export %d: %w", i, err)
		}
		index, err := r.U32()
		if err != nil {
			return fmt.Errorf("loopcheck: export %d: %w", i, err)
		}
		if kind == 0x03 && index >= globals {
			return fmt.Errorf("loopcheck: export %q: global %d does not exist", name, index)
		}
	}
	return nil
}

// checks are the instruction sequences the rewrite inserts.
type checks struct {
	noTableGrow bool   // Options.RefuseTableGrow
	fuel        uint32 // the fuel global's index
	tick        []byte // at loop heads and function entries: one unit of fuel, then yield
	yield       []byte // if fuel <= 0 { refill; memory.grow 0; if interrupt { unreachable } }
}

// newChecks builds the sequences for the given global indices (see the
// package documentation).
func newChecks(interrupt, fuel uint32) checks {
	c := checks{fuel: fuel}
	op := func(b *[]byte, code byte, imm ...uint32) {
		*b = append(*b, code)
		for _, v := range imm {
			*b = appendU32(*b, v)
		}
	}
	op(&c.yield, 0x23, fuel)        // global.get $fuel
	op(&c.yield, 0x41, 0)           // i32.const 0
	op(&c.yield, 0x4C)              // i32.le_s
	op(&c.yield, 0x04, 0x40)        // if (no result)
	c.yield = append(c.yield, 0x41) // i32.const FuelPerYield
	c.yield = appendS32(c.yield, FuelPerYield)
	op(&c.yield, 0x24, fuel)      // global.set $fuel
	op(&c.yield, 0x41, 0)         // i32.const 0
	op(&c.yield, 0x40, 0)         // memory.grow 0: an exit to the engine's Go code
	op(&c.yield, 0x1A)            // drop
	op(&c.yield, 0x23, interrupt) // global.get $interrupt
	op(&c.yield, 0x04, 0x40)      // if (no result)
	op(&c.yield, 0x00)            // unreachable
	op(&c.yield, 0x0B)            // end
	op(&c.yield, 0x0B)            // end

	op(&c.tick, 0x23, fuel) // global.get $fuel
	op(&c.tick, 0x41, 1)    // i32.const 1
	op(&c.tick, 0x6B)       // i32.sub
	op(&c.tick, 0x24, fuel) // global.set $fuel
	c.tick = append(c.tick, c.yield...)
	return c
}

// appendBulk appends a bulk operation (its bytes in op) wrapped in its
// charge: the length it works on, its last operand, is kept in the scratch
// local, and costs one unit of fuel per 4 KiB.
func (c checks) appendBulk(b, op []byte, scratch uint32) []byte {
	b = append(b, 0x22) // local.tee $scratch
	b = appendU32(b, scratch)
	b = append(b, op...)
	b = append(b, 0x23) // global.get $fuel
	b = appendU32(b, c.fuel)
	b = append(b, 0x20) // local.get $scratch
	b = appendU32(b, scratch)
	b = append(b, 0x41, 12, 0x76, 0x6B, 0x24) // i32.const 12; i32.shr_u; i32.sub; global.set $fuel
	b = appendU32(b, c.fuel)
	return append(b, c.yield...)
}

// instrumentCode rewrites the code section.
func (m *moduleInfo) instrumentCode(body []byte, interrupt, fuel uint32, opts Options) ([]byte, error) {
	c := newChecks(interrupt, fuel)
	c.noTableGrow = opts.RefuseTableGrow
	maxBlocks := opts.MaxBlocks
	globals := m.importedGlobals + m.definedGlobals

	r := reader{wasmbin.Reader{B: body}}
	n, err := r.U32()
	if err != nil {
		return nil, fmt.Errorf("loopcheck: code section: %w", err)
	}
	if n != uint32(len(m.funcTypes)) {
		return nil, fmt.Errorf("loopcheck: %d function bodies for %d functions", n, len(m.funcTypes))
	}
	out := appendU32(make([]byte, 0, len(body)+len(body)/8), n)
	var fn, instrs []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.U32()
		if err != nil {
			return nil, fmt.Errorf("loopcheck: code %d: size: %w", i, err)
		}
		code, err := r.Bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("loopcheck: code %d: %w", i, err)
		}
		typ := m.funcTypes[i]
		if int(typ) >= len(m.params) {
			return nil, fmt.Errorf("loopcheck: function %d: type %d does not exist", m.importedFuncs+i, typ)
		}
		var blocks int
		fn, instrs, blocks, err = instrumentFunc(fn[:0], instrs[:0], code, m.params[typ], globals, c)
		if err == nil && maxBlocks > 0 && blocks > maxBlocks {
			return nil, &BlocksError{Function: m.importedFuncs + i, Max: maxBlocks}
		}
		if err != nil {
			return nil, fmt.Errorf("loopcheck: function %d: %w", m.importedFuncs+i, err)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if !r.Done() {
		return nil, fmt.Errorf("loopcheck: code section: %d bytes after the last function", len(r.B)-r.Pos)
	}
	return out, nil
}

// instrumentFunc appends one rewritten function body to out: its locals
// (plus an i32 scratch local when it has bulk operations), the tick at its
// entry, and its instructions with the checks inserted. instrs is scratch
// space for the instructions. It also returns the function's blocks (block,
// loop, if, try and try_table instructions).
func instrumentFunc(out, instrs, code []byte, params, globals uint32, c checks) (_, _ []byte, blocks int, err error) {
	r := reader{wasmbin.Reader{B: code}}
	groups, err := r.U32()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("locals: %w", err)
	}
	groupsStart := r.Pos
	locals := uint64(params)
	for g := uint32(0); g < groups; g++ {
		count, err := r.U32()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("locals: %w", err)
		}
		locals += uint64(count)
		if err := r.valueType(); err != nil {
			return nil, nil, 0, fmt.Errorf("locals: %w", err)
		}
	}
	if locals >= 1<<32-1 {
		return nil, nil, 0, errors.New("locals: too many")
	}
	localsEnd := r.Pos
	scratch := uint32(locals) // the index the scratch local gets, if added
	bulk := false

	instrs = append(instrs, c.tick...)
	copied := r.Pos // code[:copied] is in instrs (or in the header)
	for !r.Done() {
		at := r.Pos
		op, _ := r.Byte()
		if err := r.immediates(op); err != nil {
			return nil, nil, 0, fmt.Errorf("instruction 0x%02x at byte %d of the body: %w", op, at, err)
		}
		switch op {
		case 0x02, 0x04, 0x06, 0x1F: // block, if, try, try_table
			blocks++
		case 0x03: // loop: the tick goes after its block type
			blocks++
			instrs = append(instrs, code[copied:r.Pos]...)
			instrs = append(instrs, c.tick...)
			copied = r.Pos
		case 0x23, 0x24: // global.get, global.set
			ir := reader{wasmbin.Reader{B: code[at+1 : r.Pos]}}
			if index, _ := ir.U32(); index >= globals {
				return nil, nil, 0, fmt.Errorf("instruction 0x%02x at byte %d of the body: global %d does not exist", op, at, index)
			}
		case 0xFC:
			ir := reader{wasmbin.Reader{B: code[at+1 : r.Pos]}}
			switch sub, _ := ir.U32(); sub {
			case 15: // table.grow
				if c.noTableGrow {
					return nil, nil, 0, fmt.Errorf("instruction table.grow at byte %d of the body: this host does not let tables grow (they keep the size they declare)", at)
				}
			case 8, 10, 11, 12, 14, 17: // memory.init/copy/fill, table.init/copy/fill: length on top
				bulk = true
				instrs = append(instrs, code[copied:at]...)
				instrs = c.appendBulk(instrs, code[at:r.Pos], scratch)
				copied = r.Pos
			}
		}
	}
	instrs = append(instrs, code[copied:]...)

	if bulk {
		out = appendU32(out, groups+1)
		out = append(out, code[groupsStart:localsEnd]...)
		out = append(out, 1, 0x7F) // one i32
	} else {
		out = append(out, code[:localsEnd]...)
	}
	return append(out, instrs...), instrs, blocks, nil
}

// appendU32 appends v as unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS32 appends v as signed LEB128.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
