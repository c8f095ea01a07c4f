package consentstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/insertfn/insertfn/sdk/consent"
)

// year2099 is 2099-01-01T00:00:00Z in Unix milliseconds.
const year2099 = 4070908800000

// TestUpdateFromSegmentClamp: a decision time an event gives is never later
// than the event's receipt (its receivedAt, or now without one), and the
// update keeps the time claimed for the history.
func TestUpdateFromSegmentClamp(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	received := "2026-12-05T11:59:59.500Z"
	receivedMS := ms(t, received)
	base := withField(t, withField(t, segmentSeedEvent, "messageId", `"m1"`), "receivedAt", `"`+received+`"`)
	for _, tc := range []struct {
		name    string
		event   string
		ts      int64 // the decision time of the update
		claimed int64 // ClampedFrom, 0 for no clamp
	}{
		{"timestamp in 2099, no sentAt", withField(t, base, "timestamp", `"2099-01-01T00:00:00Z"`), receivedMS, year2099},
		{"timestamp in 2099, sentAt now", withField(t, withField(t, base, "timestamp", `"2099-01-01T00:00:00Z"`), "sentAt", `"2026-12-05T11:59:59Z"`), receivedMS, year2099},
		{"only originalTimestamp in 2099", withField(t, withField(t, base, "timestamp", ""), "originalTimestamp", `"2099-01-01T00:00:00Z"`), receivedMS, year2099},
		{"one millisecond after receipt", withField(t, base, "timestamp", `"2026-12-05T11:59:59.501Z"`), receivedMS, receivedMS + 1},
		{"at receipt: kept", withField(t, base, "timestamp", `"`+received+`"`), receivedMS, 0},
		{"before receipt: kept", base, ms(t, "2023-01-01T00:00:00Z"), 0},
		{"no receivedAt: now", withField(t, withField(t, base, "receivedAt", ""), "timestamp", `"2099-01-01T00:00:00Z"`), now.UnixMilli(), year2099},
		{"receivedAt later than now: now", withField(t, withField(t, base, "receivedAt", `"2098-01-01T00:00:00Z"`), "timestamp", `"2099-01-01T00:00:00Z"`), now.UnixMilli(), year2099},
		{"no time at all: the store stamps it", withField(t, withField(t, base, "timestamp", ""), "receivedAt", ""), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, err := UpdateFromSegmentAt([]byte(tc.event), now)
			if !ok || err != nil {
				t.Fatalf("UpdateFromSegmentAt = ok %v, %v; want an update", ok, err)
			}
			for _, c := range u.Record.Categories {
				if c.Timestamp != tc.ts {
					t.Errorf("category %s at %d, want %d", c.Name, c.Timestamp, tc.ts)
				}
				got, clamped := u.ClampedFrom[(&Point{Kind: KindCategory, Name: c.Name}).EntryKey()]
				if clamped != (tc.claimed != 0) || got != tc.claimed {
					t.Errorf("category %s: ClampedFrom %d (%v), want %d", c.Name, got, clamped, tc.claimed)
				}
			}
		})
	}
}

