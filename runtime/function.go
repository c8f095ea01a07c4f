package runtime

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insertfn/insertfn/runtime/internal/quickjs"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/hostcall"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Verdict is what became of an event.
type Verdict uint8

// Verdicts.
const (
	// Deliver: pass the event on (Result.Event, possibly changed).
	Deliver Verdict = iota
	// Drop: the function dropped the event on purpose (DropEvent).
	Drop
	// Fail: the function returned an error or the sandbox failed; Result.Kind says which.
	Fail
)

// String returns "deliver", "drop" or "error".
func (v Verdict) String() string {
	switch v {
	case Deliver:
		return "deliver"
	case Drop:
		return "drop"
	}
	return "error"
}

// Result is what a function did with one event. A caller may reuse one
// Result across calls to Invoke: its Logs slice is reused.
type Result struct {
	Verdict Verdict
	// Kind says which error, when Verdict is Fail.
	Kind ErrorKind
	// Reason is the drop reason or the error message.
	Reason string
	// Event is the event to deliver: the caller's own bytes when the
	// function did not change it (Modified false), else a new buffer the
	// caller owns.
	Event    []byte
	Modified bool
	// Logs are what the function logged, its stdout and stderr included.
	Logs []hostcall.LogLine
	// Duration is the time the guest call took, when this call was one of
	// those timed (see Options.TimeEvery); else 0.
	Duration time.Duration
}

// Stats count what happened in a Function's pool.
type Stats struct {
	Invocations uint64 // events handled
	Started     uint64 // instances started
	Discarded   uint64 // instances thrown away after a failure
	Recycled    uint64 // instances recycled past the memory high-water mark
	Idle        int    // instances waiting for an event now
	// IdleMemory is the linear memory the idle instances hold, in bytes:
	// memory outside the Go heap, committed as each grew (a JavaScript
	// instance's holds its engine's heap).
	IdleMemory uint64
}

// Function is one loaded version of a function with its pool of instances.
// It is safe for concurrent use; each instance serves one event at a time.
type Function struct {
	name     string
	hash     string
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	engine   *Engine
	wd       *watchdog // the Engine's
	settings []byte
	store    consent.Store
	limits   Limits
	timeMask uint32 // Options.TimeEvery-1: which calls Invoke times

	pool pool

	batches bool // the guest exports the batch entry

	js *jsFunction // a JavaScript function's source; nil for a module

	reasonsMu sync.RWMutex
	reasons   map[string]string

	invocations, started, discarded, recycled atomic.Uint64
}

// budget returns the Engine's memory budget (nil, no bound, for a
// Function made without an Engine in tests).
func (f *Function) budget() *budget {
	if f.engine == nil {
		return nil
	}
	return f.engine.budget
}

// Name returns the function's name.
func (f *Function) Name() string { return f.name }

// Hash returns the hex SHA-256 of the function's wasm, which identifies the version.
func (f *Function) Hash() string { return f.hash }

// Limits returns the limits in force, defaults filled in.
func (f *Function) Limits() Limits { return f.limits }

// Stats returns the pool's counters.
func (f *Function) Stats() Stats {
	idle, mem := f.idleCount()
	return Stats{Invocations: f.invocations.Load(), Started: f.started.Load(),
		Discarded: f.discarded.Load(), Recycled: f.recycled.Load(), Idle: idle, IdleMemory: mem}
}

