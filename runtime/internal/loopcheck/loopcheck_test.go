package loopcheck

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

const flag = "insertfn.interrupt"

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
		out, err := Instrument(spinModule(withGlobal), flag)
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
	a, err := Instrument(in, flag)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Instrument(in, flag)
	if !bytes.Equal(a, b) {
		t.Error("two rewrites of one module differ: a compilation cache keyed by bytes would miss")
	}
	if !bytes.Equal(in, spinModule(true)) {
		t.Error("Instrument changed its input")
	}
	// A custom section survives, a DWARF one is dropped.
	custom := append([]byte{0, 4, 'n', 'o', 't', 'e'}, "kept"...)
	dwarf := append([]byte{0, 11}, ".debug_info"...)
	out, err := Instrument(append(append(spinModule(false), sectionBytes(custom)...), sectionBytes(dwarf)...), flag)
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
		"not wasm":        []byte("hello, world"),
		"version 2":       []byte("\x00asm\x02\x00\x00\x00"),
		"truncated":       spinModule(true)[:30],
		"export clash":    clash,
		"unknown opcode":  module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{5, 1, 0, 1}, []byte{10, 1, 3, 0, 0xFF, 0x0B}),
		"no memory":       module([]byte{1, 1, 0x60, 0, 0}, []byte{3, 1, 0}, []byte{10, 1, 2, 0, 0x0B}),
		"section overrun": append([]byte("\x00asm\x01\x00\x00\x00"), 1, 100, 0),
	} {
		if _, err := Instrument(in, flag); err == nil || !strings.HasPrefix(err.Error(), "loopcheck: ") {
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
		out, err := Instrument(in, flag)
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
	r := reader{b: in, pos: 8}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return true
		}
		size, err := r.u32()
		if err != nil {
			return true
		}
		body := r.b[r.pos:min(len(r.b), r.pos+int(size))] // a truncated one too
		r.pos += len(body)
		if id == 0 || len(body) == 0 {
			continue
		}
		br := reader{b: body}
		if n, err := br.u32(); err == nil && int64(n) > int64(len(in)) {
			return false
		}
	}
	return true
}