// TestStaleFutureDecisionDoesNotPin is the scenario: a preference
// event dated 2099, then the person's real choice a moment later. The real
// choice is in force, and the history says the first was clamped.
func TestStaleFutureDecisionDoesNotPin(t *testing.T) {
	s := New(NewMemory(), Options{})
	now := time.Now().UTC().Add(-2 * time.Second) // the stale event's receipt; the real one's a second later
	stale := withField(t, withField(t, withField(t, withPrefs(t, `{"Advertising":true}`), "timestamp", `"2099-01-01T00:00:00Z"`),
		"receivedAt", `"`+now.Format(time.RFC3339Nano)+`"`), "messageId", `"stale"`)
	real := withField(t, withField(t, withField(t, withPrefs(t, `{"Advertising":false}`), "timestamp", `"`+now.Add(time.Second).Format(time.RFC3339Nano)+`"`),
		"receivedAt", `"`+now.Add(time.Second).Format(time.RFC3339Nano)+`"`), "messageId", `"real"`)
	for _, ev := range []string{stale, real} {
		u, ok, err := UpdateFromSegment([]byte(ev))
		if !ok || err != nil {
			t.Fatalf("UpdateFromSegment: ok %v, %v", ok, err)
		}
		if _, err := s.Update(ctx, u); err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	r, err := s.Get(ctx, "u123")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Category("Advertising"); c.Consented {
		t.Errorf("Advertising = %+v: the event dated 2099 still wins", c)
	}
	_, hist, err := s.History(ctx, "u123")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, h := range hist {
		sources = append(sources, h.Source)
	}
	want := []string{"segment:stale (clamped from 2099-01-01T00:00:00.000Z)", "segment:real"}
	if strings.Join(sources, "|") != strings.Join(want, "|") {
		t.Errorf("history sources = %q, want %q", sources, want)
	}
}

// TestUpdateFromMParticleClamp: a purpose dated after now is clamped to
// now, the others are kept.
func TestUpdateFromMParticleClamp(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	batch := withMP(t, "consent_state", `{"gdpr":{"marketing":{"consented":true,"timestamp_unixtime_ms":4070908800000},"parental":{"consented":false,"timestamp_unixtime_ms":1700000000000}}}`)
	u, ok, err := UpdateFromMParticleAt([]byte(batch), now)
	if !ok || err != nil {
		t.Fatalf("UpdateFromMParticleAt = ok %v, %v", ok, err)
	}
	m, _ := u.Record.Purpose("gdpr", "marketing")
	p, _ := u.Record.Purpose("gdpr", "parental")
	if m.Timestamp != now.UnixMilli() || p.Timestamp != 1700000000000 {
		t.Errorf("marketing at %d, parental at %d; want %d and 1700000000000", m.Timestamp, p.Timestamp, now.UnixMilli())
	}
	if len(u.ClampedFrom) != 1 || u.ClampedFrom[(&Point{Kind: KindPurpose, Regulation: "gdpr", Name: "marketing"}).EntryKey()] != year2099 {
		t.Errorf("ClampedFrom = %v, want marketing from %d", u.ClampedFrom, int64(year2099))
	}
}

// TestImportRefusesFutureTimes: a line dated beyond MaxFutureSkew is
// reported with its number and the field; the other lines import, on the
// batching path and the one-by-one path alike.
func TestImportRefusesFutureTimes(t *testing.T) {
	const now = 1800000000000
	input := strings.Join([]string{
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1700000000000}}}`,
		`{"id":"u1","categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":4070908800000}}}`,
		`{"id":"u2","consent_state":{"gdpr":{"m":{"consented":true,"timestamp_unixtime_ms":1800000300001}}}}`,
		`{"id":"u3","categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":1800000300000}}}`,
	}, "\n")
	for _, backend := range []struct {
		name string
		b    Backend
	}{{"memory", NewMemory()}, {"batching", &batchMemory{Memory: NewMemory()}}} {
		t.Run(backend.name, func(t *testing.T) {
			s := New(backend.b, fixedClock(now))
			st, bad, err := importString(t, s, "f.ndjson", input)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if st.Applied != 2 || st.Failed != 2 || len(bad) != 2 {
				t.Fatalf("stats %+v, bad %v; want 2 applied, lines 2 and 3 failed", st, bad)
			}
			if bad[0].line != 2 || !strings.Contains(bad[0].err, `update of "u1": categoryPreferences.Advertising.timestamp_unixtime_ms: 4070908800000 (2099-01-01T00:00:00Z) is 72 years in the future (more than 5m0s past this server's clock)`) {
				t.Errorf("line 2 reported as %+v", bad[0])
			}
			if bad[1].line != 3 || !strings.Contains(bad[1].err, "consent_state.gdpr.m.timestamp_unixtime_ms: 1800000300001") {
				t.Errorf("line 3 reported as %+v", bad[1])
			}
			if c := category(t, sget(t, s, "u1"), "Advertising"); !c.Consented {
				t.Errorf("u1 Advertising = %+v: the refused line was stored", c)
			}
			if _, err := s.Get(ctx, "u2"); !errors.Is(err, consent.ErrNotFound) {
				t.Errorf("u2: %v, want no record", err)
			}
			sget(t, s, "u3")
		})
	}
}

