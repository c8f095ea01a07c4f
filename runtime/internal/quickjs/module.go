package quickjs

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// engineExport is one of the engine's exports the host calls: the C
// function (QuickJS's C API as quickjs-emscripten wraps it, or libc's) and
// its minified name in the pinned build.
type engineExport struct {
	name    string // the minified export name
	c       string // the C function, as the glue assigns it (c._NAME=b.name)
	params  int    // i32 parameters
	results int    // i32 results (0 or 1)
}

// The exports the host calls, as the pinned glue maps them
// (TestExportsMatchTheGlue checks them against emscripten-module.cjs).
var (
	expCallCtors        = engineExport{"v", "__wasm_call_ctors", 0, 0}
	expMalloc           = engineExport{"w", "malloc", 1, 1}
	expFree             = engineExport{"N", "free", 1, 0}
	expNewRuntime       = engineExport{"L", "QTS_NewRuntime", 0, 1}
	expNewContext       = engineExport{"O", "QTS_NewContext", 2, 1}
	expSetMaxStackSize  = engineExport{"E", "QTS_RuntimeSetMaxStackSize", 2, 0}
	expGetUndefined     = engineExport{"F", "QTS_GetUndefined", 0, 1}
	expFreeValuePointer = engineExport{"Q", "QTS_FreeValuePointer", 2, 0}
	expFreeCString      = engineExport{"T", "QTS_FreeCString", 2, 0}
	expNewString        = engineExport{"$", "QTS_NewString", 2, 1}
	expGetString        = engineExport{"aa", "QTS_GetString", 2, 1}
	expIsJobPending     = engineExport{"ga", "QTS_IsJobPending", 1, 1}
	expExecutePending   = engineExport{"ha", "QTS_ExecutePendingJob", 3, 1}
	expGetPropNumber    = engineExport{"ja", "QTS_GetPropNumber", 3, 1}
	expCall             = engineExport{"na", "QTS_Call", 5, 1}
	expResolveException = engineExport{"oa", "QTS_ResolveException", 2, 1}
	expDump             = engineExport{"pa", "QTS_Dump", 2, 1}
	expEval             = engineExport{"qa", "QTS_Eval", 6, 1}
	expNewFunction      = engineExport{"Ea", "QTS_NewFunction", 5, 1}
	expArgvGet          = engineExport{"Fa", "QTS_ArgvGetJSValueConstPointer", 2, 1}
)

var engineExports = []engineExport{
	expCallCtors, expMalloc, expFree, expNewRuntime, expNewContext, expSetMaxStackSize,
	expGetUndefined, expFreeValuePointer, expFreeCString, expNewString, expGetString,
	expIsJobPending, expExecutePending, expGetPropNumber, expCall, expResolveException,
	expDump, expEval, expNewFunction, expArgvGet,
}

// Module is the engine compiled, ready to start instances: one per host
// (or per runtime.Engine), whatever the JavaScript functions.
type Module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	minPages uint32 // the memory's minimum
}

// Compile prepares the embedded engine (see prepare) and compiles it.
//
// # Parameters
//   - ctx: bounds the compilation.
//   - cache: the compilation cache to compile through (the runtime's, so
//     that a restart loads the engine's machine code instead of compiling
//     it again); nil: none.
//
// # Results
//   - the Module, to Close when its instances are closed;
//   - [ErrNoEngine] in a binary built without the engine, or an error
//     saying how the engine differs from the one this package was written
//     for.
func Compile(ctx context.Context, cache wazero.CompilationCache) (*Module, error) {
	wasm, err := EngineWasm()
	if err != nil {
		return nil, err
	}
	prepared, minPages, err := prepare(wasm)
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfigCompiler()
	if cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*Module, error) {
		_ = rt.Close(ctx)
		return nil, err
	}
	if err := instantiateHost(ctx, rt); err != nil {
		return fail(fmt.Errorf("quickjs: the engine's imports: %w", err))
	}
	compiled, err := rt.CompileModule(ctx, prepared)
	if err != nil {
		return fail(fmt.Errorf("quickjs: compiling the engine: %w", err))
	}
	if err := checkEngine(compiled); err != nil {
		return fail(err)
	}
	return &Module{rt: rt, compiled: compiled, minPages: minPages}, nil
}

// checkEngine checks the compiled engine's imports and exports against the
// tables this package follows, so that another build of the engine is
// refused at once rather than misbehaving.
func checkEngine(m wazero.CompiledModule) error {
	want := make(map[string]hostImport)
	for _, h := range hostImports() {
		want[h.name] = h
	}
	for _, imp := range m.ImportedFunctions() {
		mod, name, _ := imp.Import()
		h, ok := want[name]
		if mod != importModule || !ok {
			return fmt.Errorf("quickjs: the engine imports %s.%s, which this host does not know: is engine/package-lock.json the version this package follows?", mod, name)
		}
		if !sameTypes(imp.ParamTypes(), h.params) || !sameTypes(imp.ResultTypes(), h.results) {
			return fmt.Errorf("quickjs: the engine imports %s.%s (%s) with signature %v -> %v; this host has %v -> %v",
				mod, name, h.glue, imp.ParamTypes(), imp.ResultTypes(), h.params, h.results)
		}
	}
	exports := m.ExportedFunctions()
	for _, e := range engineExports {
		def, ok := exports[e.name]
		if !ok {
			return fmt.Errorf("quickjs: the engine does not export %s (%s)", e.name, e.c)
		}
		if !sameTypes(def.ParamTypes(), i32s(e.params)) || !sameTypes(def.ResultTypes(), i32s(e.results)) {
			return fmt.Errorf("quickjs: the engine exports %s (%s) with signature %v -> %v; this host expects %d i32 -> %d i32",
				e.name, e.c, def.ParamTypes(), def.ResultTypes(), e.params, e.results)
		}
	}
	return nil
}

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = api.ValueTypeI32
	}
	return t
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Close releases the compiled engine and its runtime. Close every Instance
// first.
func (m *Module) Close(ctx context.Context) error {
	return m.rt.Close(ctx)
}
