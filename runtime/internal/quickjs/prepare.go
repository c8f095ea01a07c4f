package quickjs

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/insertfn/insertfn/runtime/internal/loopcheck"
	"github.com/insertfn/insertfn/runtime/internal/wasmbin"
)

// Names of what prepare adds to the engine's module.
const (
	memoryExport    = "memory"             // the memory, once defined by the module
	interruptExport = "insertfn.interrupt" // loopcheck's interrupt flag
	startExport     = "insertfn.start"     // loopcheck's moved start function (the engine has none)
)

// maxPages is the maximum prepare gives the engine's memory: the 2 GiB
// emscripten's emscripten_resize_heap allows. An instance's cap is
// enforced below it by the instance's memory allocator, so that every cap
// runs the same compiled module.
const maxPages = 32768

// prepare turns the engine's module as emscripten built it into the one
// wazero compiles:
//
//   - its imported memory (emscripten's "a"."a", which the JavaScript glue
//     creates) becomes a memory the module defines and exports as "memory",
//     with maximum [maxPages] and as minimum the pages up to the top of
//     emscripten's stack (its first global, __stack_pointer) plus one, not
//     the 16 MiB emscripten's glue starts with: the static data and the
//     stack lie below the stack's top, the heap above it, and emscripten's
//     sbrk asks the host (emscripten_resize_heap) for more as it needs it.
//     Removing a memory import moves no function or global index. The
//     host's allocator still creates the memory and enforces its cap, and
//     no other module can reach it;
//   - loopcheck instruments it, so that the host's interrupt flag stops an
//     endless loop, in JavaScript or in the engine's C code.
//
// The rewrite is deterministic, so the compilation cache keeps working.
//
// # Results
//   - the module to compile;
//   - the minimum pages of its memory;
//   - an error when the module is not the kind emscripten builds (no
//     memory import, a second one) or loopcheck refuses it.
func prepare(wasm []byte) ([]byte, uint32, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, 0, errors.New("quickjs: the engine is not a WebAssembly module")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := wasmbin.Reader{B: wasm, Pos: 8}
	for !r.Done() {
		id, err := r.Byte()
		if err != nil {
			return nil, 0, err
		}
		n, err := r.U32()
		if err != nil {
			return nil, 0, fmt.Errorf("quickjs: section %d: %w", id, err)
		}
		body, err := r.Bytes(int(n))
		if err != nil {
			return nil, 0, fmt.Errorf("quickjs: section %d: %w", id, err)
		}
		secs = append(secs, section{id, body})
	}
	var (
		found    bool
		initial  uint64
		minPages uint32
	)
	for i, s := range secs {
		switch s.id {
		case secMemory:
			return nil, 0, errors.New("quickjs: the engine defines a memory; emscripten's glue imports it")
		case secImport:
			body, mem, ok, err := dropMemoryImport(s.body)
			if err != nil {
				return nil, 0, fmt.Errorf("quickjs: import section: %w", err)
			}
			secs[i].body, found, initial = body, ok, mem
		case secGlobal:
			if top, ok := stackTop(s.body); ok {
				minPages = top/65536 + 1
			}
		}
	}
	if !found {
		return nil, 0, errors.New("quickjs: the engine imports no memory: is it emscripten's build with an imported memory?")
	}
	if minPages == 0 || uint64(minPages) > initial {
		minPages = uint32(initial)
	}
	if minPages > maxPages {
		return nil, 0, fmt.Errorf("quickjs: the engine's memory starts at %d pages, past the %d pages it may have", minPages, maxPages)
	}
	memSec := appendU32([]byte{1, 0x01}, minPages) // one memory, limits with a maximum
	memSec = appendU32(memSec, maxPages)
	out := append([]byte(nil), wasm[:8]...)
	placed := false
	for _, s := range secs {
		body := s.body
		if !placed && s.id != secCustom && sectionOrder(s.id) > sectionOrder(secMemory) {
			out = appendSection(out, secMemory, memSec)
			placed = true
		}
		if s.id == secExport {
			n, err := vecLen(body)
			if err != nil {
				return nil, 0, fmt.Errorf("quickjs: export section: %w", err)
			}
			entry := appendName(nil, memoryExport)
			entry = append(entry, 0x02, 0x00) // memory 0
			rest := body[lebLen(body):]
			body = append(append(appendU32(nil, n+1), rest...), entry...)
		}
		out = appendSection(out, s.id, body)
	}
	if !placed {
		return nil, 0, errors.New("quickjs: the engine has no sections after its imports")
	}
	instrumented, err := loopcheck.Instrument(out, loopcheck.Options{Interrupt: interruptExport, Start: startExport})
	if err != nil {
		return nil, 0, fmt.Errorf("quickjs: instrumenting the engine: %w", err)
	}
	return instrumented, minPages, nil
}

