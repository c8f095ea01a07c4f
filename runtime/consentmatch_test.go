package runtime_test

import (
	"context"
	"strings"
	"testing"
	"unsafe"

	"github.com/insertfn/insertfn/runtime"
	"github.com/insertfn/insertfn/sdk/consent"
)

// TestConsentMatch runs the seed function, examples/consent-match, through
// the real runtime on a table of events.
func TestConsentMatch(t *testing.T) {
	drop := `{"missingRecord":"drop","missingConsent":"drop","storeUnavailable":"drop"}`
	fns := map[string]*runtime.Function{
		"default":          load(t, "consent-match", runtime.Options{Name: "cm-default", Store: testStore}),
		"drop":             load(t, "consent-match", runtime.Options{Name: "cm-drop", Store: testStore, Settings: []byte(drop)}),
		"purposes":         load(t, "consent-match", runtime.Options{Name: "cm-purposes", Store: testStore, Settings: []byte(`{"comparePurposes":true}`)}),
		"no store":         load(t, "consent-match", runtime.Options{Name: "cm-nostore"}),
		"store down":       load(t, "consent-match", runtime.Options{Name: "cm-down", Store: errStore{}}),
		"store down, drop": load(t, "consent-match", runtime.Options{Name: "cm-down-drop", Store: errStore{}, Settings: []byte(drop)}),
		"store down, pass": load(t, "consent-match", runtime.Options{Name: "cm-down-pass", Store: errStore{}, Settings: []byte(`{"storeUnavailable":"pass"}`)}),
	}
	cases := []struct {
		name    string
		fn      string
		event   string
		verdict runtime.Verdict
		kind    runtime.ErrorKind
		reason  string
		log     string // part of a log line the event must produce
	}{
		{name: "match", fn: "default", event: evMatch, verdict: runtime.Deliver},
		{name: "match, other event type", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"identify","userId":"u1","traits":{"email":"a@example.com"},"context":{"consent":{"categoryPreferences":{"Analytics":false,"Advertising":true}}}}`},
		{name: "match, mParticle-style values", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":{"consented":true},"Analytics":{"consented":false}}}}}`},
		{name: "category mismatch", fn: "default", event: evMismatch, verdict: runtime.Drop, reason: "Consent mismatch"},
		{name: "category mismatch, singular categoryPreference", fn: "default", verdict: runtime.Drop, reason: "Consent mismatch",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":false}}}}`},
		{name: "purpose mismatch, purposes not compared", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},"consent_state":{"gdpr":{"location_collection":false}}}}}`},
		{name: "purpose mismatch", fn: "purposes", verdict: runtime.Drop, reason: "Consent mismatch",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},"consent_state":{"gdpr":{"location_collection":false}}}}}`},
		{name: "purpose match", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},"consent_state":{"gdpr":{"location_collection":true}}}}}`},
		{name: "category only in the event", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false,"Functional":false}}}}`},
		{name: "category only in the stored record", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`},
		{name: "mismatch through anonymousId", fn: "default", verdict: runtime.Drop, reason: "Consent mismatch",
			event: `{"type":"track","userId":"nobody","anonymousId":"anon-2","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`},
		{name: "no stored record, pass", fn: "default", event: evNoRecord, verdict: runtime.Deliver},
		{name: "no stored record, drop", fn: "drop", event: evNoRecord, verdict: runtime.Drop, reason: "No stored consent"},
		{name: "no store at all, pass", fn: "no store", event: evMatch, verdict: runtime.Deliver},
		{name: "no id, pass", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`},
		{name: "no id, drop", fn: "drop", verdict: runtime.Drop, reason: "No stored consent",
			event: `{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`},
		{name: "no consent object, pass", fn: "default", verdict: runtime.Deliver,
			event: `{"type":"track","userId":"u1","context":{"ip":"10.0.0.1"}}`},
		{name: "no consent object, drop", fn: "drop", verdict: runtime.Drop, reason: "No consent in event",
			event: `{"type":"track","userId":"u1","context":{"ip":"10.0.0.1"}}`},
		{name: "no context, drop", fn: "drop", verdict: runtime.Drop, reason: "No consent in event",
			event: `{"type":"track","userId":"u1"}`},
		{name: "match, drop settings", fn: "drop", event: evMatch, verdict: runtime.Deliver},
		{name: "store down, retry", fn: "store down", event: evMatch, verdict: runtime.Fail, kind: runtime.KindRetry,
			reason: "Consent store unavailable", log: "errStore: the store is down"},
		{name: "store down, drop", fn: "store down, drop", event: evMatch, verdict: runtime.Drop, reason: "Consent store unavailable", log: "the store is down"},
		{name: "store down, pass", fn: "store down, pass", event: evMatch, verdict: runtime.Deliver, log: "the store is down"},
	}
	var reused runtime.Result // one Result for every call, as a caller may do
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fns[c.fn]
			for round := range 2 {
				event := []byte(c.event)
				err := f.Invoke(context.Background(), event, &reused)
				res := reused
				if err != nil {
					t.Fatalf("round %d: Invoke: %v", round, err)
				}
				if res.Verdict != c.verdict || res.Kind != c.kind || res.Reason != c.reason {
					t.Fatalf("round %d: got %v %q %q, want %v %q %q (logs %v)", round, res.Verdict, res.Kind, res.Reason, c.verdict, c.kind, c.reason, res.Logs)
				}
				if c.verdict == runtime.Deliver {
					// consent-match never changes the event: it must come back
					// as the caller's own bytes.
					if res.Modified || string(res.Event) != c.event {
						t.Errorf("round %d: event came back modified (%v) or changed: %s", round, res.Modified, res.Event)
					} else if unsafe.SliceData(res.Event) != unsafe.SliceData(event) {
						t.Errorf("round %d: an unchanged event came back as a copy, want the caller's bytes", round)
					}
				}
				if c.log != "" {
					found := false
					for _, l := range res.Logs {
						found = found || strings.Contains(l.Message, c.log)
					}
					if !found {
						t.Errorf("round %d: logs %+v, want a line with %q", round, res.Logs, c.log)
					}
				} else if len(res.Logs) != 0 {
					t.Errorf("round %d: unexpected logs %+v", round, res.Logs)
				}
			}
		})
	}
	for name, f := range fns {
		if st := f.Stats(); st.Discarded != 0 || st.Started != 1 {
			t.Errorf("%s: stats %+v, want one instance, none discarded", name, st)
		}
	}
}

// TestConsentMatchSharedRecord checks that the runtime leaves a store's
// records alone: consent.Store says records are shared and read-only.
func TestConsentMatchSharedRecord(t *testing.T) {
	rec := testStore["u1"]
	before := rec.Clone()
	f := load(t, "consent-match", runtime.Options{Store: testStore})
	for _, ev := range []string{evMatch, evMismatch} {
		if _, err := invoke(t, f, ev); err != nil {
			t.Fatal(err)
		}
	}
	if !sameRecord(rec, before) {
		t.Errorf("the stored record changed: %+v, was %+v", rec, before)
	}
}

func sameRecord(a, b *consent.Record) bool {
	aj, _ := a.MarshalJSON()
	bj, _ := b.MarshalJSON()
	return string(aj) == string(bj)
}