// TestImportNumericIDs: a line's numeric id and aliases are stored under
// their canonical ids; an inexact one is a bad line.
func TestImportNumericIDs(t *testing.T) {
	s := New(NewMemory(), Options{})
	st, bad, err := importString(t, s, "f.ndjson", strings.Join([]string{
		`{"id":123.0,"aliases":[1.5e1],"categoryPreferences":{"Advertising":{"consented":false,"timestamp_unixtime_ms":1000}}}`,
		`{"id":1.23e2,"categoryPreferences":{"Analytics":{"consented":true,"timestamp_unixtime_ms":1000}}}`,
		`{"id":9007199254740993,"categoryPreferences":{"Analytics":true}}`,
	}, "\n"))
	if err != nil || st.Applied != 2 || len(bad) != 1 || bad[0].line != 3 ||
		!strings.Contains(bad[0].err, "id: number 9007199254740993 would be the id 9007199254740992: the number cannot be an id exactly; send the id as a string") {
		t.Fatalf("Import: %+v, %v, %v", st, bad, err)
	}
	r := sget(t, s, "15")
	if r.ID != "123" || len(r.Categories) != 2 {
		t.Errorf("record = %s, want 123 with both categories", wire(t, r))
	}
}

// TestNumericIDHint: only a JSON number written other than canonically
// gets a hint.
func TestNumericIDHint(t *testing.T) {
	for id, want := range map[string]string{
		"123":              "",
		"u1":               "",
		"0x10":             "",
		"123.0":            `(an id sent as the JSON number 123.0 is stored as "123", as JavaScript writes it)`,
		"1.23e2":           `(an id sent as the JSON number 1.23e2 is stored as "123", as JavaScript writes it)`,
		"9007199254740993": "(an id sent as the JSON number 9007199254740993 is refused: number 9007199254740993 would be the id 9007199254740992: the number cannot be an id exactly; send the id as a string)",
	} {
		if got := NumericIDHint(id); got != want {
			t.Errorf("NumericIDHint(%q) = %q, want %q", id, got, want)
		}
	}
}

// sget returns the record of id from s, or fails the test.
func sget(t *testing.T, s *Store, id string) *consent.Record {
	t.Helper()
	r, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return r
}

// TestGetAsOf: the record as it stood at a time: the current one when
// nothing was decided after it, else rebuilt from the history; not found
// when nothing was decided by then.
func TestGetAsOf(t *testing.T) {
	ctx := context.Background()
	s := New(NewMemory(), Options{})
	for _, u := range []struct {
		ts  int64
		ads bool
	}{{1000, true}, {5000, false}} {
		if _, err := s.Update(ctx, Update{Source: "t", Record: consent.Record{ID: "u",
			Categories: []consent.Category{{Name: "Advertising", Consented: u.ads, Timestamp: u.ts}}}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		at   int64
		want bool
	}{{1000, true}, {4999, true}, {5000, false}, {9000, false}} {
		rec, err := s.GetAsOf(ctx, "u", c.at)
		if err != nil {
			t.Fatalf("GetAsOf(%d): %v", c.at, err)
		}
		if got, _ := rec.Category("Advertising"); got.Consented != c.want {
			t.Errorf("GetAsOf(%d): Advertising %v, want %v", c.at, got.Consented, c.want)
		}
	}
	if _, err := s.GetAsOf(ctx, "u", 999); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("GetAsOf before any decision: %v, want ErrNotFound", err)
	}
	if _, err := s.GetAsOf(ctx, "nobody", 9000); !errors.Is(err, consent.ErrNotFound) {
		t.Errorf("GetAsOf of an unknown id: %v, want ErrNotFound", err)
	}
}
