package quickjs

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"github.com/tidwall/gjson"
)

// prelude is evaluated in every instance before the function's file: the
// error classes, console and the dispatcher.
//
//go:embed prelude.js
var prelude string

// web is the web platform's parts Segment's functions use (fetch, Headers,
// Request, Response, URL, URLSearchParams, btoa, atob, ...), which the
// prelude evaluates when the function first touches one of them.
//
//go:embed web.js
var web string

// bindScript is evaluated after the function's file; %s is the settings,
// a JSON object, which is a JavaScript expression; %d the log limit.
const bindScript = `__insertfn_bind({
  onTrack: typeof onTrack === "function" ? onTrack : undefined,
  onIdentify: typeof onIdentify === "function" ? onIdentify : undefined,
  onPage: typeof onPage === "function" ? onPage : undefined,
  onScreen: typeof onScreen === "function" ? onScreen : undefined,
  onGroup: typeof onGroup === "function" ? onGroup : undefined,
  onAlias: typeof onAlias === "function" ? onAlias : undefined,
  onDelete: typeof onDelete === "function" ? onDelete : undefined,
}, %s, %d)`

// Source is a JavaScript function as Segment's users write it: a file
// that declares handlers (onTrack, onIdentify, ...), and its settings.
type Source struct {
	// Name is the file's name, which errors and stack traces show.
	Name string
	// Code is the file's text.
	Code []byte
	// Settings is a JSON object, the handlers' second argument (empty: {}).
	Settings []byte
}

// Limits bound one instance.
type Limits struct {
	// MemoryPages caps the instance's linear memory, in 64 KiB pages.
	MemoryPages uint32
	// MaxLogBytes bounds the text of the console lines one event keeps.
	MaxLogBytes int
	// MaxEventBytes bounds the event a handler returns, as JSON.
	MaxEventBytes int
	// Memory, when set, is the instance's linear memory (one per
	// instance), which must refuse to grow past MemoryPages; nil: a slice
	// of the Go heap that grows up to MemoryPages.
	Memory Memory
}

// Memory is an instance's linear memory as its caller provides it: the
// allocator wazero asks for the memory, which grows it up to its cap and
// notes the grows it refuses, by which a failure is known to be memory
// exhaustion.
type Memory interface {
	experimental.MemoryAllocator
	// RefusedGrow returns the largest size in bytes a grow past the cap
	// asked for since the last ResetRefused, 0 if none.
	RefusedGrow() uint64
	// ResetRefused forgets the grows refused so far (each event starts
	// afresh).
	ResetRefused()
	// Free releases the memory; it is called once the instance is closed
	// and may be called again.
	Free()
}

// Result is what a handler decided about one event.
type Result struct {
	// Verdict is the host's verdict, as the Go SDK's errors map to it:
	// deliver, DropEvent, EventNotSupported, ... or FunctionError for any
	// other exception.
	Verdict abi.Result
	// Reason is the error's message; for a FunctionError, its name and
	// message (TypeError: ...).
	Reason string
	// Event is the event that flows on (Verdict Deliver): the handler's
	// return value when it is an object, else its argument as the handler
	// left it; JSON. An event the handler did not change is the event
	// Handle was given, not a copy.
	Event []byte
	// Modified reports that Event is not the event Handle was given: the
	// handler changed it (a set or delete at any depth) or returned
	// another object.
	Modified bool
	// Logs are the console's lines.
	Logs []Log
	// LogsCut reports that lines past Limits.MaxLogBytes were dropped.
	LogsCut bool
	// Forbidden is the error of the event's first fetch of a URL the
	// function may not fetch, "" if none. The handler saw it as a
	// TypeError and may have caught it; the event fails all the same,
	// since the function's configuration (or the function) is wrong.
	Forbidden string
}

// Log is one console line.
type Log struct {
	Level   abi.Level
	Message string
}

// FailureKind says why an instance failed; the names are runtime.ErrorKind's.
type FailureKind string

