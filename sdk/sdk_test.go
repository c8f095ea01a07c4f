//go:build !wasip1

package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/hostcall"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

// drop returns a handler that drops the event with the given reason, so a
// test can tell which handler ran.
func drop(reason string) sdk.Handler {
	return func(*sdk.Event) error { return sdk.DropEvent(reason) }
}

func allHandlers() sdk.Handlers {
	return sdk.Handlers{
		Track: drop("track"), Identify: drop("identify"), Page: drop("page"), Screen: drop("screen"),
		Group: drop("group"), Alias: drop("alias"), Delete: drop("delete"), Any: drop("any"),
	}
}

func TestDispatchPerType(t *testing.T) {
	for _, typ := range []string{"track", "identify", "page", "screen", "group", "alias", "delete"} {
		res := sdktest.Run(t, allHandlers(), `{"type":"`+typ+`","userId":"u1"}`)
		if res.Verdict != abi.ResultDrop || res.Reason != typ {
			t.Errorf("%s went to %q (%s)", typ, res.Reason, res.Verdict)
		}
	}
	for _, ev := range []string{`{"type":"batch"}`, `{"type":"Track"}`, `{}`, `{"type":7}`} {
		if res := sdktest.Run(t, allHandlers(), ev); res.Reason != "any" {
			t.Errorf("%s went to %q, want Any", ev, res.Reason)
		}
	}
}

func TestAnyFallback(t *testing.T) {
	var seen []string
	h := sdk.Handlers{
		Track: drop("track"),
		Any: func(e *sdk.Event) error {
			seen = append(seen, e.Type())
			return nil
		},
	}
	for _, ev := range []string{`{"type":"page"}`, `{"type":"identify"}`, `{"type":"custom"}`, `{"type":"track"}`} {
		sdktest.Run(t, h, ev)
	}
	if want := []string{"page", "identify", "custom"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("Any saw %q, want %q", seen, want)
	}
}

func TestUnhandledPassesThrough(t *testing.T) {
	const ev = `{"type":"identify","userId":"u1","traits":{"email":"x@example.com"}}`
	res := sdktest.Run(t, sdk.Handlers{Track: drop("track")}, ev)
	if res.Verdict != abi.ResultDeliver || res.Reason != "" || res.Modified || string(res.Event) != ev {
		t.Errorf("unhandled identify: %s %q modified %v event %s", res.Verdict, res.Reason, res.Modified, res.Event)
	}
	// No handlers at all.
	if res := sdktest.Run(t, sdk.Handlers{}, ev); res.Verdict != abi.ResultDeliver || string(res.Event) != ev {
		t.Errorf("no handlers: %s", res.Verdict)
	}
}

func TestRejectUnhandled(t *testing.T) {
	h := sdk.Handlers{Track: drop("track"), RejectUnhandled: true}
	cases := map[string]string{
		`{"type":"identify"}`: "identify is not supported",
		`{"type":"custom"}`:   `event type "custom" is not supported`,
		`{"userId":"u1"}`:     "an event without a type is not supported",
	}
	for ev, reason := range cases {
		res := sdktest.Run(t, h, ev)
		if res.Verdict != abi.ResultEventNotSupported || res.Reason != reason {
			t.Errorf("%s: %s %q, want EventNotSupported %q", ev, res.Verdict, res.Reason, reason)
		}
	}
	if res := sdktest.Run(t, h, `{"type":"track"}`); res.Verdict != abi.ResultDrop {
		t.Errorf("a handled type was rejected: %s", res.Verdict)
	}
	// Any handles everything, so nothing is unhandled.
	h.Any = func(*sdk.Event) error { return nil }
	if res := sdktest.Run(t, h, `{"type":"custom"}`); res.Verdict != abi.ResultDeliver {
		t.Errorf("with Any: %s", res.Verdict)
	}
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		err    error
		result abi.Result
		reason string
	}{
		{nil, abi.ResultDeliver, ""},
		{sdk.DropEvent("no consent"), abi.ResultDrop, "no consent"},
		{sdk.EventNotSupported("no pages"), abi.ResultEventNotSupported, "no pages"},
		{sdk.InvalidEventPayload("no userId"), abi.ResultInvalidEventPayload, "no userId"},
		{sdk.ValidationError("bad email"), abi.ResultValidationError, "bad email"},
		{sdk.RetryError("store down"), abi.ResultRetry, "store down"},
		{errors.New("boom"), abi.ResultFunctionError, "boom"},
		{fmt.Errorf("%w", sdk.DropEvent("x")), abi.ResultDrop, "x"},
		{fmt.Errorf("checking consent: %w", sdk.RetryError("later")), abi.ResultRetry, "later"},
		{errors.Join(errors.New("first"), sdk.ValidationError("second")), abi.ResultValidationError, "second"},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", sdk.InvalidEventPayload("deep"))), abi.ResultInvalidEventPayload, "deep"},
		{sdk.DropEvent(""), abi.ResultDrop, ""},
		// An *Error of a kind that is not an error result is a function error.
		{&sdk.Error{Kind: abi.ResultDeliver, Message: "odd"}, abi.ResultFunctionError, "Deliver: odd"},
		{&sdk.Error{Kind: 99, Message: "odd"}, abi.ResultFunctionError, "FunctionError: odd"},
		{&sdk.Error{Kind: abi.ResultFunctionError, Message: "explicit"}, abi.ResultFunctionError, "explicit"},
	}
	for _, c := range cases {
		h := sdk.Handlers{Any: func(*sdk.Event) error { return c.err }}
		res := sdktest.Run(t, h, `{"type":"track"}`)
		if res.Verdict != c.result || res.Reason != c.reason {
			t.Errorf("%v: %s %q, want %s %q", c.err, res.Verdict, res.Reason, c.result, c.reason)
		}
		if r, reason := sdk.Verdict(c.err); r != c.result || reason != c.reason {
			t.Errorf("Verdict(%v) = %s %q", c.err, r, reason)
		}
	}
}

