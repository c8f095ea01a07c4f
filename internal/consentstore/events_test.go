package consentstore

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/insertfn/insertfn/sdk/consent"
	"github.com/insertfn/insertfn/sdk/segment"
)

// segmentSeedEvent is the example of the seed ("Consent in Unify"), with
// its JSON fixed (the seed's has a trailing comma and a missing one).
const segmentSeedEvent = `{
  "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
  "type": "track",
  "event": "Segment Consent Preference",
  "userId": "u123",
  "traits": {
    "email": "peter@example.com",
    "phone": "555-555-5555"
  },
  "timestamp": "2023-01-01T00:00:00.000Z",
  "context": {
    "consent": {
      "categoryPreferences" : {
        "Advertising": true,
        "Analytics": false,
        "Functional": true,
        "DataSharing": false
      }
    }
  }
}`

// segmentWrapperEvent is what analytics.js with the OneTrust consent wrapper
// sends after a change, as the gateway has it: OneTrust group ids as
// categories, every Segment time field set.
const segmentWrapperEvent = `{"type":"track","event":"Segment Consent Preference Updated","properties":{},
"userId":null,"anonymousId":"c5b1f8e2-3c4f-4d8e-9a41-0b7f0c2d9e11",
"messageId":"ajs-next-1c3e0f8b2a7d4e6f9b0a1c2d3e4f5a6b",
"originalTimestamp":"2024-03-05T10:15:30.123Z","sentAt":"2024-03-05T10:15:30.456Z",
"receivedAt":"2024-03-05T10:15:31.002Z","timestamp":"2024-03-05T10:15:30.669Z",
"context":{"library":{"name":"analytics.js","version":"next-1.64.0"},
"consent":{"categoryPreferences":{"C0001":true,"C0002":false,"C0003":true,"C0004":false}}},
"integrations":{}}`

// ms parses a Segment time to Unix milliseconds.
func ms(t *testing.T, s string) int64 {
	t.Helper()
	tm, form := segment.ParseTime(s)
	if form == segment.TimeInvalid {
		t.Fatalf("%q is not a Segment time", s)
	}
	return tm.UnixMilli()
}

