package hostcall_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/hostcall"
)

// ent is a decoded abi.Entry with its names copied, for comparisons.
type ent struct {
	Flags   uint8
	Name    string
	Purpose string
	TS      int64
}

func (e ent) String() string {
	var f []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{abi.FlagPurpose, "P"}, {abi.FlagInStored, "S"}, {abi.FlagStoredConsented, "S+"}, {abi.FlagInEvent, "E"}, {abi.FlagEventConsented, "E+"}} {
		if e.Flags&x.bit != 0 {
			f = append(f, x.name)
		}
	}
	return fmt.Sprintf("{%s %q %q %d}", strings.Join(f, "|"), e.Name, e.Purpose, e.TS)
}

func decodeAll(t *testing.T, b []byte) []ent {
	t.Helper()
	var out []ent
	var e abi.Entry
	for len(b) > 0 {
		var ok bool
		if b, ok = abi.DecodeEntry(b, &e); !ok {
			t.Fatalf("malformed entries: % X", b)
		}
		out = append(out, ent{e.Flags, string(e.Name), string(e.Purpose), e.Timestamp})
	}
	return out
}

func sortEnts(es []ent) []ent {
	slices.SortFunc(es, func(a, b ent) int {
		return strings.Compare(a.Name+"\x00"+a.Purpose, b.Name+"\x00"+b.Purpose)
	})
	return es
}

func storedRecord() *consent.Record {
	r := &consent.Record{
		ID: "u1",
		Categories: []consent.Category{
			{Name: "Advertising", Consented: true, Timestamp: 100},
			{Name: "Analytics", Consented: false, Timestamp: 200},
		},
		Purposes: []consent.Purpose{
			{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 300},
		},
	}
	r.Normalize()
	return r
}

const (
	fS  = abi.FlagInStored
	fSC = abi.FlagInStored | abi.FlagStoredConsented
	fE  = abi.FlagInEvent
	fEC = abi.FlagInEvent | abi.FlagEventConsented
	fP  = abi.FlagPurpose
)

