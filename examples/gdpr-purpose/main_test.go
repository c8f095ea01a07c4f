package main

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/sdk/abi"
)

var stored = []string{
	`{"id":"u1","aliases":["anon-1"],"consent_state":{"gdpr":{
	   "location_collection":{"consented":true,"timestamp_unixtime_ms":1523039002083,"document":"location_collection_agreement.v43"},
	   "marketing":{"consented":false,"timestamp_unixtime_ms":1523039002083}}}}`,
	// categories and CCPA only: no GDPR decision at all
	`{"id":"u2","categoryPreferences":{"location_collection":true},
	  "consent_state":{"ccpa":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
}

const location = `{"purpose":"location_collection"}`

// table holds every case; TestNative and TestWasm both run it.
var table = exampletest.Table{
	Records: stored,
	Cases: []exampletest.Case{
		{
			Name:     "consented",
			Event:    `{"type":"track","event":"Store Visited","userId":"u1"}`,
			Settings: location,
		},
		{
			Name:     "consented, found by anonymousId alias",
			Event:    `{"type":"screen","name":"Map","anonymousId":"anon-1"}`,
			Settings: location,
		},
		{
			Name:     "refused",
			Event:    `{"type":"track","userId":"u1"}`,
			Settings: `{"purpose":"marketing"}`,
			Verdict:  abi.ResultDrop, Reason: "GDPR consent refused for marketing",
		},
		{
			Name:     "refused, whatever the event claims",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"marketing":{"consented":true}}}}}}`,
			Settings: `{"purpose":"marketing"}`,
			Verdict:  abi.ResultDrop, Reason: "GDPR consent refused for marketing",
		},
		{
			Name:     "consented, whatever the event claims",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			Settings: location,
		},
		{
			Name:     "consented, no consent object in the event",
			Event:    `{"type":"track","userId":"u1","context":{"ip":"1.2.3.4"}}`,
			Settings: location,
		},
		{
			Name:     "refused, no consent object in the event",
			Event:    `{"type":"track","userId":"u1","context":{"ip":"1.2.3.4"}}`,
			Settings: `{"purpose":"marketing"}`,
			Verdict:  abi.ResultDrop, Reason: "GDPR consent refused for marketing",
		},
		{
			Name:     "purpose known to the event only",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"analytics":{"consented":true}}}}}}`,
			Settings: `{"purpose":"analytics"}`,
			Verdict:  abi.ResultDrop, Reason: "No GDPR decision for analytics",
		},
		{
			Name:     "purpose known to the store only",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"analytics":{"consented":true}}}}}}`,
			Settings: location,
		},
		{
			Name:     "purpose never decided",
			Event:    `{"type":"track","userId":"u1"}`,
			Settings: `{"purpose":"analytics"}`,
			Verdict:  abi.ResultDrop, Reason: "No GDPR decision for analytics",
		},
		{
			Name:     "only a category or a CCPA purpose of that name",
			Event:    `{"type":"track","userId":"u2"}`,
			Settings: `{"purpose":"location_collection","missingRecord":"pass"}`,
			Verdict:  abi.ResultDrop, Reason: "No GDPR decision for location_collection",
		},
		{
			Name:     "no record, default drop",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: location,
			Verdict:  abi.ResultDrop, Reason: "No stored consent",
		},
		{
			Name:     "no record, missingRecord drop",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: `{"purpose":"location_collection","missingRecord":"drop"}`,
			Verdict:  abi.ResultDrop, Reason: "No stored consent",
		},
		{
			Name:     "no record, missingRecord pass",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: `{"purpose":"location_collection","missingRecord":"pass"}`,
		},
		{
			Name:     "no id, missingRecord pass",
			Event:    `{"type":"track"}`,
			Settings: `{"purpose":"location_collection","missingRecord":"pass"}`,
		},
		{
			Name:     "bad missingRecord setting",
			Event:    `{"type":"track","userId":"u-unknown"}`,
			Settings: `{"purpose":"location_collection","missingRecord":"allow"}`,
			Verdict:  abi.ResultFunctionError, Reason: `gdpr-purpose: setting missingRecord is "allow", want "drop" or "pass"`,
		},
		{
			Name:    "no settings",
			Event:   `{"type":"track","userId":"u1"}`,
			Verdict: abi.ResultFunctionError, Reason: `gdpr-purpose: the "purpose" setting is required`,
		},
		{
			Name:     "empty purpose setting",
			Event:    `{"type":"track","userId":"u1"}`,
			Settings: `{"purpose":""}`,
			Verdict:  abi.ResultFunctionError, Reason: `gdpr-purpose: the "purpose" setting is required`,
		},
		{
			Name:     "store unavailable",
			Event:    `{"type":"track","userId":"u1"}`,
			Settings: location,
			StoreErr: errors.New("connection refused"),
			Verdict:  abi.ResultRetry, Reason: "Consent store unavailable",
		},
	},
}

func TestNative(t *testing.T) { exampletest.Native(t, Handlers, table) }

func TestWasm(t *testing.T) { exampletest.Wasm(t, ".", table) }
