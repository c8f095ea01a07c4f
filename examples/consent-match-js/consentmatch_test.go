// Package consentmatchjs_test holds consent-match in JavaScript (index.js)
// to the table the Go, C and AssemblyScript versions share, in the real
// runtime and through the registry.
package consentmatchjs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/internal/testkit/exampletest/consentmatch"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
)

// setup returns the function's file, an Engine and the table's records in
// a store; without the engine (make js-engine) the test skips, unless
// INSERTFN_REQUIRE_NODE=1.
func setup(tb testing.TB) ([]byte, *runtime.Engine, consent.Store) {
	tb.Helper()
	code, err := os.ReadFile("index.js")
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = eng.Close(context.Background()) })
	store := consentstore.NewMemory()
	for _, r := range consentmatch.Table.Records {
		var rec consent.Record
		if err := json.Unmarshal([]byte(r), &rec); err != nil {
			tb.Fatal(err)
		}
		if _, err := store.Put(&rec); err != nil {
			tb.Fatal(err)
		}
	}
	return code, eng, store
}

// errStore fails every lookup with err, as an unavailable store does.
type errStore struct{ err error }

func (s errStore) Get(context.Context, string) (*consent.Record, error) { return nil, s.err }

// TestTable runs every case of the shared table through index.js in the
// runtime, twice (the second time on an instance that has served events).
// One difference is JavaScript's own: an Error thrown by the function is
// reported with its name ("Error: ..."), as Segment reports it.
func TestTable(t *testing.T) {
	code, eng, store := setup(t)
	fns := make(map[string]*runtime.Function) // one per settings and store
	keyOf := func(c exampletest.Case) string { return c.Settings + "|" + fmt.Sprint(c.StoreErr) }
	for _, c := range consentmatch.Table.Cases {
		if fns[keyOf(c)] == nil {
			opts := runtime.Options{Name: "consent-match-js", Settings: []byte(c.Settings), Store: store}
			if c.StoreErr != nil {
				opts.Store = errStore{c.StoreErr}
			}
			fns[keyOf(c)] = exampletest.LoadJS(t, eng, code, opts)
		}
	}
	var res runtime.Result
	for _, c := range consentmatch.Table.Cases {
		t.Run(c.Name, func(t *testing.T) {
			f := fns[keyOf(c)]
			for round := range 2 {
				if err := f.Invoke(context.Background(), []byte(c.Event), &res); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				reason := res.Reason
				if c.Verdict == abi.ResultFunctionError {
					reason = strings.TrimPrefix(reason, "Error: ")
				}
				if got := exampletest.ResultOf(&res); got != c.Verdict || reason != c.Reason {
					t.Errorf("round %d: verdict %v %q, want %v %q", round, got, res.Reason, c.Verdict, c.Reason)
				}
				if res.Verdict == runtime.Deliver && (res.Modified || string(res.Event) != c.Event) {
					t.Errorf("round %d: the event changed: %s", round, res.Event)
				}
			}
		})
	}
}

// BenchmarkRegistry is the per-event time of the JavaScript consent check
// through the registry (functions.Registry.Run: the version, the pool, the
// watchdog's limit and the failure policy), on an event whose consent
// matches and on one dropped for a mismatch.
func BenchmarkRegistry(b *testing.B) {
	_, eng, store := setup(b)
	code, err := os.ReadFile("index.js")
	if err != nil {
		b.Fatal(err)
	}
	reg := functions.NewRegistry(eng, store)
	b.Cleanup(func() { _ = reg.Close(context.Background()) })
	ctx := context.Background()
	m := functions.Manifest{Name: "consent-match-js", Wasm: "index.js"}
	if _, err := reg.Deploy(ctx, m, code); errors.Is(err, runtime.ErrNoJSEngine) {
		b.Skip(err)
	} else if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, event string
		deliver     bool
	}{
		{"match", `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`, true},
		{"mismatch", `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			event := []byte(bc.event)
			var out functions.Outcome
			for b.Loop() {
				if err := reg.Run(ctx, "consent-match-js", event, &out); err != nil {
					b.Fatal(err)
				}
			}
			if out.Deliver != bc.deliver {
				b.Fatalf("deliver %v (%s %q), want %v", out.Deliver, out.Kind, out.Reason, bc.deliver)
			}
		})
	}
}
