package segment_test

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/abi"
	"github.com/insertfn/insertfn/sdk/segment"
)

// TimeCase is one line of testdata/timestamps.json, the table of
// timestamp strings that every reader of Segment times is tested with
// (this package's ParseTime, the ingest and the consent store).
type TimeCase struct {
	In   string `json:"in"`
	Want string `json:"want"` // RFC 3339 in UTC; "" when refused
	Form string `json:"form"` // zoned, local, date; "" when refused
}

func loadTimes(t *testing.T) []TimeCase {
	t.Helper()
	b, err := os.ReadFile("testdata/timestamps.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []TimeCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("testdata/timestamps.json: %v", err)
	}
	return cases
}

var forms = map[string]segment.TimeForm{"": segment.TimeInvalid, "zoned": segment.TimeZoned, "local": segment.TimeLocal, "date": segment.TimeDate}

func TestParseTime(t *testing.T) {
	for _, c := range loadTimes(t) {
		form, ok := forms[c.Form]
		if !ok {
			t.Fatalf("%q: unknown form %q", c.In, c.Form)
		}
		var want time.Time
		if c.Want != "" {
			var err error
			if want, err = time.Parse(time.RFC3339Nano, c.Want); err != nil {
				t.Fatalf("%q: want %q: %v", c.In, c.Want, err)
			}
		}
		got, gotForm := segment.ParseTime(c.In)
		if gotForm != form || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, form %d; want %v, form %d", c.In, got, gotForm, want, form)
		}
	}
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("x", -7*3600)),
		time.Date(999, 2, 3, 4, 5, 6, 7_000_000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got := string(segment.AppendTime(nil, tm))
		if want := tm.UTC().Format(segment.TimeLayout); got != want {
			t.Errorf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
		if y := tm.UTC().Year(); y >= 0 && y <= 9999 {
			back, form := segment.ParseTime(got)
			if form != segment.TimeZoned || !back.Equal(tm.Truncate(time.Millisecond)) {
				t.Errorf("ParseTime(AppendTime(%v)) = %v, form %d", tm, back, form)
			}
		}
	}
	if _, form := segment.ParseTime(segment.TimeExample); form != segment.TimeZoned {
		t.Errorf("TimeExample %q does not parse", segment.TimeExample)
	}
}

func TestTypes(t *testing.T) {
	calls := []segment.EventType{segment.Track, segment.Identify, segment.Page, segment.Screen, segment.Group, segment.Alias}
	for typ := segment.Other; typ <= segment.Delete+1; typ++ {
		name := typ.String()
		if typ != segment.Other && typ <= segment.Delete && segment.ParseType(name) != typ {
			t.Errorf("ParseType(%q) = %d, want %d", name, segment.ParseType(name), typ)
		}
		isCall := slices.Contains(calls, typ)
		if segment.IsCall(typ) != isCall {
			t.Errorf("IsCall(%d) = %v", typ, !isCall)
		}
		want := segment.Other
		if isCall {
			want = typ
		}
		if got := segment.ParseCall(name); got != want {
			t.Errorf("ParseCall(%q) = %d, want %d", name, got, want)
		}
	}
	// The ABI's numbers, not copies of them.
	if segment.Track != abi.EventTrack || segment.Delete != abi.EventDelete || segment.Other != abi.EventOther {
		t.Error("segment's event types are not the ABI's")
	}
	for _, s := range []string{"", "Track", "batch", "delete"} {
		if segment.ParseCall(s) != segment.Other {
			t.Errorf("ParseCall(%q) = %d, want Other", s, segment.ParseCall(s))
		}
	}
}

func TestIsConsentPreference(t *testing.T) {
	for name, want := range map[string]bool{
		"Segment Consent Preference":         true,
		"Segment Consent Preference Updated": true,
		"segment consent preference":         false,
		"Segment Consent Preference ":        false,
		"Consent Preference Updated":         false,
		"":                                   false,
	} {
		if segment.IsConsentPreference(name) != want {
			t.Errorf("IsConsentPreference(%q) = %v", name, !want)
		}
	}
}