func TestErrorSentinels(t *testing.T) {
	pairs := map[error]error{
		sdk.DropEvent("a"):           sdk.ErrDropEvent,
		sdk.EventNotSupported("a"):   sdk.ErrEventNotSupported,
		sdk.InvalidEventPayload("a"): sdk.ErrInvalidEventPayload,
		sdk.ValidationError("a"):     sdk.ErrValidation,
		sdk.RetryError("a"):          sdk.ErrRetry,
	}
	for err, sentinel := range pairs {
		if !errors.Is(err, sentinel) || !errors.Is(fmt.Errorf("wrapped: %w", err), sentinel) {
			t.Errorf("%v is not %v", err, sentinel)
		}
		for _, other := range pairs {
			if other != sentinel && errors.Is(err, other) {
				t.Errorf("%v matches %v", err, other)
			}
		}
	}
	if errors.Is(sdk.DropEvent("a"), sdk.DropEvent("b")) {
		t.Error("two DropEvents with different messages match")
	}
	if got := sdk.DropEvent("why").Error(); got != "DropEvent: why" {
		t.Errorf("Error() = %q", got)
	}
}

func TestPanicIsFunctionError(t *testing.T) {
	cases := map[string]func(*sdk.Event) error{
		"panic: boom":                           func(*sdk.Event) error { panic("boom") },
		"panic: an error":                       func(*sdk.Event) error { panic(errors.New("an error")) },
		"panic: assignment to entry in nil map": func(*sdk.Event) error { var m map[string]int; m["x"] = 1; return nil },
	}
	for prefix, f := range cases {
		res := sdktest.Run(t, sdk.Handlers{Track: f}, `{"type":"track"}`)
		if res.Verdict != abi.ResultFunctionError || !strings.HasPrefix(res.Reason, prefix) {
			t.Errorf("%s: %s %q", prefix, res.Verdict, res.Reason)
		}
	}
	// Changes made before the panic do not matter: the verdict is an error.
	res := sdktest.Run(t, sdk.Handlers{Track: func(e *sdk.Event) error {
		_ = e.Set("properties.x", 1)
		panic("after a change")
	}}, `{"type":"track"}`)
	if res.Verdict != abi.ResultFunctionError || res.Reason != "panic: after a change" {
		t.Errorf("%s %q", res.Verdict, res.Reason)
	}
}

