package loopcheck

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/insertfn/insertfn/runtime/internal/wasmbin"
)

const flag = "insertfn.interrupt"

var names = Options{Interrupt: flag, Start: "insertfn.start"}

// module assembles a module from sections (id, body).
func module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s[0])
		out = appendU32(out, uint32(len(s)-1))
		out = append(out, s[1:]...)
	}
	return out
}

// spinModule exports "spin", a function that loops forever, and "count",
// which loops n times (an i32 parameter) and returns n. withGlobal gives it
// a global section of its own (without, Instrument must add the section).
func spinModule(withGlobal bool) []byte {
	types := []byte{1, 2, 0x60, 0, 0, 0x60, 1, 0x7F, 1, 0x7F} // () -> (), (i32) -> i32
	funcs := []byte{3, 2, 0, 1}
	exports := []byte{7, 2, 4, 's', 'p', 'i', 'n', 0, 0, 5, 'c', 'o', 'u', 'n', 't', 0, 1}
	spin := []byte{0, 0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B} // loop br 0 end end
	// local 1 counts up to local 0:
	// loop
	//   local.get 1; i32.const 1; i32.add; local.tee 1; local.get 0; i32.lt_u; br_if 0
	// end
	// local.get 1
	count := []byte{1, 1, 0x7F,
		0x03, 0x40,
		0x20, 1, 0x41, 1, 0x6A, 0x22, 1, 0x20, 0, 0x49, 0x0D, 0,
		0x0B,
		0x20, 1, 0x0B}
	code := []byte{10, 2}
	code = appendU32(code, uint32(len(spin)))
	code = append(code, spin...)
	code = appendU32(code, uint32(len(count)))
	code = append(code, count...)
	secs := [][]byte{types, funcs, {5, 1, 0, 1}} // one memory of one page
	if withGlobal {
		secs = append(secs, []byte{6, 1, 0x7F, 0x01, 0x41, 0x07, 0x0B}) // (global (mut i32) (i32.const 7))
	}
	secs = append(secs, exports, code)
	return module(secs...)
}

func instantiate(t *testing.T, wasm []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { _ = rt.Close(ctx) })
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate the instrumented module: %v", err)
	}
	return mod
}

func TestInterruptStopsAnEndlessLoop(t *testing.T) {
	for _, withGlobal := range []bool{false, true} {
		out, err := Instrument(spinModule(withGlobal), names)
		if err != nil {
			t.Fatal(err)
		}
		mod := instantiate(t, out)
		g, ok := mod.ExportedGlobal(flag).(api.MutableGlobal)
		if !ok {
			t.Fatalf("global %q: not exported as a mutable global", flag)
		}
		if withGlobal { // the module's own global keeps its index and value
			if got := mod.ExportedGlobal(flag).Get(); got != 0 {
				t.Errorf("interrupt global starts at %d, want 0", got)
			}
		}
		// The instrumented loop still computes what it did.
		res, err := mod.ExportedFunction("count").Call(context.Background(), 1000)
		if err != nil || res[0] != 1000 {
			t.Fatalf("count(1000) = %v, %v; want 1000", res, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := mod.ExportedFunction("spin").Call(context.Background())
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("spin returned before the interrupt: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		g.Set(1)
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("spin after the interrupt: %v, want an unreachable trap", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("spin kept running after the interrupt")
		}
	}
}

func TestDeterministicAndKeepsOtherSections(t *testing.T) {
	in := spinModule(true)
	a, err := Instrument(in, names)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Instrument(in, names)
	if !bytes.Equal(a, b) {
		t.Error("two rewrites of one module differ: a compilation cache keyed by bytes would miss")
	}
	if !bytes.Equal(in, spinModule(true)) {
		t.Error("Instrument changed its input")
	}
	// A custom section survives, a DWARF one is dropped.
	custom := append([]byte{0, 4, 'n', 'o', 't', 'e'}, "kept"...)
	dwarf := append([]byte{0, 11}, ".debug_info"...)
	out, err := Instrument(append(append(spinModule(false), sectionBytes(custom)...), sectionBytes(dwarf)...), names)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("notekept")) || bytes.Contains(out, []byte(".debug_info")) {
		t.Errorf("custom sections: want the note kept and .debug_info dropped")
	}
	instantiate(t, out)
}

func sectionBytes(s []byte) []byte {
	out := []byte{s[0]}
	out = appendU32(out, uint32(len(s)-1))
	return append(out, s[1:]...)
}

func TestRefusals(t *testing.T) {
	clash := module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1}, append([]byte{7, 1, byte(len(flag))}, append([]byte(flag), 0, 0)...),
		[]byte{10, 1, 2, 0, 0x0B})
	for name, in := range map[string][]byte{
		"not wasm":       []byte("hello, world"),
		"version 2":      []byte("\x00asm\x02\x00\x00\x00"),
		"truncated":      spinModule(true)[:30],
		"export clash":   clash,
		"unknown opcode": module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1}, []byte{10, 1, 3, 0, 0xFF, 0x0B}),
		"no memory":      module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{10, 1, 2, 0, 0x0B}),
		// global.set 0 without globals: it would set the fuel once added.
		"global past the module's": module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1}, []byte{10, 1, 6, 0, 0x41, 5, 0x24, 0, 0x0B}),
		"export of a global past the module's": module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1},
			[]byte{7, 1, 1, 'g', 3, 0}, []byte{10, 1, 2, 0, 0x0B}),
		"section overrun": append([]byte("\x00asm\x01\x00\x00\x00"), 1, 100, 0),
	} {
		if _, err := Instrument(in, names); err == nil || !strings.HasPrefix(err.Error(), "loopcheck: ") {
			t.Errorf("%s: err = %v, want a loopcheck error", name, err)
		}
	}
}

