package main

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

// u1 stored: no to Advertising, yes to Analytics and to the GDPR purpose
// location_collection. anon-9 is an anonymous visitor who said yes to
// Advertising.
var stored = sdktest.WithConsent(
	`{"id":"u1","aliases":["anon-1"],"categoryPreferences":{"Advertising":false,"Analytics":true},
	  "consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1523039002083}}}}`,
	`{"id":"anon-9","categoryPreferences":{"Advertising":true}}`,
)

var errUnavailable = errors.New("connection refused")

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		event    string
		settings string
		storeErr error
		verdict  abi.Result
		reason   string
	}{
		{
			name:  "consent matches",
			event: `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`,
		},
		{
			name:    "Advertising true in event, false stored",
			event:   `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:    "mismatch on an identify",
			event:   `{"type":"identify","userId":"u1","traits":{},"context":{"consent":{"categoryPreferences":{"Analytics":false}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:  "category known to the event only",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true,"Functional":true}}}}`,
		},
		{
			name:  "category known to the store only",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`,
		},
		{
			name:  "no categories in common",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Functional":false}}}}`,
		},
		{
			name:    "GDPR purpose in consent_state disagrees",
			event:   `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:  "GDPR purpose in consent_state agrees",
			event: `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"location_collection":{"consented":true}}}}}}`,
		},
		{
			name:    "singular categoryPreference, mismatch",
			event:   `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":true}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:  "singular categoryPreference, match",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":false}}}}`,
		},
		{
			name:    "looked up by anonymousId without userId",
			event:   `{"type":"page","name":"Home","anonymousId":"anon-9","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:  "looked up by anonymousId, match",
			event: `{"type":"page","name":"Home","anonymousId":"anon-9","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			name:    "userId without a record falls back to anonymousId",
			event:   `{"type":"track","userId":"u-new","anonymousId":"anon-9","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:    "looked up by an alias",
			event:   `{"type":"track","anonymousId":"anon-1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			verdict: abi.ResultDrop, reason: "Consent mismatch",
		},
		{
			name:  "no stored record, default pass",
			event: `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			name:     "no stored record, missingRecord pass",
			event:    `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			settings: `{"missingRecord":"pass"}`,
		},
		{
			name:     "no stored record, missingRecord drop",
			event:    `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			settings: `{"missingRecord":"drop"}`,
			verdict:  abi.ResultDrop, reason: "No stored consent",
		},
		{
			name:     "no id at all, missingRecord drop",
			event:    `{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			settings: `{"missingRecord":"drop"}`,
			verdict:  abi.ResultDrop, reason: "No stored consent",
		},
		{
			name:  "no consent in event, default pass",
			event: `{"type":"track","userId":"u1"}`,
		},
		{
			name:     "no consent in event is checked before the record",
			event:    `{"type":"track","userId":"u-unknown","context":{"ip":"1.2.3.4"}}`,
			settings: `{"missingConsent":"pass","missingRecord":"drop"}`,
		},
		{
			name:     "no consent in event, missingConsent drop",
			event:    `{"type":"track","userId":"u1","context":{"ip":"1.2.3.4"}}`,
			settings: `{"missingConsent":"drop"}`,
			verdict:  abi.ResultDrop, reason: "No consent in event",
		},
		{
			name:     "store unavailable, default retry",
			event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			storeErr: errUnavailable,
			verdict:  abi.ResultRetry, reason: "Consent store unavailable",
		},
		{
			name:     "store unavailable, storeUnavailable drop",
			event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			settings: `{"storeUnavailable":"drop"}`,
			storeErr: errUnavailable,
			verdict:  abi.ResultDrop, reason: "Consent store unavailable",
		},
		{
			name:     "store unavailable, storeUnavailable pass",
			event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			settings: `{"storeUnavailable":"pass"}`,
			storeErr: errUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []sdktest.Option{stored}
			if tt.settings != "" {
				opts = append(opts, sdktest.WithSettings(tt.settings))
			}
			if tt.storeErr != nil {
				opts = append(opts, sdktest.WithStoreError(tt.storeErr))
			}
			res := sdktest.Run(t, Handlers, tt.event, opts...)
			if res.Verdict != tt.verdict || res.Reason != tt.reason {
				t.Errorf("got %v %q, want %v %q", res.Verdict, res.Reason, tt.verdict, tt.reason)
			}
			if res.Modified {
				t.Errorf("the event was changed: %s", res.Event)
			}
		})
	}
}
