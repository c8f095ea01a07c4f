package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"

	"github.com/insertfn/insertfn/runtime/internal/loopcheck"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Config configures an Engine. The zero value is ready to use: an in-memory
// compilation cache only.
type Config struct {
	// CacheDir keeps compiled code on disk so that the next start of the same
	// wasm skips compilation. Empty: in memory only.
	CacheDir string
}

// Engine compiles and runs functions. It is safe for concurrent use.
type Engine struct {
	cache wazero.CompilationCache
	wd    *watchdog
	// compiling holds a *sync.Mutex per wasm hash: two Loads of the same
	// wasm compile one after the other, so that the second finds the
	// first's code in the cache instead of compiling it again beside it.
	// wazero 1.12 once panicked in moduleEngine.NewFunction (a compiled
	// module without its function offsets) when several runtimes loaded
	// one wasm at once over a shared on-disk cache, right after a test run
	// had been killed while writing to that cache; which of the two caused
	// it is not known.
	compiling sync.Map
}

// NewEngine returns an Engine.
//
// # Parameters
//   - cfg: the compilation cache to use; see [Config].
//
// # Results
//   - the engine, to Close when no function of it is used any more;
//   - an error when the cache directory cannot be created.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.CacheDir == "" {
		return &Engine{cache: wazero.NewCompilationCache(), wd: newWatchdog()}, nil
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("runtime: compilation cache %s: %w", cfg.CacheDir, err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("runtime: compilation cache %s: %w", cfg.CacheDir, err)
	}
	return &Engine{cache: cache, wd: newWatchdog()}, nil
}

// Close stops the engine's watchdog (time limits are no longer enforced)
// and releases the compilation cache and with it the compiled code of every
// module the engine compiled. Close every Function first.
//
// Compiled code stays in the engine until then: each distinct wasm (each
// function version ever loaded) keeps its machine code in memory. Closing a
// wazero CompiledModule whose code is shared in the cache with other
// Functions of the same wasm crashed wazero 1.12 under concurrent loads
// ("index out of range" in moduleEngine.NewFunction), so insertfn does not.
func (e *Engine) Close(ctx context.Context) error {
	e.wd.close()
	return e.cache.Close(ctx)
}

// Options are what a Function needs besides its wasm.
type Options struct {
	// Name identifies the function in errors and logs.
	Name string
	// Settings is the function's settings, a JSON object (empty: {}).
	Settings []byte
	// Store is where consent lookups go (nil: no stored consent).
	Store consent.Store
	// Limits bound the function; zero fields take defaults.
	Limits Limits
	// TimeEvery says how many calls of [Function.Invoke] share one measure
	// of Result.Duration: one call in TimeEvery is timed, rounded up to a
	// power of two; 0 means DefaultTimeEvery and 1 times every call (for a
	// test run). Timing a call reads the monotonic clock twice, which on a
	// VM costs about as much as an empty call; sampling keeps a duration
	// histogram's shape at a sixteenth of the cost. [Function.InvokeBatch]
	// times every batch.
	TimeEvery int
}

// DefaultTimeEvery is the default of Options.TimeEvery.
const DefaultTimeEvery = 16

// The names under which loopcheck exports the global that stops a guest and
// the module's start function. A guest must not export them (docs/abi.md).
const (
	interruptExport = "insertfn.interrupt"
	startExport     = "insertfn.start"
)

// timeMask returns the mask of Function.timeMask for Options.TimeEvery n:
// a call is timed when the instance's call count masked is zero.
func timeMask(n int) uint32 {
	if n <= 0 {
		n = DefaultTimeEvery
	}
	n = min(n, 1<<30)
	return uint32(1)<<bits.Len32(uint32(n-1)) - 1
}

