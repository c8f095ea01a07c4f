package main

import (
	"strings"
	"testing"
)

// TestHardeningConsentFutureTimes is issue item 1 through the CLI:
// "consent set" and "consent import" refuse a decision time more than
// consentstore.MaxFutureSkew past the clock, naming the field; import
// reports the line and imports the rest.
func TestHardeningConsentFutureTimes(t *testing.T) {
	dir := t.TempDir()
	const field = `categoryPreferences.Advertising.timestamp_unixtime_ms: 4070908800000 (2099-01-01T00:00:00Z) is `
	update := writeFile(t, "update.json", `{"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":4070908800000}}}`)
	_, stderr := consentCLI(t, dir, 2, "set", "u1", "--file", update)
	wantContains(t, "set of a decision dated 2099", stderr,
		`insertfn consent set: update `+update+`: consent store: update of "u1": `+field,
		" years in the future (more than 5m0s past this server's clock)")
	_, stderr = consentCLI(t, dir, 1, "get", "u1")
	wantContains(t, "get after the refused set", stderr, `no record for "u1"`)

	purpose := writeFile(t, "purpose.json", `{"consent_state":{"gdpr":{"marketing":{"consented":true,"timestamp_unixtime_ms":99999999999999}}}}`)
	_, stderr = consentCLI(t, dir, 2, "set", "u1", "--file", purpose)
	wantContains(t, "set of a purpose dated 5138", stderr, "consent_state.gdpr.marketing.timestamp_unixtime_ms: 99999999999999")

	in := writeFile(t, "in.ndjson", strings.Join([]string{
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":4070908800000}}}`,
		`{"id":"u2","categoryPreferences":{"Advertising":true}}`,
	}, "\n"))
	out, stderr := consentCLI(t, dir, 1, "import", in)
	if want := in + ": 3 lines, 2 imported, 1 failed, 2 changes\n"; out != want {
		t.Errorf("import summary = %q, want %q", out, want)
	}
	wantContains(t, "import errors", stderr, in+`:2: consent store: update of "u1": `+field)
	out, _ = consentCLI(t, dir, 0, "get", "u1", "--json")
	if decodeRecord(t, out).CategoryMap()["Advertising"] {
		t.Errorf("u1 after the import = %s; the refused line was stored", out)
	}
}

// TestHardeningConsentNumericIDs is issue item 3 through the CLI: a
// numeric id or alias in an update, an import line or a --consent file
// is the id JavaScript's String(n) makes of it, so the record of "123" is
// one record whichever way the number is written, and insertfn test
// finds it for an event whose userId is 123.0.
func TestHardeningConsentNumericIDs(t *testing.T) {
	dir := t.TempDir()
	update := writeFile(t, "update.json", `{"id":123.0,"aliases":[4.5e1],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`)
	consentCLI(t, dir, 0, "set", "123", "--file", update)
	in := writeFile(t, "in.ndjson", `{"id":1.23e2,"categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":1700000000000}}}`+"\n"+
		`{"id":9007199254740993,"categoryPreferences":{"Analytics":true}}`+"\n")
	_, stderr := consentCLI(t, dir, 1, "import", in)
	wantContains(t, "import of an inexact numeric id", stderr,
		in+":2: id: number 9007199254740993 would be the id 9007199254740992: the number cannot be an id exactly; send the id as a string")
	out, _ := consentCLI(t, dir, 0, "get", "45", "--json")
	if r := decodeRecord(t, out); r.ID != "123" || len(r.Categories) != 2 {
		t.Errorf("get 45 = %s, want the record of 123 with both categories", out)
	}
	_, stderr = consentCLI(t, dir, 1, "get", "1.23e2")
	wantContains(t, "get 1.23e2", stderr, `no record for "1.23e2" (an id sent as the JSON number 1.23e2 is stored as "123", as JavaScript writes it)`)

	records := writeFile(t, "consent.ndjson", `{"id":123e0,"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`+"\n")
	for _, id := range []string{`"123"`, `123`, `123.0`, `1.23e2`} {
		event := writeFile(t, "event.json", `{"type":"track","event":"Order Completed","userId":`+id+
			`,"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`)
		if res := testJSON(t, 0, "--event", event, "--consent", records); res.Verdict != "drop" || res.Reason != "Consent mismatch" {
			t.Errorf("userId %s claiming a refused Advertising: %+v, want a Consent mismatch drop", id, res)
		}
	}
}