// Invoke runs the function on one event.
//
// # Parameters
//   - ctx: bounds the wait for a free instance and the consent store's
//     lookups; its deadline, when earlier than Limits.Timeout, also bounds
//     the guest call.
//   - event: the event's JSON. It is borrowed: do not change it until
//     Invoke returns (and while res.Event still refers to it).
//   - res: filled with the verdict, the event to deliver and the logs.
//
// # Results
//   - nil when the function ran to a verdict, including a drop or an error
//     the function returned itself (see res);
//   - an [*Error] when the sandbox failed (res.Verdict is Fail and res.Kind
//     says why); the instance is thrown away;
//   - ctx's error, [ErrClosed], or the error of starting a new instance,
//     when no instance could be had; res then says Fail with KindFunctionError
//     and the reason.
func (f *Function) Invoke(ctx context.Context, event []byte, res *Result) error {
	if f.js != nil {
		return f.invokeJS(ctx, event, res)
	}
	inst, err := f.acquire(ctx)
	if err != nil {
		res.noInstance(err)
		return err
	}
	timeout := f.timeout(ctx)
	c := inst.begin(ctx, event)
	inst.stack[0] = uint64(uint32(c.Doc.Type()))
	timed := inst.calls&f.timeMask == 0
	inst.calls++
	var start time.Duration
	if timed {
		start = time.Since(epoch) // monotonic only: time.Now reads the wall clock too
	}
	inst.arm(timeout)
	callErr := inst.handle.CallWithStack(inst.ctx, inst.stack[:])
	fired := inst.disarm()
	res.Duration = 0
	if timed {
		res.Duration = time.Since(epoch) - start
	}
	f.invocations.Add(1)
	inst.flushOutput()
	if callErr == nil && c.Err() != nil { // a limit broken by stdout or stderr
		callErr = &limitBroken{err: c.Err()}
	}
	if callErr != nil || fired {
		ferr := f.classify(inst, callErr, fired)
		res.fail(ferr, c)
		f.discard(inst)
		f.afterDiscard(ferr)
		return ferr
	}
	f.finish(res, c, abi.Result(int32(uint32(inst.stack[0]))))
	inst.end()
	f.release(inst)
	return nil
}

// InvokeBatch runs the function on several events, one result per event,
// in as few guest calls as it can: a guest that exports
// insertfn_handle_batch (every SDK guest does) handles the whole batch in
// one call, which spares the fixed cost of a call per event. Each event
// still has its own time limit, logs and verdict. When the sandbox fails on
// one event, that event's result says so and the rest of the batch goes on
// in a fresh instance.
//
// # Parameters
//   - ctx: as for Invoke.
//   - events: the events' JSON, borrowed until InvokeBatch returns.
//   - results: at least len(events) results, filled in order.
//
// # Results
//   - nil, or the first [*Error] among the events (every result is filled
//     all the same);
//   - ctx's error when ctx ends before the batch does: the events handled
//     until then have their results, the rest are not filled; the same
//     for [ErrClosed] or a failure to start an instance.
func (f *Function) InvokeBatch(ctx context.Context, events [][]byte, results []Result) error {
	if len(results) < len(events) {
		return fmt.Errorf("runtime: InvokeBatch: %d results for %d events", len(results), len(events))
	}
	if !f.batches {
		var first error
		for i, ev := range events {
			if err := f.Invoke(ctx, ev, &results[i]); err != nil {
				var ferr *Error
				if !errors.As(err, &ferr) {
					return err
				}
				first = cmp.Or(first, err)
			}
		}
		return first
	}
	var first error
	for done := 0; done < len(events); {
		inst, err := f.acquire(ctx)
		if err != nil {
			return cmp.Or(err, first)
		}
		n := len(events) - done
		inst.batch, inst.results, inst.pos, inst.batchCtx, inst.batchErr = events[done:], results[done:], -1, ctx, nil
		start := time.Since(epoch)
		inst.arm(f.timeout(ctx)) // batchNext re-arms the clock for each event
		callErr := inst.handleBatch.CallWithStack(inst.ctx, inst.stack[:])
		fired := inst.disarm()
		elapsed := time.Since(epoch) - start
		pos, stopped := inst.pos, inst.batchErr
		inst.flushOutput()
		inst.batch, inst.results, inst.batchCtx, inst.batchErr = nil, nil, nil, nil
		clean := callErr == nil && !fired
		switch {
		case clean && pos >= n: // every event has its verdict
			f.batchDone(inst, results[done:done+n], elapsed, true)
			return first
		case clean && stopped != nil: // ctx ended the batch before the event at pos
			f.batchDone(inst, results[done:done+pos], elapsed, true)
			return stopped
		case pos >= n: // the guest failed after the last verdict: they stand
			f.batchDone(inst, results[done:done+n], elapsed, false)
			return first
		}
		// The guest failed on the event at pos, or returned before the end.
		pos = max(pos, 0)
		ferr := f.classify(inst, callErr, fired)
		if clean {
			ferr.Kind, ferr.Message = KindFunctionError, "the guest returned before the end of the batch"
		}
		results[done+pos].fail(ferr, &inst.call)
		f.batchDone(inst, results[done:done+pos+1], elapsed, false)
		f.afterDiscard(ferr)
		first = cmp.Or(first, error(ferr))
		done += pos + 1
	}
	return first
}

