package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insertfn/insertfn/runtime"
)

// fuzzFunction is the abuse guest, loaded once per process (the fuzzing
// engine runs the fuzz function in several worker processes).
var fuzzFunction struct {
	once sync.Once
	f    *runtime.Function
	err  error
}

func fuzzTarget(t testing.TB) *runtime.Function {
	t.Helper()
	fuzzFunction.once.Do(func() {
		fuzzFunction.f, fuzzFunction.err = engine(t).Load(context.Background(), guest(t, "abuse"), runtime.Options{
			Name:     "fuzz",
			Store:    testStore,
			Settings: []byte(`{"mode":"strict","nested":{"list":[1,2,3],"name":"x"},"missingRecord":"drop"}`),
			// Small memory as in the hostile tests; a timeout long enough
			// that a slow machine does not turn a fuzz input into a
			// failure: the guest itself does next to nothing.
			Limits: runtime.Limits{MemoryPages: 512, Timeout: 5 * time.Second, PoolSize: 1},
		})
		if fuzzFunction.f != nil {
			guests.keep = append(guests.keep, fuzzFunction.f) // closed by TestMain
		}
	})
	if fuzzFunction.err != nil {
		t.Fatal(fuzzFunction.err)
	}
	return fuzzFunction.f
}

// fuzzEvent is the event the fuzz test sends to the abuse guest (see
// testdata/abuse): a normal track event with consent, plus the call to make.
type fuzzEvent struct {
	Type        string          `json:"type"`
	UserID      string          `json:"userId"`
	AnonymousID string          `json:"anonymousId,omitempty"`
	Properties  map[string]any  `json:"properties"`
	Context     json.RawMessage `json:"context"`
	Fn          uint8           `json:"fn"`
	A           [4]uint32       `json:"a"`
	S0          *string         `json:"s0,omitempty"`
	S1          *string         `json:"s1,omitempty"`
}

