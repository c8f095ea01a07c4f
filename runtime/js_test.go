package runtime_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/runtime/internal/quickjs"
)

// jsEngine is an Engine for the JavaScript tests, whose compilation cache
// on disk is the one the quickjs package's tests fill: the engine takes
// seconds to compile, under -race much longer.
var jsEngine = sync.OnceValues(func() (*runtime.Engine, error) {
	return runtime.NewEngine(runtime.Config{CacheDir: filepath.Join(os.TempDir(), "insertfn-quickjs-test-cache")})
})

// loadJS loads a JavaScript function on the shared engine and closes it
// when the test ends; without the engine (make js-engine) the test skips,
// unless INSERTFN_REQUIRE_NODE=1.
func loadJS(t testing.TB, code string, opts runtime.Options) *runtime.Function {
	t.Helper()
	f, err := tryLoadJS(t, code, opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

func tryLoadJS(t testing.TB, code string, opts runtime.Options) (*runtime.Function, error) {
	t.Helper()
	eng, err := jsEngine()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Name == "" {
		opts.Name = "fn"
	}
	opts.Language = runtime.JavaScript
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a first compilation under -race
	defer cancel()
	f, err := eng.Load(ctx, []byte(code), opts)
	if errors.Is(err, runtime.ErrNoJSEngine) {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err == nil {
		t.Cleanup(func() {
			if err := f.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return f, err
}

const jsConsentCheck = `
async function onTrack(event, settings) {
  const prefs = event.context && event.context.consent && event.context.consent.categoryPreferences;
  if (prefs && prefs.Analytics !== settings.analytics) {
    throw new DropEvent('Consent mismatch')
  }
  console.log('checked', event.userId)
  return event
}`

func TestJSVerdicts(t *testing.T) {
	f := loadJS(t, jsConsentCheck+`
function onIdentify(event) { event.traits.checked = true; return event }
function onPage() { throw new RetryError('the service is down') }`,
		runtime.Options{Settings: []byte(`{"analytics":false}`), TimeEvery: 1})
	res := mustDeliver(t, f, evMatch)
	if res.Modified || string(res.Event) != evMatch {
		t.Errorf("unchanged event: Modified %v, Event %s", res.Modified, res.Event)
	}
	if len(res.Logs) != 1 || res.Logs[0].Message != "checked u1" {
		t.Errorf("logs %+v, want one line \"checked u1\"", res.Logs)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration %v with TimeEvery 1, want > 0", res.Duration)
	}
	res, err := invoke(t, f, evMismatch)
	if err != nil || res.Verdict != runtime.Drop || res.Reason != "Consent mismatch" || res.Event != nil {
		t.Errorf("mismatch: %v %v %q %s, want a drop for Consent mismatch", err, res.Verdict, res.Reason, res.Event)
	}
	res = mustDeliver(t, f, `{"type":"identify","userId":"u1","traits":{}}`)
	if !res.Modified || string(res.Event) != `{"type":"identify","userId":"u1","traits":{"checked":true}}` {
		t.Errorf("changed event: Modified %v, Event %s", res.Modified, res.Event)
	}
	res, err = invoke(t, f, `{"type":"page"}`)
	if err != nil || res.Verdict != runtime.Fail || res.Kind != runtime.KindRetry || res.Reason != "the service is down" {
		t.Errorf("RetryError: %v %v %s %q", err, res.Verdict, res.Kind, res.Reason)
	}
	res, err = invoke(t, f, `{"type":"group"}`)
	if err != nil || res.Kind != runtime.KindEventNotSupported {
		t.Errorf("no onGroup: %v %s %q, want EventNotSupported", err, res.Kind, res.Reason)
	}
	if st := f.Stats(); st.Invocations != 5 || st.Discarded != 0 {
		t.Errorf("stats %+v, want 5 invocations and nothing discarded", st)
	}
}

func TestJSEndlessLoopStoppedByTheTimeLimit(t *testing.T) {
	f := loadJS(t, `function onTrack(event) { if (event.event === "loop") for (;;) {} return event }`,
		runtime.Options{Limits: runtime.Limits{Timeout: 100 * time.Millisecond, PoolSize: 1}})
	start := time.Now()
	res, err := invoke(t, f, `{"type":"track","event":"loop"}`)
	if !errors.Is(err, runtime.ErrTimeout) || res.Kind != runtime.KindTimeout {
		t.Fatalf("endless loop: %v (%s), want a Timeout", err, res.Kind)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopped after %v, want about 100ms", d)
	}
	mustDeliver(t, f, `{"type":"track","event":"next"}`)
	if st := f.Stats(); st.Discarded != 1 || st.Started != 2 {
		t.Errorf("stats %+v, want the instance that looped discarded and another started", st)
	}
}

func TestJSLoadErrorNamesFileAndLine(t *testing.T) {
	_, err := tryLoadJS(t, "function onTrack(event) {\n  return event +\n}\n", runtime.Options{Name: "broken", File: "broken.js"})
	if err == nil {
		t.Fatal("a syntax error was loaded")
	}
	if !strings.Contains(err.Error(), "broken.js:3: SyntaxError") {
		t.Errorf("error %q, want it to name broken.js:3 and the SyntaxError", err)
	}
	_, err = tryLoadJS(t, "throw new Error('no config')", runtime.Options{Name: "throws"})
	if err == nil || !strings.Contains(err.Error(), "throws.js:1: Error: no config") {
		t.Errorf("top-level throw: %v, want throws.js:1: Error: no config", err)
	}
}

func TestJSLogLimit(t *testing.T) {
	f := loadJS(t, `function onTrack(event) { if (event.event === "loud") console.log("x".repeat(10000)); return event }`,
		runtime.Options{Limits: runtime.Limits{MaxLogBytes: 1024}})
	res, err := invoke(t, f, `{"type":"track","event":"loud"}`)
	if !errors.Is(err, runtime.ErrLogLimit) || res.Verdict != runtime.Fail {
		t.Fatalf("huge console.log: %v %v, want a LogLimit failure", err, res.Verdict)
	}
	mustDeliver(t, f, `{"type":"track","event":"quiet"}`)
}

func TestJSMemoryBomb(t *testing.T) {
	f := loadJS(t, `function onTrack(event) { if (event.event === "bomb") { const a = []; for (;;) a.push("xxxxxxxxxxxxxxxx" + a.length) } return event }`,
		runtime.Options{Limits: runtime.Limits{MemoryPages: 512, Timeout: 30 * time.Second}})
	res, err := invoke(t, f, `{"type":"track","event":"bomb"}`)
	if !errors.Is(err, runtime.ErrMemoryLimit) {
		t.Fatalf("memory bomb: %v (%s), want a MemoryLimit failure", err, res.Kind)
	}
	mustDeliver(t, f, `{"type":"track","event":"calm"}`)
}

func TestJSEventTooLarge(t *testing.T) {
	f := loadJS(t, `function onTrack(event) { event.pad = "x".repeat(5000); return event }`,
		runtime.Options{Limits: runtime.Limits{MaxEventBytes: 1024}})
	_, err := invoke(t, f, `{"type":"track"}`)
	if !errors.Is(err, runtime.ErrEventTooLarge) {
		t.Fatalf("%v, want EventTooLarge", err)
	}
}

// A JavaScript instance counts in the Engine's memory budget as a module's
// does: its cap and the overhead, from start to close.
func TestJSInstancesCountInTheMemoryBudget(t *testing.T) {
	eng, err := jsEngine()
	if err != nil {
		t.Fatal(err)
	}
	f := loadJS(t, `function onTrack(e) { return e }`, runtime.Options{Limits: runtime.Limits{MemoryPages: 320, PoolSize: 1}})
	_, before := eng.MemoryBudget()
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, after := eng.MemoryBudget()
	if want := int64(320*65536 + runtime.InstanceOverhead); before-after != want {
		t.Errorf("closing the function's one instance gave back %d bytes, want %d", before-after, want)
	}
}

func TestJSWithoutTheEngineNamesTheMakeTarget(t *testing.T) {
	if !strings.Contains(runtime.ErrNoJSEngine.Error(), "make js-engine") {
		t.Errorf("ErrNoJSEngine %q does not name make js-engine", runtime.ErrNoJSEngine)
	}
	if runtime.ErrNoJSEngine != quickjs.ErrNoEngine {
		t.Error("ErrNoJSEngine is not the engine package's error")
	}
}

func TestTextIsNotAWasmModule(t *testing.T) {
	eng, err := jsEngine()
	if err != nil {
		t.Fatal(err)
	}
	_, err = eng.Load(context.Background(), []byte("function onTrack(e) { return e }"), runtime.Options{Name: "fn"})
	if err == nil || !strings.Contains(err.Error(), "runtime: js") {
		t.Errorf("JavaScript loaded as a module: %v, want an error that says how to load it as JavaScript", err)
	}
}

// jsConsentMatch is the seed's consent check on the fast path: the host
// compares the event's consent with the stored record.
const jsConsentMatch = `
async function onTrack(event, settings) {
  const c = insertfn.consent.compare(event);
  if (c.status === "unavailable") throw new RetryError("Consent store unavailable");
  if (c.mismatch) {
    console.log(c.differences.filter(d => d.inEvent && d.inStored).map(d => d.category + ":" + d.storedConsented).join(","));
    throw new DropEvent("Consent mismatch");
  }
  return event;
}
function onPage(event) {
  const r = insertfn.consent.lookup(event.userId);
  event.properties = { status: r.status, advertising: r.status === "found" ? r.categories.Advertising : null,
    purposes: r.status === "found" ? r.purposes.map(p => p.regulation + "/" + p.purpose + "=" + p.consented) : [] };
  return event;
}
function onIdentify() {
  const c = insertfn.consent.compare("anon-2");
  throw new DropEvent(c.status + " " + c.mismatch + " " + JSON.stringify(c.differences));
}`

func TestJSConsentFastPath(t *testing.T) {
	f := loadJS(t, jsConsentMatch, runtime.Options{Store: testStore})
	mustDeliver(t, f, evMatch)
	res, err := invoke(t, f, evMismatch)
	if err != nil || res.Verdict != runtime.Drop || res.Reason != "Consent mismatch" {
		t.Fatalf("mismatch: %v %v %q, want a drop", err, res.Verdict, res.Reason)
	}
	if len(res.Logs) != 1 || res.Logs[0].Message != "Analytics:false" {
		t.Errorf("logs %+v, want the one conflicting category, Analytics:false", res.Logs)
	}
	res = mustDeliver(t, f, `{"type":"page","userId":"u1"}`)
	if want := `{"type":"page","userId":"u1","properties":{"status":"found","advertising":true,"purposes":["gdpr/location_collection=true"]}}`; string(res.Event) != want {
		t.Errorf("lookup: %s\nwant %s", res.Event, want)
	}
	res = mustDeliver(t, f, `{"type":"page","userId":"nobody"}`)
	if want := `{"type":"page","userId":"nobody","properties":{"status":"no_record","advertising":null,"purposes":[]}}`; string(res.Event) != want {
		t.Errorf("lookup of nobody: %s\nwant %s", res.Event, want)
	}
	// Compared by another id; an event without consent.
	res, _ = invoke(t, f, `{"type":"identify","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`)
	if want := `differs true [{"category":"Advertising","inEvent":true,"eventConsented":true,"inStored":true,"storedConsented":false,"storedAt":2000}]`; res.Reason != want {
		t.Errorf("compare by id: %q\nwant %q", res.Reason, want)
	}
	res, _ = invoke(t, f, `{"type":"identify","userId":"u1"}`)
	if want := `no_event_consent false []`; res.Reason != want {
		t.Errorf("compare without consent: %q, want %q", res.Reason, want)
	}

	down := loadJS(t, jsConsentMatch, runtime.Options{Name: "down", Store: errStore{}})
	res, err = invoke(t, down, evMatch)
	if err != nil || res.Kind != runtime.KindRetry || len(res.Logs) != 1 || !strings.Contains(res.Logs[0].Message, "consent lookup failed") {
		t.Errorf("store down: %v %s %q logs %+v, want a RetryError and the host's log line", err, res.Kind, res.Reason, res.Logs)
	}
}

// Events on a JavaScript function run concurrently on the pool's
// instances, each with its own verdict; a batch runs event by event.
func TestJSConcurrentEventsAndBatches(t *testing.T) {
	f := loadJS(t, jsConsentMatch, runtime.Options{Store: testStore, Limits: runtime.Limits{PoolSize: 3}})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			var res runtime.Result
			for i := range 50 {
				ev, want := evMatch, runtime.Deliver
				if (w+i)%2 == 1 {
					ev, want = evMismatch, runtime.Drop
				}
				if err := f.Invoke(context.Background(), []byte(ev), &res); err != nil || res.Verdict != want {
					t.Errorf("worker %d event %d: %v %v %q, want %v", w, i, err, res.Verdict, res.Reason, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := f.Stats(); st.Started > 3 || st.Discarded != 0 {
		t.Errorf("stats %+v, want at most 3 instances and none discarded", st)
	}
	events := [][]byte{[]byte(evMatch), []byte(evMismatch), []byte(`{"type":"group"}`)}
	results := make([]runtime.Result, len(events))
	if err := f.InvokeBatch(context.Background(), events, results); err != nil {
		t.Fatal(err)
	}
	if results[0].Verdict != runtime.Deliver || results[1].Verdict != runtime.Drop || results[2].Kind != runtime.KindEventNotSupported {
		t.Errorf("batch: %v, %v, %s; want deliver, drop, EventNotSupported", results[0].Verdict, results[1].Verdict, results[2].Kind)
	}
}

// The watchdog stops the engine inside its C code too: a regular
// expression that backtracks catastrophically.
func TestJSRegexpBacktrackingStopped(t *testing.T) {
	f := loadJS(t, `function onTrack(event) { /^(a+)+$/.test("a".repeat(40) + "b"); return event }`,
		runtime.Options{Limits: runtime.Limits{Timeout: 100 * time.Millisecond, PoolSize: 1}})
	start := time.Now()
	if _, err := invoke(t, f, `{"type":"track"}`); !errors.Is(err, runtime.ErrTimeout) {
		t.Fatalf("%v, want a Timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopped after %v, want about 100ms", d)
	}
}

// A file whose top level never ends is refused at load, within the
// start-up time limit.
func TestJSEndlessTopLevelRefused(t *testing.T) {
	start := time.Now()
	_, err := tryLoadJS(t, `for (;;) {}`, runtime.Options{Limits: runtime.Limits{StartTimeout: 200 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "start-up took longer than 200ms") {
		t.Errorf("%v, want a refusal for the start-up time", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v, want about 200ms", d)
	}
}
