package main

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

var stored = sdktest.WithConsent(
	// opted out of sale
	`{"id":"u-out","aliases":["anon-out"],"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1579198790480}}}}`,
	// did not opt out (or opted back in)
	`{"id":"u-in","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":false,"timestamp_unixtime_ms":1579198790480}}}}`,
	// no CCPA decision (a GDPR purpose of the same name does not count)
	`{"id":"u-gdpr","categoryPreferences":{"Advertising":false},
	  "consent_state":{"gdpr":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
)

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
			name:    "opted out",
			event:   `{"type":"track","event":"Order Completed","userId":"u-out"}`,
			verdict: abi.ResultDrop, reason: "CCPA opt-out",
		},
		{
			name:    "opted out, found by anonymousId alias",
			event:   `{"type":"page","anonymousId":"anon-out"}`,
			verdict: abi.ResultDrop, reason: "CCPA opt-out",
		},
		{
			name:    "opted out, whatever the event claims",
			event:   `{"type":"identify","userId":"u-out","context":{"consent":{"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":false}}}}}}`,
			verdict: abi.ResultDrop, reason: "CCPA opt-out",
		},
		{
			name:  "not opted out",
			event: `{"type":"track","event":"Order Completed","userId":"u-in"}`,
		},
		{
			name:  "no CCPA entry",
			event: `{"type":"track","userId":"u-gdpr"}`,
		},
		{
			name:     "no CCPA entry is not a missing record",
			event:    `{"type":"track","userId":"u-gdpr"}`,
			settings: `{"missingRecord":"drop"}`,
		},
		{
			name:  "no record, default pass",
			event: `{"type":"track","userId":"u-unknown"}`,
		},
		{
			name:     "no record, missingRecord pass",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: `{"missingRecord":"pass"}`,
		},
		{
			name:     "no record, missingRecord drop",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: `{"missingRecord":"drop"}`,
			verdict:  abi.ResultDrop, reason: "No stored consent",
		},
		{
			name:     "no id, missingRecord drop",
			event:    `{"type":"track"}`,
			settings: `{"missingRecord":"drop"}`,
			verdict:  abi.ResultDrop, reason: "No stored consent",
		},
		{
			name:     "bad missingRecord setting",
			event:    `{"type":"track","userId":"u-unknown"}`,
			settings: `{"missingRecord":"Drop"}`,
			verdict:  abi.ResultFunctionError, reason: `ccpa-optout: setting missingRecord is "Drop", want "pass" or "drop"`,
		},
		{
			name:     "store unavailable",
			event:    `{"type":"track","userId":"u-out"}`,
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