// Failure kinds.
const (
	Timeout       FailureKind = "Timeout"       // the event's context ended (its time limit) before the handler did
	MemoryLimit   FailureKind = "MemoryLimit"   // the engine ran out of the memory cap
	Trap          FailureKind = "Trap"          // the engine trapped or gave up (abort, assertion)
	GuestExit     FailureKind = "GuestExit"     // the engine exited
	EventTooLarge FailureKind = "EventTooLarge" // the returned event is larger than Limits.MaxEventBytes
)

// Failure is an instance's failure on one event. The instance cannot be
// used again: close it and start another.
type Failure struct {
	Kind    FailureKind
	Message string
	Err     error
}

func (f *Failure) Error() string { return string(f.Kind) + ": " + f.Message }
func (f *Failure) Unwrap() error { return f.Err }

// LoadError is the error of a function's file that does not evaluate: a
// syntax error, or an exception at its top level.
type LoadError struct {
	File    string // the file's name
	Line    int    // the line the engine blames, 0 if none
	Message string // the exception: "SyntaxError: unexpected token in expression: '}'"
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return e.File + ": " + e.Message
}

// ErrUnusable is the error of Handle on an instance that failed before.
var ErrUnusable = errors.New("quickjs: the instance failed on an earlier event: close it and start another")

// Instance is one engine instance with one function evaluated in it: one
// JavaScript runtime and context, reused across events. It handles one event
// at a time.
type Instance struct {
	mod       api.Module
	mem       api.Memory
	memory    Memory
	interrupt api.MutableGlobal
	ctx       *instanceContext
	output    headBuffer
	limits    Limits
	fns       map[string]api.Function
	stack     [8]uint64
	unusable  bool

	// The time limit: the context's AfterFunc sets the interrupt flag if
	// the call that armed it is still running (gen has not moved on).
	mu    sync.Mutex
	gen   uint64
	fired bool

	// Pointers into the engine.
	rtPtr, ctxPtr             uint32 // JSRuntime*, JSContext*
	undefined                 uint32 // JSValueConst*
	dispatch, take, takeLogs  uint32 // JSValue*
	argv                      uint32 // JSValueConst*[1]
	scratch                   uint32 // 4 bytes for an out parameter
	buf, bufCap               uint32 // a buffer for the event's text
	callCtors, malloc, free   api.Function
	newString, getString      api.Function
	freeValue, freeCString    api.Function
	isJobPending, executeJobs api.Function
	call, resolveException    api.Function
	argvGet, newFunction      api.Function

	// event is the event being handled, which the host functions read.
	event []byte
	// hostFns are the host functions JavaScript calls, by id.
	hostFns []func(argc, argv uint32) (uint32, error)
	// host answers the consent calls (nil: no consent is stored), and
	// consentBuf and consentOut are their buffers.
	host                   Host
	consentBuf, consentOut []byte
	// fetcher does fetch's requests (nil: none is allowed); forbidden is
	// the error of the event's first request to a URL not allowed.
	fetcher   Fetcher
	forbidden string
}

