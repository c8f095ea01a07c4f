package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/sdktest"
)

var stored = sdktest.WithConsent(
	`{"id":"u1","aliases":["anon-1"],"categoryPreferences":{
	   "Advertising":{"consented":false,"timestamp_unixtime_ms":1700000000000},
	   "Analytics":{"consented":true,"timestamp_unixtime_ms":1700000000000}},
	  "consent_state":{"gdpr":{"location_collection":{"consented":true,"timestamp_unixtime_ms":1523039002083}}}}`,
	`{"id":"u-purposes","consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
)

// truth is u1's stored categories as the function writes them.
const truth = `{"Advertising":false,"Analytics":true}`

func TestRestamp(t *testing.T) {
	tests := []struct {
		name     string
		event    string
		storeErr error
		verdict  abi.Result
		reason   string
		want     string // the resulting event; "" means unchanged
	}{
		{
			name:  "matches: unchanged",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`,
		},
		{
			name:  "Advertising true in event, false stored",
			event: `{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30},"context":{"ip":"1.2.3.4","consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}}`,
			want:  `{"type":"track","event":"Order Completed","userId":"u1","properties":{"total":30},"context":{"ip":"1.2.3.4","consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			name:  "category missing from the event is added",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`,
			want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			name:  "category unknown to the store is removed",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true,"Functional":true}}}}`,
			want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			name:  "no consent in the event: stamped",
			event: `{"type":"identify","anonymousId":"anon-1","traits":{"plan":"pro"}}`,
			want:  `{"type":"identify","anonymousId":"anon-1","traits":{"plan":"pro"},"context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			name:  "null categoryPreferences: stamped",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":null}}}`,
			want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			name:  "singular categoryPreference is replaced",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":true}}}}`,
			want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"restamped":true}}}`,
		},
		{
			name:  "singular categoryPreference that matches: unchanged",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreference":{"Advertising":false,"Analytics":true}}}}`,
		},
		{
			name:  "a differing purpose alone: unchanged",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
		},
		{
			name:  "consent_state is kept when categories are restamped",
			event: `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true},"consent_state":{"gdpr":{"location_collection":{"consented":false}}}}}}`,
			want:  `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":` + truth + `,"consent_state":{"gdpr":{"location_collection":{"consented":false}}},"restamped":true}}}`,
		},
		{
			name:  "no stored record: unchanged",
			event: `{"type":"track","userId":"u-unknown","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			name:  "no stored record and no consent: unchanged",
			event: `{"type":"track","userId":"u-unknown"}`,
		},
		{
			name:  "no id: unchanged",
			event: `{"type":"track","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			name:  "record without categories: unchanged",
			event: `{"type":"track","userId":"u-purposes","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
		},
		{
			name:     "store unavailable",
			event:    `{"type":"track","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			storeErr: errors.New("connection refused"),
			verdict:  abi.ResultRetry, reason: "Consent store unavailable",
		},
		{
			name:     "store unavailable, no consent in the event",
			event:    `{"type":"track","userId":"u1"}`,
			storeErr: errors.New("connection refused"),
			verdict:  abi.ResultRetry, reason: "Consent store unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []sdktest.Option{stored}
			if tt.storeErr != nil {
				opts = append(opts, sdktest.WithStoreError(tt.storeErr))
			}
			res := sdktest.Run(t, Handlers, tt.event, opts...)
			if res.Verdict != tt.verdict || res.Reason != tt.reason {
				t.Errorf("got %v %q, want %v %q", res.Verdict, res.Reason, tt.verdict, tt.reason)
			}
			if res.Modified != (tt.want != "") {
				t.Errorf("Modified = %v, want %v", res.Modified, tt.want != "")
			}
			want := tt.want
			if want == "" {
				want = tt.event
			}
			if !sameJSON(t, res.Event, want) {
				t.Errorf("event:\n got %s\nwant %s", res.Event, want)
			}
			wantStamp := "" // missing
			if tt.want != "" {
				wantStamp = "true"
			}
			if got := res.Field("context.consent.restamped"); got != wantStamp {
				t.Errorf("context.consent.restamped = %q, want %q", got, wantStamp)
			}
		})
	}
}

// sameJSON reports whether two JSON documents hold the same values, whatever
// the order of their keys.
func sameJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}