// One Handlers value serves event after event (as in a pooled instance):
// a panic or a large value in one event must not leak into the next.
func TestHandlersReusedAcrossEvents(t *testing.T) {
	var got []string
	h := &sdk.Handlers{Any: func(e *sdk.Event) error {
		v := e.Get("properties.v").String()
		got = append(got, v)
		if v == "panic" {
			panic("on purpose")
		}
		return nil
	}}
	long := strings.Repeat("L", 5000)
	events := []string{long, "short", "panic", "", "after"}
	var c hostcall.Call
	for _, v := range events {
		ev := fmt.Sprintf(`{"type":"track","properties":{"v":%q}}`, v)
		c.Reset(context.Background(), []byte(ev), nil, nil, hostcall.Limits{})
		r, reason := h.Serve(&c, c.Doc.Type())
		if (v == "panic") != (r == abi.ResultFunctionError) {
			t.Errorf("event %.10q: %s %q", v, r, reason)
		}
	}
	if !reflect.DeepEqual(got, events) {
		t.Errorf("handler read %.20q, want %.20q", got, events)
	}
}

const valueEvent = `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1","messageId":"m1",
 "properties":{"s":"hello","esc":"a\"b<>&\u00e9","t":"true","one":"1","zero":0,"n":12.5,"i":42,"neg":-3,
  "big":9007199254740993,"huge":1e300,"numstr":"7.5","b":true,"f":false,"z":null,"obj":{"a":1},"arr":[1,2]}}`

func TestValueAccessors(t *testing.T) {
	vals := map[string]sdk.Value{}
	var name, typ, uid, aid, mid string
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		for _, k := range []string{"s", "esc", "t", "one", "zero", "n", "i", "neg", "big", "huge", "numstr", "b", "f", "z", "obj", "arr", "missing"} {
			vals[k] = e.Get("properties." + k)
		}
		name, typ, uid, aid, mid = e.Name(), e.Type(), e.UserID(), e.AnonymousID(), e.MessageID()
		return nil
	}}
	if res := sdktest.Run(t, h, valueEvent); res.Verdict != abi.ResultDeliver || res.Modified {
		t.Fatalf("%s %q", res.Verdict, res.Reason)
	}
	if name != "Order Completed" || typ != "track" || uid != "u1" || aid != "a1" || mid != "m1" {
		t.Errorf("Name %q Type %q UserID %q AnonymousID %q MessageID %q", name, typ, uid, aid, mid)
	}

	kinds := map[string]abi.Kind{"s": abi.KindString, "n": abi.KindNumber, "b": abi.KindTrue, "f": abi.KindFalse,
		"z": abi.KindNull, "obj": abi.KindJSON, "arr": abi.KindJSON, "missing": abi.KindMissing}
	for k, want := range kinds {
		if vals[k].Kind != want {
			t.Errorf("%s: kind %d, want %d", k, vals[k].Kind, want)
		}
	}
	for k, want := range map[string]bool{"z": true, "f": true, "s": true, "missing": false} {
		if vals[k].Exists() != want {
			t.Errorf("%s: Exists() = %v", k, !want)
		}
	}
	for k, want := range map[string]string{"s": "hello", "esc": "a\"b<>&é", "n": "12.5", "i": "42", "b": "true", "f": "false",
		"z": "", "missing": "", "obj": `{"a":1}`, "arr": "[1,2]", "big": "9007199254740993"} {
		if got := vals[k].String(); got != want {
			t.Errorf("%s: String() = %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]bool{"b": true, "t": true, "one": true, "n": true, "i": true, "neg": true,
		"f": false, "z": false, "s": false, "zero": false, "missing": false, "obj": false} {
		if got := vals[k].Bool(); got != want {
			t.Errorf("%s: Bool() = %v, want %v", k, got, want)
		}
	}
	for k, want := range map[string]int64{"i": 42, "n": 12, "neg": -3, "big": 9007199254740993, "numstr": 7, "one": 1,
		"s": 0, "b": 0, "z": 0, "missing": 0, "obj": 0} {
		if got := vals[k].Int(); got != want {
			t.Errorf("%s: Int() = %d, want %d", k, got, want)
		}
	}
	for k, want := range map[string]float64{"n": 12.5, "numstr": 7.5, "i": 42, "neg": -3, "huge": 1e300, "s": 0, "b": 0, "missing": 0} {
		if got := vals[k].Float(); got != want {
			t.Errorf("%s: Float() = %g, want %g", k, got, want)
		}
	}
	for k, want := range map[string]string{"s": `"hello"`, "n": "12.5", "b": "true", "f": "false", "z": "null",
		"missing": "", "obj": `{"a":1}`, "arr": "[1,2]", "big": "9007199254740993"} {
		if got := vals[k].Raw(); got != want {
			t.Errorf("%s: Raw() = %q, want %q", k, got, want)
		}
	}
	// Raw of a string is JSON for the same string.
	var back string
	if err := json.Unmarshal([]byte(vals["esc"].Raw()), &back); err != nil || back != "a\"b<>&é" {
		t.Errorf("esc: Raw() = %q does not decode to the string (%v)", vals["esc"].Raw(), err)
	}
}

func TestValueLargerThanScratch(t *testing.T) {
	big := strings.Repeat("é", 3000) // 6000 bytes, past the SDK's first buffer
	var got, first, after string
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		first = e.Get("properties.small").String()
		got = e.Get("properties.big").String()
		after = e.Get("properties.small").String()
		return nil
	}}
	sdktest.Run(t, h, `{"type":"track","properties":{"small":"s","big":"`+big+`"}}`)
	if got != big || first != "s" || after != "s" {
		t.Errorf("read %d bytes (want %d), small %q/%q", len(got), len(big), first, after)
	}
}