// NewInstance starts an instance of the engine and evaluates the function's
// file in it, under ctx's deadline (the start-up time limit).
//
// # Parameters
//   - ctx: its deadline, or its end, stops the start-up.
//   - src: the function's file and settings.
//   - limits: the memory cap and log limit.
//
// # Results
//   - the Instance, to Close;
//   - a *LoadError for a file that does not evaluate, naming its line; a
//     *Failure for a start-up that ran out of time or memory.
func (m *Module) NewInstance(ctx context.Context, src Source, limits Limits) (*Instance, error) {
	if limits.MemoryPages < m.minPages {
		return nil, fmt.Errorf("quickjs: a memory cap of %d pages is below the engine's %d pages (%d MiB) at start: raise the function's memory limit",
			limits.MemoryPages, m.minPages, m.minPages/16)
	}
	settings := src.Settings
	if len(settings) == 0 {
		settings = []byte("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(settings, &obj); err != nil {
		return nil, fmt.Errorf("quickjs: the settings are not a JSON object: %w", err)
	}
	inst := &Instance{memory: limits.Memory, limits: limits}
	if inst.memory == nil {
		inst.memory = &cappedMemory{limit: uint64(limits.MemoryPages) * 65536}
	}
	inst.ctx = &instanceContext{inst: inst}
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	mod, err := m.rt.InstantiateModule(experimental.WithMemoryAllocator(inst.ctx, inst.memory), m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("quickjs: instantiating the engine: %w", err)
	}
	inst.mod, inst.mem = mod, mod.Memory()
	inst.interrupt = mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	fn := func(e engineExport) api.Function { return mod.ExportedFunction(e.name) }
	inst.callCtors, inst.malloc, inst.free = fn(expCallCtors), fn(expMalloc), fn(expFree)
	inst.newString, inst.getString = fn(expNewString), fn(expGetString)
	inst.freeValue, inst.freeCString = fn(expFreeValuePointer), fn(expFreeCString)
	inst.isJobPending, inst.executeJobs = fn(expIsJobPending), fn(expExecutePending)
	inst.call, inst.resolveException = fn(expCall), fn(expResolveException)
	inst.argvGet, inst.newFunction = fn(expArgvGet), fn(expNewFunction)
	inst.hostFns = []func(argc, argv uint32) (uint32, error){inst.hostGet, inst.hostConsent, inst.hostFetch, inst.hostWeb}
	if err := inst.start(ctx, m, src, settings); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	return inst, nil
}

// start sets the engine up and evaluates the prelude, the function's file
// and the bind script.
func (inst *Instance) start(ctx context.Context, m *Module, src Source, settings []byte) (err error) {
	stop, err := inst.arm(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if e := inst.disarm(stop, err); e != nil {
			err = e
		}
	}()
	mod := inst.mod
	if _, err := inst.invoke(inst.callCtors); err != nil {
		return err
	}
	rt, err := inst.invoke(mod.ExportedFunction(expNewRuntime.name))
	if err != nil {
		return err
	}
	c, err := inst.invoke(mod.ExportedFunction(expNewContext.name), rt, 0) // 0: all intrinsics
	if err != nil {
		return err
	}
	if rt == 0 || c == 0 {
		return inst.failure(MemoryLimit, "the engine could not start its JavaScript runtime", nil)
	}
	inst.rtPtr, inst.ctxPtr = uint32(rt), uint32(c)
	if inst.undefined, err = inst.invoke32(mod.ExportedFunction(expGetUndefined.name)); err != nil {
		return err
	}
	if inst.argv, err = inst.alloc(8); err != nil {
		return err
	}
	inst.scratch = inst.argv + 4
	if err := inst.evalFree("insertfn:prelude.js", prelude, nil); err != nil {
		return fmt.Errorf("quickjs: the prelude: %w", err)
	}
	if err := inst.installHostFunctions(); err != nil {
		return err
	}
	if err := inst.evalFree(src.Name, string(src.Code), nil); err != nil {
		return err
	}
	maxLogs := inst.limits.MaxLogBytes
	if maxLogs <= 0 {
		maxLogs = 1 << 20
	}
	var fns uint32
	if err := inst.evalFree("insertfn:bind.js", fmt.Sprintf(bindScript, settings, maxLogs), &fns); err != nil {
		return fmt.Errorf("quickjs: binding the handlers: %w", err)
	}
	getProp := mod.ExportedFunction(expGetPropNumber.name)
	for i, p := range []*uint32{&inst.dispatch, &inst.take, &inst.takeLogs} {
		if *p, err = inst.invoke32(getProp, uint64(inst.ctxPtr), uint64(fns), uint64(i)); err != nil {
			return err
		}
	}
	_, err = inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(fns))
	return err
}

