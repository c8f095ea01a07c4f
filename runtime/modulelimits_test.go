package runtime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/wasmtest"
)

// TestModuleLimits: a module past one of the Engine's module limits is
// refused before compilation, with an error that names the limit; the
// same module loads under the defaults.
func TestModuleLimits(t *testing.T) {
	wasm := wasmtest.GrowAndTouch(1) // 3 functions, one with a local, code of 40-odd bytes
	cases := []struct {
		limits runtime.ModuleLimits
		want   string
	}{
		{runtime.ModuleLimits{MaxModuleBytes: 64}, "module limit MaxModuleBytes: the module is"},
		{runtime.ModuleLimits{MaxCodeBytes: 20}, "module limit MaxCodeBytes: the code section is"},
		{runtime.ModuleLimits{MaxFunctionBytes: 10}, "module limit MaxFunctionBytes: function body 1 is"},
		{runtime.ModuleLimits{MaxFunctions: 1}, "module limit MaxFunctions: the module has 2 functions"},
		{runtime.ModuleLimits{MaxSectionItems: 2}, "module limit MaxSectionItems: section type has 3 entries"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			e, err := runtime.NewEngine(runtime.Config{ModuleLimits: c.limits})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close(context.Background())
			f, err := e.Load(context.Background(), wasm, runtime.Options{Name: "limited"})
			if err == nil {
				f.Close(context.Background())
				t.Fatal("Load succeeded, want the limit broken")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "raise the limit") {
				t.Errorf("Load: %v, want %q and what to do", err, c.want)
			}
		})
	}
	f, err := engine(t).Load(context.Background(), wasm, runtime.Options{Name: "within"})
	if err != nil {
		t.Fatalf("Load under the default limits: %v", err)
	}
	f.Close(context.Background())
}

// TestModuleRefusedBeforeAllocation: modules whose counts announce more
// than their bytes hold, or a memory above the cap, are refused by the
// check that runs before the engine decodes them.
func TestModuleRefusedBeforeAllocation(t *testing.T) {
	hdr := "\x00asm\x01\x00\x00\x00"
	cases := []struct {
		name string
		wasm []byte
		want string
	}{
		{"31 MiB of zeros", wasmtest.Oversized(31 << 20), "malformed module: a custom section of 0 bytes without a name"},
		{"four billion functions in 6 bytes", []byte(hdr + "\x03\x05\xff\xff\xff\xff\x0f"), "section function announces 4294967295 entries in 0 bytes"},
		{"a section longer than the module", []byte(hdr + "\x01\x7f\x00"), "section type: 127 bytes announced"},
		{"a memory of 4096 pages under a cap of 512", []byte(hdr + "\x05\x04\x01\x00\x80\x20"), "memory starts at 4096 pages of 64 KiB; the function's memory cap is 512 pages"},
		{"a billion locals", []byte(hdr + "\x03\x02\x01\x00\x0a\x0a\x01\x08\x01\x80\x94\xeb\xdc\x03\x7f\x0b"), "module limit MaxLocals: function body 0 declares more than 50000 locals"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := engine(t).Load(context.Background(), c.wasm, runtime.Options{Name: "refused", Limits: runtime.Limits{MemoryPages: 512}})
			if err == nil {
				f.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load: %v, want %q", err, c.want)
			}
		})
	}
}

// TestHugeCountsRefused: a count or a length inside a section's entry (an
// element or data segment, an export or import name, a function type, the
// name section) that the module's bytes cannot hold is refused by the
// check before the engine's decoder allocates for it; wazero's would ask
// for up to 2^32-1 items and the process would die.
func TestHugeCountsRefused(t *testing.T) {
	for _, c := range wasmtest.HugeCounts() {
		t.Run(c.Name, func(t *testing.T) {
			f, err := engine(t).Load(context.Background(), c.Wasm, runtime.Options{Name: "crafted"})
			if err == nil {
				f.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), "function crafted: compile: malformed module: ") {
				t.Errorf("Load: %v, want the module check's refusal", err)
			}
		})
	}
}