type address struct {
	City string `json:"city"`
	Zip  int    `json:"zip,omitempty"`
}

func TestSet(t *testing.T) {
	var errs []error
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		errs = append(errs,
			e.Set("properties.str", "with \"quotes\""),
			e.Set("properties.bool", true),
			e.Set("properties.int", 42),
			e.Set("properties.int64", int64(-9007199254740993)),
			e.Set("properties.float", 2.5),
			e.Set("properties.raw", sdk.RawJSON(`{"k":[1,2]}`)),
			e.Set("properties.struct", address{City: "Paris"}),
			e.Set("properties.map", map[string]int{"a": 1}),
			e.Set("properties.nil", nil),
			e.Set("context.consent.categoryPreferences.Advertising", false),
			e.Delete("properties.old"),
		)
		return nil
	}}
	res := sdktest.Run(t, h, `{"type":"track","properties":{"old":1}}`)
	for i, err := range errs {
		if err != nil {
			t.Errorf("change %d: %v", i, err)
		}
	}
	if res.Verdict != abi.ResultDeliver || !res.Modified {
		t.Fatalf("%s modified %v", res.Verdict, res.Modified)
	}
	for path, want := range map[string]string{
		"properties.str":    `"with \"quotes\""`,
		"properties.bool":   `true`,
		"properties.int":    `42`,
		"properties.int64":  `-9007199254740993`,
		"properties.float":  `2.5`,
		"properties.raw":    `{"k":[1,2]}`,
		"properties.struct": `{"city":"Paris"}`,
		"properties.map":    `{"a":1}`,
		"properties.nil":    `null`,
		"properties.old":    ``,
		"context.consent.categoryPreferences.Advertising": `false`,
	} {
		if got := res.Field(path); got != want {
			t.Errorf("%s = %s, want %s", path, got, want)
		}
	}
}

func TestSetErrors(t *testing.T) {
	var errs []error
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		errs = append(errs,
			e.Set("properties.bad", sdk.RawJSON(`{nope`)),
			e.Set("", 1),
			e.Set("properties.nan", math.NaN()),
			e.Set("properties.ch", make(chan int)),
			e.Delete(""),
			e.Replace([]byte(`[1]`)),
		)
		return nil
	}}
	const ev = `{"type":"track"}`
	res := sdktest.Run(t, h, ev)
	want := []error{sdk.ErrInvalidJSON, sdk.ErrInvalidPath, nil, nil, sdk.ErrInvalidPath, sdk.ErrInvalidJSON}
	for i, err := range errs {
		if err == nil {
			t.Errorf("change %d: no error", i)
			continue
		}
		if want[i] != nil && !errors.Is(err, want[i]) {
			t.Errorf("change %d: %v, want %v", i, err, want[i])
		}
	}
	if res.Modified || string(res.Event) != ev {
		t.Errorf("refused changes changed the event: %s", res.Event)
	}
}

func TestReplaceAndBytes(t *testing.T) {
	var before []byte
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		before = e.Bytes()
		return e.Replace([]byte(`{"type":"track","event":"Replaced"}`))
	}}
	const ev = `{"type":"track","event":"Original"}`
	res := sdktest.Run(t, h, ev)
	if string(before) != ev || res.Field("event") != `"Replaced"` || !res.Modified {
		t.Errorf("Bytes %s, event after %s", before, res.Event)
	}
}