// FuzzInstrument: whatever the input, Instrument returns an error or a
// module; when wazero accepts the input, it accepts the output too.
func FuzzInstrument(f *testing.F) {
	f.Add(spinModule(true))
	f.Add(spinModule(false))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Instrument(in, names)
		if !plausible(in) {
			return // wazero would allocate what the counts claim and run out of memory
		}
		if _, cerr := rt.CompileModule(ctx, in); cerr != nil {
			return
		}
		if err != nil {
			if strings.Contains(err.Error(), "already exports") || strings.Contains(err.Error(), "no memory") {
				return
			}
			t.Fatalf("wazero compiles the input but Instrument refuses it: %v", err)
		}
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("wazero compiles the input but not the output: %v", err)
		}
	})
}

// plausible reports whether no section of in claims more elements than it
// has bytes (wazero 1.12 allocates for the claimed count before decoding, so
// the fuzzer would find its memory limit, not our bugs).
func plausible(in []byte) bool {
	if len(in) < 8 {
		return true
	}
	r := reader{wasmbin.Reader{B: in, Pos: 8}}
	for !r.Done() {
		id, err := r.Byte()
		if err != nil {
			return true
		}
		size, err := r.U32()
		if err != nil {
			return true
		}
		body := r.B[r.Pos:min(len(r.B), r.Pos+int(size))] // a truncated one too
		r.Pos += len(body)
		if id == 0 || len(body) == 0 {
			continue
		}
		br := reader{wasmbin.Reader{B: body}}
		if n, err := br.U32(); err == nil && int64(n) > int64(len(in)) {
			return false
		}
	}
	return true
}

// runUntilInterrupted calls fn in mod, raises the flag after a while and
// checks that the call ends in the interrupt's trap.
func runUntilInterrupted(t *testing.T, mod api.Module, fn string, params ...uint64) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction(fn).Call(context.Background(), params...)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("%s returned before the interrupt: %v", fn, err)
	case <-time.After(20 * time.Millisecond):
	}
	mod.ExportedGlobal(flag).(api.MutableGlobal).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("%s after the interrupt: %v, want an unreachable trap", fn, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s kept running after the interrupt", fn)
	}
}