// evalFree evaluates code as a global script named file. The result is
// stored in *result when result is not nil (the caller frees it), freed
// otherwise. An exception is a *LoadError.
func (inst *Instance) evalFree(file, code string, result *uint32) error {
	codePtr, err := inst.allocString(code)
	if err != nil {
		return err
	}
	defer inst.invoke(inst.free, uint64(codePtr)) //nolint:errcheck // a failure shows in the next call
	namePtr, err := inst.allocString(file)
	if err != nil {
		return err
	}
	defer inst.invoke(inst.free, uint64(namePtr)) //nolint:errcheck
	v, err := inst.invoke32(inst.mod.ExportedFunction(expEval.name), uint64(inst.ctxPtr), uint64(codePtr), uint64(len(code)), uint64(namePtr), 0, 0)
	if err != nil {
		return err
	}
	if v == 0 {
		return inst.failure(MemoryLimit, "the engine could not evaluate "+file, nil)
	}
	if exc, err := inst.exception(v); err != nil || exc != nil {
		if err != nil {
			return err
		}
		exc.File = file
		return exc
	}
	if result != nil {
		*result = v
		return nil
	}
	_, err = inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(v))
	return err
}

// exception returns the exception v holds, nil when v is not one; v is
// freed when it is.
func (inst *Instance) exception(v uint32) (*LoadError, error) {
	e, err := inst.invoke32(inst.resolveException, uint64(inst.ctxPtr), uint64(v))
	if err != nil || e == 0 {
		return nil, err
	}
	defer inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(e)) //nolint:errcheck
	if _, err := inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(v)); err != nil {
		return nil, err
	}
	dump, err := inst.invoke32(inst.mod.ExportedFunction(expDump.name), uint64(inst.ctxPtr), uint64(e))
	if err != nil {
		return nil, err
	}
	b, _ := cBytes(inst.mem, dump, 64<<10)
	text := string(b)
	if _, err := inst.invoke(inst.freeCString, uint64(inst.ctxPtr), uint64(dump)); err != nil {
		return nil, err
	}
	return describe(text), nil
}

// describe turns QuickJS's dump of an exception ({"name", "message",
// "stack"} for an Error) into a LoadError without its file.
func describe(dump string) *LoadError {
	var e struct {
		Name    string `json:"name"`
		Message string `json:"message"`
		Stack   string `json:"stack"`
	}
	if err := json.Unmarshal([]byte(dump), &e); err != nil || (e.Name == "" && e.Message == "") {
		return &LoadError{Message: "uncaught exception: " + dump}
	}
	le := &LoadError{Message: e.Name + ": " + e.Message}
	// The stack's first frame names the file and line: "    at f.js:3:5".
	for _, line := range strings.Split(e.Stack, "\n") {
		if i := strings.LastIndex(line, ".js:"); i >= 0 {
			var n, col int
			if _, err := fmt.Sscanf(line[i+4:], "%d:%d", &n, &col); err == nil || n > 0 {
				le.Line = n
				break
			}
		}
	}
	return le
}