func TestSettings(t *testing.T) {
	type out struct {
		missingT, missingF, falseT, trueF, strTrue bool
		mode, raw                                  string
	}
	var o out
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		s := e.Settings()
		o = out{
			missingT: s.Bool("missing", true), missingF: s.Bool("missing", false),
			falseT: s.Bool("off", true), trueF: s.Bool("on", false), strTrue: s.Bool("str", false),
			mode: s.String("mode"), raw: string(s.Raw()),
		}
		return nil
	}}
	const settings = `{"on":true,"off":false,"str":"true","mode":"strict"}`
	sdktest.Run(t, h, `{"type":"track"}`, sdktest.WithSettings(settings))
	want := out{missingT: true, missingF: false, falseT: false, trueF: true, strTrue: true, mode: "strict", raw: settings}
	if o != want {
		t.Errorf("settings: %+v, want %+v", o, want)
	}
	// No settings: defaults, and an empty object.
	sdktest.Run(t, h, `{"type":"track"}`)
	want = out{missingT: true, falseT: true, raw: "{}"}
	if o != want {
		t.Errorf("no settings: %+v, want %+v", o, want)
	}
}

func TestLogsAndLimits(t *testing.T) {
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		e.Log(abi.LevelWarn, "careful")
		e.Logf("n=%d", 3)
		return nil
	}}
	res := sdktest.Run(t, h, `{"type":"track"}`)
	want := []hostcall.LogLine{{Level: abi.LevelWarn, Message: "careful"}, {Level: abi.LevelInfo, Message: "n=3"}}
	if !reflect.DeepEqual(res.Logs, want) {
		t.Errorf("logs %+v", res.Logs)
	}
	res = sdktest.Run(t, h, `{"type":"track"}`, sdktest.WithLimits(0, 8))
	if res.Verdict != abi.ResultFunctionError || !errors.Is(res.LimitErr, hostcall.ErrLogLimit) {
		t.Errorf("log limit: %s %v", res.Verdict, res.LimitErr)
	}
	big := sdk.Handlers{Track: func(e *sdk.Event) error {
		return e.Set("properties.pad", strings.Repeat("x", 100))
	}}
	res = sdktest.Run(t, big, `{"type":"track"}`, sdktest.WithLimits(64, 0))
	if res.Verdict != abi.ResultFunctionError || !errors.Is(res.LimitErr, hostcall.ErrTooLarge) {
		t.Errorf("event limit: %s %v", res.Verdict, res.LimitErr)
	}
}

const storedU1 = `{"id":"u1","aliases":["a1"],
 "categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":100},"Analytics":false},
 "consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":5}}}}`