// Section ids of the binary format.
const (
	secCustom = 0
	secImport = 2
	secMemory = 5
	secGlobal = 6
	secExport = 7
)

// stackTop returns the initial value of the module's first global when it
// is a mutable i32 set by an i32.const: emscripten's __stack_pointer,
// where its stack begins (it grows down).
func stackTop(body []byte) (uint32, bool) {
	r := wasmbin.Reader{B: body}
	if n, err := r.U32(); err != nil || n == 0 {
		return 0, false
	}
	head, err := r.Bytes(3)
	if err != nil || head[0] != 0x7F || head[1] != 0x01 || head[2] != 0x41 { // i32, mutable, i32.const
		return 0, false
	}
	v, err := r.LEB(5)
	if err != nil || v&(1<<31) != 0 {
		return 0, false
	}
	if end, err := r.Byte(); err != nil || end != 0x0B {
		return 0, false
	}
	return uint32(v), true
}

// sectionOrder is where a section goes in a module: the binary format
// orders sections by id, except the data count section (12), which comes
// before the code (10), and the tag section (13), between the memory and
// the globals.
func sectionOrder(id byte) int {
	switch id {
	case 12:
		return 95 // after the elements (9), before the code (10)
	case 13:
		return 55 // after the memory (5), before the globals (6)
	}
	return int(id) * 10
}

// dropMemoryImport returns the import section's body without its one
// memory import, and that memory's minimum pages.
func dropMemoryImport(body []byte) (out []byte, min uint64, found bool, err error) {
	r := wasmbin.Reader{B: body}
	n, err := r.U32()
	if err != nil {
		return nil, 0, false, err
	}
	var kept []byte
	for i := uint32(0); i < n; i++ {
		start := r.Pos
		if _, err := r.Name(); err != nil {
			return nil, 0, false, err
		}
		if _, err := r.Name(); err != nil {
			return nil, 0, false, err
		}
		kind, err := r.Byte()
		if err != nil {
			return nil, 0, false, err
		}
		switch kind {
		case 0x00: // function: its type
			_, err = r.U32()
		case 0x01: // table: reference type, limits
			if _, err = r.Byte(); err == nil {
				_, _, err = r.Limits()
			}
		case 0x02: // memory
			if found {
				return nil, 0, false, errors.New("two memory imports")
			}
			var flags byte
			if flags, err = r.Byte(); err == nil && flags&0x06 != 0 {
				return nil, 0, false, fmt.Errorf("a shared or 64-bit memory (limits flags 0x%02x)", flags)
			}
			r.Pos--
			if min, _, err = r.Limits(); err != nil {
				return nil, 0, false, err
			}
			found = true
			continue // not kept
		case 0x03: // global: value type, mutability
			_, err = r.Bytes(2)
		case 0x04: // tag: attribute, type
			if _, err = r.Byte(); err == nil {
				_, err = r.U32()
			}
		default:
			return nil, 0, false, fmt.Errorf("import %d has unknown kind 0x%02x", i, kind)
		}
		if err != nil {
			return nil, 0, false, err
		}
		kept = append(kept, body[start:r.Pos]...)
	}
	if !r.Done() {
		return nil, 0, false, errors.New("bytes after the imports")
	}
	count := n
	if found {
		count--
	}
	return append(appendU32(nil, count), kept...), min, found, nil
}

// vecLen reads the count at the head of a vector section's body.
func vecLen(body []byte) (uint32, error) {
	r := wasmbin.Reader{B: body}
	return r.U32()
}

// lebLen returns the length of the LEB128 number at the head of b.
func lebLen(b []byte) int {
	for i, c := range b {
		if c&0x80 == 0 {
			return i + 1
		}
	}
	return len(b)
}

func appendSection(out []byte, id byte, body []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(body)))
	return append(out, body...)
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