// TestInterruptStopsCallTrees: work without a loop (a recursion of depth
// n making 2^n calls) spends fuel at each function entry.
func TestInterruptStopsCallTrees(t *testing.T) {
	// (func $rec (param i32) (if (local.get 0) (then
	//   (call $rec (i32.sub (local.get 0) (i32.const 1)))
	//   (call $rec (i32.sub (local.get 0) (i32.const 1))))))
	rec := []byte{0, 0x20, 0, 0x04, 0x40,
		0x20, 0, 0x41, 1, 0x6B, 0x10, 0,
		0x20, 0, 0x41, 1, 0x6B, 0x10, 0,
		0x0B, 0x0B}
	wasm := module([]byte{1, 1, 0x60, 1, 0x7F, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1},
		[]byte{7, 1, 3, 'r', 'e', 'c', 0, 0}, append([]byte{10, 1, byte(len(rec))}, rec...))
	out, err := Instrument(wasm, names)
	if err != nil {
		t.Fatal(err)
	}
	runUntilInterrupted(t, instantiate(t, out), "rec", 60)
}

// TestStartFunctionMovedOut: a start function that never returns would
// hang instantiation; Instrument exports it instead, and the flag stops it.
func TestStartFunctionMovedOut(t *testing.T) {
	spin := []byte{0, 0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B}
	wasm := module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1},
		[]byte{8, 0}, append([]byte{10, 1, byte(len(spin))}, spin...))
	out, err := Instrument(wasm, names)
	if err != nil {
		t.Fatal(err)
	}
	mod := instantiate(t, out) // returns: the start section is gone
	if mod.ExportedFunction(names.Start) == nil {
		t.Fatalf("the start function is not exported as %q", names.Start)
	}
	runUntilInterrupted(t, mod, names.Start)
}

// TestBulkOperationsSpendFuelByLength: a loop whose body copies 64 KiB
// spends 16 units per iteration on the copy, so it reaches the check 17
// times sooner than an empty loop.
func TestBulkOperationsSpendFuelByLength(t *testing.T) {
	// (global $n (mut i32)) (loop (global.set $n (i32.add (global.get $n) (i32.const 1)))
	//   (memory.copy (i32.const 0) (i32.const 0) (i32.const 65536)) (br 0))
	body := []byte{0, 0x03, 0x40,
		0x23, 0, 0x41, 1, 0x6A, 0x24, 0,
		0x41, 0, 0x41, 0, 0x41, 0x80, 0x80, 0x04, 0xFC, 10, 0, 0,
		0x0C, 0, 0x0B, 0x0B}
	wasm := module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1},
		[]byte{6, 1, 0x7F, 1, 0x41, 0, 0x0B},
		[]byte{7, 2, 4, 'c', 'o', 'p', 'y', 0, 0, 1, 'n', 3, 0},
		append([]byte{10, 1, byte(len(body))}, body...))
	out, err := Instrument(wasm, names)
	if err != nil {
		t.Fatal(err)
	}
	mod := instantiate(t, out)
	mod.ExportedGlobal(flag).(api.MutableGlobal).Set(1) // stop at the first check
	if _, err := mod.ExportedFunction("copy").Call(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("copy: %v, want the interrupt's trap", err)
	}
	// The entry spends 1, each iteration 1 + 65536>>12 = 17.
	if n, want := mod.ExportedGlobal("n").Get(), uint64((FuelPerYield-1)/17+1); n != want {
		t.Errorf("%d iterations before the check, want %d", n, want)
	}
}

func TestImmediates(t *testing.T) {
	for _, c := range []struct {
		code []byte
		next int // where the next instruction starts
	}{
		{[]byte{0xD4, 0x03}, 1},             // ref.as_non_null has no immediate
		{[]byte{0xD5, 0x03, 0x0B}, 2},       // br_on_null has a label
		{[]byte{0xD6, 0x83, 0x01}, 3},       // br_on_non_null, a two-byte label
		{[]byte{0xFD, 0x0C, 0x03}, 18},      // v128.const: 16 bytes
		{[]byte{0xFC, 0x0A, 0, 0}, 4},       // memory.copy: two memory indices
		{[]byte{0x1F, 0x40, 1, 0, 0, 0}, 6}, // try_table: one catch (tag 0, label 0)
	} {
		code := append(c.code, make([]byte, 20)...)
		r := reader{wasmbin.Reader{B: code}}
		op, _ := r.Byte()
		if err := r.immediates(op); err != nil || r.Pos != c.next {
			t.Errorf("% x: next instruction at %d (%v), want %d", c.code, r.Pos, err, c.next)
		}
	}
}
