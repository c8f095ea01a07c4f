// Package wasmtest writes small WebAssembly modules by hand, byte by byte,
// for tests of the runtime's limits: guests that grow their memory to the
// cap, fail a memory.grow and trap, exhaust memory during start-up, or are
// not what their header says. Each follows the insertfn ABI as far as the
// case needs (it exports memory, insertfn_abi_version and insertfn_handle),
// so that the host loads it and the misbehaviour is what a test sees.
//
// Tests of several packages (runtime, host, cmd/insertfn) use the same
// modules; nothing here is used outside tests.
package wasmtest

import "bytes"

// Opcodes and other bytes of the binary format used below.
const (
	opUnreachable = 0x00
	opBlock       = 0x02
	opLoop        = 0x03
	opIf          = 0x04
	opReturn      = 0x0F
	opBr          = 0x0C
	opBrIf        = 0x0D
	opEnd         = 0x0B
	opDrop        = 0x1A
	opCall        = 0x10
	opLocalGet    = 0x20
	opLocalTee    = 0x22
	opI32Const    = 0x41
	opI32Eq       = 0x46
	opI32Shl      = 0x74
	opI32GtU      = 0x4B
	opI32Add      = 0x6A
	opMemoryGrow  = 0x40
	opPrefixFC    = 0xFC
	opMemoryFill  = 0x0B // after 0xFC
	blockVoid     = 0x40
	typeI32       = 0x7F
)

// Deliver returns a guest whose insertfn_handle returns Deliver, and
// nothing else. Different values of id make different modules (a custom
// section holds it), for tests that need several versions.
func Deliver(id byte) []byte {
	wasm := module(1, []byte{0, opI32Const, 0, opEnd}, nil)
	return append(wasm, secCustomID, 3, 1, 'v', id)
}

// secCustomID is the id of a custom section.
const secCustomID = 0

// Recurse returns a guest whose insertfn_handle calls itself without end,
// until the engine's stack overflows.
func Recurse() []byte {
	return module(1, []byte{0, opLocalGet, 0, opCall, 1, opEnd}, nil)
}

// GrowAndTouch returns a guest whose insertfn_handle grows its memory by
// step pages at a time until memory.grow fails (at the host's cap), writes
// to every page it got (so that the pages are really in use), and returns
// Deliver. An instance that served an event is at its cap.
//
// # Parameters
//   - step: pages per memory.grow (1 to 1024); a Go guest grows by a few
//     pages at a time.
func GrowAndTouch(step uint32) []byte {
	step = min(max(step, 1), 1024)
	var body []byte
	body = append(body, 1, 1, typeI32) // one local: the grow's result
	body = append(body, opBlock, blockVoid, opLoop, blockVoid)
	body = append(body, opI32Const)
	body = sleb(body, int64(step))
	body = append(body, opMemoryGrow, 0, opLocalTee, 1, opI32Const, 0x7F /* -1 */, opI32Eq, opBrIf, 1)
	body = append(body, opLocalGet, 1, opI32Const, 16, opI32Shl) // the new pages' address
	body = append(body, opI32Const, 1)                           // the value
	body = append(body, opI32Const)
	body = sleb(body, int64(step)*65536) // their length
	body = append(body, opPrefixFC, opMemoryFill, 0)
	body = append(body, opBr, 0, opEnd, opEnd)
	body = append(body, opI32Const, 0, opEnd) // Deliver
	return module(1, body, nil)
}

// GrowFailThenTrap returns a guest whose insertfn_handle asks for all of
// the 4 GiB address space in one memory.grow, which fails under any cap,
// and then traps with unreachable, as a guest without a fallback does when
// its allocator gets nothing.
func GrowFailThenTrap() []byte {
	return module(1, growFailTrapBody(), nil)
}

// GrowRefusedThenTrap returns a guest whose insertfn_handle, for a track
// event, asks for 1000 pages (64 MiB) in one memory.grow, copes with a
// refusal and returns Deliver; for any other event it traps with
// unreachable. Under a cap below 1000 pages the first is a refused grow the
// guest survived, the second a trap that has nothing to do with memory.
func GrowRefusedThenTrap() []byte {
	body := []byte{0, opLocalGet, 0, opI32Const, 1, opI32Eq, opIf, blockVoid, opI32Const}
	body = sleb(body, 1000)
	body = append(body, opMemoryGrow, 0, opDrop, opI32Const, 0, opReturn, opEnd, opUnreachable, opEnd)
	return module(1, body, nil)
}