// batchDone accounts for the events one batch call handled, and returns the
// instance to the pool (healthy) or throws it away.
func (f *Function) batchDone(inst *instance, handled []Result, elapsed time.Duration, healthy bool) {
	f.invocations.Add(uint64(len(handled)))
	spreadDuration(handled, elapsed)
	if healthy {
		inst.end()
		f.release(inst)
	} else {
		f.discard(inst)
	}
}

// spreadDuration gives each event of a batch an equal share of its time;
// a batch call is timed as a whole.
func spreadDuration(results []Result, d time.Duration) {
	if len(results) == 0 {
		return
	}
	each := d / time.Duration(len(results))
	for i := range results {
		results[i].Duration = each
	}
}

// batchNext is the host side of abi.FuncBatchNext.
func (inst *instance) batchNext(result abi.Result) int32 {
	f := inst.fn
	if inst.pos >= 0 && inst.pos < len(inst.batch) {
		// The next event's time limit starts now, unless the watchdog has
		// stopped this one: it overran its limit, so its verdict does not
		// stand (InvokeBatch reports the timeout at pos).
		if !inst.rearm(f.timeout(inst.batchCtx)) {
			return -1
		}
		inst.flushOutput()
		inst.checkLimits()
		f.finish(&inst.results[inst.pos], &inst.call, result)
	}
	inst.pos++
	if inst.pos >= len(inst.batch) {
		return -1
	}
	if err := inst.batchCtx.Err(); err != nil {
		inst.batchErr = err // the caller gave up: stop before this event
		return -1
	}
	c := inst.begin(inst.batchCtx, inst.batch[inst.pos])
	return int32(c.Doc.Type())
}

func (f *Function) timeout(ctx context.Context) time.Duration {
	timeout := f.limits.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	return timeout
}

// begin makes event the instance's current event.
func (inst *instance) begin(ctx context.Context, event []byte) *hostcall.Call {
	// A grow refused during an earlier event (which the guest coped with)
	// says nothing about this one's failure.
	inst.memory.refused.Store(0)
	inst.call.Next(ctx, event)
	inst.stderr.b = inst.stderr.b[:0]
	return &inst.call
}

// end lets go of the caller's event and context.
func (inst *instance) end() {
	inst.call.Release()
}

// finish fills res from a guest's result for the current event.
func (f *Function) finish(res *Result, c *hostcall.Call, result abi.Result) {
	res.Logs = append(res.Logs[:0], c.Logs()...)
	res.Event, res.Modified, res.Reason, res.Kind = c.Doc.Bytes(), c.Doc.Modified(), "", ""
	switch {
	case result == abi.ResultDeliver:
		res.Verdict = Deliver
	case result == abi.ResultDrop:
		res.Verdict, res.Reason = Drop, f.reason(c.Reason())
	case result.Valid():
		res.Verdict, res.Kind, res.Reason = Fail, kindOfResult(result), f.reason(c.Reason())
	default:
		res.Verdict, res.Kind = Fail, KindFunctionError
		res.Reason = fmt.Sprintf("the function returned %d, which is not a result of ABI version %d", result, abi.Version)
	}
	if res.Verdict != Deliver {
		res.Event, res.Modified = nil, false
	}
}

// noInstance fills res for an event that found no instance.
func (res *Result) noInstance(err error) {
	res.Logs, res.Event, res.Modified, res.Duration = res.Logs[:0], nil, false, 0
	res.Verdict, res.Kind, res.Reason = Fail, KindFunctionError, err.Error()
	if ferr, ok := err.(*Error); ok { // the memory budget's
		res.Kind, res.Reason = ferr.Kind, ferr.Message
	}
}

// fail fills res for a sandbox failure.
func (res *Result) fail(err *Error, c *hostcall.Call) {
	res.Logs = append(res.Logs[:0], c.Logs()...)
	res.Verdict, res.Kind, res.Reason = Fail, err.Kind, err.Message
	res.Event, res.Modified = nil, false
}

// reason returns the reason as a string, without allocating for a reason
// this function has given before (drops by reason are the common case).
func (f *Function) reason(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	f.reasonsMu.RLock()
	s, ok := f.reasons[string(b)]
	f.reasonsMu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	f.reasonsMu.Lock()
	if len(f.reasons) < maxInternedReasons {
		f.reasons[s] = s
	}
	f.reasonsMu.Unlock()
	return s
}

// maxInternedReasons bounds the reasons a function keeps, so that a function
// that puts ids into its reasons cannot grow the host's memory.
const maxInternedReasons = 256

