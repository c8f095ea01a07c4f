package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/insertfn/insertfn/runtime/internal/quickjs"
	"github.com/insertfn/insertfn/runtime/internal/webfetch"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/hostcall"
)

// Language is what a function is written in, which says how [Engine.Load]
// runs its code.
type Language uint8

const (
	// WebAssembly is a module that follows the ABI (docs/abi.md), built
	// with one of the SDKs.
	WebAssembly Language = iota
	// JavaScript is a Segment function file: top-level handlers (onTrack,
	// onIdentify, ...) that return the event or throw DropEvent and the
	// other error classes. It runs in the QuickJS-ng engine embedded in the
	// binary, itself WebAssembly in the same kind of sandbox, pool, memory
	// budget and time limit as a module (see runtime/internal/quickjs).
	JavaScript
)

// String returns "wasm" or "js", as a manifest's runtime key writes them.
func (l Language) String() string {
	switch l {
	case WebAssembly:
		return "wasm"
	case JavaScript:
		return "js"
	}
	return fmt.Sprintf("Language(%d)", uint8(l))
}

// ErrNoJSEngine is the error of loading a JavaScript function in a binary
// built without the JavaScript engine; it names the make target that
// fetches it.
var ErrNoJSEngine = quickjs.ErrNoEngine

// jsEngine is an Engine's JavaScript engine: compiled once, on the first
// Load of a JavaScript function, through the Engine's compilation cache.
type jsEngine struct {
	lock chan struct{} // held (a token in it) while compiling or closing
	mod  *quickjs.Module
}

// jsModule returns the Engine's compiled JavaScript engine, compiling it on
// first use.
func (e *Engine) jsModule(ctx context.Context) (*quickjs.Module, error) {
	select {
	case e.js.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the JavaScript engine to compile: %w", ctx.Err())
	}
	defer func() { <-e.js.lock }()
	if e.js.mod != nil {
		return e.js.mod, nil
	}
	e.closeMu.Lock()
	closed := e.closed
	e.closeMu.Unlock()
	if closed {
		return nil, errors.New("the engine is closed")
	}
	ctx, cancel := context.WithTimeout(ctx, e.compileTimeout)
	defer cancel()
	mod, err := quickjs.Compile(ctx, e.cache)
	if err != nil {
		return nil, err
	}
	e.js.mod = mod
	return mod, nil
}

// closeJS releases the compiled JavaScript engine, if any.
func (e *Engine) closeJS(ctx context.Context) error {
	e.js.lock <- struct{}{}
	defer func() { <-e.js.lock }()
	if e.js.mod == nil {
		return nil
	}
	err := e.js.mod.Close(ctx)
	e.js.mod = nil
	return err
}

// FetchPolicy says where a JavaScript function's fetch may go
// (Options.Fetch): the URL prefixes it allows (none by default), the
// timeout of one request, the size of a response, the requests of one
// event. A request to any other URL fails the event with
// [KindFetchForbidden], whether or not the handler catches its TypeError.
type FetchPolicy = webfetch.Policy

// KindFetchForbidden: a JavaScript function fetched a URL its
// FetchPolicy does not allow. It is the function's (or its
// configuration's) error, not the sandbox's: the instance is kept.
const KindFetchForbidden ErrorKind = "FetchForbidden"

// jsFunction is what a JavaScript Function's instances are started from.
type jsFunction struct {
	mod   *quickjs.Module
	src   quickjs.Source
	fetch *webfetch.Client
}

// jsFetcher does the fetch calls of one JavaScript instance: under the
// function's policy, by the current event's deadline.
type jsFetcher struct {
	client   *webfetch.Client
	deadline time.Time // set when the client allows any URL
	n        webfetch.Counter
	// expired is set when the event's time limit ended a request: the
	// event timed out, whatever the handler made of fetch's error.
	expired bool
}

// Fetch implements quickjs.Fetcher.
func (j *jsFetcher) Fetch(req *webfetch.Request) (*webfetch.Response, error) {
	resp, err := j.client.Fetch(j.deadline, &j.n, req)
	if errors.Is(err, webfetch.ErrEventTimeLimit) {
		j.expired = true
	}
	return resp, err
}