// Handle runs the function's handler for one event.
//
// # Parameters
//   - ctx: the event's time limit is its deadline: when ctx ends, the
//     handler is stopped, wherever it is (an endless loop included). A
//     caller that times calls itself (the runtime's watchdog) passes a
//     context that never ends, which arms nothing, and calls Interrupt.
//   - event: the event, JSON.
//
// # Results
//   - the verdict, the event that flows on, the logs;
//   - a *Failure when the instance failed (time, memory, trap): it cannot
//     be used again; [ErrUnusable] on an instance that failed before.
func (inst *Instance) Handle(ctx context.Context, event []byte) (res Result, err error) {
	if inst.unusable {
		return Result{}, ErrUnusable
	}
	stop, err := inst.arm(ctx)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if e := inst.disarm(stop, err); e != nil {
			res, err = Result{}, e
		}
		if err != nil {
			var f *Failure
			if errors.As(err, &f) {
				inst.unusable = true
			}
		}
	}()
	inst.memory.ResetRefused()
	if !isObject(event) {
		return Result{Verdict: abi.ResultInvalidEventPayload, Reason: "the event is not a JSON object"}, nil
	}
	inst.event = event
	inst.forbidden = ""
	defer func() { inst.event = nil }()
	// The dispatcher is given the event's type, which spares it a host
	// call to read it, and returns the outcome of a handler that settled.
	typ := inst.undefined
	if t := gjson.Get(unsafeString(event), "type"); t.Type == gjson.String {
		if typ, err = inst.newJSString(t.Str); err != nil {
			return Result{}, err
		}
	}
	inst.mem.WriteUint32Le(inst.argv, typ)
	v, err := inst.invoke32(inst.call, uint64(inst.ctxPtr), uint64(inst.dispatch), uint64(inst.undefined), 1, uint64(inst.argv))
	if err != nil {
		return Result{}, err
	}
	if typ != inst.undefined {
		if _, err := inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(typ)); err != nil {
			return Result{}, err
		}
	}
	limit := 2 + max(inst.limits.MaxEventBytes, 1<<30)
	out, err := inst.stringResult(v, limit)
	if err != nil {
		return Result{}, err
	}
	// An async handler's promise settles as the engine runs its jobs (and
	// a settled handler may have left jobs of its own).
	for {
		pending, err := inst.invoke32(inst.isJobPending, uint64(inst.rtPtr))
		if err != nil {
			return Result{}, err
		}
		if pending == 0 {
			break
		}
		v, err := inst.invoke32(inst.executeJobs, uint64(inst.rtPtr), 1<<32-1, uint64(inst.scratch)) // -1: all
		if err != nil {
			return Result{}, err
		}
		if err := inst.freeResult(v); err != nil {
			return Result{}, err
		}
	}
	if len(out) == 0 {
		if out, err = inst.callString(inst.take, limit); err != nil {
			return Result{}, err
		}
	}
	if len(out) < 2 {
		if inst.memory.RefusedGrow() > 0 {
			return Result{}, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
		}
		return Result{Verdict: abi.ResultFunctionError, Reason: "the handler's promise did not settle: does it await something that never resolves?"}, nil
	}
	res.Verdict = abi.Result(out[0] - '0')
	if res.Verdict == abi.ResultDeliver {
		if m := inst.limits.MaxEventBytes; m > 0 && len(out)-2 > m {
			return Result{}, inst.failure(EventTooLarge, fmt.Sprintf("the handler returned an event of %d bytes, past the limit of %d", len(out)-2, m), nil)
		}
		res.Event, res.Modified = out[2:], true
		if len(out) == 2 { // unchanged
			res.Event, res.Modified = event, false
		}
	} else {
		res.Reason = string(out[2:])
	}
	res.Forbidden = inst.forbidden
	if out[1] == '1' {
		if err := inst.readLogs(&res); err != nil {
			return Result{}, err
		}
	}
	if res.Verdict == abi.ResultFunctionError && inst.memory.RefusedGrow() > 0 {
		// QuickJS's out-of-memory error, when the cap refused the heap
		// more room: the instance ran out of memory.
		return Result{}, inst.failure(MemoryLimit, inst.outOfMemory()+": "+res.Reason, nil)
	}
	return res, nil
}

// isObject reports whether event is valid JSON whose value is an object.
func isObject(event []byte) bool {
	for _, c := range event {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return gjson.ValidBytes(event)
		}
		return false
	}
	return false
}

// hostFunctionNames are the host functions' names, by id (the index of
// their function in Instance.hostFns), in the order __insertfn_install
// takes them.
var hostFunctionNames = []string{"get", "consent", "fetch", "webSource"}

// installHostFunctions makes the host functions JavaScript functions and
// gives them to the prelude.
func (inst *Instance) installHostFunctions() error {
	install, err := inst.evalValue("insertfn:install.js", "__insertfn_install")
	if err != nil {
		return err
	}
	argv, err := inst.alloc(uint32(4 * len(hostFunctionNames)))
	if err != nil {
		return err
	}
	fns := make([]uint32, 0, len(hostFunctionNames)+1)
	for id, n := range hostFunctionNames {
		name, err := inst.allocString(n)
		if err != nil {
			return err
		}
		fn, err := inst.invoke32(inst.newFunction, uint64(inst.ctxPtr), uint64(name), 1, 0, uint64(id))
		if err != nil {
			return err
		}
		if _, err := inst.invoke(inst.free, uint64(name)); err != nil {
			return err
		}
		if fn == 0 {
			return inst.failure(MemoryLimit, inst.outOfMemory(), nil)
		}
		inst.mem.WriteUint32Le(argv+uint32(4*id), fn)
		fns = append(fns, fn)
	}
	v, err := inst.invoke32(inst.call, uint64(inst.ctxPtr), uint64(install), uint64(inst.undefined), uint64(len(hostFunctionNames)), uint64(argv))
	if err != nil {
		return err
	}
	if err := inst.freeResult(v); err != nil {
		return err
	}
	if _, err := inst.invoke(inst.free, uint64(argv)); err != nil {
		return err
	}
	for _, p := range append(fns, install) {
		if _, err := inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(p)); err != nil {
			return err
		}
	}
	return nil
}