// StartUpExhaustsMemory returns a guest whose wasm start function does what
// GrowFailThenTrap's handler does: its start-up runs out of memory.
func StartUpExhaustsMemory() []byte {
	return module(1, []byte{0, opI32Const, 0, opEnd}, growFailTrapBody())
}

func growFailTrapBody() []byte {
	body := []byte{0, opI32Const}
	body = sleb(body, 65535)
	return append(body, opMemoryGrow, 0, opDrop, opUnreachable, opEnd)
}

// Oversized returns a module of size bytes: the wasm header followed by
// zeros, which a parser must refuse before it spends memory on it.
func Oversized(size int) []byte {
	b := make([]byte, max(size, 8))
	copy(b, "\x00asm\x01\x00\x00\x00")
	return b
}

// SlowCompile returns a guest whose insertfn_handle is blocks empty
// blocks (`block end`) one after the other, then reads (`local.get 0;
// drop`), then returns Deliver. wazero 1.12's compiler takes time in
// proportion to blocks times reads: 10 000 of each took 1.4 s on a 2020s
// core, 20 000 of each 6 s.
func SlowCompile(blocks, reads int) []byte {
	body := []byte{0}
	for range blocks {
		body = append(body, opBlock, blockVoid, opEnd)
	}
	for range reads {
		body = append(body, opLocalGet, 0, opDrop)
	}
	body = append(body, opI32Const, 0, opEnd)
	return module(1, body, nil)
}

// RecurseThenReturn returns a guest whose insertfn_handle calls itself
// until its argument, the event's type, passes depth, then returns
// Deliver all the way up: the engine's call stack grows to hold depth
// calls, and the event succeeds.
func RecurseThenReturn(depth uint32) []byte {
	body := []byte{0, opLocalGet, 0, opI32Const}
	body = sleb(body, int64(depth))
	body = append(body, opI32GtU, opIf, blockVoid, opI32Const, 0, opReturn, opEnd)
	body = append(body, opLocalGet, 0, opI32Const, 1, opI32Add, opCall, 1, opEnd)
	return module(1, body, nil)
}

// TableGrow returns a guest with a table of no maximum whose
// insertfn_handle grows it by 100 million entries (800 MB of the host's
// memory in wazero), then returns Deliver.
func TableGrow() []byte {
	body := []byte{0, 0xD0, 0x70, opI32Const} // ref.null func
	body = sleb(body, 100_000_000)
	body = append(body, opPrefixFC, 0x0F, 0, opDrop, opI32Const, 0, opEnd) // table.grow 0
	return assemble(1, body, nil, map[byte]string{secTable: "\x01\x70\x00\x00"})
}

// Crafted is a module crafted to make a decoder allocate what its bytes do
// not hold, with what it is.
type Crafted struct {
	Name string
	Wasm []byte
}

