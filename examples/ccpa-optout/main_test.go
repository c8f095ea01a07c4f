package main

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/sdk/abi"
)

var stored = []string{
	// opted out of sale
	`{"id":"u-out","aliases":["anon-out"],"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1579198790480}}}}`,
	// did not opt out (or opted back in)
	`{"id":"u-in","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":false,"timestamp_unixtime_ms":1579198790480}}}}`,
	// no CCPA decision (a GDPR purpose of the same name does not count)
	`{"id":"u-gdpr","categoryPreferences":{"Advertising":false},
	  "consent_state":{"gdpr":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
}

// table holds every case; TestNative and TestWasm both run it.
var table = exampletest.Table{
	Records: stored,
	Cases: []exampletest.Case{
		{
			Name:    "opted out",
			Event:   `{"type":"track","event":"Order Completed","userId":"u-out"}`,
			Verdict: abi.ResultDrop, Reason: "CCPA opt-out",
		},
		{
			Name:    "opted out, found by anonymousId alias",
			Event:   `{"type":"page","anonymousId":"anon-out"}`,
			Verdict: abi.ResultDrop, Reason: "CCPA opt-out",
		},
		{
			Name:    "opted out, whatever the event claims",
			Event:   `{"type":"identify","userId":"u-out","context":{"consent":{"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":false}}}}}}`,
			Verdict: abi.ResultDrop, Reason: "CCPA opt-out",
		},
		{
			Name:  "not opted out",
			Event: `{"type":"track","event":"Order Completed","userId":"u-in"}`,
		},
		{
			Name:  "not opted out, whatever the event claims",
			Event: `{"type":"track","userId":"u-in","context":{"consent":{"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true}}}}}}`,
		},
		{
			Name:    "opted out, no consent object in the event",
			Event:   `{"type":"track","userId":"u-out","context":{"ip":"1.2.3.4"}}`,
			Verdict: abi.ResultDrop, Reason: "CCPA opt-out",
		},
		{
			Name:    "opted out, the event knows categories only",
			Event:   `{"type":"track","userId":"u-out","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Verdict: abi.ResultDrop, Reason: "CCPA opt-out",
		},
		{
			Name:  "CCPA opt-out known to the event only",
			Event: `{"type":"track","userId":"u-gdpr","context":{"consent":{"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true}}}}}}`,
		},
		{
			Name:  "no CCPA entry",
			Event: `{"type":"track","userId":"u-gdpr"}`,
		},
		{
			Name:     "no CCPA entry is not a missing record",
			Event:    `{"type":"track","userId":"u-gdpr"}`,
			Settings: `{"missingRecord":"drop"}`,
		},
		{
			Name:  "no record, default pass",
			Event: `{"type":"track","userId":"u-unknown"}`,
		},
		{
			Name:     "no record, missingRecord pass",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: `{"missingRecord":"pass"}`,
		},
		{
			Name:     "no record, missingRecord drop",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: `{"missingRecord":"drop"}`,
			Verdict:  abi.ResultDrop, Reason: "No stored consent",
		},
		{
			Name:     "no id, missingRecord drop",
			Event:    `{"type":"track"}`,
			Settings: `{"missingRecord":"drop"}`,
			Verdict:  abi.ResultDrop, Reason: "No stored consent",
		},
		{
			Name:     "bad missingRecord setting",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: `{"missingRecord":"Drop"}`,
			Verdict:  abi.ResultFunctionError, Reason: `ccpa-optout: setting missingRecord is "Drop", want "pass" or "drop"`,
		},
		{
			Name:     "store unavailable",
			Event:    `{"type":"track","userId":"u-out"}`,
			StoreErr: errors.New("connection refused"),
			Verdict:  abi.ResultRetry, Reason: "Consent store unavailable",
		},
	},
}

func TestNative(t *testing.T) { exampletest.Native(t, Handlers, table) }

func TestWasm(t *testing.T) { exampletest.Wasm(t, ".", table) }