// classify turns a failed guest call into an *Error.
func (f *Function) classify(inst *instance, err error, fired bool) *Error {
	e := &Error{Function: f.name, Err: err}
	var exit *sys.ExitError
	var bad *abiViolation
	var lim *limitBroken
	switch {
	case errors.As(err, &bad):
		e.Kind, e.Message = KindABIViolation, bad.Error()
	case errors.As(err, &lim):
		e.Kind, e.Message = KindLogLimit, fmt.Sprintf("logs exceed %d bytes", f.limits.MaxLogBytes)
		if errors.Is(lim.err, hostcall.ErrTooLarge) {
			e.Kind, e.Message = KindEventTooLarge, fmt.Sprintf("the changed event exceeds %d bytes", f.limits.MaxEventBytes)
		}
	case fired || (errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded):
		e.Kind, e.Message = KindTimeout, fmt.Sprintf("the event took longer than %s", inst.limit)
	case inst.outOfMemory(f.limits.MemoryPages):
		e.Kind, e.Message = KindMemoryLimit, f.outOfMemoryMessage(inst)
	case errors.As(err, &exit):
		e.Kind = KindGuestExit
		e.Message = fmt.Sprintf("the guest exited with code %d", exit.ExitCode())
		if head := inst.stderrHead(); head != "" {
			e.Message += ": " + head
		}
	case goFatal(inst.stderr.String()):
		// A Go c-shared guest ends a fatal panic with `unreachable`, not an
		// exit: its stderr says what happened.
		e.Kind, e.Message = KindGuestExit, "the guest panicked: "+inst.stderrHead()
	default:
		e.Kind, e.Message = KindTrap, firstLine(err.Error())
	}
	return e
}

// outOfMemoryMessage says that the guest ran out of memory, and how.
func (f *Function) outOfMemoryMessage(inst *instance) string {
	msg := fmt.Sprintf("the guest ran out of its %d pages (%d MiB) of memory", f.limits.MemoryPages, f.limits.MemoryPages/16)
	if n := inst.memory.refusedGrow(); n > 0 {
		msg += fmt.Sprintf(" (a memory.grow to %d MiB was refused)", n>>20)
	}
	return msg
}

// afterDiscard gives the host's memory back to the system after an
// instance thrown away for a stack overflow: wazero's stack for the guest
// is a Go slice that doubles up to about 84 MB before it overflows, and
// the copies it left behind (about as much again) would otherwise keep the
// heap's size up until the garbage collector's next cycles.
func (f *Function) afterDiscard(err *Error) {
	if f.engine != nil && err.Kind == KindTrap && strings.Contains(err.Message, "stack overflow") {
		f.engine.returnMemory()
	}
}