// evalValue evaluates code and returns its value, a JSValue* to free.
func (inst *Instance) evalValue(file, code string) (uint32, error) {
	var v uint32
	err := inst.evalFree(file, code, &v)
	return v, err
}

// hostGet is JavaScript's hostGet(path): the value at the gjson path in the
// event, as JSON, "{" for an object, "[" for an array, undefined when
// there is none; the empty path is the whole event.
func (inst *Instance) hostGet(argc, argv uint32) (uint32, error) {
	path, p, err := inst.argView("get", argc, argv, 1<<20)
	if err != nil {
		return 0, err
	}
	var raw string
	if len(path) == 0 {
		raw = unsafeString(inst.event) // the whole event: materialize
	} else {
		// gjson.Get on the event as a string does not copy what it
		// finds (GetBytes does): raw is copied into the engine below.
		r := gjson.Get(unsafeString(inst.event), unsafeString(path))
		switch {
		case !r.Exists():
		case r.IsObject():
			raw = "{"
		case r.IsArray():
			raw = "["
		default:
			raw = r.Raw
		}
	}
	if err := inst.freeArg(p); err != nil {
		return 0, err
	}
	if raw == "" {
		return 0, nil // undefined
	}
	return inst.newJSString(raw)
}

// hostWeb is JavaScript's webSource(): web.js's text, which the prelude
// evaluates on first use of one of its globals.
func (inst *Instance) hostWeb(uint32, uint32) (uint32, error) {
	return inst.newJSString(web)
}

// unsafeString is b as a string without a copy, for a lookup that does not
// keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// readLogs takes the event's console lines.
func (inst *Instance) readLogs(res *Result) error {
	b, err := inst.callString(inst.takeLogs, 1<<30)
	if err != nil {
		return err
	}
	var logs struct {
		Logs []json.RawMessage `json:"logs"`
		Cut  bool              `json:"cut"`
	}
	if err := json.Unmarshal(b, &logs); err != nil {
		return inst.failure(Trap, "the engine's logs are not JSON", err)
	}
	res.LogsCut = logs.Cut
	for i := 0; i+1 < len(logs.Logs); i += 2 {
		var level int
		var msg string
		_ = json.Unmarshal(logs.Logs[i], &level)
		_ = json.Unmarshal(logs.Logs[i+1], &msg)
		res.Logs = append(res.Logs, Log{Level: abi.Level(level), Message: msg})
	}
	return nil
}

// callString calls a JavaScript function of no arguments that returns a
// string, and returns a copy of its UTF-8 text.
func (inst *Instance) callString(f uint32, limit int) ([]byte, error) {
	v, err := inst.invoke32(inst.call, uint64(inst.ctxPtr), uint64(f), uint64(inst.undefined), 0, uint64(inst.argv))
	if err != nil {
		return nil, err
	}
	return inst.stringResult(v, limit)
}