// loadJS is Load for a JavaScript function: the engine is compiled (once
// per Engine) and a first instance evaluates the file, so that a syntax
// error or an exception at its top level refuses it here, naming the line.
func (e *Engine) loadJS(ctx context.Context, code []byte, opts Options, name string, settings []byte, limits Limits) (*Function, error) {
	if max := e.moduleLimits.MaxModuleBytes; max > 0 && len(code) > max {
		return nil, fmt.Errorf("function %s: %w", name, moduleLimitError("ModuleBytes",
			fmt.Sprintf("the JavaScript file is %d bytes, past %d", len(code), max)))
	}
	fetch, err := webfetch.New(opts.Fetch)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	mod, err := e.jsModule(ctx)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	file := opts.File
	if file == "" {
		file = name + ".js"
	}
	f := &Function{
		name:     name,
		hash:     Hash(code),
		engine:   e,
		wd:       e.wd,
		settings: settings,
		store:    opts.Store,
		limits:   limits,
		timeMask: timeMask(opts.TimeEvery),
		reasons:  make(map[string]string),
		js:       &jsFunction{mod: mod, src: quickjs.Source{Name: file, Code: code, Settings: settings}, fetch: fetch},
	}
	f.pool.freed = make(chan struct{}, limits.PoolSize)
	f.pool.closed = make(chan struct{})
	e.register(f)
	inst, err := f.acquire(ctx) // the first instance: the file is evaluated here
	if err != nil {
		e.unregister(f)
		var ferr *Error
		if errors.As(err, &ferr) {
			return nil, err
		}
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	f.release(inst)
	return f, nil
}

// jsInterrupt is the watchdog's handle on a JavaScript instance's
// interrupt flag.
type jsInterrupt struct{ inst *quickjs.Instance }

func (j jsInterrupt) Set(uint64) { j.inst.Interrupt() }

// newJSInstance starts an instance of a JavaScript function: the engine
// evaluates the prelude, the function's file and its handlers' binding,
// within Limits.StartTimeout.
func (f *Function) newJSInstance(ctx context.Context, charge int64) (*instance, error) {
	// Its memory is a module's: mapped outside the Go heap, committed as
	// it grows, up to the cap.
	inst := &instance{fn: f, charge: charge, memory: &linearMemory{limit: uint64(f.limits.MemoryPages) * 65536}}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.limits.StartTimeout)
	defer cancel()
	js, err := f.js.mod.NewInstance(sctx, f.js.src, quickjs.Limits{
		MemoryPages: f.limits.MemoryPages, MaxLogBytes: f.limits.MaxLogBytes, MaxEventBytes: f.limits.MaxEventBytes,
		Memory: inst.memory,
	})
	if err != nil {
		inst.close()
		var fl *quickjs.Failure
		if errors.As(err, &fl) {
			switch fl.Kind {
			case quickjs.Timeout:
				return nil, fmt.Errorf("start-up took longer than %s (limits.StartTimeout): does the file's top level loop?", f.limits.StartTimeout)
			case quickjs.MemoryLimit:
				return nil, &Error{Function: f.name, Kind: KindMemoryLimit, Err: err, Message: "start-up: " + fl.Message}
			}
			return nil, fmt.Errorf("start-up: %w", err)
		}
		return nil, err // a *quickjs.LoadError names the file and line
	}
	inst.js = js
	js.SetHost(&inst.call) // insertfn.consent: the comparison the SDKs' functions call
	inst.fetch = &jsFetcher{client: f.js.fetch}
	js.SetFetcher(inst.fetch)
	inst.interrupt = jsInterrupt{js}
	f.wd.watch(inst)
	f.started.Add(1)
	// The consent store, settings and limits of the host calls serve every
	// event (Call.Next).
	inst.call.Reset(nil, nil, f.store, f.settings, hostcall.Limits{MaxEventBytes: f.limits.MaxEventBytes, MaxLogBytes: f.limits.MaxLogBytes})
	return inst, nil
}

