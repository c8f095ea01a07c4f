package runtime_test

import (
	"context"
	"testing"

	"github.com/insertfn/insertfn/runtime"
	"github.com/tidwall/gjson"
)

// TestDispatchByType runs the SDK's dispatch by event type in WebAssembly:
// each type the ABI knows goes to its own handler or else to Any, a type it
// does not know (or none) to Any, and with neither a handler nor Any the
// event passes, or is refused as EventNotSupported under RejectUnhandled.
func TestDispatchByType(t *testing.T) {
	dispatch := load(t, "dispatch", runtime.Options{})
	reject := load(t, "reject", runtime.Options{})
	cases := []struct {
		name    string
		fn      *runtime.Function
		event   string
		verdict runtime.Verdict
		kind    runtime.ErrorKind
		reason  string
	}{
		{"track, own handler", dispatch, `{"type":"track","userId":"u1"}`, runtime.Deliver, "", ""},
		{"identify, own handler", dispatch, `{"type":"identify","userId":"u1"}`, runtime.Drop, "", "identify"},
		{"page, to Any", dispatch, `{"type":"page","userId":"u1"}`, runtime.Drop, "", "any: page"},
		{"delete, to Any", dispatch, `{"type":"delete","userId":"u1"}`, runtime.Drop, "", "any: delete"},
		{"unknown type, to Any", dispatch, `{"type":"custom","userId":"u1"}`, runtime.Drop, "", "any: custom"},
		{"no type, to Any", dispatch, `{"userId":"u1"}`, runtime.Drop, "", "any: "},
		{"track, own handler, reject", reject, `{"type":"track","userId":"u1"}`, runtime.Deliver, "", ""},
		{"page, rejected", reject, `{"type":"page","userId":"u1"}`, runtime.Fail, runtime.KindEventNotSupported, "page is not supported"},
		{"unknown type, rejected", reject, `{"type":"custom","userId":"u1"}`, runtime.Fail, runtime.KindEventNotSupported,
			`event type "custom" is not supported`},
		{"no type, rejected", reject, `{"userId":"u1"}`, runtime.Fail, runtime.KindEventNotSupported, "an event without a type is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var res runtime.Result
			if err := c.fn.Invoke(context.Background(), []byte(c.event), &res); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if res.Verdict != c.verdict || res.Kind != c.kind || res.Reason != c.reason {
				t.Fatalf("got %v %q %q, want %v %q %q", res.Verdict, res.Kind, res.Reason, c.verdict, c.kind, c.reason)
			}
			if c.fn == dispatch && c.verdict == runtime.Deliver {
				if got := gjson.GetBytes(res.Event, "handled").String(); got != "track" {
					t.Errorf("delivered %s, want the track handler's change", res.Event)
				}
			}
		})
	}
}