// stringResult returns a copy of the UTF-8 text of the string v, a call's
// result, which it frees; an exception fails the instance.
func (inst *Instance) stringResult(v uint32, limit int) ([]byte, error) {
	if v == 0 {
		return nil, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	if exc, err := inst.exception(v); err != nil || exc != nil {
		if err != nil {
			return nil, err
		}
		if inst.memory.RefusedGrow() > 0 {
			return nil, inst.failure(MemoryLimit, inst.outOfMemory()+": "+exc.Message, nil)
		}
		return nil, inst.failure(Trap, "the engine's dispatcher threw "+exc.Message, nil)
	}
	p, err := inst.invoke32(inst.getString, uint64(inst.ctxPtr), uint64(v))
	if err != nil {
		return nil, err
	}
	if p == 0 {
		return nil, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	b, _ := cBytes(inst.mem, p, uint32(min(limit, 1<<31)))
	out := append([]byte(nil), b...)
	if _, err := inst.invoke(inst.freeCString, uint64(inst.ctxPtr), uint64(p)); err != nil {
		return nil, err
	}
	if _, err := inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(v)); err != nil {
		return nil, err
	}
	return out, nil
}

// freeResult frees a JSValue* a call returned, failing when it is an
// exception (the dispatcher catches the handler's).
func (inst *Instance) freeResult(v uint32) error {
	if v == 0 {
		return inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	exc, err := inst.exception(v)
	if err != nil {
		return err
	}
	if exc != nil {
		if inst.memory.RefusedGrow() > 0 {
			return inst.failure(MemoryLimit, inst.outOfMemory()+": "+exc.Message, nil)
		}
		return inst.failure(Trap, "the engine's dispatcher threw "+exc.Message, nil)
	}
	_, err = inst.invoke(inst.freeValue, uint64(inst.ctxPtr), uint64(v))
	return err
}

func (inst *Instance) outOfMemory() string {
	return fmt.Sprintf("the engine ran out of its %d pages (%d MiB) of memory", inst.limits.MemoryPages, inst.limits.MemoryPages/16)
}

// ensureBuffer makes the event buffer hold at least n bytes.
func (inst *Instance) ensureBuffer(n uint32) error {
	if n <= inst.bufCap {
		return nil
	}
	if inst.buf != 0 {
		if _, err := inst.invoke(inst.free, uint64(inst.buf)); err != nil {
			return err
		}
		inst.buf, inst.bufCap = 0, 0
	}
	size := max(n, 4096)
	p, err := inst.alloc(size)
	if err != nil {
		return err
	}
	inst.buf, inst.bufCap = p, size
	return nil
}

// alloc allocates n bytes in the engine's heap.
func (inst *Instance) alloc(n uint32) (uint32, error) {
	p, err := inst.invoke32(inst.malloc, uint64(n))
	if err != nil {
		return 0, err
	}
	if p == 0 {
		return 0, inst.failure(MemoryLimit, inst.outOfMemory(), nil)
	}
	return p, nil
}

// allocString copies s into the engine's heap with a NUL after it.
func (inst *Instance) allocString(s string) (uint32, error) {
	p, err := inst.alloc(uint32(len(s)) + 1)
	if err != nil {
		return 0, err
	}
	inst.mem.WriteString(p, s)
	inst.mem.WriteByte(p+uint32(len(s)), 0)
	return p, nil
}

// invoke calls an engine export with i32 arguments; a trap is a *Failure.
func (inst *Instance) invoke(f api.Function, args ...uint64) (uint64, error) {
	copy(inst.stack[:], args)
	if err := f.CallWithStack(inst.ctx, inst.stack[:]); err != nil {
		return 0, inst.classify(err)
	}
	return inst.stack[0], nil
}

func (inst *Instance) invoke32(f api.Function, args ...uint64) (uint32, error) {
	v, err := inst.invoke(f, args...)
	return uint32(v), err
}

// classify turns a failed call into a *Failure; disarm turns it into a
// Timeout when the time limit stopped it.
func (inst *Instance) classify(err error) error {
	var exit *sys.ExitError
	var ef *engineFailure
	switch {
	case inst.memory.RefusedGrow() > 0:
		return inst.failure(MemoryLimit, inst.outOfMemory(), err)
	case errors.As(err, &exit):
		return inst.failure(GuestExit, fmt.Sprintf("the engine exited with code %d", exit.ExitCode()), err)
	case errors.As(err, &ef):
		return inst.failure(Trap, ef.msg, err)
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if head := strings.TrimSpace(inst.output.String()); head != "" {
		msg += ": " + head
	}
	return inst.failure(Trap, msg, err)
}

func (inst *Instance) failure(kind FailureKind, msg string, err error) *Failure {
	inst.unusable = true
	return &Failure{Kind: kind, Message: msg, Err: err}
}

// arm starts the time limit of a call: when ctx ends, the interrupt flag
// stops the engine. It returns the AfterFunc's stop, nil for a context that
// never ends.
func (inst *Instance) arm(ctx context.Context) (func() bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		return nil, nil
	}
	inst.mu.Lock()
	gen := inst.gen
	inst.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		inst.mu.Lock()
		if inst.gen == gen {
			inst.fired = true
			inst.interrupt.Set(1)
		}
		inst.mu.Unlock()
	})
	return stop, nil
}

