// Package exampletest runs one table of events through an example function
// twice: natively, with package sdktest ([Native]), and as the real
// WebAssembly module in the real runtime ([Wasm]). Declaring the table once
// and handing it to both runners keeps the two from drifting: a case that
// behaves differently in the sandbox fails there.
//
// Examples in other languages than Go (C, AssemblyScript) are built by
// their Makefile rule ([Make]) and run with [Module], on the table of the
// Go example they mirror, so that every language is held to one table.
//
// Only tests import this package.
package exampletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

// Table is an example's table: the consent stored for every case, and the
// cases.
type Table struct {
	// Records are the stored consent records, in the wire format of the
	// consent-record contract (one JSON object per string).
	Records []string
	Cases   []Case
}

// Case is one event and what the function must do with it.
type Case struct {
	Name  string
	Event string // the event's JSON
	// Settings are the function's settings (a JSON object); "" for none.
	Settings string
	// StoreErr, when set, makes every consent lookup fail with it, as an
	// unavailable store would; Table.Records are then not found.
	StoreErr error
	// Verdict and Reason are the result wanted: abi.ResultDeliver (the zero
	// value) with no reason, or the drop reason or error message.
	Verdict abi.Result
	Reason  string
	// Want is the event delivered when the function changes it. "" means
	// the function must not change the event.
	Want string
	// Check, when set, looks at the delivered event further (it is called
	// only when the verdict is ResultDeliver).
	Check func(tb testing.TB, event []byte)
}

// Native runs every case of tab through the handlers with sdktest, as a
// subtest named after the case.
func Native(t *testing.T, h sdk.Handlers, tab Table) {
	t.Helper()
	validate(t, tab)
	for _, c := range tab.Cases {
		t.Run(c.Name, func(t *testing.T) {
			opts := []sdktest.Option{sdktest.WithConsent(tab.Records...)}
			if c.Settings != "" {
				opts = append(opts, sdktest.WithSettings(c.Settings))
			}
			if c.StoreErr != nil {
				opts = append(opts, sdktest.WithStoreError(c.StoreErr))
			}
			res := sdktest.Run(t, h, c.Event, opts...)
			check(t, c, res.Verdict, res.Reason, res.Modified)
			// Natively the event is there whatever the verdict: it must be
			// the input, or Want.
			if !sameJSON(t, res.Event, c.wantEvent()) {
				t.Errorf("event:\n got %s\nwant %s", res.Event, c.wantEvent())
			}
			if res.Verdict == abi.ResultDeliver && c.Check != nil {
				c.Check(t, res.Event)
			}
		})
	}
}

// Wasm builds the example in dir (a main package using the SDK) to
// WebAssembly and runs every case of tab through it in the runtime, as a
// subtest named after the case. Each case is invoked twice, the second time
// on an instance that has already served events; then each group of cases
// that share a loaded function goes through InvokeBatch as one batch
// (subtest "batch N"). Any sandbox failure fails the case.
//
// A function is loaded once per distinct Settings and StoreErr, with the
// table's records in a consentstore.Memory (or a store that fails with
// StoreErr); the functions load concurrently, and their compiled code comes
// from the shared on-disk cache (wasmbuild.CompilationCache), so that only
// the first load of a machine compiles.
func Wasm(t *testing.T, dir string, tab Table) {
	t.Helper()
	validate(t, tab)
	b, err := wasmbuild.New()
	if err != nil {
		t.Fatal(err)
	}
	wasm := b.Build(t, dir)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	name := dir
	if abs, err := filepath.Abs(dir); err == nil {
		name = filepath.Base(abs)
	}
	Module(t, name, wasm, tab)
}

