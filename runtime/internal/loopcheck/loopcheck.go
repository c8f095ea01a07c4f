// Package loopcheck rewrites a WebAssembly module so that the host can stop
// it from another goroutine, and so that a long-running guest lets the Go
// scheduler in, at the cost of a few instructions per loop iteration.
//
// [Instrument] adds two mutable i32 globals: an interrupt flag, exported
// under a name the host chooses, and a fuel counter. It inserts at the head
// of every loop
//
//	fuel = fuel - 1
//	if fuel == 0 {
//	  fuel = FuelPerYield
//	  drop(memory.grow(0))     ;; a call into the engine's Go code
//	  if interrupt { unreachable }
//	}
//
// A running guest can only run forever by looping (or by recursing, which
// ends in a stack overflow trap), so once the host sets the flag to a
// non-zero value the guest traps within FuelPerYield loop iterations. The
// host tells that trap from a guest's own `unreachable` by knowing it raised
// the flag.
//
// The memory.grow(0) matters as much as the flag. Compiled wasm is not
// preemptible: a goroutine in a tight wasm loop never reaches a Go safe
// point, so a garbage collection that stops the world waits for it, and the
// timer that would raise the flag is stopped with the world: a deadlock.
// memory.grow leaves the guest for the engine's Go code (wazero compiles it
// as an exit to Go), which is a safe point, every FuelPerYield iterations.
//
// This is the idea of Wasmtime's epoch interruption, done on the module so
// that it works with any engine. insertfn uses it instead of wazero's
// WithCloseOnContextDone, which leaves the guest for Go on every loop
// iteration and starts a goroutine per call (see RATIONALE.md).
//
// The rewrite keeps every index of the module: the globals are appended
// after the module's own, no import is added, and only the bodies of
// functions change. It decodes every instruction of the MVP and of the
// extensions wazero runs (sign extension, saturating truncation, bulk
// memory, reference types, multi-value, SIMD, threads, tail calls,
// exceptions); a module using anything else is refused with an error that
// says where.
package loopcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// FuelPerYield is the number of loop iterations between two visits to the
// engine's Go code, where the goroutine can be preempted and the interrupt
// flag is read. Each visit costs tens of nanoseconds; a tight loop runs this
// many iterations in tens of microseconds.
const FuelPerYield = 10000

// ErrNoMemory is Instrument's error for a module without a memory, whose
// loops could not yield (the yield is a memory.grow).
var ErrNoMemory = errors.New("loopcheck: the module has no memory (the check needs memory.grow to yield)")

// Section ids of the binary format.
const (
	secCustom = 0
	secImport = 2
	secMemory = 5
	secGlobal = 6
	secExport = 7
	secCode   = 10
)

