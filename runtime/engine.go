package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"os"
	stdruntime "runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/runtime/internal/loopcheck"
	"github.com/insertfn/insertfn/runtime/internal/wasmlimits"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Config configures an Engine. The zero value is ready to use: an in-memory
// compilation cache, the default memory budget and module limits.
type Config struct {
	// CacheDir keeps compiled code on disk so that the next start of the same
	// wasm skips compilation. Empty: in memory only.
	CacheDir string
	// MemoryBudget bounds, in bytes, the memory of all instances of all
	// the engine's functions together: each instance counts for its memory
	// cap (Limits.MemoryPages) plus [InstanceOverhead] while it exists.
	// When an event needs a new instance and the budget is spent, idle
	// instances of other functions are closed to make room; failing that,
	// the event waits for room up to its time limit (Limits.Timeout, or
	// its context's deadline if sooner), then fails with KindMemoryBudget.
	// 0: [DefaultMemoryBudget]; negative: no budget.
	MemoryBudget int64
	// ModuleLimits bound what a module may be before it is compiled.
	ModuleLimits ModuleLimits
	// CompileTimeout bounds one module's compilation. Default 1 minute;
	// a module within the default ModuleLimits compiles in well under
	// that.
	CompileTimeout time.Duration
}

// DefaultCompileTimeout is the default of Config.CompileTimeout.
const DefaultCompileTimeout = time.Minute

// Engine compiles and runs functions. It is safe for concurrent use.
type Engine struct {
	cache          wazero.CompilationCache
	wd             *watchdog
	budget         *budget
	moduleLimits   ModuleLimits
	compileTimeout time.Duration
	// compileSlots bounds the compilations in progress to half the
	// cores (at least one), so that the rest of the host (ingest, the
	// pipeline) keeps the other half and compilation's memory does not
	// multiply. It also makes two Loads of the same wasm compile one after
	// the other, so that the second finds the first's code in the cache:
	// wazero 1.12 once panicked in moduleEngine.NewFunction (a compiled
	// module without its function offsets) when several runtimes loaded
	// one wasm at once over a shared on-disk cache.
	compileSlots chan struct{}
	// abandoned counts the compilations whose caller gave up (the compile
	// timeout, or its context) and which still run: they have given
	// their slot back, and while maxAbandoned of them run, compile
	// refuses new ones.
	abandoned    atomic.Int32
	maxAbandoned int32
	closeMu      sync.Mutex
	closed       bool // Close was called: the last abandoned compilation closes the cache

	fnsMu sync.Mutex
	fns   map[*Function]struct{} // the functions loaded and not closed, whose idle instances may be reclaimed

	returning atomic.Bool // a returnMemory is under way

	js jsEngine // the JavaScript engine, compiled for the first JavaScript function
}

// returnMemory collects garbage and gives free memory back to the system,
// in the background; calls while one is under way do nothing.
func (e *Engine) returnMemory() {
	if e.returning.Swap(true) {
		return
	}
	go func() {
		debug.FreeOSMemory()
		e.returning.Store(false)
	}()
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
	var cache wazero.CompilationCache
	if cfg.CacheDir == "" {
		cache = wazero.NewCompilationCache()
	} else {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("runtime: compilation cache %s: %w", cfg.CacheDir, err)
		}
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("runtime: compilation cache %s: %w", cfg.CacheDir, err)
		}
	}
	total := cfg.MemoryBudget
	if total == 0 {
		total = DefaultMemoryBudget()
	}
	timeout := cfg.CompileTimeout
	if timeout <= 0 {
		timeout = DefaultCompileTimeout
	}
	slots := max(1, stdruntime.GOMAXPROCS(0)/2)
	return &Engine{
		cache:          cache,
		wd:             newWatchdog(),
		budget:         newBudget(total),
		moduleLimits:   cfg.ModuleLimits.WithDefaults(),
		compileTimeout: timeout,
		compileSlots:   make(chan struct{}, slots),
		maxAbandoned:   int32(2 * slots),
		fns:            make(map[*Function]struct{}),
		js:             jsEngine{lock: make(chan struct{}, 1)},
	}, nil
}

// MemoryBudget returns the engine's memory budget in bytes (0: none) and
// the part of it the instances that exist now take.
func (e *Engine) MemoryBudget() (total, inUse int64) {
	return e.budget.total, e.budget.inUse()
}

// ModuleLimits returns the module limits in force, defaults filled in.
func (e *Engine) ModuleLimits() ModuleLimits { return e.moduleLimits }

