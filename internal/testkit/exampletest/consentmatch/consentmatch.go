// Package consentmatch is the table of cases of the consent-match example,
// which is written in Go (examples/consent-match), C
// (examples/consent-match-c) and AssemblyScript
// (examples/consent-match-as): one table, so that the three give the same
// verdicts on the same events.
//
// Only tests import this package.
package consentmatch

import (
	"errors"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/sdk/abi"
)

// u1 stored: no to Advertising, yes to Analytics and to the GDPR purpose
// location_collection. anon-9 is an anonymous visitor who said yes to
// Advertising.
var stored = []string{
	`{"id":"u1","aliases":["anon-1"],"categoryPreferences":{"Advertising":false,"Analytics":true},
	  "consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1523039002083}}}}`,
	`{"id":"anon-9","categoryPreferences":{"Advertising":true}}`,
}

var errUnavailable = errors.New("connection refused")

// Table holds every case of consent-match, whatever its language: the Go
// example runs it natively and in the runtime, the C and AssemblyScript
// examples in the runtime.
var Table = exampletest.Table{
	Records: stored,
	Cases: []exampletest.Case{
		{
			Name:  "consent matches",
			Event: `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`,
		},
		{
			Name:    "Advertising true in event, false stored",
			Event:   `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:    "mismatch on an identify",
			Event:   `{"type":"identify","userId":"u1","traits":{},"context":{"consent":{"categoryPreferences":{"Analytics":false}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:  "category known to the event only",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true,"Functional":true}}}}`,
		},
		{
			Name:  "category known to the store only",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`,
		},
		{
			Name:  "no categories in common",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Functional":false}}}}`,
		},
		{
			Name:  "GDPR purpose in consent_state disagrees, purposes not compared (the default)",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
		},
		{
			Name:     "GDPR purpose in consent_state disagrees, comparePurposes",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			Settings: `{"comparePurposes":true}`,
			Verdict:  abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:     "GDPR purpose disagrees, comparePurposes as the string \"1\"",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			Settings: `{"comparePurposes":"1"}`,
			Verdict:  abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:     "GDPR purpose disagrees, comparePurposes as the number 0.0",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			Settings: `{"comparePurposes":0.0}`,
		},
		{
			Name:     "GDPR purpose disagrees, comparePurposes as the number 2e0",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			Settings: `{"comparePurposes":2e0}`,
			Verdict:  abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:     "GDPR purpose agrees, category disagrees, comparePurposes",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":false},"consent_state":{"gdpr":{"location_collection":{"consented":true}}}}}}`,
			Settings: `{"comparePurposes":true}`,
			Verdict:  abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:  "GDPR purpose in consent_state agrees",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"consent_state":{"gdpr":{"location_collection":{"consented":true}}}}}}`,
		},
		{
			Name:    "singular categoryPreference, mismatch",
			Event:   `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":true}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:  "singular categoryPreference, match",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":false}}}}`,
		},
		{
			Name:    "looked up by anonymousId without userId",
			Event:   `{"type":"page","name":"Home","anonymousId":"anon-9","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:  "looked up by anonymousId, match",
			Event: `{"type":"page","name":"Home","anonymousId":"anon-9","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:    "userId without a record falls back to anonymousId",
			Event:   `{"type":"track","userId":"u-new","anonymousId":"anon-9","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:    "looked up by an alias",
			Event:   `{"type":"track","anonymousId":"anon-1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Verdict: abi.ResultDrop, Reason: "Consent mismatch",
		},
		{
			Name:  "no stored record, default pass",
			Event: `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:     "no stored record, missingRecord pass",
			Event:    `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Settings: `{"missingRecord":"pass"}`,
		},
		{
			Name:     "no stored record, missingRecord drop",
			Event:    `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Settings: `{"missingRecord":"drop"}`,
			Verdict:  abi.ResultDrop, Reason: "No stored consent",
		},
		{
			Name:     "no id at all, missingRecord drop",
			Event:    `{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Settings: `{"missingRecord":"drop"}`,
			Verdict:  abi.ResultDrop, Reason: "No stored consent",
		},
		{
			Name:  "no consent in event, default pass",
			Event: `{"type":"track","userId":"u1"}`,
		},
		{
			Name:     "no consent in event is checked before the record",
			Event:    `{"type":"track","userId":"u-unknown","context":{"ip":"1.2.3.4"}}`,
			Settings: `{"missingConsent":"pass","missingRecord":"drop"}`,
		},
		{
			Name:     "no consent in event, missingConsent drop",
			Event:    `{"type":"track","userId":"u1","context":{"ip":"1.2.3.4"}}`,
			Settings: `{"missingConsent":"drop"}`,
			Verdict:  abi.ResultDrop, Reason: "No consent in event",
		},
		{
			Name:     "empty consent object is consent, with nothing in common",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{}}}`,
			Settings: `{"missingConsent":"drop"}`,
		},
		{
			Name:     "bad missingRecord setting",
			Event:    `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			Settings: `{"missingRecord":"Drop"}`,
			Verdict:  abi.ResultFunctionError, Reason: `setting missingRecord: "Drop" is not one of pass, drop, retry`,
		},
		{
			Name:     "store unavailable, default retry",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			StoreErr: errUnavailable,
			Verdict:  abi.ResultRetry, Reason: "Consent store unavailable",
		},
		{
			Name:     "store unavailable, storeUnavailable drop",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			Settings: `{"storeUnavailable":"drop"}`,
			StoreErr: errUnavailable,
			Verdict:  abi.ResultDrop, Reason: "Consent store unavailable",
		},
		{
			Name:     "store unavailable, storeUnavailable pass",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			Settings: `{"storeUnavailable":"pass"}`,
			StoreErr: errUnavailable,
		},
	},
}