// Instrument returns a copy of wasm whose loops check an exported i32
// global named export.
//
// # Parameters
//   - wasm: a module in the binary format. It is not changed.
//   - export: the name to export the interrupt global under; the module
//     must not export anything by that name already.
//
// # Results
//   - the rewritten module; the same input always gives the same output,
//     so compilation caches keyed by the module's bytes keep working;
//   - an error when wasm cannot be decoded, uses an instruction this package
//     does not know, has no memory, or already exports the name. Debug sections
//     (".debug_*", DWARF) are dropped, as the code offsets they describe
//     move.
func Instrument(wasm []byte, export string) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("loopcheck: not a WebAssembly binary (no \\0asm header)")
	}
	if binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("loopcheck: binary format version %d; only version 1 is known", binary.LittleEndian.Uint32(wasm[4:8]))
	}
	var secs []section
	r := reader{b: wasm, pos: 8}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("loopcheck: section %d: size: %w", id, err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("loopcheck: section %d: %w", id, err)
		}
		secs = append(secs, section{id: id, body: body})
	}

	var importedGlobals, definedGlobals, memories uint32
	globalAt, exportAt, codeAt := -1, -1, -1
	for i, s := range secs {
		var err error
		switch s.id {
		case secImport:
			var importedMemories uint32
			importedGlobals, importedMemories, err = countImports(s.body)
			memories += importedMemories
		case secMemory:
			var n uint32
			n, err = vecCount(s.body)
			memories += n
		case secGlobal:
			globalAt = i
			definedGlobals, err = vecCount(s.body)
		case secExport:
			exportAt = i
			err = checkExportFree(s.body, export)
		case secCode:
			codeAt = i
		}
		if err != nil {
			return nil, err
		}
	}
	if memories == 0 {
		return nil, ErrNoMemory
	}
	interrupt, fuel := importedGlobals+definedGlobals, importedGlobals+definedGlobals+1

	// The new globals: mutable i32s, the flag at 0 and the fuel full.
	newGlobals := []byte{0x7F, 0x01, 0x41, 0x00, 0x0B, 0x7F, 0x01, 0x41}
	newGlobals = appendS32(newGlobals, FuelPerYield)
	newGlobals = append(newGlobals, 0x0B)
	if globalAt >= 0 {
		secs[globalAt].body = appendToVec(secs[globalAt].body, definedGlobals, 2, newGlobals)
	} else {
		globalAt = insertSection(&secs, section{id: secGlobal, body: append([]byte{2}, newGlobals...)})
		if exportAt >= globalAt {
			exportAt++
		}
		if codeAt >= globalAt {
			codeAt++
		}
	}
	newExport := appendName(nil, export)
	newExport = append(newExport, 0x03) // export kind: global
	newExport = appendU32(newExport, interrupt)
	if exportAt >= 0 {
		n, _ := vecCount(secs[exportAt].body)
		secs[exportAt].body = appendToVec(secs[exportAt].body, n, 1, newExport)
	} else {
		at := insertSection(&secs, section{id: secExport, body: append([]byte{1}, newExport...)})
		if codeAt >= at {
			codeAt++
		}
	}
	if codeAt >= 0 {
		code, err := instrumentCode(secs[codeAt].body, loopCheck(interrupt, fuel))
		if err != nil {
			return nil, err
		}
		secs[codeAt].body = code
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/16+64)
	out = append(out, wasm[:8]...)
	for _, s := range secs {
		if s.id == secCustom && isDebugSection(s.body) {
			continue
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
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
	r := reader{b: body}
	name, err := r.name()
	return err == nil && bytes.HasPrefix(name, []byte(".debug_"))
}

// appendToVec returns a vector's body (of n elements) with added more
// elements, encoded in elems.
func appendToVec(body []byte, n, added uint32, elems []byte) []byte {
	r := reader{b: body}
	_, _ = r.u32() // callers have decoded the count once already
	out := appendU32(make([]byte, 0, len(body)+len(elems)+5), n+added)
	out = append(out, body[r.pos:]...)
	return append(out, elems...)
}

func vecCount(body []byte) (uint32, error) {
	r := reader{b: body}
	n, err := r.u32()
	if err != nil {
		return 0, fmt.Errorf("loopcheck: vector count: %w", err)
	}
	return n, nil
}

// countImports counts the globals and memories a module imports.
func countImports(body []byte) (globals, memories uint32, err error) {
	r := reader{b: body}
	n, err := r.u32()
	if err != nil {
		return 0, 0, fmt.Errorf("loopcheck: import section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.name(); err != nil {
			return 0, 0, fmt.Errorf("loopcheck: import %d: module name: %w", i, err)
		}
		if _, err := r.name(); err != nil {
			return 0, 0, fmt.Errorf("loopcheck: import %d: name: %w", i, err)
		}
		kind, err := r.byte()
		if err != nil {
			return 0, 0, fmt.Errorf("loopcheck: import %d: %w", i, err)
		}
		switch kind {
		case 0x00: // function: type index
			_, err = r.u32()
		case 0x01: // table: reference type, limits
			if _, err = r.byte(); err == nil {
				err = r.limits()
			}
		case 0x02: // memory: limits
			memories++
			err = r.limits()
		case 0x03: // global: value type, mutability
			globals++
			_, err = r.bytes(2)
		case 0x04: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return 0, 0, fmt.Errorf("loopcheck: import %d: unknown kind 0x%02x", i, kind)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("loopcheck: import %d: %w", i, err)
		}
	}
	return globals, memories, nil
}

func checkExportFree(body []byte, export string) error {
	r := reader{b: body}
	n, err := r.u32()
	if err != nil {
		return fmt.Errorf("loopcheck: export section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		name, err := r.name()
		if err != nil {
			return fmt.Errorf("loopcheck: export %d: %w", i, err)
		}
		if string(name) == export {
			return fmt.Errorf("loopcheck: the module already exports %q, a name the host reserves", export)
		}
		if _, err := r.byte(); err != nil {
			return fmt.Errorf("loopcheck: export %d: %w", i, err)
		}
		if _, err := r.u32(); err != nil {
			return fmt.Errorf("loopcheck: export %d: %w", i, err)
		}
	}
	return nil
}

// loopCheck returns the instructions inserted at the head of each loop (see
// the package documentation).
func loopCheck(interrupt, fuel uint32) []byte {
	var b []byte
	op := func(code byte, imm ...uint32) {
		b = append(b, code)
		for _, v := range imm {
			b = appendU32(b, v)
		}
	}
	op(0x23, fuel) // global.get $fuel
	op(0x41, 1)    // i32.const 1
	op(0x6B)       // i32.sub
	op(0x24, fuel) // global.set $fuel
	op(0x23, fuel) // global.get $fuel
	op(0x45)       // i32.eqz
	op(0x04, 0x40) // if (no result)
	b = append(b, 0x41)
	b = appendS32(b, FuelPerYield) // i32.const FuelPerYield
	op(0x24, fuel)                 // global.set $fuel
	op(0x41, 0)                    // i32.const 0
	op(0x40, 0)                    // memory.grow 0: an exit to the engine's Go code
	op(0x1A)                       // drop
	op(0x23, interrupt)            // global.get $interrupt
	op(0x04, 0x40)                 // if (no result)
	op(0x00)                       // unreachable
	op(0x0B)                       // end
	op(0x0B)                       // end
	return b
}

// instrumentCode rewrites the code section: check goes after each loop's
// block type.
func instrumentCode(body []byte, check []byte) ([]byte, error) {
	r := reader{b: body}
	n, err := r.u32()
	if err != nil {
		return nil, fmt.Errorf("loopcheck: code section: %w", err)
	}
	out := appendU32(make([]byte, 0, len(body)+len(body)/16), n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("loopcheck: code %d: size: %w", i, err)
		}
		code, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("loopcheck: code %d: %w", i, err)
		}
		fn, err = instrumentFunc(fn[:0], code, check)
		if err != nil {
			return nil, fmt.Errorf("loopcheck: code %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if !r.done() {
		return nil, fmt.Errorf("loopcheck: code section: %d bytes after the last function", len(r.b)-r.pos)
	}
	return out, nil
}

// instrumentFunc appends one function body (locals and instructions) to out,
// with check after every loop header.
func instrumentFunc(out, code, check []byte) ([]byte, error) {
	r := reader{b: code}
	groups, err := r.u32()
	if err != nil {
		return nil, fmt.Errorf("locals: %w", err)
	}
	for g := uint32(0); g < groups; g++ {
		if _, err := r.u32(); err != nil {
			return nil, fmt.Errorf("locals: %w", err)
		}
		if err := r.valueType(); err != nil {
			return nil, fmt.Errorf("locals: %w", err)
		}
	}
	copied := 0 // code[:copied] is in out
	for !r.done() {
		at := r.pos
		op, _ := r.byte()
		if err := r.immediates(op); err != nil {
			return nil, fmt.Errorf("instruction 0x%02x at byte %d of the body: %w", op, at, err)
		}
		if op == 0x03 { // loop
			out = append(out, code[copied:r.pos]...)
			out = append(out, check...)
			copied = r.pos
		}
	}
	return append(out, code[copied:]...), nil
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