func TestConsentThroughSDK(t *testing.T) {
	var stored *sdk.StoredConsent
	var diff sdk.ConsentDiff
	var lookErr, cmpErr error
	var prefs map[string]bool
	h := sdk.Handlers{Track: func(e *sdk.Event) error {
		stored, lookErr = e.LookupConsent("")
		diff, cmpErr = e.CompareConsent("")
		prefs = e.ConsentPreferences()
		if diff.Mismatch() {
			return sdk.DropEvent("Consent mismatch")
		}
		return nil
	}}
	res := sdktest.Run(t, h,
		`{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":false,"New":{"consented":true}}}}}`,
		sdktest.WithConsent(storedU1))
	if lookErr != nil || cmpErr != nil {
		t.Fatalf("errors %v %v", lookErr, cmpErr)
	}
	if !reflect.DeepEqual(stored.Categories, map[string]bool{"Advertising": true, "Analytics": false}) {
		t.Errorf("stored categories %v", stored.Categories)
	}
	if out, ok := stored.CCPAOptedOut(); !out || !ok {
		t.Errorf("CCPAOptedOut = %v %v", out, ok)
	}
	if _, ok := stored.GDPR("ads"); ok {
		t.Error("a GDPR purpose that is not stored was found")
	}
	if res.Verdict != abi.ResultDrop || res.Reason != "Consent mismatch" {
		t.Errorf("verdict %s %q", res.Verdict, res.Reason)
	}
	if len(diff) != 2 {
		t.Errorf("diff %+v, want Advertising (conflict) and New (event only)", diff)
	}
	for _, d := range diff {
		switch d.Category {
		case "Advertising":
			if !d.Conflict() || d.StoredAt != 100 || !d.StoredConsented || d.EventConsented {
				t.Errorf("Advertising: %+v", d)
			}
		case "New":
			if d.Conflict() || d.InStored || !d.InEvent || !d.EventConsented {
				t.Errorf("New: %+v", d)
			}
		default:
			t.Errorf("unexpected difference %+v", d)
		}
	}
	// The SDK reads the event's preferences as the host compares them.
	if want := map[string]bool{"Advertising": false, "Analytics": false, "New": true}; !reflect.DeepEqual(prefs, want) {
		t.Errorf("ConsentPreferences = %v, want %v", prefs, want)
	}

	// The errors.
	cases := []struct {
		event string
		opts  []sdktest.Option
		look  error
		cmp   error
	}{
		{`{"type":"track","userId":"nobody","context":{"consent":{}}}`, []sdktest.Option{sdktest.WithConsent(storedU1)}, sdk.ErrNoRecord, sdk.ErrNoRecord},
		{`{"type":"track","userId":"u1"}`, []sdktest.Option{sdktest.WithConsent(storedU1)}, nil, sdk.ErrNoEventConsent},
		{`{"type":"track","context":{"consent":{}}}`, nil, sdk.ErrNoID, sdk.ErrNoID},
		{`{"type":"track","userId":"u1","context":{"consent":{}}}`, []sdktest.Option{sdktest.WithStoreError(errors.New("down"))}, sdk.ErrConsentUnavailable, sdk.ErrConsentUnavailable},
	}
	for _, c := range cases {
		sdktest.Run(t, h, c.event, c.opts...)
		if !errors.Is(lookErr, c.look) || (c.look == nil && lookErr != nil) || !errors.Is(cmpErr, c.cmp) {
			t.Errorf("%s: lookup %v (want %v), compare %v (want %v)", c.event, lookErr, c.look, cmpErr, c.cmp)
		}
	}
}

// TestConsentPreferencesRepeatedKeys: the SDK reads repeated categories
// as the host's comparison does, so that a function never sees consent the
// host would not grant.
func TestConsentPreferencesRepeatedKeys(t *testing.T) {
	var prefs map[string]bool
	var diff sdk.ConsentDiff
	h := sdk.Handlers{Any: func(e *sdk.Event) error {
		prefs = e.ConsentPreferences()
		diff, _ = e.CompareConsent("")
		return nil
	}}
	for _, c := range []struct {
		consent string
		want    map[string]bool
	}{
		{`{"categoryPreferences":{"Advertising":true,"Advertising":false}}`, map[string]bool{"Advertising": false}},
		{`{"categoryPreferences":{"Advertising":false,"Advertising":true}}`, map[string]bool{"Advertising": false}},
		{`{"categoryPreferences":{"Advertising":true,"Advertising":{"consented":true}}}`, map[string]bool{"Advertising": true}},
		{`{"categoryPreferences":{"Advertising":true},"categoryPreferences":{"Advertising":false}}`, map[string]bool{"Advertising": true}},
		{`{"categoryPreference":{"Advertising":true}}`, map[string]bool{"Advertising": true}},
		{`{"categoryPreferences":{"Advertising":{"consented":false,"consented":true}}}`, map[string]bool{"Advertising": false}},
		{`{"categoryPreferences":{"Advertising":{"Consented":true}}}`, map[string]bool{"Advertising": false}},
		{`{"categoryPreferences":{"Advertising":{"consented":"true"}}}`, map[string]bool{"Advertising": false}},
		{`{"categoryPreferences":{"Advertising":{"ts":1,"consented":true}}}`, map[string]bool{"Advertising": true}},
		{`{"categoryPreferences":[true]}`, nil},
		{`{}`, nil},
	} {
		sdktest.Run(t, h, `{"type":"track","userId":"u1","context":{"consent":`+c.consent+`}}`, sdktest.WithConsent(`{"id":"u1","categoryPreferences":{"Advertising":true}}`))
		if !reflect.DeepEqual(prefs, c.want) {
			t.Errorf("%s: ConsentPreferences = %v, want %v", c.consent, prefs, c.want)
		}
		// The host agrees: Advertising differs from the stored true exactly
		// when the SDK reads false.
		if c.want != nil && diff.Mismatch() == c.want["Advertising"] {
			t.Errorf("%s: host's comparison %+v disagrees with ConsentPreferences %v", c.consent, diff, prefs)
		}
	}
}