// noDeadline is the context of a JavaScript call: the Engine's watchdog,
// not the context, enforces its time limit.
var noDeadline = context.Background()

// invokeJS is Invoke for a JavaScript function.
func (f *Function) invokeJS(ctx context.Context, event []byte, res *Result) error {
	inst, err := f.acquire(ctx)
	if err != nil {
		res.noInstance(err)
		return err
	}
	timeout := f.timeout(ctx)
	c := inst.begin(ctx, event)
	timed := inst.calls&f.timeMask == 0
	inst.calls++
	var start time.Duration
	if timed {
		start = time.Since(epoch)
	}
	inst.fetch.n.Reset()
	inst.fetch.expired = false
	if inst.fetch.client.AllowsAny() {
		inst.fetch.deadline = time.Now().Add(timeout)
	}
	inst.arm(timeout)
	r, callErr := inst.js.Handle(noDeadline, event)
	fired := inst.disarm()
	res.Duration = 0
	if timed {
		res.Duration = time.Since(epoch) - start
	}
	f.invocations.Add(1)
	if callErr == nil && r.LogsCut {
		callErr = &limitBroken{err: hostcall.ErrLogLimit}
	}
	if callErr == nil && !fired && inst.fetch.expired {
		// A request ended by the event's time limit, before the watchdog
		// stopped the handler: a timeout, the instance unharmed.
		ferr := &Error{Function: f.name, Kind: KindTimeout, Message: fmt.Sprintf("the event took longer than %s (waiting for fetch)", timeout)}
		res.fail(ferr, c)
		res.Logs = appendJSLogs(res.Logs, r.Logs)
		inst.end()
		f.release(inst)
		return ferr
	}
	if callErr != nil || fired {
		ferr := f.classifyJS(inst, callErr, fired)
		res.fail(ferr, c)
		res.Logs = appendJSLogs(res.Logs, r.Logs)
		f.discard(inst)
		return ferr
	}
	res.Logs = appendJSLogs(append(res.Logs[:0], c.Logs()...), r.Logs)
	res.Event, res.Modified, res.Reason, res.Kind = r.Event, r.Modified, "", ""
	switch r.Verdict {
	case abi.ResultDeliver:
		res.Verdict = Deliver
	case abi.ResultDrop:
		res.Verdict, res.Reason = Drop, r.Reason
	default:
		res.Verdict, res.Kind, res.Reason = Fail, kindOfResult(r.Verdict), r.Reason
	}
	if r.Forbidden != "" {
		res.Verdict, res.Kind, res.Reason = Fail, KindFetchForbidden, r.Forbidden
	}
	if res.Verdict != Deliver {
		res.Event, res.Modified = nil, false
	}
	inst.end()
	f.release(inst)
	return nil
}

// appendJSLogs appends the console's lines to logs.
func appendJSLogs(logs []hostcall.LogLine, lines []quickjs.Log) []hostcall.LogLine {
	for _, l := range lines {
		logs = append(logs, hostcall.LogLine{Level: l.Level, Message: l.Message})
	}
	return logs
}

// classifyJS turns a failed JavaScript call into an *Error.
func (f *Function) classifyJS(inst *instance, err error, fired bool) *Error {
	e := &Error{Function: f.name, Err: err}
	var fl *quickjs.Failure
	var lim *limitBroken
	switch {
	case fired:
		e.Kind, e.Message = KindTimeout, fmt.Sprintf("the event took longer than %s", inst.limit)
	case errors.As(err, &lim):
		e.Kind, e.Message = KindLogLimit, fmt.Sprintf("logs exceed %d bytes", f.limits.MaxLogBytes)
	case errors.As(err, &fl):
		e.Kind, e.Message = ErrorKind(fl.Kind), fl.Message
	default:
		e.Kind, e.Message = KindTrap, firstLine(err.Error())
	}
	return e
}

// RefusedGrow and ResetRefused make a linearMemory the memory of a
// JavaScript instance (quickjs.Memory).
func (m *linearMemory) RefusedGrow() uint64 { return m.refusedGrow() }

// ResetRefused forgets the grows refused so far.
func (m *linearMemory) ResetRefused() { m.refused.Store(0) }
