package quickjs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tidwall/gjson"
)

// testModule compiles the engine once for the package's tests, through a
// compilation cache on disk shared by the test runs (the engine takes
// seconds to compile, under -race much longer).
var testModule = sync.OnceValues(func() (*Module, error) {
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir())
	if err != nil {
		return nil, err
	}
	return Compile(context.Background(), cache)
})

func cacheDir() string {
	return filepath.Join(os.TempDir(), "insertfn-quickjs-test-cache")
}

func module(t testing.TB) *Module {
	t.Helper()
	m, err := testModule()
	if errors.Is(err, ErrNoEngine) {
		skipWithoutEngine(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testLimits = Limits{MemoryPages: 512, MaxLogBytes: 4096, MaxEventBytes: 1 << 20}

func load(t testing.TB, code string, settings string) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := module(t).NewInstance(ctx, Source{Name: "fn.js", Code: []byte(code), Settings: []byte(settings)}, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

func handle(t testing.TB, inst *Instance, event string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := inst.Handle(ctx, []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const trackEvent = `{"type":"track","event":"Order Completed","userId":"u123","properties":{"total":10,"secret":"x"},"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`

func TestHandlers(t *testing.T) {
	tests := []struct {
		name, code, event string
		verdict           abi.Result
		reason            string
		out               string // the event that flows on, for a delivery
	}{
		{name: "sync handler returns the event",
			code:  `function onTrack(event, settings) { event.properties.tagged = settings.tag; return event }`,
			event: `{"type":"track","properties":{}}`, verdict: abi.ResultDeliver, out: `{"type":"track","properties":{"tagged":"t1"}}`},
		{name: "async handler",
			code:  `async function onTrack(event) { await null; event.later = await Promise.resolve(2); return event }`,
			event: `{"type":"track"}`, verdict: abi.ResultDeliver, out: `{"type":"track","later":2}`},
		{name: "the mutated argument flows on when nothing is returned",
			code:  `async function onTrack(event) { delete event.properties.secret }`,
			event: trackEvent, verdict: abi.ResultDeliver,
			out: `{"type":"track","event":"Order Completed","userId":"u123","properties":{"total":10},"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`},
		{name: "a returned new object",
			code:  `function onIdentify(event) { return { type: "identify", userId: event.userId, traits: { plan: "pro" } } }`,
			event: `{"type":"identify","userId":"u1","traits":{"email":"a@b"}}`, verdict: abi.ResultDeliver,
			out: `{"type":"identify","userId":"u1","traits":{"plan":"pro"}}`},
		{name: "DropEvent with its reason",
			code:  `async function onTrack(event) { throw new DropEvent('Consent mismatch') }`,
			event: trackEvent, verdict: abi.ResultDrop, reason: "Consent mismatch"},
		{name: "DropEvent from a sync handler",
			code:  `function onTrack(event) { if (event.userId === "u123") throw new DropEvent("no u123"); return event }`,
			event: trackEvent, verdict: abi.ResultDrop, reason: "no u123"},
		{name: "EventNotSupported",
			code:  `async function onPage() { throw new EventNotSupported('page is not supported') }`,
			event: `{"type":"page"}`, verdict: abi.ResultEventNotSupported, reason: "page is not supported"},
		{name: "InvalidEventPayload",
			code:  `async function onTrack() { throw new InvalidEventPayload('no userId') }`,
			event: `{"type":"track"}`, verdict: abi.ResultInvalidEventPayload, reason: "no userId"},
		{name: "ValidationError",
			code:  `async function onTrack() { throw new ValidationError('bad total') }`,
			event: `{"type":"track"}`, verdict: abi.ResultValidationError, reason: "bad total"},
		{name: "RetryError",
			code:  `async function onTrack() { throw new RetryError('consent service is down') }`,
			event: `{"type":"track"}`, verdict: abi.ResultRetry, reason: "consent service is down"},
		{name: "a rejected promise of another error is a function error",
			code:  `async function onTrack(event) { return event.properties.missing.field }`,
			event: `{"type":"track","properties":{}}`, verdict: abi.ResultFunctionError, reason: "TypeError: cannot read property 'field' of undefined"},
		{name: "a thrown non-Error",
			code:  `function onTrack() { throw {code: 7} }`,
			event: `{"type":"track"}`, verdict: abi.ResultFunctionError, reason: `a non-Error was thrown: {"code":7}`},
		{name: "a missing handler is EventNotSupported, as in Segment",
			code:  `async function onTrack(event) { return event }`,
			event: `{"type":"identify","userId":"u1"}`, verdict: abi.ResultEventNotSupported, reason: "identify is not supported"},
		{name: "handlers declared with const",
			code:  `const onGroup = async (event) => { event.seen = true; return event }`,
			event: `{"type":"group"}`, verdict: abi.ResultDeliver, out: `{"type":"group","seen":true}`},
		{name: "an event that is not JSON",
			code:  `function onTrack(event) { return event }`,
			event: `{"type":`, verdict: abi.ResultInvalidEventPayload, reason: "the event is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := load(t, tt.code, `{"tag":"t1"}`)
			for range 2 { // the second event finds the instance as the first left it
				res := handle(t, inst, tt.event)
				if res.Verdict != tt.verdict || res.Reason != tt.reason || string(res.Event) != tt.out {
					t.Fatalf("got %v %q %s\nwant %v %q %s", res.Verdict, res.Reason, res.Event, tt.verdict, tt.reason, tt.out)
				}
			}
		})
	}
}

func TestConsole(t *testing.T) {
	inst := load(t, `function onTrack(event) {
  console.log("user", event.userId, {a: 1});
  console.warn("careful");
  console.error(new Error("boom"));
  return event
}`, "")
	res := handle(t, inst, `{"type":"track","userId":"u1"}`)
	want := []Log{{abi.LevelInfo, `user u1 {"a":1}`}, {abi.LevelWarn, "careful"}}
	if len(res.Logs) != 3 || res.Logs[0] != want[0] || res.Logs[1] != want[1] ||
		res.Logs[2].Level != abi.LevelError || !strings.HasPrefix(res.Logs[2].Message, "Error: boom") {
		t.Fatalf("logs %+v", res.Logs)
	}
	if res.LogsCut {
		t.Fatal("logs cut")
	}
	// The next event's logs are its own.
	res = handle(t, load(t, `function onTrack(e) { for (let i = 0; i < 10000; i++) console.log("0123456789"); return e }`, ""), `{"type":"track"}`)
	if !res.LogsCut || len(res.Logs) != testLimits.MaxLogBytes/10 {
		t.Fatalf("%d lines, cut %v; want %d lines and cut", len(res.Logs), res.LogsCut, testLimits.MaxLogBytes/10)
	}
}

func TestSyntaxErrorNamesTheLine(t *testing.T) {
	code := "// a Segment function\nasync function onTrack(event) {\n  if (event.userId {\n    throw new DropEvent('x')\n  }\n}\n"
	_, err := module(t).NewInstance(context.Background(), Source{Name: "consent.js", Code: []byte(code)}, testLimits)
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *LoadError", err)
	}
	if le.File != "consent.js" || le.Line != 3 || !strings.HasPrefix(le.Message, "SyntaxError: ") {
		t.Fatalf("got %#v (%v), want SyntaxError at consent.js:3", le, err)
	}
	if !strings.HasPrefix(err.Error(), "consent.js:3: SyntaxError: ") {
		t.Fatalf("message %q", err)
	}
}

func TestTopLevelThrowIsALoadError(t *testing.T) {
	_, err := module(t).NewInstance(context.Background(), Source{Name: "f.js", Code: []byte("\n\nthrow new Error('no settings')")}, testLimits)
	var le *LoadError
	if !errors.As(err, &le) || le.Message != "Error: no settings" || le.Line != 3 {
		t.Fatalf("got %#v (%v)", le, err)
	}
}

// newInstanceAfterFailure checks that a failed instance refuses events and
// that a fresh instance of the same function handles the next one.
func nextEventFine(t *testing.T, inst *Instance, code string) {
	t.Helper()
	if _, err := inst.Handle(context.Background(), []byte(`{"type":"track"}`)); !errors.Is(err, ErrUnusable) {
		t.Fatalf("a failed instance: got %v, want ErrUnusable", err)
	}
	res := handle(t, load(t, code, ""), `{"type":"track","userId":"u1"}`)
	if res.Verdict != abi.ResultDeliver {
		t.Fatalf("next event: %+v", res)
	}
}

func TestEndlessLoopStoppedByTheDeadline(t *testing.T) {
	for _, code := range []string{
		`function onTrack(event) { if (event.userId) return event; while (true) {} }`,
		`async function onTrack(event) { if (event.userId) return event; for (;;) { await null } }`,
		`function onTrack(event) { if (event.userId) return event; const s = "x".repeat(1 << 20); for (;;) s.indexOf("y") }`,
		// Catastrophic backtracking: one call into the engine's C code
		// that would take 2^40 steps.
		`function onTrack(event) { if (event.userId) return event; return /(a+)+b/.test("a".repeat(40)) }`,
	} {
		inst := load(t, code, "")
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := inst.Handle(ctx, []byte(`{"type":"track"}`))
		cancel()
		var f *Failure
		if !errors.As(err, &f) || f.Kind != Timeout {
			t.Fatalf("%s: got %v, want a Timeout failure", code, err)
		}
		nextEventFine(t, inst, code)
	}
}

// QuickJS checks its stack depth in wasm too: deep recursion is a
// RangeError the handler may catch, and the instance goes on.
func TestDeepRecursionIsARangeError(t *testing.T) {
	inst := load(t, `function down(n) { return down(n + 1) + 1 }
function onTrack(event) { if (event.recurse) down(0); return event }`, "")
	res := handle(t, inst, `{"type":"track","recurse":true}`)
	if res.Verdict != abi.ResultFunctionError || res.Reason != "RangeError: Maximum call stack size exceeded" {
		t.Fatalf("got %v %q", res.Verdict, res.Reason)
	}
	if res := handle(t, inst, `{"type":"track"}`); res.Verdict != abi.ResultDeliver {
		t.Fatalf("the next event: %+v", res)
	}
}

func TestMemoryBombStoppedByTheCap(t *testing.T) {
	code := `function onTrack(event) { if (event.userId) return event; const a = []; for (;;) a.push({n: a.length, s: "x" + a.length}) }`
	inst := load(t, code, "")
	_, err := inst.Handle(context.Background(), []byte(`{"type":"track"}`))
	var f *Failure
	if !errors.As(err, &f) || f.Kind != MemoryLimit {
		t.Fatalf("got %v, want a MemoryLimit failure", err)
	}
	if inst.MemorySize() > testLimits.MemoryPages*65536 {
		t.Fatalf("memory %d past the cap", inst.MemorySize())
	}
	nextEventFine(t, inst, code)
}

func TestMemoryCapBelowTheEngineStart(t *testing.T) {
	_, err := module(t).NewInstance(context.Background(), Source{Name: "f.js"}, Limits{MemoryPages: 16})
	if err == nil || !strings.Contains(err.Error(), "raise the function's memory limit") {
		t.Fatalf("got %v", err)
	}
}

func TestSettingsMustBeAnObject(t *testing.T) {
	_, err := module(t).NewInstance(context.Background(), Source{Name: "f.js", Settings: []byte(`[1]`)}, testLimits)
	if err == nil || !strings.Contains(err.Error(), "settings are not a JSON object") {
		t.Fatalf("got %v", err)
	}
}

// An event the handler read but did not change flows on as the host's
// bytes; any change, at any depth and by any means, is seen.
func TestChangesAreSeenAtAnyDepth(t *testing.T) {
	const event = `{"type":"track", "userId":"u1", "properties":{"items":[{"sku":"a"}]}, "context":{"consent":{"categoryPreferences":{"Ads":true}}}}`
	tests := []struct {
		name, body string
		modified   bool
		out        string
	}{
		{"read only", `const p = event.context.consent.categoryPreferences; for (const k of Object.keys(p)) if (!p[k]) throw new DropEvent("x"); JSON.stringify(event); return event`, false, event},
		{"nothing returned", `event.properties.items.map(i => i.sku)`, false, event},
		{"a nested set", `event.context.consent.categoryPreferences.Ads = false`, true,
			`{"type":"track","userId":"u1","properties":{"items":[{"sku":"a"}]},"context":{"consent":{"categoryPreferences":{"Ads":false}}}}`},
		{"a push on a nested array", `event.properties.items.push({sku: "b"}); return event`, true,
			`{"type":"track","userId":"u1","properties":{"items":[{"sku":"a"},{"sku":"b"}]},"context":{"consent":{"categoryPreferences":{"Ads":true}}}}`},
		{"Object.assign", `Object.assign(event.properties, {n: 1})`, true,
			`{"type":"track","userId":"u1","properties":{"items":[{"sku":"a"}],"n":1},"context":{"consent":{"categoryPreferences":{"Ads":true}}}}`},
		{"a delete through an alias", `const c = event.context; delete c.consent`, true,
			`{"type":"track","userId":"u1","properties":{"items":[{"sku":"a"}]},"context":{}}`},
		{"a spread copy returned", `return {...event, userId: "u2"}`, true,
			`{"type":"track","userId":"u2","properties":{"items":[{"sku":"a"}]},"context":{"consent":{"categoryPreferences":{"Ads":true}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := load(t, "function onTrack(event) {"+tt.body+"}", "")
			res := handle(t, inst, event)
			if res.Verdict != abi.ResultDeliver || res.Modified != tt.modified || string(res.Event) != tt.out {
				t.Fatalf("got %v %q modified %v %s\nwant modified %v %s", res.Verdict, res.Reason, res.Modified, res.Event, tt.modified, tt.out)
			}
		})
	}
}

// The event is read lazily from the host: what a handler sees must be what
// a parsed event would show, whatever it touches.
func TestLazyEventReads(t *testing.T) {
	const event = `{"type":"track","userId":"u1","n":1.5,"ok":false,"nil":null,"s":"a\"b\u00e9",` +
		`"properties":{"a.b":1,"#":2,"*x?":3,"list":[10,20,{"k":"v"}],"empty":{},"none":[]}}`
	tests := []struct{ name, body, want string }{
		{"primitives", `return [e.userId, e.n, e.ok, e.nil, e.s, e.missing === undefined]`, `["u1",1.5,false,null,"a\"bé",true]`},
		{"keys with gjson's special characters", `const p = e.properties; return [p["a.b"], p["#"], p["*x?"]]`, `[1,2,3]`},
		{"arrays", `const l = e.properties.list; return [l.length, l[0], l[2].k, l[5] === undefined, Array.isArray(l), l.map(x => typeof x)]`,
			`[3,10,"v",true,true,["number","number","object"]]`},
		{"for of and spread of an array", `const out = []; for (const x of e.properties.list) out.push(x); return [out.length, [...e.properties.list].length]`, `[3,3]`},
		{"in and Object.keys", `return ["userId" in e, "x" in e, Object.keys(e.properties), Object.keys(e.properties.empty), e.properties.none.length]`,
			`[true,false,["a.b","#","*x?","list","empty","none"],[],0]`},
		{"identity across materialization", `const c = e.properties; const a = c === e.properties; Object.keys(e); return [a, c === e.properties, c.list === e.properties.list]`, `[true,true,true]`},
		{"a write through an object read before materialization", `const p = e.properties; p.added = 1; return [e.properties.added, JSON.parse(JSON.stringify(e)).properties.added]`, `[1,1]`},
		{"methods of Object.prototype", `return [e.hasOwnProperty("userId"), e.hasOwnProperty("zzz"), typeof e.toString]`, `[true,false,"function"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := load(t, "function onTrack(e) { e.result = (function () { "+tt.body+" })() }", "")
			res := handle(t, inst, event)
			got := gjson.GetBytes(res.Event, "result").Raw
			if res.Verdict != abi.ResultDeliver || got != tt.want {
				t.Fatalf("got %v %q %s, want %s", res.Verdict, res.Reason, got, tt.want)
			}
		})
	}
}

// A handler that reads, stringifies or spreads the event without changing
// it delivers the host's bytes.
func TestReadingIsNotChanging(t *testing.T) {
	const event = `{"type":"track",  "userId":"u1", "properties":{"list":[1,2]}}`
	inst := load(t, `function onTrack(e) { console.log(JSON.stringify(e)); const copy = {...e}; Object.keys(e.properties.list); return e }`, "")
	res := handle(t, inst, event)
	if res.Modified || string(res.Event) != event {
		t.Fatalf("modified %v: %s", res.Modified, res.Event)
	}
	if len(res.Logs) != 1 || res.Logs[0].Message != `{"type":"track","userId":"u1","properties":{"list":[1,2]}}` {
		t.Fatalf("logs %+v", res.Logs)
	}
}

// skipWithoutEngine skips a test that needs the engine when it was not
// fetched (npm missing), unless INSERTFN_REQUIRE_NODE=1 (as in CI) makes
// that a failure.
func skipWithoutEngine(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
		t.Fatalf("%v", err)
	}
	t.Skipf("%v", err)
}