// disarm ends the time limit of the call. When the limit stopped the call,
// it returns the Timeout failure that replaces err.
func (inst *Instance) disarm(stop func() bool, err error) error {
	if stop != nil {
		stop()
	}
	inst.mu.Lock()
	fired := inst.fired
	inst.fired = false
	inst.gen++ // an AfterFunc that runs late finds another generation
	if fired {
		inst.interrupt.Set(0)
	}
	inst.mu.Unlock()
	if fired && err != nil {
		return inst.failure(Timeout, "the handler did not end before the event's time limit", err)
	}
	return nil
}

// Interrupt stops the engine's current call from any goroutine, as the time
// limit does: the call fails with a Trap (the caller that stops it knows
// why) and the instance cannot be used again.
func (inst *Instance) Interrupt() { inst.interrupt.Set(1) }

// MemorySize returns the size of the instance's linear memory in bytes.
func (inst *Instance) MemorySize() uint32 { return inst.mem.Size() }

// Close closes the instance and frees its memory.
func (inst *Instance) Close(ctx context.Context) {
	if inst.mod != nil {
		_ = inst.mod.Close(ctx)
	}
	inst.memory.Free()
}

// instanceKey is the key under which an instance's context holds it.
type instanceKey struct{}

// instanceContext is the context of every call into an instance: it
// carries the instance for the host functions and is never done (the
// time limit stops the engine through its interrupt flag).
type instanceContext struct{ inst *Instance }

func (c *instanceContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *instanceContext) Done() <-chan struct{}       { return nil }
func (c *instanceContext) Err() error                  { return nil }
func (c *instanceContext) Value(key any) any {
	if key == (instanceKey{}) {
		return c.inst
	}
	return nil
}

// cappedMemory is an instance's linear memory: a byte slice that grows up to
// the cap, and records the grows it refuses, by which a failure is known to
// be memory exhaustion.
type cappedMemory struct {
	limit   uint64
	buf     []byte
	refused uint64 // the largest size refused, 0 if none since the last event
}

// RefusedGrow implements Memory.
func (m *cappedMemory) RefusedGrow() uint64 { return m.refused }

// ResetRefused implements Memory.
func (m *cappedMemory) ResetRefused() { m.refused = 0 }

// Allocate implements experimental.MemoryAllocator.
func (m *cappedMemory) Allocate(capacity, _ uint64) experimental.LinearMemory {
	m.buf = make([]byte, 0, min(capacity, m.limit))
	return m
}

// Reallocate implements experimental.LinearMemory: nil past the cap.
func (m *cappedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = max(m.refused, size)
		return nil
	}
	if size > uint64(cap(m.buf)) {
		b := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.limit))
		copy(b, m.buf)
		m.buf = b
	}
	m.buf = m.buf[:size]
	return m.buf
}

// Free implements experimental.LinearMemory.
func (m *cappedMemory) Free() { m.buf = nil }

// headBuffer keeps the first headMax bytes written to it.
type headBuffer struct{ b []byte }

const headMax = 2048

func (t *headBuffer) write(p []byte) {
	if room := headMax - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
}

func (t *headBuffer) String() string { return string(t.b) }