// Module runs every case of tab through a module built beforehand (an
// example in another language than Go: see [Make]), as [Wasm] runs them;
// name names the functions it loads.
func Module(t *testing.T, name string, wasm []byte, tab Table) {
	t.Helper()
	validate(t, tab)
	store := consentstore.NewMemory()
	for _, r := range tab.Records {
		var rec consent.Record
		if err := json.Unmarshal([]byte(r), &rec); err != nil {
			t.Fatalf("consent record %s: %v", r, err)
		}
		if _, err := store.Put(&rec); err != nil {
			t.Fatalf("consent record %s: %v", r, err)
		}
	}

	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(context.Background()) }) // after the functions' cleanups

	// One function per distinct Settings and StoreErr, in table order,
	// loaded concurrently (a load costs most of the time under -race).
	type key struct{ settings, storeErr string }
	type group struct {
		opts  runtime.Options
		fn    *runtime.Function
		err   error
		cases []Case
	}
	groups := make(map[key]*group)
	var order []*group
	groupOf := make([]*group, len(tab.Cases))
	for i, c := range tab.Cases {
		k := key{settings: c.Settings}
		if c.StoreErr != nil {
			k.storeErr = c.StoreErr.Error()
		}
		g := groups[k]
		if g == nil {
			g = &group{opts: runtime.Options{Name: fmt.Sprintf("%s#%d", name, len(order)), Settings: []byte(c.Settings), Store: store}}
			if c.StoreErr != nil {
				g.opts.Store = errStore{c.StoreErr}
			}
			groups[k] = g
			order = append(order, g)
		}
		g.cases = append(g.cases, c)
		groupOf[i] = g
	}
	var wg sync.WaitGroup
	for _, g := range order {
		wg.Go(func() { g.fn, g.err = eng.Load(context.Background(), wasm, g.opts) })
	}
	wg.Wait()
	for _, g := range order {
		if g.fn != nil {
			t.Cleanup(func() { _ = g.fn.Close(context.Background()) })
		}
	}
	for _, g := range order {
		if g.err != nil {
			t.Fatalf("load %s with settings %s: %v", name, g.opts.Settings, g.err)
		}
	}

	var res runtime.Result // reused across calls, as a caller may do
	for i, c := range tab.Cases {
		g := groupOf[i]
		t.Run(c.Name, func(t *testing.T) {
			for round := range 2 {
				event := []byte(c.Event)
				if err := g.fn.Invoke(t.Context(), event, &res); err != nil {
					t.Errorf("round %d: Invoke: %v (verdict %v, kind %s, reason %q)", round, err, res.Verdict, res.Kind, res.Reason)
					return
				}
				checkWasm(t, fmt.Sprintf("round %d: ", round), c, &res)
			}
		})
	}

	for i, g := range order {
		t.Run(fmt.Sprintf("batch %d", i), func(t *testing.T) {
			events := make([][]byte, len(g.cases))
			for j, c := range g.cases {
				events[j] = []byte(c.Event)
			}
			results := make([]runtime.Result, len(events))
			if err := g.fn.InvokeBatch(t.Context(), events, results); err != nil {
				t.Errorf("InvokeBatch: %v", err)
			}
			for j, c := range g.cases {
				checkWasm(t, c.Name+": ", c, &results[j])
			}
		})
	}
}

// checkWasm checks one result of the runtime against a case.
func checkWasm(t *testing.T, prefix string, c Case, res *runtime.Result) {
	t.Helper()
	if res.Verdict == runtime.Fail && res.Kind.Sandbox() {
		t.Errorf("%ssandbox failure: %s: %s", prefix, res.Kind, res.Reason)
		return
	}
	check(&prefixed{t, prefix}, c, ResultOf(res), res.Reason, res.Modified)
	if res.Verdict != runtime.Deliver {
		return // the runtime delivers no event
	}
	if !sameJSON(t, res.Event, c.wantEvent()) {
		t.Errorf("%sevent:\n got %s\nwant %s", prefix, res.Event, c.wantEvent())
	}
	if c.Check != nil {
		c.Check(&prefixed{t, prefix}, res.Event)
	}
}

// prefixed prefixes the failures of a check with the round or case.
type prefixed struct {
	*testing.T
	prefix string
}

func (p *prefixed) Errorf(format string, args ...any) {
	p.T.Helper()
	p.T.Errorf("%s%s", p.prefix, fmt.Sprintf(format, args...))
}

