package quickjs

import (
	"context"
	"fmt"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tetratelabs/wazero"
)

// consentMatch is the seed's consent check as a Segment user writes it,
// with the stored preferences in the settings instead of a fetch (this
// slice has no fetch and no host lookup yet).
const consentMatch = `
ASYNC function onTrack(event, settings) {
  const stored = settings.stored[event.userId];
  if (!stored) return event;
  const prefs = event.context && event.context.consent && event.context.consent.categoryPreferences;
  if (!prefs) throw new DropEvent('No consent on the event');
  for (const k of Object.keys(stored)) {
    if (prefs[k] !== stored[k]) throw new DropEvent('Consent mismatch');
  }
  return event;
}`

// benchEvent is a 1.1 KB track event as analytics.js sends it.
func benchEvent(c2 bool) []byte {
	return fmt.Appendf(nil, `{"type":"track","event":"Order Completed","userId":"user-1","anonymousId":"0b5c7e4e-9f6a-4d3b-8c2a-000000000001",`+
		`"messageId":"ajs-next-1700000000000-1","timestamp":"2026-11-23T10:00:00.000Z","sentAt":"2026-11-23T10:00:00.100Z",`+
		`"properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25,"currency":"USD","products":[{"product_id":"507f1f77bcf86cd799439011","sku":"45790-32","name":"Monopoly: 3rd Edition","price":19,"quantity":1}]},`+
		`"context":{"library":{"name":"analytics.js","version":"next-1.55.0"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout","title":"Checkout"},`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.7","locale":"en-US",`+
		`"consent":{"categoryPreferences":{"C0001":true,"C0002":%t,"C0003":false,"C0004":false,"C0005":false}}},"integrations":{"All":true}}`, c2)
}

// bigEvent is benchEvent(true) with 4 KB more of properties, which the
// handler does not read.
func bigEvent() []byte {
	e := benchEvent(true)
	extra := `"extra":[`
	for i := range 40 {
		if i > 0 {
			extra += ","
		}
		extra += fmt.Sprintf(`{"sku":"sku-%03d","name":"A product of some length","price":%d.5,"qty":%d}`, i, i, i%3)
	}
	extra += `],`
	return append(append(append([]byte(nil), e[:1]...), extra...), e[1:]...)
}

const benchSettings = `{"stored":{"user-1":{"C0001":true,"C0002":true,"C0003":false,"C0004":false,"C0005":false}}}`

func BenchmarkConsentMatch(b *testing.B) {
	for _, async := range []string{"sync", "async"} {
		code := consentMatch[len("\nASYNC "):]
		if async == "async" {
			code = "async " + code
		}
		for _, tc := range []struct {
			name    string
			event   []byte
			verdict abi.Result
		}{{"deliver", benchEvent(true), abi.ResultDeliver}, {"drop", benchEvent(false), abi.ResultDrop},
			{"deliver-5KB", bigEvent(), abi.ResultDeliver}} {
			b.Run(async+"/"+tc.name, func(b *testing.B) {
				inst := load(b, code, benchSettings)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					res, err := inst.Handle(ctx, tc.event)
					if err != nil || res.Verdict != tc.verdict {
						b.Fatalf("%v %v %s", res.Verdict, err, res.Reason)
					}
				}
				b.ReportMetric(float64(inst.MemorySize())/(1<<20), "MiB-memory")
			})
		}
	}
}

// BenchmarkColdStart is a process's first JavaScript function: the engine
// compiled from a warm on-disk cache, then an instance with the function
// evaluated in it.
func BenchmarkColdStart(b *testing.B) {
	module(b) // fills the cache
	ctx := context.Background()
	for b.Loop() {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir())
		if err != nil {
			b.Fatal(err)
		}
		m, err := Compile(ctx, cache)
		if err != nil {
			b.Fatal(err)
		}
		inst, err := m.NewInstance(ctx, Source{Name: "f.js", Code: []byte("async " + consentMatch[len("\nASYNC "):]), Settings: []byte(benchSettings)}, testLimits)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
		_ = m.Close(ctx)
		_ = cache.Close(ctx)
	}
}

// BenchmarkNewInstance is one more instance of a function, the engine
// compiled.
func BenchmarkNewInstance(b *testing.B) {
	m := module(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		inst, err := m.NewInstance(ctx, Source{Name: "f.js", Code: []byte("async " + consentMatch[len("\nASYNC "):]), Settings: []byte(benchSettings)}, testLimits)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
	}
}