// Close stops the engine's watchdog (time limits are no longer enforced)
// and releases the compilation cache and with it the compiled code of every
// module the engine compiled (when compilations abandoned after the
// compile timeout still run, the last of them releases it as it ends).
// Close every Function first.
//
// Compiled code stays in the engine until then: each distinct wasm (each
// function version ever loaded) keeps its machine code in memory. Closing a
// wazero CompiledModule whose code is shared in the cache with other
// Functions of the same wasm crashed wazero 1.12 under concurrent loads
// ("index out of range" in moduleEngine.NewFunction), so insertfn does not.
func (e *Engine) Close(ctx context.Context) error {
	e.wd.close()
	jsErr := e.closeJS(ctx)
	e.closeMu.Lock()
	e.closed = true
	running := e.abandoned.Load()
	e.closeMu.Unlock()
	if running > 0 {
		// wazero crashes when a compilation ends in a closed cache: the
		// last abandoned compilation closes it when it ends.
		return jsErr
	}
	return errors.Join(jsErr, e.cache.Close(ctx))
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
	// Language says what the code is: a WebAssembly module (the zero
	// value) or a JavaScript file.
	Language Language
	// File is the name of a JavaScript function's file, which its syntax
	// errors and stack traces show (default NAME.js).
	File string
	// Fetch says where a JavaScript function's fetch may go (by default
	// nowhere). A WebAssembly module cannot fetch: its Fetch must be
	// zero.
	Fetch FetchPolicy
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
// A JavaScript function (opts.Language) is a file, not a module: the
// Engine's JavaScript engine is compiled on the first such Load (through
// the compilation cache, once per Engine) and the first instance evaluates
// the file.
//
// # Parameters
//   - ctx: bounds compilation and start-up.
//   - wasm: the module's bytes, or the JavaScript file's text.
//   - opts: name, language, settings, consent store and limits.
//
// # Results
//   - the Function, to Close when it is no longer used;
//   - an error that says why the module was refused: it does not compile,
//     imports what the host does not offer, lacks an export the ABI needs,
//     speaks another ABI version, or fails during start-up; for a
//     JavaScript file, a syntax error or an exception at its top level
//     (FILE:LINE: SyntaxError: ...), or a binary built without the engine
//     (the error names make js-engine).
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
	switch opts.Language {
	case WebAssembly:
		if len(opts.Fetch.Allow) > 0 {
			return nil, fmt.Errorf("function %s: fetch.allow: only a JavaScript function fetches; a WebAssembly module reaches the host through the ABI's host functions", name)
		}
	case JavaScript:
		return e.loadJS(ctx, wasm, opts, name, settings, limits)
	default:
		return nil, fmt.Errorf("function %s: %v is not a language this host runs (WebAssembly or JavaScript)", name, opts.Language)
	}
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return nil, fmt.Errorf("function %s: not a WebAssembly module (it does not begin with \\0asm): build it with insertfn build, or, for a JavaScript file, name it .js or set the manifest's runtime: js", name)
	}
	if err := e.checkModule(wasm, limits); err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	// No WithCloseOnContextDone: the time limit stops a guest through the
	// interrupt global loopcheck adds, which costs a load and a branch per
	// loop iteration instead of a goroutine per call and an exit to Go per
	// loop iteration (RATIONALE.md).
	//
	// No WithMemoryLimitPages: wazero's limit stays the 4 GiB of the
	// address space, and each instance's linearMemory enforces the cap,
	// so that it sees the grows it refuses (checkModule refused a module
	// whose memory starts above the cap).
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	keepRT := false // an abandoned compilation closes rt when it ends
	fail := func(err error) (*Function, error) {
		if !keepRT {
			_ = rt.Close(ctx)
		}
		var ferr *Error
		if errors.As(err, &ferr) { // it names the function already
			return nil, err
		}
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	if err := instantiateHost(ctx, rt); err != nil {
		return fail(err)
	}
	instrumented, err := loopcheck.Instrument(wasm, loopcheck.Options{Interrupt: interruptExport, Start: startExport, MaxBlocks: e.moduleLimits.MaxFunctionBlocks, RefuseTableGrow: true})
	if errors.Is(err, loopcheck.ErrNoMemory) {
		return fail(fmt.Errorf("does not export its memory as %q: is it built with the insertfn SDK (or does it follow docs/abi.md)?", abi.ExportMemory))
	}
	var blocks *loopcheck.BlocksError
	if errors.As(err, &blocks) {
		return fail(moduleLimitError("FunctionBlocks", blocks.Error()))
	}
	if err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	hash := Hash(wasm)
	compiled, err := e.compile(ctx, rt, instrumented)
	if errors.Is(err, errCompileAbandoned) {
		keepRT = true
	}
	if err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	if err := checkABI(compiled); err != nil {
		return fail(err)
	}
	f := &Function{
		name:     name,
		hash:     hash,
		rt:       rt,
		compiled: compiled,
		engine:   e,
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
	e.register(f)
	inst, err := f.acquire(ctx) // the first instance: start-up problems show here
	if err != nil {
		e.unregister(f)
		return fail(err)
	}
	f.release(inst)
	return f, nil
}

// checkModule checks a module against the engine's module limits and its
// memory minimum against the function's cap, before anything is
// allocated for it.
func (e *Engine) checkModule(wasm []byte, limits Limits) error {
	ml := e.moduleLimits
	err := wasmlimits.Check(wasm, wasmlimits.Limits{
		ModuleBytes: ml.MaxModuleBytes, CodeBytes: ml.MaxCodeBytes, FunctionBytes: ml.MaxFunctionBytes,
		Functions: ml.MaxFunctions, Locals: ml.MaxLocals, Tables: ml.MaxTables,
		TableElements: ml.MaxTableElements, SectionItems: ml.MaxSectionItems,
		MemoryPages: limits.MemoryPages,
	})
	var lim *wasmlimits.Error
	if !errors.As(err, &lim) {
		return err
	}
	switch lim.Limit {
	case "":
		return fmt.Errorf("compile: %s", lim.Msg)
	case "MemoryPages":
		return fmt.Errorf("%s: raise the manifest's limits.memory_pages, or build the module with a smaller initial memory", lim.Msg)
	}
	return moduleLimitError(lim.Limit, lim.Msg)
}

// moduleLimitError is the error for a module that breaks the module limit
// Max+limit, msg saying how.
func moduleLimitError(limit, msg string) error {
	name := "Max" + limit // ModuleLimits' field
	return fmt.Errorf("module limit %s: %s: shrink the module, or raise the limit (runtime.%s in the configuration file, ModuleLimits.%s in Go; docs/abi.md)",
		name, msg, snakeCase(name), name)
}

// snakeCase writes a Go field name as its configuration key:
// MaxModuleBytes is max_module_bytes.
func snakeCase(field string) string {
	var b []byte
	for i := 0; i < len(field); i++ {
		c := field[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b = append(b, '_')
			}
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// errCompileAbandoned is compile's error when it stopped waiting for a
// compilation, which goes on in the background and then closes the runtime.
var errCompileAbandoned = errors.New("compilation abandoned")

// compile compiles a module in one of the engine's compilation slots,
// within the engine's compile timeout and ctx. A compilation cannot be
// interrupted: when the time is up (or ctx ends) compile gives the slot
// back, so that later compilations do not wait for it, and returns an
// error wrapping errCompileAbandoned; the compilation goes on in the
// background and closes rt when it ends. While maxAbandoned such
// compilations run, compile refuses to start another (each takes a core
// and memory). Memory a large compilation leaves behind is given back to
// the system.
func (e *Engine) compile(ctx context.Context, rt wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
	if n := e.abandoned.Load(); n >= e.maxAbandoned {
		return nil, fmt.Errorf("%d compilations that took longer than %s (runtime.Config.CompileTimeout) are still running: try again when they end (a module whose compilation does not end in time is refused; shrink its largest functions)", n, e.compileTimeout)
	}
	select {
	case e.compileSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another compilation to end: %w", ctx.Err())
	}
	type result struct {
		m   wazero.CompiledModule
		err error
	}
	done := make(chan result, 1)
	var decide sync.Mutex // held by whoever decides: the compilation's end or the caller giving up
	gone := false
	go func() {
		m, err := rt.CompileModule(context.WithoutCancel(ctx), wasm)
		if len(wasm) >= 1<<20 || err != nil {
			debug.FreeOSMemory() // the compiler's garbage, hundreds of MB for a large module
		}
		decide.Lock()
		defer decide.Unlock()
		if gone { // the caller gave the slot back
			_ = rt.Close(context.Background())
			e.closeMu.Lock()
			if e.abandoned.Add(-1) == 0 && e.closed {
				_ = e.cache.Close(context.Background())
			}
			e.closeMu.Unlock()
			return
		}
		<-e.compileSlots
		done <- result{m, err}
	}()
	timer := time.NewTimer(e.compileTimeout)
	defer timer.Stop()
	var why error
	select {
	case r := <-done:
		return r.m, r.err
	case <-timer.C:
		why = fmt.Errorf("took longer than %s (runtime.Config.CompileTimeout): %w", e.compileTimeout, errCompileAbandoned)
	case <-ctx.Done():
		why = fmt.Errorf("%w: %w", ctx.Err(), errCompileAbandoned)
	}
	decide.Lock()
	defer decide.Unlock()
	select {
	case r := <-done: // it ended meanwhile
		return r.m, r.err
	default:
	}
	gone = true
	e.abandoned.Add(1)
	<-e.compileSlots
	return nil, why
}

// register adds a loaded function to those whose idle instances the
// budget may reclaim; unregister removes it.
func (e *Engine) register(f *Function) {
	e.fnsMu.Lock()
	e.fns[f] = struct{}{}
	e.fnsMu.Unlock()
}

func (e *Engine) unregister(f *Function) {
	e.fnsMu.Lock()
	delete(e.fns, f)
	e.fnsMu.Unlock()
}

// reclaim closes one idle instance of a function other than except, to
// give its memory back to the budget. It reports whether it found one.
func (e *Engine) reclaim(except *Function) bool {
	e.fnsMu.Lock()
	fns := make([]*Function, 0, len(e.fns))
	for f := range e.fns {
		if f != except {
			fns = append(fns, f)
		}
	}
	e.fnsMu.Unlock()
	for _, f := range fns {
		if f.dropIdle() {
			return true
		}
	}
	return false
}

// checkABI checks a compiled module's imports and exports against the ABI.
func checkABI(m wazero.CompiledModule) error {
	for _, imp := range m.ImportedFunctions() {
		mod, name, _ := imp.Import()
		switch mod {
		case abi.ModuleName:
			h, ok := hostSigs[name]
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