func (p *prefixed) Fatalf(format string, args ...any) {
	p.T.Helper()
	p.T.Fatalf("%s%s", p.prefix, fmt.Sprintf(format, args...))
}

// ResultOf maps the runtime's verdict and error kind to the guest's result
// code, the vocabulary of sdktest: Deliver and Drop to themselves, a Fail to
// the result of its kind, and any other kind (a sandbox failure included) to
// ResultFunctionError.
func ResultOf(res *runtime.Result) abi.Result {
	switch res.Verdict {
	case runtime.Deliver:
		return abi.ResultDeliver
	case runtime.Drop:
		return abi.ResultDrop
	}
	switch res.Kind {
	case runtime.KindRetry:
		return abi.ResultRetry
	case runtime.KindEventNotSupported:
		return abi.ResultEventNotSupported
	case runtime.KindInvalidEventPayload:
		return abi.ResultInvalidEventPayload
	case runtime.KindValidationError:
		return abi.ResultValidationError
	}
	return abi.ResultFunctionError
}

// check compares what both runners see: verdict, reason, and whether the
// event was changed.
func check(tb testing.TB, c Case, verdict abi.Result, reason string, modified bool) {
	tb.Helper()
	if verdict != c.Verdict || reason != c.Reason {
		tb.Errorf("got %v %q, want %v %q", verdict, reason, c.Verdict, c.Reason)
	}
	if want := c.Want != ""; modified != want {
		tb.Errorf("Modified = %v, want %v", modified, want)
	}
}

func (c *Case) wantEvent() string {
	if c.Want != "" {
		return c.Want
	}
	return c.Event
}

// validate refuses a table that cannot mean what it says.
func validate(t *testing.T, tab Table) {
	t.Helper()
	seen := make(map[string]bool)
	for _, c := range tab.Cases {
		switch {
		case c.Name == "":
			t.Fatalf("exampletest: a case without a name: %s", c.Event)
		case seen[c.Name]:
			t.Fatalf("exampletest: two cases named %q", c.Name)
		case !json.Valid([]byte(c.Event)):
			t.Fatalf("exampletest: case %q: the event is not JSON: %s", c.Name, c.Event)
		case c.Settings != "" && !json.Valid([]byte(c.Settings)):
			t.Fatalf("exampletest: case %q: the settings are not JSON: %s", c.Name, c.Settings)
		case c.Want != "" && !json.Valid([]byte(c.Want)):
			t.Fatalf("exampletest: case %q: Want is not JSON: %s", c.Name, c.Want)
		case c.Want != "" && c.Verdict != abi.ResultDeliver:
			t.Fatalf("exampletest: case %q: a changed event (Want) is only delivered with ResultDeliver", c.Name)
		case c.Verdict == abi.ResultDeliver && c.Reason != "":
			t.Fatalf("exampletest: case %q: a delivered event has no reason", c.Name)
		}
		seen[c.Name] = true
	}
}

// sameJSON reports whether two JSON documents hold the same values, whatever
// the order of their keys.
func sameJSON(tb testing.TB, got []byte, want string) bool {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("result is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("want is not JSON: %v: %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

// errStore is a consent store that is down.
type errStore struct{ err error }

func (s errStore) Get(context.Context, string) (*consent.Record, error) { return nil, s.err }

var _ consent.Store = errStore{}

// LoadJS loads a JavaScript example's file (index.js) on eng, closed when
// tb ends. A build without the JavaScript engine (make js-engine) skips
// tb, unless INSERTFN_REQUIRE_NODE=1 (CI), where it fails.
func LoadJS(tb testing.TB, eng *runtime.Engine, code []byte, opts runtime.Options) *runtime.Function {
	tb.Helper()
	opts.Language, opts.File = runtime.JavaScript, "index.js"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a first compilation under -race
	defer cancel()
	f, err := eng.Load(ctx, code, opts)
	if errors.Is(err, runtime.ErrNoJSEngine) {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}
