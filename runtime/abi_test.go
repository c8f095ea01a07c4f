package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/runtime"
)

// abuseEvent is an event for the abuse guest (testdata/abuse): fn selects
// the host function, args are its raw arguments and s0, when not empty,
// replaces a0/a1 with the address and length of a string of the guest.
func abuseEvent(fn int, s0 string, args ...uint32) string {
	var a [4]uint32
	copy(a[:], args)
	ev := fmt.Sprintf(`{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}},"fn":%d,"a":[%d,%d,%d,%d]`,
		fn, a[0], a[1], a[2], a[3])
	if s0 != "" {
		ev += fmt.Sprintf(`,"s0":%q`, s0)
	}
	return ev + "}"
}

const (
	fnEventGet = iota
	fnEventSet
	fnEventDelete
	fnEventRead
	fnEventWrite
	fnConsentLookup
	fnConsentCompare
	fnSettingsGet
	fnLog
	fnSetReason
)

const (
	badPtr = 0xFFFFFF00 // far past any memory these tests allow
	badLen = 0x1000
)

// TestABIViolations passes out-of-bounds pointers to every host function,
// for every buffer it takes, input or output. Each call must end the event
// with ErrABIViolation naming the function, discard the instance, and leave
// the Function (and a Function of another module) working.
func TestABIViolations(t *testing.T) {
	by := startBystander(t)
	defer by.check(t)
	f := load(t, "abuse", runtime.Options{Store: testStore, Settings: []byte(`{"mode":"strict"}`), Limits: hostileLimits})
	const normal = `{"type":"track","event":"ok"}`
	checkAbuseNormal(t, f, normal)

	violations := []struct {
		name, event, fn string
	}{
		{"event_get path", abuseEvent(fnEventGet, "", badPtr, badLen), "event_get"},
		{"event_get output buffer", abuseEvent(fnEventGet, "type", 0, 0, badPtr, badLen), "event_get"},
		{"event_get path of huge length", abuseEvent(fnEventGet, "", 0, 0xFFFFFFFF), "event_get"},
		{"event_get path wrapping around 4 GiB", abuseEvent(fnEventGet, "", 0xFFFFFFFF, 2), "event_get"},
		{"event_set path", abuseEvent(fnEventSet, "", badPtr, badLen), "event_set"},
		{"event_set value", abuseEvent(fnEventSet, "properties.x", 0, 0, badPtr, badLen), "event_set"},
		{"event_delete path", abuseEvent(fnEventDelete, "", badPtr, badLen), "event_delete"},
		{"event_read output buffer", abuseEvent(fnEventRead, "", badPtr, badLen), "event_read"},
		{"event_write event", abuseEvent(fnEventWrite, "", badPtr, badLen), "event_write"},
		{"consent_lookup id", abuseEvent(fnConsentLookup, "", badPtr, badLen), "consent_lookup"},
		{"consent_lookup output buffer", abuseEvent(fnConsentLookup, "u1", 0, 0, badPtr, badLen), "consent_lookup"},
		{"consent_compare id", abuseEvent(fnConsentCompare, "", badPtr, badLen), "consent_compare"},
		{"consent_compare output buffer", abuseEvent(fnConsentCompare, "u1", 0, 0, badPtr, badLen), "consent_compare"},
		{"settings_get path", abuseEvent(fnSettingsGet, "", badPtr, badLen), "settings_get"},
		{"settings_get output buffer", abuseEvent(fnSettingsGet, "mode", 0, 0, badPtr, badLen), "settings_get"},
		{"log message", abuseEvent(fnLog, "", badPtr, badLen, 1), "log"},
		{"set_reason reason", abuseEvent(fnSetReason, "", badPtr, badLen), "set_reason"},
	}
	for _, v := range violations {
		t.Run(v.name, func(t *testing.T) {
			before := f.Stats()
			res, err := invoke(t, f, v.event)
			var ferr *runtime.Error
			switch {
			case !errors.Is(err, runtime.ErrABIViolation):
				t.Errorf("error %v (verdict %v %s), want an ABI violation", err, res.Verdict, res.Kind)
			case !errors.As(err, &ferr) || ferr.Kind != runtime.KindABIViolation || ferr.Function != "abuse":
				t.Errorf("error %#v, want a *runtime.Error of kind %s for function abuse", err, runtime.KindABIViolation)
			case !strings.HasPrefix(ferr.Message, v.fn+":") || !strings.Contains(err.Error(), v.fn):
				t.Errorf("error %q does not name the host function %s", err, v.fn)
			}
			if res.Verdict != runtime.Fail || res.Kind != runtime.KindABIViolation || res.Reason == "" {
				t.Errorf("result %v %q %q, want an ABI violation", res.Verdict, res.Kind, res.Reason)
			}
			if d := f.Stats().Discarded - before.Discarded; d != 1 {
				t.Errorf("%d instances discarded, want 1", d)
			}
			checkAbuseNormal(t, f, normal)
		})
	}

	// The same calls with length 0 point at nothing: no violation, and the
	// same instance goes on.
	legal := []struct{ name, event string }{
		{"event_get", abuseEvent(fnEventGet, "", badPtr, 0, badPtr, 0)},
		{"event_read", abuseEvent(fnEventRead, "", badPtr, 0)},
		{"event_write", abuseEvent(fnEventWrite, "", badPtr, 0)},
		{"consent_compare", abuseEvent(fnConsentCompare, "", badPtr, 0, badPtr, 0)},
		{"settings_get", abuseEvent(fnSettingsGet, "", badPtr, 0, badPtr, 0)},
		{"log", abuseEvent(fnLog, "", badPtr, 0, 2)},
		{"set_reason", abuseEvent(fnSetReason, "", badPtr, 0)},
	}
	for _, l := range legal {
		t.Run("length 0/"+l.name, func(t *testing.T) {
			before := f.Stats()
			mustDeliver(t, f, l.event)
			if after := f.Stats(); after.Discarded != before.Discarded {
				t.Errorf("a call with length 0 discarded the instance: %+v -> %+v", before, after)
			}
		})
	}
	st := f.Stats()
	if st.Discarded != uint64(len(violations)) || st.Started != 1+st.Discarded+st.Recycled {
		t.Errorf("stats %+v: want %d discarded, each replaced once", st, len(violations))
	}
}

// checkAbuseNormal runs a normal event through the abuse guest, which sets
// "checked": true on it.
func checkAbuseNormal(t testing.TB, f *runtime.Function, event string) {
	t.Helper()
	var res runtime.Result
	if err := f.Invoke(context.Background(), []byte(event), &res); err != nil {
		t.Fatalf("normal event: %v", err)
	}
	if res.Verdict != runtime.Deliver || !res.Modified || !strings.Contains(string(res.Event), `"checked":true`) {
		t.Fatalf("normal event: %v %s %q, event %s (modified %v): want it delivered with \"checked\":true",
			res.Verdict, res.Kind, res.Reason, res.Event, res.Modified)
	}
}
