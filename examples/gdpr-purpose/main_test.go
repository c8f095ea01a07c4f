package main

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

var stored = sdktest.WithConsent(
	`{"id":"u1","aliases":["anon-1"],"consent_state":{"gdpr":{
	   "location_collection":{"consented":true,"timestamp_unixtime_ms":1523039002083,"document":"location_collection_agreement.v43"},
	   "marketing":{"consented":false,"timestamp_unixtime_ms":1523039002083}}}}`,
	// categories and CCPA only: no GDPR decision at all
	`{"id":"u2","categoryPreferences":{"location_collection":true},
	  "consent_state":{"ccpa":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
)

const location = `{"purpose":"location_collection"}`

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
			name:     "consented",
			event:    `{"type":"track","event":"Store Visited","userId":"u1"}`,
			settings: location,
		},
		{
			name:     "consented, found by anonymousId alias",
			event:    `{"type":"screen","name":"Map","anonymousId":"anon-1"}`,
			settings: location,
		},
		{
			name:     "refused",
			event:    `{"type":"track","userId":"u1"}`,
			settings: `{"purpose":"marketing"}`,
			verdict:  abi.ResultDrop, reason: "GDPR consent refused for marketing",
		},
		{
			name:     "refused, whatever the event claims",
			event:    `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"marketing":{"consented":true}}}}}}`,
			settings: `{"purpose":"marketing"}`,
			verdict:  abi.ResultDrop, reason: "GDPR consent refused for marketing",
		},
		{
			name:     "purpose never decided",
			event:    `{"type":"track","userId":"u1"}`,
			settings: `{"purpose":"analytics"}`,
			verdict:  abi.ResultDrop, reason: "No GDPR decision for analytics",
		},
		{
			name:     "only a category or a CCPA purpose of that name",
			event:    `{"type":"track","userId":"u2"}`,
			settings: `{"purpose":"location_collection","missingRecord":"pass"}`,
			verdict:  abi.ResultDrop, reason: "No GDPR decision for location_collection",
		},
		{
			name:     "no record, default drop",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: location,
			verdict:  abi.ResultDrop, reason: "No stored consent",
		},
		{
			name:     "no record, missingRecord drop",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: `{"purpose":"location_collection","missingRecord":"drop"}`,
			verdict:  abi.ResultDrop, reason: "No stored consent",
		},
		{
			name:     "no record, missingRecord pass",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: `{"purpose":"location_collection","missingRecord":"pass"}`,
		},
		{
			name:     "no id, missingRecord pass",
			event:    `{"type":"track"}`,
			settings: `{"purpose":"location_collection","missingRecord":"pass"}`,
		},
		{
			name:     "bad missingRecord setting",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: `{"purpose":"location_collection","missingRecord":"allow"}`,
			verdict:  abi.ResultFunctionError, reason: `gdpr-purpose: setting missingRecord is "allow", want "drop" or "pass"`,
		},
		{
			name:    "no settings",
			event:   `{"type":"track","userId":"u1"}`,
			verdict: abi.ResultFunctionError, reason: `gdpr-purpose: the "purpose" setting is required`,
		},
		{
			name:     "empty purpose setting",
			event:    `{"type":"track","userId":"u1"}`,
			settings: `{"purpose":""}`,
			verdict:  abi.ResultFunctionError, reason: `gdpr-purpose: the "purpose" setting is required`,
		},
		{
			name:     "store unavailable",
			event:    `{"type":"track","userId":"u1"}`,
			settings: location,
			storeErr: errors.New("connection refused"),
			verdict:  abi.ResultRetry, reason: "Consent store unavailable",
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