func cats(ts int64, kv ...any) []consent.Category {
	var out []consent.Category
	for i := 0; i < len(kv); i += 2 {
		out = append(out, consent.Category{Name: kv[i].(string), Consented: kv[i+1].(bool), Timestamp: ts})
	}
	slices.SortFunc(out, func(a, b consent.Category) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// withField returns the seed event with one top-level field set to raw
// JSON, or removed when raw is "".
func withField(t *testing.T, event, field, raw string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(event), &m); err != nil {
		t.Fatal(err)
	}
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func withPrefs(t *testing.T, prefs string) string {
	return withField(t, segmentSeedEvent, "context", `{"consent":{"categoryPreferences":`+prefs+`}}`)
}

func TestUpdateFromSegment(t *testing.T) {
	seedTS := ms(t, "2023-01-01T00:00:00Z")
	seedCats := cats(seedTS, "Advertising", true, "Analytics", false, "Functional", true, "DataSharing", false)
	noTimes := withField(t, withField(t, withField(t, segmentWrapperEvent, "timestamp", ""), "originalTimestamp", ""), "receivedAt", "")
	for _, tc := range []struct {
		name    string
		event   string
		id      string
		aliases []string
		cats    []consent.Category
		source  string
	}{
		{"seed example", segmentSeedEvent, "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"consent wrapper, anonymous", segmentWrapperEvent, "c5b1f8e2-3c4f-4d8e-9a41-0b7f0c2d9e11", nil,
			cats(ms(t, "2024-03-05T10:15:30.669Z"), "C0001", true, "C0002", false, "C0003", true, "C0004", false),
			"segment:ajs-next-1c3e0f8b2a7d4e6f9b0a1c2d3e4f5a6b"},
		{"no timestamp: originalTimestamp", withField(t, segmentWrapperEvent, "timestamp", ""), "c5b1f8e2-3c4f-4d8e-9a41-0b7f0c2d9e11", nil,
			cats(ms(t, "2024-03-05T10:15:30.123Z"), "C0001", true, "C0002", false, "C0003", true, "C0004", false),
			"segment:ajs-next-1c3e0f8b2a7d4e6f9b0a1c2d3e4f5a6b"},
		{"only sentAt", noTimes, "c5b1f8e2-3c4f-4d8e-9a41-0b7f0c2d9e11", nil,
			cats(ms(t, "2024-03-05T10:15:30.456Z"), "C0001", true, "C0002", false, "C0003", true, "C0004", false),
			"segment:ajs-next-1c3e0f8b2a7d4e6f9b0a1c2d3e4f5a6b"},
		{"no time at all: the store's clock", withField(t, noTimes, "sentAt", ""), "c5b1f8e2-3c4f-4d8e-9a41-0b7f0c2d9e11", nil,
			cats(0, "C0001", true, "C0002", false, "C0003", true, "C0004", false),
			"segment:ajs-next-1c3e0f8b2a7d4e6f9b0a1c2d3e4f5a6b"},
		{"null timestamp falls back", withField(t, segmentSeedEvent, "timestamp", "null"), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"},
			cats(0, "Advertising", true, "Analytics", false, "Functional", true, "DataSharing", false), "segment"},
		{"offset timestamp", withField(t, segmentSeedEvent, "timestamp", `"2023-01-01T01:00:00+01:00"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"offset without colon", withField(t, segmentSeedEvent, "timestamp", `"2023-01-01T01:00:00.000+0100"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"no offset: UTC", withField(t, segmentSeedEvent, "timestamp", `"2023-01-01T00:00:00"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"microseconds", withField(t, segmentSeedEvent, "timestamp", `"2023-01-01T00:00:00.000999Z"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		// The forms the ingest accepts (segment.ParseTime), a date alone
		// included (midnight UTC); internal/app's TestTimestampFormsAgree
		// runs the whole table through both.
		{"date only", withField(t, segmentSeedEvent, "timestamp", `"2023-01-01"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"offset hours only", withField(t, segmentSeedEvent, "timestamp", `"2023-01-01T02:00:00+02"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"without type (POST /v1/track)", withField(t, segmentSeedEvent, "type", ""), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"messageId", withField(t, segmentSeedEvent, "messageId", `"m-1"`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment:m-1"},
		{"userId only", withField(t, segmentSeedEvent, "anonymousId", ""), "u123", nil, seedCats, "segment"},
		{"same userId and anonymousId", withField(t, segmentSeedEvent, "anonymousId", `"u123"`), "u123", nil, seedCats, "segment"},
		{"numeric userId", withField(t, segmentSeedEvent, "userId", `12345678901234567000`), "12345678901234567000", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"numeric userId 123.0", withField(t, segmentSeedEvent, "userId", `123.0`), "123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"numeric userId 1.23e2", withField(t, segmentSeedEvent, "userId", `1.23e2`), "123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, seedCats, "segment"},
		{"numeric ids 123e0, 1.5E1", withField(t, withField(t, segmentSeedEvent, "userId", `123e0`), "anonymousId", `1.5E1`), "123", []string{"15"}, seedCats, "segment"},
		{"empty userId is none", withField(t, segmentSeedEvent, "userId", `""`), "23adfd82-aa0f-45a7-a756-24f2a7a4c895", nil, seedCats, "segment"},
		{"consentPreferences, the early name", withField(t, segmentSeedEvent, "context", `{"consent":{"consentPreferences":{"Advertising":true}}}`),
			"u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, cats(seedTS, "Advertising", true), "segment"},
		{"categoryPreferences wins over consentPreferences", withField(t, segmentSeedEvent, "context", `{"consent":{"consentPreferences":{"Advertising":true},"categoryPreferences":{"Advertising":false}}}`),
			"u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, cats(seedTS, "Advertising", false), "segment"},
		{"empty preferences still link the ids", withPrefs(t, `{}`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"}, nil, "segment"},
		{"escaped and unicode category names", withPrefs(t, `{"Ads \"x\"":true,"Análisis":false}`), "u123", []string{"23adfd82-aa0f-45a7-a756-24f2a7a4c895"},
			cats(seedTS, `Ads "x"`, true, "Análisis", false), "segment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := UpdateFromSegment([]byte(tc.event))
			if !ok || err != nil {
				t.Fatalf("UpdateFromSegment = ok %v, %v; want an update", ok, err)
			}
			r := u.Record
			if r.ID != tc.id || !slices.Equal(r.Aliases, tc.aliases) {
				t.Errorf("ids = %q %q, want %q %q", r.ID, r.Aliases, tc.id, tc.aliases)
			}
			if !slices.Equal(r.Categories, tc.cats) {
				t.Errorf("categories = %+v\nwant %+v", r.Categories, tc.cats)
			}
			if len(r.Purposes) != 0 {
				t.Errorf("purposes = %+v, want none", r.Purposes)
			}
			if u.Source != tc.source {
				t.Errorf("source = %q, want %q", u.Source, tc.source)
			}
		})
	}
}

func TestUpdateFromSegmentNotConsent(t *testing.T) {
	for _, tc := range []struct{ name, event string }{
		{"page", `{"type":"page","name":"Home","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`},
		{"other track", `{"type":"track","event":"Order Completed","userId":"u1","context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`},
		{"identify named like the event", withField(t, segmentSeedEvent, "type", `"identify"`)},
		{"name in another case", withField(t, segmentSeedEvent, "event", `"segment consent preference"`)},
		{"name in properties only", `{"type":"track","event":"x","properties":{"event":"Segment Consent Preference"}}`},
		{"name not a string", withField(t, segmentSeedEvent, "event", `["Segment Consent Preference"]`)},
		{"type not a string", withField(t, segmentSeedEvent, "type", `1`)},
		{"empty preferences, one id", withField(t, withPrefs(t, `{}`), "anonymousId", "")},
		{"empty", ``},
		{"garbage", `not json at all`},
		{"array", `[{"type":"track","event":"Segment Consent Preference"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := UpdateFromSegment([]byte(tc.event))
			if ok || err != nil {
				t.Errorf("UpdateFromSegment = %+v, ok %v, %v; want not a consent update", u, ok, err)
			}
		})
	}
}

func TestUpdateFromSegmentErrors(t *testing.T) {
	for _, tc := range []struct{ name, event, want string }{
		{"the seed's JSON verbatim", strings.Replace(segmentSeedEvent, `"555-555-5555"`, `"555-555-5555",`, 1), "not valid JSON"},
		{"truncated", segmentSeedEvent[:200], "not valid JSON"},
		{"no ids", withField(t, withField(t, segmentSeedEvent, "userId", ""), "anonymousId", "null"), "neither userId nor anonymousId"},
		{"userId object", withField(t, segmentSeedEvent, "userId", `{"id":"u1"}`), "userId: want a string, got an object"},
		{"anonymousId boolean", withField(t, segmentSeedEvent, "anonymousId", `true`), "anonymousId: want a string, got a boolean"},
		{"messageId number", withField(t, segmentSeedEvent, "messageId", `42`), "messageId: want a string, got a number (42)"},
		{"no preferences", withField(t, segmentSeedEvent, "context", `{"consent":{}}`), "no context.consent.categoryPreferences"},
		{"no context", withField(t, segmentSeedEvent, "context", ""), "no context.consent.categoryPreferences"},
		{"preferences array", withPrefs(t, `["Advertising"]`), "categoryPreferences: want an object of booleans"},
		{"preferences null", withPrefs(t, `null`), "categoryPreferences: want an object of booleans ({\"Advertising\": true}), got null"},
		{"preference string", withPrefs(t, `{"Advertising":"true"}`), `categoryPreferences.Advertising: want true, false or {"consented": true|false}, got a string ("true")`},
		{"preference object without consented", withPrefs(t, `{"Advertising":{"ok":true}}`), `categoryPreferences.Advertising: an object needs "consented": true or false`},
		{"preference object with a string", withPrefs(t, `{"Advertising":{"consented":"yes"}}`), `categoryPreferences.Advertising: want true, false or {"consented": true|false}, got a string ("yes")`},
		{"preference null", withPrefs(t, `{"Advertising":null}`), `categoryPreferences.Advertising: want true, false or {"consented": true|false}, got null`},
		{"empty category", withPrefs(t, `{"":true}`), "a category with an empty name"},
		{"unparseable timestamp", withField(t, segmentSeedEvent, "timestamp", `"yesterday"`), `timestamp "yesterday": want an ISO-8601 time`},
		{"a number of seconds in a string", withField(t, segmentSeedEvent, "timestamp", `"1672531200"`), `timestamp "1672531200": want an ISO-8601 time`},
		{"numeric timestamp", withField(t, segmentSeedEvent, "timestamp", `1672531200000`), "timestamp: want an ISO-8601 string"},
		{"bad timestamp does not fall back", withField(t, withField(t, segmentSeedEvent, "timestamp", `"2023-13-01T00:00:00Z"`), "originalTimestamp", `"2023-01-01T00:00:00Z"`), `timestamp "2023-13-01T00:00:00Z"`},
		{"bad originalTimestamp", withField(t, withField(t, segmentSeedEvent, "timestamp", ""), "originalTimestamp", `"01/01/2023"`), `originalTimestamp "01/01/2023"`},
		{"before 1970", withField(t, segmentSeedEvent, "timestamp", `"1969-12-31T23:59:59Z"`), "before 1970"},
		{"inexact numeric userId", withField(t, segmentSeedEvent, "userId", `12345678901234567890`), "userId: number 12345678901234567890 would be the id 12345678901234567000"},
		{"bad receivedAt", withField(t, segmentSeedEvent, "receivedAt", `"yesterday"`), `receivedAt "yesterday"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := UpdateFromSegment([]byte(tc.event))
			if !ok || err == nil {
				t.Fatalf("UpdateFromSegment = %+v, ok %v, %v; want ok and an error containing %q", u, ok, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `consent store: "Segment Consent Preference" event: `) {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestUpdateFromSegmentIntoStore applies consent events out of order: the
// stored record ends with the newest decision per category, under both ids.
func TestUpdateFromSegmentIntoStore(t *testing.T) {
	s := New(NewMemory(), Options{})
	newer := withField(t, withPrefs(t, `{"Advertising":false,"Analytics":true}`), "timestamp", `"2023-06-01T00:00:00.000Z"`)
	for _, ev := range []string{newer, segmentSeedEvent} {
		u, ok, err := UpdateFromSegment([]byte(ev))
		if !ok || err != nil {
			t.Fatalf("UpdateFromSegment: ok %v, %v", ok, err)
		}
		if _, err := s.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Get(ctx, "23adfd82-aa0f-45a7-a756-24f2a7a4c895")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.CategoryMap(), map[string]bool{"Advertising": false, "Analytics": true, "Functional": true, "DataSharing": false}; !mapsEqual(got, want) {
		t.Errorf("categories = %v, want %v", got, want)
	}
	if r.ID != "u123" {
		t.Errorf("id = %q, want u123", r.ID)
	}
}

// A category the preference event repeats is consented only if every copy
// is, as routing and the functions' consent helpers read it.
func TestUpdateFromSegmentRepeatedCategory(t *testing.T) {
	u, ok, err := UpdateFromSegment([]byte(withPrefs(t, `{"Analytics":true,"Analytics":false,"Ads":false,"Ads":true,"X":true,"X":true}`)))
	if !ok || err != nil {
		t.Fatalf("UpdateFromSegment: ok %v, %v", ok, err)
	}
	if got, want := u.Record.CategoryMap(), map[string]bool{"Analytics": false, "Ads": false, "X": true}; !mapsEqual(got, want) {
		t.Errorf("categories = %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestLinkFromEvent(t *testing.T) {
	for _, tc := range []struct {
		name, event string
		id          string
		aliases     []string
	}{
		{"identify", `{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"email":"x@example.com"}}`, "u1", []string{"a1"}},
		{"identify numeric userId", `{"type":"identify","userId":42,"anonymousId":"a1"}`, "42", []string{"a1"}},
		{"identify numeric ids written differently", `{"type":"identify","userId":4.2e1,"anonymousId":7.0}`, "42", []string{"7"}},
		{"alias numeric previousId", `{"type":"alias","previousId":1.23e2,"userId":"u1"}`, "u1", []string{"123"}},
		{"inexact numeric userId links nothing", `{"type":"identify","userId":12345678901234567890,"anonymousId":"a1"}`, "", nil},
		{"alias", `{"type":"alias","previousId":"a1","userId":"u1"}`, "u1", []string{"a1"}},
		{"alias with anonymousId", `{"type":"alias","previousId":"old@example.com","userId":"u1","anonymousId":"a1"}`, "u1", []string{"old@example.com", "a1"}},
		{"alias, anonymousId is previousId", `{"type":"alias","previousId":"a1","userId":"u1","anonymousId":"a1"}`, "u1", []string{"a1"}},
		{"identify without anonymousId", `{"type":"identify","userId":"u1"}`, "", nil},
		{"anonymous identify", `{"type":"identify","anonymousId":"a1"}`, "", nil},
		{"identify, same ids", `{"type":"identify","userId":"u1","anonymousId":"u1"}`, "", nil},
		{"alias without previousId", `{"type":"alias","userId":"u1"}`, "", nil},
		{"track with both ids", `{"type":"track","event":"x","userId":"u1","anonymousId":"a1"}`, "", nil},
		{"no type", `{"userId":"u1","anonymousId":"a1"}`, "", nil},
		{"userId object", `{"type":"identify","userId":{},"anonymousId":"a1"}`, "", nil},
		{"anonymousId array", `{"type":"identify","userId":"u1","anonymousId":["a1"]}`, "", nil},
		{"invalid JSON", `{"type":"identify","userId":"u1","anonymousId":"a1"`, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, aliases, ok := LinkFromEvent([]byte(tc.event))
			if ok != (tc.id != "") || id != tc.id || !slices.Equal(aliases, tc.aliases) {
				t.Errorf("LinkFromEvent = %q %q %v, want %q %q", id, aliases, ok, tc.id, tc.aliases)
			}
		})
	}
}

// mparticleSeedBatch is an Events API batch carrying the seed's
// consent_state.
const mparticleSeedBatch = `{
  "source_request_id": "2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b",
  "environment": "production",
  "user_identities": {"customer_id": "1234", "email": "peter@example.com"},
  "mpid": -8933470958235917,
  "events": [{"event_type": "custom_event", "data": {"event_name": "Signup", "custom_event_type": "other"}}],
  "consent_state": {
    "gdpr": {
      "location_collection": {
        "document": "location_collection_agreement.v43",
        "consented": true,
        "timestamp_unixtime_ms": 1523039002083,
        "location": "dtmgbank.com/signup",
        "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"
      },
      "parental": {
        "document": "standard_parental_consent.v2",
        "consented": true,
        "timestamp_unixtime_ms": 1523039002083,
        "location": "dtmgbank.com/signup",
        "hardware_id": "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"
      }
    },
    "ccpa":{
      "data_sale_opt_out":{
        "consented": true,
        "timestamp_unixtime_ms": 1579198790480
      }
    }
  }
}`

func withMP(t *testing.T, field, raw string) string {
	return withField(t, mparticleSeedBatch, field, raw)
}

func TestUpdateFromMParticle(t *testing.T) {
	seedPurposes := []consent.Purpose{
		{Regulation: "ccpa", Name: "data_sale_opt_out", Consented: true, Timestamp: 1579198790480},
		{Regulation: "gdpr", Name: "location_collection", Consented: true, Timestamp: 1523039002083,
			Document: "location_collection_agreement.v43", Location: "dtmgbank.com/signup", HardwareID: "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"},
		{Regulation: "gdpr", Name: "parental", Consented: true, Timestamp: 1523039002083,
			Document: "standard_parental_consent.v2", Location: "dtmgbank.com/signup", HardwareID: "IDFA:a5d934n0-232f-4afc-2e9a-3832d95zc702"},
	}
	oneGDPR := func(p consent.Purpose) []consent.Purpose {
		p.Regulation, p.Name = "gdpr", "marketing"
		return []consent.Purpose{p}
	}
	for _, tc := range []struct {
		name     string
		batch    string
		id       string
		aliases  []string
		purposes []consent.Purpose
		source   string
	}{
		{"seed consent_state", mparticleSeedBatch, "1234", []string{"-8933470958235917"}, seedPurposes, "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"},
		{"mpid only, as a string", withMP(t, "user_identities", ""), "", nil, nil, ""}, // filled below
		{"customer_id only", withMP(t, "mpid", ""), "1234", nil, seedPurposes, "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"},
		{"mpid 0 is unknown", withMP(t, "mpid", "0"), "1234", nil, seedPurposes, "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"},
		{"batch_id when no source_request_id", withField(t, withMP(t, "source_request_id", ""), "batch_id", "998877"), "1234", []string{"-8933470958235917"}, seedPurposes, "mparticle:998877"},
		{"no batch id", withMP(t, "source_request_id", ""), "1234", []string{"-8933470958235917"}, seedPurposes, "mparticle"},
		{"regulation in upper case", withMP(t, "consent_state", `{"GDPR":{"marketing":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`),
			"1234", []string{"-8933470958235917"}, oneGDPR(consent.Purpose{Timestamp: 1700000000000}), "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"},
		{"timestamp in seconds, as in mParticle's table", withMP(t, "consent_state", `{"gdpr":{"marketing":{"consented":true,"timestamp_unixtime_ms":1510949166}}}`),
			"1234", []string{"-8933470958235917"}, oneGDPR(consent.Purpose{Consented: true, Timestamp: 1510949166000}), "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"},
		{"null optional fields and regulations", withMP(t, "consent_state", `{"ccpa":null,"gdpr":{"marketing":{"consented":true,"timestamp_unixtime_ms":1700000000000,"document":null}}}`),
			"1234", []string{"-8933470958235917"}, oneGDPR(consent.Purpose{Consented: true, Timestamp: 1700000000000}), "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.id == "" { // mpid only
				tc.batch = withField(t, tc.batch, "mpid", `"-8933470958235917"`)
				tc.id, tc.purposes, tc.source = "-8933470958235917", seedPurposes, "mparticle:2f3e9c1a-6b7d-4e2f-9a8b-1c0d2e3f4a5b"
			}
			u, ok, err := UpdateFromMParticle([]byte(tc.batch))
			if !ok || err != nil {
				t.Fatalf("UpdateFromMParticle = ok %v, %v; want an update", ok, err)
			}
			r := u.Record
			if r.ID != tc.id || !slices.Equal(r.Aliases, tc.aliases) {
				t.Errorf("ids = %q %q, want %q %q", r.ID, r.Aliases, tc.id, tc.aliases)
			}
			if !slices.Equal(r.Purposes, tc.purposes) {
				t.Errorf("purposes = %+v\nwant %+v", r.Purposes, tc.purposes)
			}
			if len(r.Categories) != 0 {
				t.Errorf("categories = %+v, want none", r.Categories)
			}
			if u.Source != tc.source {
				t.Errorf("source = %q, want %q", u.Source, tc.source)
			}
		})
	}
}

func TestUpdateFromMParticleNotConsent(t *testing.T) {
	for _, tc := range []struct{ name, batch string }{
		{"no consent_state", withMP(t, "consent_state", "")},
		{"null consent_state", withMP(t, "consent_state", "null")},
		{"empty consent_state", withMP(t, "consent_state", "{}")},
		{"no purposes", withMP(t, "consent_state", `{"gdpr":{},"ccpa":null}`)},
		{"nested consent_state only", `{"events":[{"consent_state":{"gdpr":{"x":{"consented":true,"timestamp_unixtime_ms":1}}}}]}`},
		{"garbage", `]]]`},
		{"empty", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := UpdateFromMParticle([]byte(tc.batch))
			if ok || err != nil {
				t.Errorf("UpdateFromMParticle = %+v, ok %v, %v; want not a consent update", u, ok, err)
			}
		})
	}
}

func TestUpdateFromMParticleErrors(t *testing.T) {
	cs := func(js string) string { return withMP(t, "consent_state", js) }
	for _, tc := range []struct{ name, batch, want string }{
		{"invalid JSON", mparticleSeedBatch[:len(mparticleSeedBatch)-5], "not valid JSON"},
		{"consent_state array", cs(`[]`), "consent_state: want an object of regulations"},
		{"regulation not an object", cs(`{"gdpr":true}`), "consent_state.gdpr: want an object of purposes, got a boolean (true)"},
		{"purpose not an object", cs(`{"gdpr":{"marketing":true}}`), `consent_state.gdpr.marketing: want an object with "consented"`},
		{"no consented", cs(`{"gdpr":{"marketing":{"timestamp_unixtime_ms":1700000000000}}}`), `consent_state.gdpr.marketing: "consented" is required`},
		{"consented string", cs(`{"gdpr":{"marketing":{"consented":"yes","timestamp_unixtime_ms":1700000000000}}}`), `consent_state.gdpr.marketing.consented: want true or false, got a string ("yes")`},
		{"no timestamp", cs(`{"ccpa":{"data_sale_opt_out":{"consented":true}}}`), `consent_state.ccpa.data_sale_opt_out: "timestamp_unixtime_ms" is required`},
		{"timestamp string", cs(`{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":"1700000000000"}}}`), "timestamp_unixtime_ms: want a number of milliseconds, got a string"},
		{"timestamp fraction", cs(`{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":1700000000000.5}}}`), "1700000000000.5 is not a time"},
		{"timestamp negative", cs(`{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":-1}}}`), "-1 is not a time"},
		{"timestamp huge", cs(`{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":1e300}}}`), "1e300 is not a time"},
		{"document number", cs(`{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":1700000000000,"document":2}}}`), "consent_state.gdpr.m.document: want a string, got a number (2)"},
		{"empty purpose name", cs(`{"gdpr":{"":{"consented":true,"timestamp_unixtime_ms":1700000000000}}}`), "a purpose with an empty name"},
		{"empty regulation", cs(`{"":{"m":{"consented":true,"timestamp_unixtime_ms":1700000000000}}}`), "a regulation with an empty name"},
		{"no ids", withField(t, withMP(t, "user_identities", `{"email":"peter@example.com"}`), "mpid", ""), "neither user_identities.customer_id nor mpid"},
		{"user_identities array", withMP(t, "user_identities", `[{"type":"customer_id","identity":"1234"}]`), "user_identities: want an object"},
		{"customer_id object", withMP(t, "user_identities", `{"customer_id":{}}`), "user_identities.customer_id: want a string, got an object"},
		{"mpid boolean", withMP(t, "mpid", `false`), "mpid: want a string, got a boolean"},
		{"source_request_id object", withMP(t, "source_request_id", `{}`), "source_request_id: want a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := UpdateFromMParticle([]byte(tc.batch))
			if !ok || err == nil {
				t.Fatalf("UpdateFromMParticle = %+v, ok %v, %v; want ok and an error containing %q", u, ok, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "consent store: mParticle batch: ") {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// FuzzEvents feeds arbitrary bytes to the event readers: they never panic,
// "not an update" comes without an error, and every update they return is
// one the store takes.
func FuzzEvents(f *testing.F) {
	for _, s := range []string{segmentSeedEvent, segmentWrapperEvent, mparticleSeedBatch,
		`{"type":"alias","previousId":"a1","userId":"u1","anonymousId":"a2"}`,
		`{"type":"track","event":"Segment Consent Preference","anonymousId":1,"context":{"consent":{"categoryPreferences":{"a":true}}},"timestamp":"2023-01-01T00:00:00+0100"}`,
		`{"mpid":"1","consent_state":{"GDPR":{"x":{"consented":true,"timestamp_unixtime_ms":1}}}}`,
		`{"type":"track","event":"Segment Consent Preference","userId":"\u0000","context":{"consent":{"categoryPreferences":{"\u00e9":false}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(NewMemory(), Options{})
		check := func(what string, u Update, ok bool, err error) {
			if !ok {
				if err != nil {
					t.Fatalf("%s: not an update but an error: %v", what, err)
				}
				return
			}
			if err != nil {
				return
			}
			if u.Record.ID == "" {
				t.Fatalf("%s: update without an id: %+v", what, u)
			}
			if _, err := s.Update(ctx, u); err != nil {
				t.Fatalf("%s: the store refuses the update %+v: %v", what, u, err)
			}
		}
		u, ok, err := UpdateFromSegment(data)
		check("UpdateFromSegment", u, ok, err)
		u, ok, err = UpdateFromMParticle(data)
		check("UpdateFromMParticle", u, ok, err)
		if id, aliases, ok := LinkFromEvent(data); ok {
			if err := s.Link(ctx, id, aliases...); err != nil {
				t.Fatalf("LinkFromEvent = %q %q: the store refuses the link: %v", id, aliases, err)
			}
		} else if id != "" || aliases != nil {
			t.Fatalf("LinkFromEvent = %q %q, not ok", id, aliases)
		}
	})
}

// TestUpdateFromSegmentConsentedObjects: a category given mParticle's way
// is read as the functions and the router read it, by its first consented.
func TestUpdateFromSegmentConsentedObjects(t *testing.T) {
	u, ok, err := UpdateFromSegment([]byte(withPrefs(t, `{"Advertising":{"consented":true},"Analytics":{"consented":false,"consented":true},"Functional":false}`)))
	if err != nil || !ok {
		t.Fatalf("UpdateFromSegment: ok %v, %v", ok, err)
	}
	want := map[string]bool{"Advertising": true, "Analytics": false, "Functional": false}
	if got := u.Record.CategoryMap(); !maps.Equal(got, want) {
		t.Fatalf("categories %v, want %v", got, want)
	}
}