// FuzzHostABI calls a host function chosen by the fuzzer with the fuzzer's
// pointers, lengths, paths and values. Whatever the input, the host must
// not panic; Invoke returns nil or an *runtime.Error of kind ABIViolation,
// EventTooLarge or LogLimit; and the next normal event on the same Function
// is handled normally.
//
//	go test -run=^$ -fuzz=FuzzHostABI -fuzztime=30s ./runtime
func FuzzHostABI(f *testing.F) {
	// Seeds: every host function once with good arguments, and with the
	// bad pointers of TestABIViolations.
	for fn := range uint8(10) {
		f.Add(fn, uint32(0), uint32(0), uint32(0), uint32(64), true, "userId", true, `{"a":1}`)
		f.Add(fn, uint32(badPtr), uint32(badLen), uint32(badPtr), uint32(badLen), false, "", false, "")
		f.Add(fn, uint32(0), uint32(0xFFFFFFFF), uint32(0xFFFFFFFF), uint32(2), false, "", false, "")
	}
	f.Add(uint8(fnEventGet), uint32(0), uint32(0), uint32(0), uint32(4096), true, "context.consent.categoryPreferences", false, "")
	f.Add(uint8(fnEventGet), uint32(0), uint32(0), uint32(100), uint32(65536), true, "properties.list.#", false, "")
	f.Add(uint8(fnEventSet), uint32(0), uint32(0), uint32(0), uint32(0), true, "properties.nested.deep.-1", true, `[1,{"b":null}]`)
	f.Add(uint8(fnEventSet), uint32(0), uint32(0), uint32(0), uint32(0), true, "properties.big", true, `"`+strings.Repeat("x", 70000)+`"`)
	f.Add(uint8(fnEventSet), uint32(0), uint32(0), uint32(0), uint32(0), true, "", true, `1`)
	f.Add(uint8(fnEventSet), uint32(0), uint32(0), uint32(0), uint32(0), true, "a..b", true, `not json`)
	f.Add(uint8(fnEventDelete), uint32(0), uint32(0), uint32(0), uint32(0), true, "context", false, "")
	f.Add(uint8(fnEventDelete), uint32(0), uint32(0), uint32(0), uint32(0), true, "properties.list.5", false, "")
	f.Add(uint8(fnEventRead), uint32(7), uint32(1<<20), uint32(0), uint32(0), false, "", false, "")
	f.Add(uint8(fnEventWrite), uint32(0), uint32(0), uint32(0), uint32(0), true, `{"type":"identify","userId":"u1"}`, false, "")
	f.Add(uint8(fnEventWrite), uint32(0), uint32(0), uint32(0), uint32(0), true, `[1,2]`, false, "")
	f.Add(uint8(fnEventWrite), uint32(0), uint32(0), uint32(0), uint32(0), true, `{"big":"`+strings.Repeat("y", 70000)+`"}`, false, "")
	f.Add(uint8(fnConsentLookup), uint32(0), uint32(0), uint32(0), uint32(3), true, "u1", false, "")
	f.Add(uint8(fnConsentLookup), uint32(0), uint32(0), uint32(0), uint32(256), false, "", false, "")
	f.Add(uint8(fnConsentCompare), uint32(0), uint32(0), uint32(0), uint32(256), true, "anon-2", false, "")
	f.Add(uint8(fnSettingsGet), uint32(0), uint32(0), uint32(0), uint32(256), true, "nested.list.#(>1)", false, "")
	f.Add(uint8(fnSettingsGet), uint32(0), uint32(0), uint32(0), uint32(256), true, "@reverse", false, "")
	f.Add(uint8(fnSettingsGet), uint32(0), uint32(0), uint32(0), uint32(256), false, "", false, "")
	f.Add(uint8(fnLog), uint32(0), uint32(8192), uint32(3), uint32(0), false, "", false, "")
	f.Add(uint8(fnLog), uint32(0), uint32(0), uint32(0xFFFFFFFF), uint32(0), true, strings.Repeat("z", 5000), false, "")
	f.Add(uint8(fnSetReason), uint32(0), uint32(0), uint32(0), uint32(0), true, strings.Repeat("r", 5000), false, "")
	f.Add(uint8(fnSetReason), uint32(1024), uint32(1<<24), uint32(0), uint32(0), false, "", false, "")

	fuzzTarget(f) // load before the first input, which the fuzzing engine times
	normal := []byte(`{"type":"track","event":"after fuzz","userId":"u1"}`)
	f.Fuzz(func(t *testing.T, fn uint8, a0, a1, a2, a3 uint32, useS0 bool, s0 string, useS1 bool, s1 string) {
		target := fuzzTarget(t)
		ev := fuzzEvent{
			Type: "track", UserID: "u1", AnonymousID: "anon-2",
			Properties: map[string]any{"list": []int{1, 2, 3}, "nested": map[string]any{"k": "v"}},
			Context:    json.RawMessage(`{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true},"consent_state":{"gdpr":{"location_collection":false}}}}`),
			Fn:         fn % 10,
			A:          [4]uint32{a0, a1, a2, a3},
		}
		if useS0 {
			ev.S0 = &s0
		}
		if useS1 {
			ev.S1 = &s1
		}
		event, err := json.Marshal(ev)
		if err != nil {
			t.Skip(err)
		}
		shown := event // what failure messages show of the event
		if len(shown) > 600 {
			shown = append(shown[:600:600], "..."...)
		}
		var res runtime.Result
		err = target.Invoke(context.Background(), event, &res)
		if err != nil {
			var ferr *runtime.Error
			if !errors.As(err, &ferr) {
				t.Fatalf("Invoke(%s): error %T %v, want nil or a *runtime.Error", shown, err, err)
			}
			switch ferr.Kind {
			case runtime.KindABIViolation, runtime.KindEventTooLarge, runtime.KindLogLimit:
			default:
				t.Fatalf("Invoke(%s): %v (kind %s), want an ABI violation, an event too large or a log limit", shown, err, ferr.Kind)
			}
			if res.Verdict != runtime.Fail || res.Kind != ferr.Kind {
				t.Fatalf("Invoke(%s): error %v but result %v %q", shown, err, res.Verdict, res.Kind)
			}
		} else {
			if res.Verdict != runtime.Deliver {
				t.Fatalf("Invoke(%s): verdict %v %q %q, want deliver (the guest always delivers)", shown, res.Verdict, res.Kind, res.Reason)
			}
			if !json.Valid(res.Event) {
				t.Fatalf("Invoke(%s): delivered invalid JSON %.600q", shown, res.Event)
			}
			// MaxEventBytes caps the event after changes; the caller's own
			// event may be larger and come back untouched.
			if res.Modified && len(res.Event) > target.Limits().MaxEventBytes {
				t.Fatalf("Invoke(%s): delivered %d bytes, over the %d-byte limit", shown, len(res.Event), target.Limits().MaxEventBytes)
			}
			logged := 0
			for _, l := range res.Logs {
				logged += len(l.Message)
			}
			if logged > target.Limits().MaxLogBytes {
				t.Fatalf("Invoke(%s): %d bytes of logs, over the %d-byte limit", shown, logged, target.Limits().MaxLogBytes)
			}
		}

		var next runtime.Result
		if err := target.Invoke(context.Background(), normal, &next); err != nil {
			t.Fatalf("the normal event after Invoke(%s): %v", shown, err)
		}
		if next.Verdict != runtime.Deliver || !strings.Contains(string(next.Event), `"checked":true`) || !json.Valid(next.Event) {
			t.Fatalf("the normal event after Invoke(%s): %v %q %q %.600s", shown, next.Verdict, next.Kind, next.Reason, next.Event)
		}
	})
}