// TestConsentMismatch: the allocation-free answers agree with
// CompareConsent on every case, errors included, and ConsentConflicts
// tells categories from purposes.
func TestConsentMismatch(t *testing.T) {
	var diff sdk.ConsentDiff
	var mismatch, categories, purposes bool
	var cmpErr, misErr, confErr error
	h := sdk.Handlers{Any: func(e *sdk.Event) error {
		diff, cmpErr = e.CompareConsent("")
		mismatch, misErr = e.ConsentMismatch("")
		categories, purposes, confErr = e.ConsentConflicts("")
		return nil
	}}
	const ccpaYes, ccpaNo = `"consent_state":{"ccpa":{"data_sale_opt_out":true}}`, `"consent_state":{"ccpa":{"data_sale_opt_out":false}}`
	for _, c := range []struct {
		consent              string
		categories, purposes bool
	}{
		{`"categoryPreferences":{"Advertising":false}`, true, false},                   // conflict
		{`"categoryPreferences":{"Advertising":true,"Analytics":false}`, false, false}, // agrees
		{`"categoryPreferences":{"New":true}`, false, false},                           // event only
		{`"categoryPreferences":{}`, false, false},                                     // nothing in common
		{`"categoryPreferences":{"Analytics":true,"Advertising":true}`, true, false},   // conflict on the second
		{ccpaYes, false, false}, // purpose agrees
		{ccpaNo, false, true},   // purpose conflict
		{`"categoryPreferences":{"Advertising":true},` + ccpaNo, false, true},   // purpose conflict only
		{`"categoryPreferences":{"Advertising":false},` + ccpaNo, true, true},   // both
		{`"categoryPreferences":{"Advertising":false},` + ccpaYes, true, false}, // category conflict only
	} {
		sdktest.Run(t, h, `{"type":"track","userId":"u1","context":{"consent":{`+c.consent+`}}}`, sdktest.WithConsent(storedU1))
		want := c.categories || c.purposes
		if cmpErr != nil || misErr != nil || confErr != nil || mismatch != want || diff.Mismatch() != want ||
			categories != c.categories || purposes != c.purposes {
			t.Errorf("%s: ConsentMismatch %t (%v), CompareConsent.Mismatch %t (%v), ConsentConflicts %t %t (%v); want %t %t",
				c.consent, mismatch, misErr, diff.Mismatch(), cmpErr, categories, purposes, confErr, c.categories, c.purposes)
		}
	}
	sdktest.Run(t, h, `{"type":"track","userId":"nobody","context":{"consent":{}}}`, sdktest.WithConsent(storedU1))
	if !errors.Is(misErr, sdk.ErrNoRecord) || mismatch || !errors.Is(confErr, sdk.ErrNoRecord) || categories || purposes {
		t.Errorf("unknown id: %t, %v; %t %t %v", mismatch, misErr, categories, purposes, confErr)
	}
}

// TestStoredPurpose: the allocation-free lookup of one decision agrees with
// LookupConsent.
func TestStoredPurpose(t *testing.T) {
	var consented, ok bool
	var err error
	var stored *sdk.StoredConsent
	h := sdk.Handlers{Any: func(e *sdk.Event) error {
		consented, ok, err = e.StoredPurpose("", "ccpa", "data_sale_opt_out")
		stored, _ = e.LookupConsent("")
		return nil
	}}
	sdktest.Run(t, h, `{"type":"track","userId":"a1"}`, sdktest.WithConsent(storedU1))
	want, wantOK := stored.CCPAOptedOut()
	if err != nil || !ok || !consented || consented != want || ok != wantOK {
		t.Errorf("StoredPurpose = %t %t %v; LookupConsent says %t %t", consented, ok, err, want, wantOK)
	}
	h = sdk.Handlers{Any: func(e *sdk.Event) error {
		consented, ok, err = e.StoredPurpose("", "gdpr", "ads")
		return nil
	}}
	sdktest.Run(t, h, `{"type":"track","userId":"u1"}`, sdktest.WithConsent(storedU1))
	if err != nil || ok || consented {
		t.Errorf("a purpose not stored: %t %t %v", consented, ok, err)
	}
	sdktest.Run(t, h, `{"type":"track","userId":"nobody"}`, sdktest.WithConsent(storedU1))
	if !errors.Is(err, sdk.ErrNoRecord) {
		t.Errorf("unknown id: %v", err)
	}
}