func TestCompareConsent(t *testing.T) {
	cases := []struct {
		name   string
		event  string
		status abi.ConsentStatus
		want   []ent
	}{
		{"same", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`,
			abi.ConsentSame, nil},
		{"same, other key order", `{"context":{"consent":{"categoryPreferences":{"Analytics":false,"Advertising":true}}}}`,
			abi.ConsentSame, nil},
		{"differs", `{"context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":false}}}}`,
			abi.ConsentDiffers, []ent{{fE | fSC, "Advertising", "", 100}}},
		{"both differ", `{"context":{"consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}}}`,
			abi.ConsentDiffers, []ent{{fE | fSC, "Advertising", "", 100}, {fEC | fS, "Analytics", "", 200}}},
		{"event-only category", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false,"Functional":true}}}}`,
			abi.ConsentDiffers, []ent{{fEC, "Functional", "", 0}}},
		{"stored-only category", `{"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`,
			abi.ConsentDiffers, []ent{{fS, "Analytics", "", 200}}},
		{"no context.consent", `{"type":"track","context":{"ip":"1.2.3.4"}}`,
			abi.ConsentNoEventConsent, nil},
		{"no context", `{"type":"track"}`, abi.ConsentNoEventConsent, nil},
		{"consent not at the top level", `{"properties":{"context":{"consent":{}}}}`, abi.ConsentNoEventConsent, nil},
		{"empty consent", `{"context":{"consent":{}}}`,
			abi.ConsentDiffers, []ent{{fSC, "Advertising", "", 100}, {fS, "Analytics", "", 200}}},
		{"empty categoryPreferences", `{"context":{"consent":{"categoryPreferences":{}}}}`,
			abi.ConsentDiffers, []ent{{fSC, "Advertising", "", 100}, {fS, "Analytics", "", 200}}},
		{"singular categoryPreference", `{"context":{"consent":{"categoryPreference":{"Advertising":false,"Analytics":false}}}}`,
			abi.ConsentDiffers, []ent{{fE | fSC, "Advertising", "", 100}}},
		{"singular categoryPreference, same", `{"context":{"consent":{"categoryPreference":{"Advertising":true,"Analytics":false}}}}`,
			abi.ConsentSame, nil},
		{"plural wins over singular", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},"categoryPreference":{"Advertising":false}}}}`,
			abi.ConsentSame, nil},
		{"object values (mParticle style)", `{"context":{"consent":{"categoryPreferences":{"Advertising":{"consented":true},"Analytics":{"consented":true}}}}}`,
			abi.ConsentDiffers, []ent{{fEC | fS, "Analytics", "", 200}}},
		{"non-boolean values are not consent", `{"context":{"consent":{"categoryPreferences":{"Advertising":"true","Analytics":0}}}}`,
			abi.ConsentDiffers, []ent{{fE | fSC, "Advertising", "", 100}}},
		{"category names are case-sensitive", `{"context":{"consent":{"categoryPreferences":{"advertising":true,"Advertising":true,"Analytics":false}}}}`,
			abi.ConsentDiffers, []ent{{fEC, "advertising", "", 0}}},

		// Purposes are compared only when the event carries consent_state.
		{"purposes same", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},
			"consent_state":{"gdpr":{"location_collection":{"consented":true}}}}}}`, abi.ConsentSame, nil},
		{"purposes same, bare boolean", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},
			"consent_state":{"gdpr":{"location_collection":true}}}}}`, abi.ConsentSame, nil},
		{"purpose differs", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},
			"consent_state":{"gdpr":{"location_collection":{"consented":false,"timestamp_unixtime_ms":999}}}}}}`,
			abi.ConsentDiffers, []ent{{fP | fE | fSC, "gdpr", "location_collection", 300}}},
		{"purpose event-only and stored-only", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},
			"consent_state":{"ccpa":{"data_sale_opt_out":{"consented":true}}}}}}`,
			abi.ConsentDiffers, []ent{{fP | fEC, "ccpa", "data_sale_opt_out", 0}, {fP | fSC, "gdpr", "location_collection", 300}}},
		{"purpose under another regulation", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},
			"consent_state":{"ccpa":{"location_collection":{"consented":true}}}}}}`,
			abi.ConsentDiffers, []ent{{fP | fEC, "ccpa", "location_collection", 0}, {fP | fSC, "gdpr", "location_collection", 300}}},
		{"empty consent_state", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false},"consent_state":{}}}}`,
			abi.ConsentDiffers, []ent{{fP | fSC, "gdpr", "location_collection", 300}}},
		{"no consent_state: purposes not compared", `{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`,
			abi.ConsentSame, nil},
		{"consent_state only", `{"context":{"consent":{"consent_state":{"gdpr":{"location_collection":{"consented":true}}}}}}`,
			abi.ConsentDiffers, []ent{{fSC, "Advertising", "", 100}, {fS, "Analytics", "", 200}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d hostcall.Doc
			d.Reset([]byte(c.event), 0)
			if d.HasConsent() != (c.status != abi.ConsentNoEventConsent) {
				t.Errorf("HasConsent() = %v", d.HasConsent())
			}
			prefix := []byte("keep")
			out, st := d.CompareConsent(append([]byte(nil), prefix...), storedRecord())
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("CompareConsent did not append to dst: %q", out)
			}
			got := sortEnts(decodeAll(t, out[len(prefix):]))
			if st != c.status || !slices.Equal(got, sortEnts(c.want)) {
				t.Errorf("CompareConsent = %s %v, want %s %v", st, got, c.status, c.want)
			}
			if (st == abi.ConsentSame || st == abi.ConsentNoEventConsent) && len(out) != len(prefix) {
				t.Errorf("status %s with %d bytes of entries", st, len(out)-len(prefix))
			}
		})
	}
}

// Names with gjson path syntax in them must be compared as plain keys.
func TestCompareConsentNamesWithPathSyntax(t *testing.T) {
	rec := &consent.Record{ID: "u1",
		Categories: []consent.Category{{Name: "a.b", Consented: true, Timestamp: 1}, {Name: "c*", Consented: false, Timestamp: 2}, {Name: "#", Consented: true, Timestamp: 3}},
		Purposes:   []consent.Purpose{{Regulation: "g.d", Name: "p.q", Consented: true, Timestamp: 4}},
	}
	rec.Normalize()
	var d hostcall.Doc
	d.Reset([]byte(`{"context":{"consent":{"categoryPreferences":{"a.b":true,"c*":false,"#":true},"consent_state":{"g.d":{"p.q":true}}}}}`), 0)
	out, st := d.CompareConsent(nil, rec)
	if st != abi.ConsentSame {
		t.Errorf("CompareConsent = %s %v, want same", st, decodeAll(t, out))
	}
}

func TestCompareConsentEmptyRecord(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(`{"context":{"consent":{}}}`), 0)
	if out, st := d.CompareConsent(nil, &consent.Record{ID: "u1"}); st != abi.ConsentSame || len(out) != 0 {
		t.Errorf("empty event consent vs empty record = %s, %d bytes", st, len(out))
	}
	d.Reset([]byte(`{"context":{"consent":{"categoryPreferences":{"A":false}}}}`), 0)
	out, st := d.CompareConsent(nil, &consent.Record{ID: "u1"})
	if got := decodeAll(t, out); st != abi.ConsentDiffers || !slices.Equal(got, []ent{{fE, "A", "", 0}}) {
		t.Errorf("event-only false category = %s %v", st, got)
	}
}

// A key repeated in the event's JSON grants only if every copy consents
// (routing reads it the same way, and a destination's decoder may read any
// copy); it is reported at most once, and does not hide a stored-only entry.
// Of repeated categoryPreferences objects, the first counts, as in routing.
func TestCompareConsentDuplicateKeys(t *testing.T) {
	rec := storedRecord() // Advertising true, Analytics false, gdpr location_collection true
	rec.Purposes = append(rec.Purposes, consent.Purpose{Regulation: "gdpr", Name: "z", Consented: true, Timestamp: 9})
	analyticsOnlyStored := ent{fS, "Analytics", "", 200}
	zOnlyStored := ent{fP | fSC, "gdpr", "z", 9}
	for _, c := range []struct {
		name, prefs, gdpr string
		want              []ent
	}{
		{"copies agree", `"Advertising":true,"Advertising":true`, `"location_collection":true,"location_collection":true`,
			[]ent{analyticsOnlyStored, zOnlyStored}},
		{"a later copy refuses what is stored as granted", `"Advertising":true,"Advertising":false,"Advertising":false`,
			`"location_collection":true,"location_collection":false`,
			[]ent{{fE | fSC, "Advertising", "", 100}, analyticsOnlyStored, {fP | fE | fSC, "gdpr", "location_collection", 300}, zOnlyStored}},
		{"a later copy grants what is stored as refused", `"Advertising":true,"Analytics":false,"Analytics":true`, `"location_collection":true`,
			[]ent{zOnlyStored}},
		{"a later copy refuses what the first granted against the store", `"Advertising":true,"Analytics":true,"Analytics":false`, `"location_collection":true`,
			[]ent{zOnlyStored}},
		{"an escaped copy is the same key", `"Advertising":true,"Analytics":true,"Ana\u006cytics":false`, `"location_collection":true`,
			[]ent{zOnlyStored}},
	} {
		var d hostcall.Doc
		d.Reset([]byte(`{"context":{"consent":{"categoryPreferences":{`+c.prefs+`},"consent_state":{"gdpr":{`+c.gdpr+`}}}}}`), 0)
		out, st := d.CompareConsent(nil, rec)
		got := sortEnts(decodeAll(t, out))
		if want := sortEnts(c.want); st != abi.ConsentDiffers || !slices.Equal(got, want) {
			t.Errorf("%s: CompareConsent = %s %v, want differs %v", c.name, st, got, want)
		}
	}
}

// Of a categoryPreferences object the consent object repeats, the first
// counts, as routing reads it.
func TestCompareConsentRepeatedPreferences(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(`{"context":{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true},"categoryPreferences":{"Advertising":true,"Analytics":false}}}}`), 0)
	out, st := d.CompareConsent(nil, storedRecord())
	if got := decodeAll(t, out); st != abi.ConsentDiffers || !slices.Equal(got, []ent{{fEC | fS, "Analytics", "", 200}}) {
		t.Errorf("CompareConsent = %s %v; want the first copy's Analytics:true to differ", st, got)
	}
}

// categoryPreferences or a regulation that is not an object carries
// nothing: no entry with an empty name, every stored entry stored-only.
func TestCompareConsentNonObjectValues(t *testing.T) {
	for _, v := range []string{`null`, `true`, `"Advertising"`, `[true,false]`, `7`} {
		var d hostcall.Doc
		d.Reset([]byte(`{"context":{"consent":{"categoryPreferences":`+v+`,"consent_state":{"gdpr":`+v+`}}}}`), 0)
		out, st := d.CompareConsent(nil, storedRecord())
		got := sortEnts(decodeAll(t, out))
		want := []ent{{fSC, "Advertising", "", 100}, {fS, "Analytics", "", 200}, {fP | fSC, "gdpr", "location_collection", 300}}
		if st != abi.ConsentDiffers || !slices.Equal(got, want) {
			t.Errorf("values %s: %s %v, want differs %v", v, st, got, want)
		}
	}
}

// "consent": null is no consent at all.
func TestCompareConsentNull(t *testing.T) {
	var d hostcall.Doc
	d.Reset([]byte(`{"context":{"consent":null}}`), 0)
	if out, st := d.CompareConsent(nil, storedRecord()); st != abi.ConsentNoEventConsent || len(out) != 0 || d.HasConsent() {
		t.Errorf("consent null: %s, %d bytes, HasConsent %v", st, len(out), d.HasConsent())
	}
}

func TestAppendRecord(t *testing.T) {
	rec := storedRecord()
	rec.Purposes = append(rec.Purposes, consent.Purpose{Regulation: "ccpa", Name: "data_sale_opt_out", Consented: false, Timestamp: 400})
	rec.Normalize()
	got := decodeAll(t, hostcall.AppendRecord(nil, rec))
	want := []ent{
		{fSC, "Advertising", "", 100},
		{fS, "Analytics", "", 200},
		{fP | fS, "ccpa", "data_sale_opt_out", 400},
		{fP | fSC, "gdpr", "location_collection", 300},
	}
	if !slices.Equal(got, want) {
		t.Errorf("AppendRecord = %v, want %v", got, want)
	}
	if out := hostcall.AppendRecord([]byte("x"), &consent.Record{ID: "u"}); string(out) != "x" {
		t.Errorf("AppendRecord of an empty record = %q", out)
	}
}