// HugeCounts returns modules that each announce, inside one entry of a
// section, a count or a length far beyond their bytes: a decoder that
// allocates for the count before it reads the items (wazero 1.12's does,
// for every one of these) asks for gigabytes, or for more than the address
// space, and the Go runtime dies. Each is otherwise a Deliver guest, so
// that it reaches the engine's decoder when nothing refuses it before.
func HugeCounts() []Crafted {
	const max32 = "\xff\xff\xff\xff\x0f" // 2^32-1 as LEB128
	i32zero := string([]byte{opI32Const, 0, opEnd})
	abiTypes := "\x03\x60\x01\x7f\x01\x7f\x60\x00\x01\x7f\x60\x00\x00"
	return []Crafted{
		{"an element segment of 2^32-1 function indexes", moduleWith(map[byte]string{secElement: "\x01\x00" + i32zero + max32})},
		{"an element segment of 2^32-1 expressions", moduleWith(map[byte]string{secElement: "\x01\x05\x70" + max32})},
		{"a data segment of 2^30 bytes", moduleWith(map[byte]string{secData: "\x01\x00" + i32zero + "\x80\x80\x80\x80\x04"})},
		{"a passive data segment of 2^32-1 bytes", moduleWith(map[byte]string{secData: "\x01\x01" + max32})},
		{"an export name of 2^32-1 bytes", moduleWith(map[byte]string{secExport: "\x01" + max32})},
		{"an import module name of 2^32-1 bytes", moduleWith(map[byte]string{secImport: "\x01" + max32})},
		{"a function type of 2^32-1 parameters", moduleWith(map[byte]string{secType: abiTypes[:len(abiTypes)-3] + "\x60" + max32})},
		{"a function type of 2^32-1 results", moduleWith(map[byte]string{secType: abiTypes[:len(abiTypes)-3] + "\x60\x00" + max32})},
		{"a custom section name of 2^32-1 bytes", moduleWith(map[byte]string{secCustomID: max32})},
		{"2^32-1 function names", moduleWith(map[byte]string{secCustomID: "\x04name\x01\x05" + max32})},
		{"2^32-1 functions with local names", moduleWith(map[byte]string{secCustomID: "\x04name\x02\x05" + max32})},
		{"2^32-1 local names of one function", moduleWith(map[byte]string{secCustomID: "\x04name\x02\x07\x01\x00" + max32})},
	}
}

// Section ids moduleWith knows.
const (
	secType    = 1
	secImport  = 2
	secTable   = 4
	secExport  = 7
	secElement = 9
	secData    = 11
)

// module assembles a module with one memory of minPages (no maximum) and
// the exports of the ABI; handle is the body of insertfn_handle (locals
// included), start, when not nil, the body of a start function.
func module(minPages uint32, handle, start []byte) []byte {
	return assemble(minPages, handle, start, nil)
}

// moduleWith is a Deliver guest whose sections of the ids in replace have
// the given bodies instead (sections it lacks are added in their place; a
// custom section goes last).
func moduleWith(replace map[byte]string) []byte {
	return assemble(1, []byte{0, opI32Const, 0, opEnd}, nil, replace)
}

func assemble(minPages uint32, handle, start []byte, replace map[byte]string) []byte {
	var w bytes.Buffer
	w.WriteString("\x00asm\x01\x00\x00\x00")
	sec := func(id byte, body []byte) {
		if r, ok := replace[id]; ok {
			body = []byte(r)
		}
		if body != nil {
			section(&w, id, body)
		}
	}
	// Types: 0 (i32) -> i32, 1 () -> i32, 2 () -> ().
	sec(secType, []byte{3, 0x60, 1, typeI32, 1, typeI32, 0x60, 0, 1, typeI32, 0x60, 0, 0})
	sec(secImport, nil)
	funcs := []byte{2, 1, 0} // abi version, handle
	if start != nil {
		funcs = []byte{3, 1, 0, 2}
	}
	sec(3, funcs)
	sec(secTable, nil)
	mem := []byte{1, 0}
	sec(5, uleb(mem, uint64(minPages)))
	var exports []byte
	exports = append(exports, 3)
	exports = export(exports, "memory", 2, 0)
	exports = export(exports, "insertfn_abi_version", 0, 0)
	exports = export(exports, "insertfn_handle", 0, 1)
	sec(secExport, exports)
	if start != nil {
		sec(8, []byte{2})
	}
	sec(secElement, nil)
	version := []byte{0, opI32Const, 1, opEnd}
	code := []byte{byte(len(funcs) - 1)}
	for _, b := range [][]byte{version, handle, start} {
		if b != nil {
			code = append(uleb(code, uint64(len(b))), b...)
		}
	}
	sec(10, code)
	sec(secData, nil)
	sec(secCustomID, nil)
	return w.Bytes()
}

func export(b []byte, name string, kind, index byte) []byte {
	b = uleb(b, uint64(len(name)))
	return append(append(b, name...), kind, index)
}

func section(w *bytes.Buffer, id byte, body []byte) {
	w.WriteByte(id)
	w.Write(uleb(nil, uint64(len(body))))
	w.Write(body)
}

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
