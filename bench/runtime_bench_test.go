package bench

import (
	"context"
	"testing"

	"github.com/insertfn/insertfn/bench/internal/workload"
	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tidwall/gjson"
)

// The workload: a realistic analytics.js track event whose consent agrees
// with the stored consent of its user (the common case: most events pass),
// among 1000 stored users.
const (
	users     = workload.Users
	batchSize = 64
)

// recordStore is the consent store of the wasm runs: a map of shared,
// read-only records.
type recordStore map[string]*consent.Record

func (s recordStore) Get(_ context.Context, id string) (*consent.Record, error) {
	if r, ok := s[id]; ok {
		return r, nil
	}
	return nil, consent.ErrNotFound
}

func runtimeWorkload() (events [][]byte, records recordStore, native map[string]map[string]bool) {
	records = make(recordStore, users)
	native = make(map[string]map[string]bool, users)
	for u := range users {
		events = append(events, workload.Event(u))
		r := workload.StoredRecord(u)
		records[r.ID] = r
		native[r.ID] = r.CategoryMap()
	}
	return events, records, native
}

// nativeConsentMatch is the check as a Go developer would write it without
// insertfn: gjson over the raw event, stored consent from a map.
func nativeConsentMatch(ev []byte, store map[string]map[string]bool) (drop bool) {
	id := gjson.GetBytes(ev, "userId").String()
	if id == "" {
		id = gjson.GetBytes(ev, "anonymousId").String()
	}
	stored, ok := store[id]
	if !ok {
		return false
	}
	gjson.GetBytes(ev, "context.consent.categoryPreferences").ForEach(func(k, v gjson.Result) bool {
		if s, ok := stored[k.String()]; ok && s != v.Bool() {
			drop = true
			return false
		}
		return true
	})
	return drop
}

func load(b *testing.B, dir string, store consent.Store) *runtime.Function {
	b.Helper()
	eng, err := runtime.NewEngine(runtime.Config{})
	if err != nil {
		b.Fatal(err)
	}
	f, err := eng.Load(context.Background(), guest(b, dir), runtime.Options{Name: dir, Store: store,
		Limits: runtime.Limits{PoolSize: 1}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close(context.Background()); eng.Close(context.Background()) })
	return f
}

// BenchmarkConsentMatch runs the consent-match check on the same events
// three ways in one run: natively, through the sandbox one call per event,
// and through the sandbox in batches. Compare the ns/event figures.
func BenchmarkConsentMatch(b *testing.B) {
	events, records, native := runtimeWorkload()
	b.Run("native", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if nativeConsentMatch(events[i%users], native) {
				b.Fatal("unexpected drop")
			}
			i++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	})
	b.Run("wasm", func(b *testing.B) {
		f := load(b, "../examples/consent-match", records)
		var res runtime.Result
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := f.Invoke(ctx, events[i%users], &res); err != nil || res.Verdict != runtime.Deliver {
				b.Fatalf("verdict %v, %v", res.Verdict, err)
			}
			i++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	})
	b.Run("wasm-batch", func(b *testing.B) {
		f := load(b, "../examples/consent-match", records)
		results := make([]runtime.Result, batchSize)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			start := (i * batchSize) % (users - batchSize)
			if err := f.InvokeBatch(ctx, events[start:start+batchSize], results); err != nil {
				b.Fatal(err)
			}
			i++
		}
		for _, r := range results {
			if r.Verdict != runtime.Deliver {
				b.Fatalf("verdict %v %s", r.Verdict, r.Reason)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/event")
	})
}

// BenchmarkEmptyCall measures the sandbox's own cost: a guest that delivers
// every event without reading it, called once per event and in batches.
func BenchmarkEmptyCall(b *testing.B) {
	ev := workload.Event(1)
	for _, g := range []struct{ name, dir string }{
		{"raw", "internal/guests/empty-raw"},
		{"sdk", "internal/guests/empty-sdk"},
	} {
		b.Run(g.name, func(b *testing.B) {
			f := load(b, g.dir, nil)
			var res runtime.Result
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := f.Invoke(ctx, ev, &res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The floor: the raw guest's export called through wazero directly,
	// without insertfn (no pool, no time limit, no clock, no event).
	b.Run("wazero-floor", func(b *testing.B) {
		ctx := context.Background()
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
		defer rt.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		mod, err := rt.InstantiateWithConfig(ctx, guest(b, "internal/guests/empty-raw"), wazero.NewModuleConfig().WithStartFunctions("_initialize"))
		if err != nil {
			b.Fatal(err)
		}
		handle := mod.ExportedFunction(abi.ExportHandle)
		var stack [1]uint64
		b.ReportAllocs()
		for b.Loop() {
			stack[0] = 1
			if err := handle.CallWithStack(ctx, stack[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk-batch", func(b *testing.B) {
		f := load(b, "internal/guests/empty-sdk", nil)
		events := make([][]byte, batchSize)
		for i := range events {
			events[i] = ev
		}
		results := make([]runtime.Result, batchSize)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := f.InvokeBatch(ctx, events, results); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/event")
	})
}