// Hash returns the identifier of a function version: the hex SHA-256 of its wasm.
func Hash(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// Load compiles one version of a function, checks it against the ABI and
// starts its first instance, so that a module that cannot run is refused
// here rather than on the first event.
//
// # Parameters
//   - ctx: bounds compilation and start-up.
//   - wasm: the module's bytes.
//   - opts: name, settings, consent store and limits.
//
// # Results
//   - the Function, to Close when it is no longer used;
//   - an error that says why the module was refused: it does not compile,
//     imports what the host does not offer, lacks an export the ABI needs,
//     speaks another ABI version, or fails during start-up.
func (e *Engine) Load(ctx context.Context, wasm []byte, opts Options) (*Function, error) {
	name := opts.Name
	if name == "" {
		name = "function"
	}
	settings := opts.Settings
	if len(settings) == 0 {
		settings = []byte("{}")
	}
	if err := checkSettings(settings); err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	limits := opts.Limits.WithDefaults()
	// No WithCloseOnContextDone: the time limit stops a guest through the
	// interrupt global loopcheck adds, which costs a load and a branch per
	// loop iteration instead of a goroutine per call and an exit to Go per
	// loop iteration (RATIONALE.md).
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(limits.MemoryPages)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*Function, error) {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	if err := instantiateHost(ctx, rt); err != nil {
		return fail(err)
	}
	instrumented, err := loopcheck.Instrument(wasm, loopcheck.Names{Interrupt: interruptExport, Start: startExport})
	if errors.Is(err, loopcheck.ErrNoMemory) {
		return fail(fmt.Errorf("does not export its memory as %q: is it built with the insertfn SDK (or does it follow docs/abi.md)?", abi.ExportMemory))
	}
	if err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	hash := Hash(wasm)
	mu, _ := e.compiling.LoadOrStore(hash, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	compiled, err := rt.CompileModule(ctx, instrumented)
	mu.(*sync.Mutex).Unlock()
	if err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	if err := checkModule(compiled); err != nil {
		return fail(err)
	}
	f := &Function{
		name:     name,
		hash:     hash,
		rt:       rt,
		compiled: compiled,
		wd:       e.wd,
		settings: settings,
		store:    opts.Store,
		limits:   limits,
		timeMask: timeMask(opts.TimeEvery),
		reasons:  make(map[string]string),
	}
	if def, ok := compiled.ExportedFunctions()[abi.ExportHandleBatch]; ok {
		if !sameTypes(def.ParamTypes(), nil) || !sameTypes(def.ResultTypes(), []api.ValueType{api.ValueTypeI32}) {
			return fail(fmt.Errorf("exports %s with signature %v -> %v; the ABI says [] -> [i32]",
				abi.ExportHandleBatch, def.ParamTypes(), def.ResultTypes()))
		}
		f.batches = true
	}
	f.pool.freed = make(chan struct{}, limits.PoolSize)
	f.pool.closed = make(chan struct{})
	inst, err := f.acquire(ctx) // the first instance: start-up problems show here
	if err != nil {
		return fail(err)
	}
	f.release(inst)
	return f, nil
}

// checkModule checks a compiled module's imports and exports against the ABI.
func checkModule(m wazero.CompiledModule) error {
	known := make(map[string]hostFunc, len(hostFuncs))
	for _, h := range hostFuncs {
		known[h.name] = h
	}
	for _, imp := range m.ImportedFunctions() {
		mod, name, _ := imp.Import()
		switch mod {
		case abi.ModuleName:
			h, ok := known[name]
			if !ok {
				return fmt.Errorf("imports %s.%s, which this host (ABI version %d) does not offer", mod, name, abi.Version)
			}
			if !sameTypes(imp.ParamTypes(), h.params) || !sameTypes(imp.ResultTypes(), h.results) {
				return fmt.Errorf("imports %s.%s with signature %v -> %v; the ABI says %v -> %v",
					mod, name, imp.ParamTypes(), imp.ResultTypes(), h.params, h.results)
			}
		case wasiModule:
		default:
			return fmt.Errorf("imports %s.%s: only the %q and %q modules are available", mod, name, abi.ModuleName, wasiModule)
		}
	}
	exports := m.ExportedFunctions()
	need := []struct {
		name            string
		params, results []api.ValueType
	}{
		{abi.ExportABIVersion, nil, []api.ValueType{api.ValueTypeI32}},
		{abi.ExportHandle, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	}
	for _, n := range need {
		def, ok := exports[n.name]
		if !ok {
			return fmt.Errorf("does not export %s: is it built with the insertfn SDK (or does it follow docs/abi.md)?", n.name)
		}
		if !sameTypes(def.ParamTypes(), n.params) || !sameTypes(def.ResultTypes(), n.results) {
			return fmt.Errorf("exports %s with signature %v -> %v; the ABI says %v -> %v",
				n.name, def.ParamTypes(), def.ResultTypes(), n.params, n.results)
		}
	}
	if _, ok := m.ExportedMemories()[abi.ExportMemory]; !ok {
		return fmt.Errorf("does not export its memory as %q", abi.ExportMemory)
	}
	return nil
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
