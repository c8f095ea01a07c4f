package bench

import (
	"context"
	"fmt"
	"testing"

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
	users     = 1000
	batchSize = 64
)

var categories = []string{"C0001", "C0002", "C0003", "C0004", "C0005"}

func event(user int) []byte {
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","userId":"user-%d","anonymousId":"0b5c7e4e-9f6a-4d3b-8c2a-%012d",`+
		`"messageId":"ajs-next-1700000000000-%d","timestamp":"2026-11-23T10:00:00.000Z","sentAt":"2026-11-23T10:00:00.100Z",`+
		`"properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25,"currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1}]},`+
		`"context":{"library":{"name":"analytics.js","version":"next-1.55.0"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout","title":"Checkout"},`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.7","locale":"en-US",`+
		`"consent":{"categoryPreferences":{"C0001":true,"C0002":%t,"C0003":%t,"C0004":%t,"C0005":false}}},"integrations":{"All":true}}`,
		user, user, user, user%2 == 0, user%3 == 0, user%5 == 0)
}

func storedRecord(user int) *consent.Record {
	vals := []bool{true, user%2 == 0, user%3 == 0, user%5 == 0, false}
	r := &consent.Record{ID: fmt.Sprintf("user-%d", user)}
	for i, c := range categories {
		r.Categories = append(r.Categories, consent.Category{Name: c, Consented: vals[i], Timestamp: 1700000000000})
	}
	return r
}

// recordStore is the consent store of the wasm runs: a map of shared,
// read-only records.
type recordStore map[string]*consent.Record

func (s recordStore) Get(_ context.Context, id string) (*consent.Record, error) {
	if r, ok := s[id]; ok {
		return r, nil
	}
	return nil, consent.ErrNotFound
}

func workload() (events [][]byte, records recordStore, native map[string]map[string]bool) {
	records = make(recordStore, users)
	native = make(map[string]map[string]bool, users)
	for u := range users {
		events = append(events, event(u))
		r := storedRecord(u)
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
	events, records, native := workload()
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
	ev := event(1)
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