// goFatal reports whether a guest's stderr shows a Go panic or fatal error.
func goFatal(stderr string) bool {
	return strings.HasPrefix(stderr, "panic: ") || strings.Contains(stderr, "\npanic: ") ||
		strings.HasPrefix(stderr, "fatal error: ") || strings.Contains(stderr, "\nfatal error: ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// instance is one instantiated guest with everything a call needs, made
// once so that a call allocates nothing.
type instance struct {
	mod         api.Module
	mem         api.Memory
	handle      api.Function
	handleBatch api.Function
	call        hostcall.Call
	js          *quickjs.Instance // a JavaScript function's instead of mod
	fetch       *jsFetcher        // the JavaScript instance's fetch calls

	// The batch in progress (InvokeBatch), driven by batchNext.
	fn       *Function
	batch    [][]byte
	results  []Result
	pos      int
	batchCtx context.Context
	batchErr error // the caller's context ended the batch

	ctx    *instanceContext
	memory *linearMemory // its linear memory, outside the Go heap
	charge int64         // what it counts for in the Engine's memory budget, given back by close
	stack  [1]uint64
	stderr headBuffer
	clock         // the current event's time limit, which the Engine's watchdog enforces
	calls  uint32 // Invoke calls so far, for Options.TimeEvery
	wrote  bool   // the guest wrote to stdout or stderr since the last flushOutput

	stdoutW, stderrW guestOutput
}

// newInstance instantiates the module, runs its start-up and checks its ABI
// version. charge is what the instance counts for in the Engine's memory
// budget, taken by the caller: the instance gives it back when it closes,
// including when it fails to start.
func (f *Function) newInstance(ctx context.Context, charge int64) (*instance, error) {
	if f.js != nil {
		return f.newJSInstance(ctx, charge)
	}
	inst := &instance{fn: f, charge: charge, memory: &linearMemory{limit: uint64(f.limits.MemoryPages) * 65536}}
	inst.stdoutW = guestOutput{inst: inst, level: abi.LevelInfo, pending: new([]byte)}
	inst.stderrW = guestOutput{inst: inst, level: abi.LevelError, pending: new([]byte)}
	inst.ctx = &instanceContext{inst: inst}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize runs below, under the start-up timeout
		WithStdout(inst.stdoutW).
		WithStderr(inst.stderrW).
		WithSysWalltime().
		WithSysNanotime().
		// No WithSysNanosleep: a real sleep would block inside a host
		// function, where the time limit cannot stop it; with wazero's
		// no-op sleep a sleeping guest spins and the timer stops it.
		WithRandSource(rand.Reader)
	// Start-up output goes nowhere but the stderr head: no event is running.
	inst.call.Reset(ctx, nil, nil, nil, hostcall.Limits{MaxLogBytes: f.limits.MaxLogBytes})
	mod, err := f.instantiate(inst, cfg)
	if err != nil {
		inst.close()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	inst.mod, inst.mem = mod, mod.Memory()
	interrupt, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal)
	if !ok { // Load instruments every module: a bug, not a guest's doing
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("instantiate: the module lacks the interrupt global %q", interruptExport)
	}
	inst.interrupt = interrupt
	f.wd.watch(inst)
	inst.handle = mod.ExportedFunction(abi.ExportHandle)
	inst.handleBatch = mod.ExportedFunction(abi.ExportHandleBatch)
	f.started.Add(1)
	fail := func(what string, err error) (*instance, error) {
		oom := inst.outOfMemory(f.limits.MemoryPages)
		inst.close()
		if head := inst.stderrHead(); head != "" {
			err = fmt.Errorf("%w: %s", err, head)
		}
		err = fmt.Errorf("%s: %w", what, err)
		if oom { // whatever the trap says (a Go runtime short of memory traps on a table access)
			return nil, &Error{Function: f.name, Kind: KindMemoryLimit, Err: err,
				Message: "start-up: " + f.outOfMemoryMessage(inst) + ": " + err.Error()}
		}
		return nil, err
	}
	inst.arm(f.limits.StartTimeout)
	// The module's start function (loopcheck moved it out of instantiation,
	// where no time limit could stop it), then _initialize.
	for _, name := range []string{startExport, abi.ExportInitialize} {
		if fn := mod.ExportedFunction(name); fn != nil {
			if err := fn.CallWithStack(inst.ctx, inst.stack[:]); err != nil {
				if inst.disarm() {
					err = fmt.Errorf("took longer than %s: %w", f.limits.StartTimeout, err)
				}
				return fail("start-up ("+name+")", err)
			}
		}
	}
	err = mod.ExportedFunction(abi.ExportABIVersion).CallWithStack(inst.ctx, inst.stack[:])
	if inst.disarm() {
		return fail("start-up", fmt.Errorf("took longer than %s", f.limits.StartTimeout))
	}
	if err != nil {
		return fail(abi.ExportABIVersion, err)
	}
	if v := uint32(inst.stack[0]); v != abi.Version {
		return fail("ABI version check", fmt.Errorf("the module speaks ABI version %d; this host speaks %d", v, abi.Version))
	}
	// What start-up printed belongs to no event.
	*inst.stdoutW.pending, *inst.stderrW.pending = (*inst.stdoutW.pending)[:0], (*inst.stderrW.pending)[:0]
	inst.wrote = false
	// Ready for events: the function's store, settings and limits serve
	// every event (begin calls Call.Next).
	inst.call.Reset(nil, nil, f.store, f.settings, hostcall.Limits{MaxEventBytes: f.limits.MaxEventBytes, MaxLogBytes: f.limits.MaxLogBytes})
	return inst, nil
}

// flushOutput logs the guest's unfinished stdout and stderr lines.
func (inst *instance) flushOutput() {
	if inst.wrote {
		inst.wrote = false
		inst.stdoutW.flush()
		inst.stderrW.flush()
	}
}

// instantiate instantiates the module for inst, its memory from
// inst.memory. A panic of wazero's (it panics when an allocator gives less
// than a module's initial memory, which checkModule prevents) is the
// instance's error, not the host's end.
func (f *Function) instantiate(inst *instance, cfg wazero.ModuleConfig) (mod api.Module, err error) {
	defer func() {
		if p := recover(); p != nil {
			mod, err = nil, fmt.Errorf("the engine failed: %v", p)
		}
	}()
	return f.rt.InstantiateModule(experimental.WithMemoryAllocator(inst.ctx, inst.memory), f.compiled, cfg)
}

// close closes the instance, gives its memory back to the system and its
// charge back to the Engine's budget. It is called once per instance.
func (inst *instance) close() {
	inst.fn.wd.forget(inst)
	if inst.mod != nil {
		_ = inst.mod.Close(context.Background())
	}
	if inst.js != nil {
		inst.js.Close(context.Background())
	}
	inst.memory.Free() // wazero freed it unless instantiation failed: then nothing happens
	inst.fn.budget().give(inst.charge)
	inst.charge = 0
}

// memorySize returns the size of the instance's linear memory in bytes.
func (inst *instance) memorySize() uint64 {
	if inst.js != nil {
		return uint64(inst.js.MemorySize())
	}
	return uint64(inst.mem.Size())
}

// outOfMemory reports whether a failure looks like memory exhaustion: the
// Go runtime says so on stderr, a memory.grow past the cap was refused, or
// memory is within one grow of the cap.
func (inst *instance) outOfMemory(limitPages uint32) bool {
	if strings.Contains(inst.stderr.String(), "out of memory") || inst.memory.refusedGrow() > 0 {
		return true
	}
	return inst.mem != nil && uint64(inst.mem.Size())+4<<20 >= uint64(limitPages)*65536
}

func (inst *instance) stderrHead() string {
	s := strings.TrimSpace(inst.stderr.String())
	if i := strings.LastIndex(s, "\ngoroutine "); i >= 0 { // keep the panic, not the stacks
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// instanceContext is the context every call into an instance runs under. It
// carries the instance for the host functions, and is made once per
// instance, so a call allocates no context. It is never done: the time
// limit stops a guest through its interrupt global (see loopcheck), not
// through the context.
type instanceContext struct {
	inst *instance
}

func (c *instanceContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *instanceContext) Done() <-chan struct{}       { return nil }
func (c *instanceContext) Err() error                  { return nil }
func (c *instanceContext) Value(key any) any {
	if key == (instanceKey{}) {
		return c.inst
	}
	return nil
}

// guestOutput sends a guest's stdout or stderr to the event's logs, one log
// line per text line (a line may come in several writes; what is left
// without a newline is flushed when the call ends). stderr is also kept, up
// to its first headMax bytes per event, for error messages.
type guestOutput struct {
	inst    *instance
	level   abi.Level
	pending *[]byte
}

func (o guestOutput) Write(p []byte) (int, error) {
	o.inst.wrote = true
	c := &o.inst.call
	if o.level == abi.LevelError {
		o.inst.stderr.Write(p)
	}
	n := len(p)
	if budget := c.LogBudget(); budget >= 0 && len(p) > budget+1 {
		p = p[:budget+1] // the rest cannot be kept: do not copy it
	}
	for len(p) > 0 && c.Err() == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(*o.pending)+len(p) > maxPendingLine { // an endless line: cut it
				c.Log(o.level, string(append(*o.pending, p...)))
				*o.pending = (*o.pending)[:0]
			} else {
				*o.pending = append(*o.pending, p...)
			}
			break
		}
		line := p[:i]
		if len(*o.pending) > 0 {
			line = append(*o.pending, line...)
			*o.pending = (*o.pending)[:0]
		}
		c.Log(o.level, string(line))
		p = p[i+1:]
	}
	if err := c.Err(); err != nil {
		return 0, err
	}
	return n, nil
}

// flush logs what is left of an unfinished line.
func (o guestOutput) flush() {
	if len(*o.pending) > 0 {
		o.inst.call.Log(o.level, string(*o.pending))
		*o.pending = (*o.pending)[:0]
	}
}

// maxPendingLine bounds a line kept waiting for its newline.
const maxPendingLine = 4 << 10

// headBuffer keeps the first headMax bytes written to it: a Go panic's
// message comes first, its goroutine stacks after.
type headBuffer struct{ b []byte }

const headMax = 2048

func (t *headBuffer) Write(p []byte) {
	if room := headMax - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
}

func (t *headBuffer) String() string { return string(t.b) }
