package main

import (
	"errors"
	"testing"

	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/tidwall/gjson"
)

var stored = []string{
	`{"id":"u1","aliases":["anon-1"],"categoryPreferences":{
	   "Advertising":{"consented":false,"timestamp_unixtime_ms":1700000000000},
	   "Analytics":{"consented":true,"timestamp_unixtime_ms":1700000000000}},
	  "consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1523039002083}}}}`,
	`{"id":"u-purposes","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
}

// truth is u1's stored categories as the function writes them.
const truth = `{"Advertising":false,"Analytics":true}`

// restamp holds every case; TestNative and TestWasm both run it (as table).
var restamp = exampletest.Table{
	Records: stored,
	Cases: []exampletest.Case{
		{
			Name:  "matches: unchanged",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`,
		},
		{
			Name:  "Advertising true in event, false stored",
			Event: `{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30},"context":{"ip":"1.2.3.4","consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
			Want:  `{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30},"context":{"ip":"1.2.3.4","consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "category missing from the event is added",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`,
			Want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "category unknown to the store is removed",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true,"Functional":true}}}}`,
			Want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "no consent in the event: stamped",
			Event: `{"type":"identify","anonymousId":"anon-1","traits":{"plan":"pro"}}`,
			Want:  `{"type":"identify","anonymousId":"anon-1","traits":{"plan":"pro"},"context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "null categoryPreferences: stamped",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":null}}}`,
			Want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "singular categoryPreference is replaced",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":true}}}}`,
			Want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "singular categoryPreference that matches: unchanged",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":false,"Analytics":true}}}}`,
		},
		{
			Name:  "a differing purpose alone: unchanged",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
		},
		{
			Name:  "consent_state is kept when categories are restamped",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			Want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"consent_state":{"gdpr":{"location_collection":{"consented":false}}},"restamped":true}}}`,
		},
		{
			Name:  "mParticle-style values that match: unchanged",
			Event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":{"consented":false},"Analytics":{"consented":true}}}}}`,
		},
		{
			Name:  "empty consent object: stamped",
			Event: `{"type":"track","userId":"u1","context":{"consent":{}}}`,
			Want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			Name:  "no consent object, record without categories: unchanged",
			Event: `{"type":"track","userId":"u-purposes","context":{"ip":"1.2.3.4"}}`,
		},
		{
			Name:  "no stored record: unchanged",
			Event: `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:  "no stored record and no consent: unchanged",
			Event: `{"type":"track","userId":"u-unknown"}`,
		},
		{
			Name:  "no id: unchanged",
			Event: `{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:  "record without categories: unchanged",
			Event: `{"type":"track","userId":"u-purposes","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			Name:     "store unavailable",
			Event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			StoreErr: errors.New("connection refused"),
			Verdict:  abi.ResultRetry, Reason: "Consent store unavailable",
		},
		{
			Name:     "store unavailable, no consent in the event",
			Event:    `{"type":"track","userId":"u1"}`,
			StoreErr: errors.New("connection refused"),
			Verdict:  abi.ResultRetry, Reason: "Consent store unavailable",
		},
	},
}

// table checks context.consent.restamped on every delivered event: true
// when the event was restamped, missing otherwise.
var table = withStampCheck(restamp)

func withStampCheck(tab exampletest.Table) exampletest.Table {
	cases := make([]exampletest.Case, len(tab.Cases))
	for i, c := range tab.Cases {
		wantStamp := "" // missing
		if c.Want != "" {
			wantStamp = "true"
		}
		c.Check = func(tb testing.TB, event []byte) {
			tb.Helper()
			if got := gjson.GetBytes(event, "context.consent.restamped").Raw; got != wantStamp {
				tb.Errorf("context.consent.restamped = %q, want %q", got, wantStamp)
			}
		}
		cases[i] = c
	}
	tab.Cases = cases
	return tab
}

func TestNative(t *testing.T) { exampletest.Native(t, Handlers, table) }

func TestWasm(t *testing.T) { exampletest.Wasm(t, ".", table) }