// TestLeadingMembersContract: the contract's names are the members an
// event has, type first (LeadingType reads it there), and an event
// written in LeadingMembers' order is read by LeadingType for every type.
func TestLeadingMembersContract(t *testing.T) {
	lead := segment.LeadingMembers()
	if lead[0] != segment.MemberType || segment.TypePrefix != `{"type":"` {
		t.Fatalf("LeadingMembers starts with %q, TypePrefix is %s: LeadingType reads the type from the first member", lead[0], segment.TypePrefix)
	}
	if !slices.Contains(lead, segment.MemberContext) || segment.ContextLeadingMember != "consent" {
		t.Errorf("context (%v) or its leading member (%q) missing from the contract", lead, segment.ContextLeadingMember)
	}
	lead[0] = "changed"
	if segment.LeadingMembers()[0] != segment.MemberType {
		t.Error("LeadingMembers shares its slice")
	}
	for typ := segment.Track; typ <= segment.Delete; typ++ {
		ev := orderedEvent(typ.String())
		if got, ok := segment.LeadingType(ev); !ok || got != typ {
			t.Errorf("LeadingType(%s) = %d, %v; want %d, true", ev, got, ok, typ)
		}
		var names []string
		gjson.ParseBytes(ev).ForEach(func(k, _ gjson.Result) bool {
			names = append(names, k.Str)
			return true
		})
		if !slices.Equal(names[:len(segment.LeadingMembers())], segment.LeadingMembers()) {
			t.Errorf("test event's members %v", names)
		}
	}
}

// orderedEvent is an event of type typ with every leading member, in the
// contract's order, then others.
func orderedEvent(typ string) []byte {
	b := []byte(`{`)
	for i, m := range segment.LeadingMembers() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, m...)
		b = append(b, `":`...)
		switch m {
		case segment.MemberType:
			b = append(b, `"`+typ+`"`...)
		case segment.MemberIntegrations:
			b = append(b, `{"All":true}`...)
		case segment.MemberContext:
			b = append(b, `{"`+segment.ContextLeadingMember+`":{"categoryPreferences":{"A":true}},"ip":"192.0.2.1"}`...)
		default:
			b = append(b, `"x"`...)
		}
	}
	return append(b, `,"properties":{"type":"page"}}`...)
}

func TestLeadingType(t *testing.T) {
	for _, c := range []struct {
		ev   string
		typ  segment.EventType
		fast bool
	}{
		{`{"type":"track","event":"x"}`, segment.Track, true},
		{`{"type":"identify"}`, segment.Identify, true},
		{`{"type":"page","userId":"u"}`, segment.Page, true},
		{`{"type":"alias","previousId":"p"}`, segment.Alias, true},
		{`{"type":"trackX","userId":"u"}`, segment.Other, false},
		{`{"type":"track" ,"userId":"u"}`, segment.Other, false},
		{`{"type":"tr\u0061ck","userId":"u"}`, segment.Other, false},
		{`{ "type":"track","userId":"u"}`, segment.Other, false},
		{`{"event":"x","type":"track"}`, segment.Other, false},
		{`{"type":"page"}`, segment.Other, false}, // too short to hold the longest type: read by lookup
		{``, segment.Other, false},
	} {
		typ, ok := segment.LeadingType([]byte(c.ev))
		if typ != c.typ || ok != c.fast {
			t.Errorf("LeadingType(%s) = %d, %v; want %d, %v", c.ev, typ, ok, c.typ, c.fast)
		}
	}
}

// FuzzLeadingType: whenever LeadingType reads a type, a JSON lookup of the
// same event reads the same.
func FuzzLeadingType(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"x"}`, `{"type":"identify","userId":"u"}`, `{"type":"delete","userId":"u"}`,
		`{"type":"track","type":"page"}`, `{"type":"track"}  `, `{"type":"page",,`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ev string) {
		typ, ok := segment.LeadingType([]byte(ev))
		if !ok {
			return
		}
		if r := gjson.Get(ev, "type"); r.Type != gjson.String || segment.ParseType(r.Str) != typ {
			t.Errorf("%q: LeadingType = %d, a lookup reads %s", ev, typ, r.Raw)
		}
	})
}
