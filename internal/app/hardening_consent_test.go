package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/internal/config"
)

// consentEvent is a "Segment Consent Preference Updated" event for userID
// (raw JSON: a string or a number) granting or refusing Advertising, with
// the time fields given (raw JSON members, may be "").
func consentEvent(msgID, userID string, ads bool, times string) string {
	if times != "" {
		times = "," + times
	}
	return fmt.Sprintf(`{"userId":%s,"event":"Segment Consent Preference Updated","messageId":%q%s,"context":{"consent":{"categoryPreferences":{"Advertising":%t}}}}`,
		userID, msgID, times, ads)
}

// trackEvent is an "Order Completed" event of userID (raw JSON) stamped
// with the Advertising consent ads.
func trackEvent(msgID, userID string, ads bool) string {
	return fmt.Sprintf(`{"userId":%s,"event":"Order Completed","messageId":%q,"context":{"consent":{"categoryPreferences":{"Advertising":%t}}}}`,
		userID, msgID, ads)
}

// TestHardeningConsentFutureDecision is issue item 1 through the real
// server: a consent update dated 2099 (with no sentAt, a sentAt of now,
// or only an originalTimestamp in 2099) is clamped to its receipt, so the
// person's real decision sent a moment later is the one in force: events
// carrying it are delivered and events claiming the stale choice are
// dropped by consent-match. The history says what was clamped, and the
// admin API refuses a decision time in the future, naming the field.
func TestHardeningConsentFutureDecision(t *testing.T) {
	out := newSink(t)
	h := start(t, baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"}, webhookDest("warehouse", out.srv.URL)))
	ctx := context.Background()
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }

	cases := []struct{ user, times string }{
		{"no-sentat", `"timestamp":"2099-01-01T00:00:00.000Z"`},
		{"sentat-now", `"timestamp":"2099-01-01T00:00:00.000Z","sentAt":"` + now() + `"`},
		{"original-only", `"originalTimestamp":"2099-01-01T00:00:00.000Z"`},
	}
	var wantDelivered []string
	for _, c := range cases {
		// The stale choice dated 2099, then the real one a moment later.
		if code := post(t, h, "/v1/track", consentEvent(c.user+"-stale", `"`+c.user+`"`, true, c.times)); code != 200 {
			t.Fatalf("%s: POST the stale update: %d", c.user, code)
		}
		time.Sleep(5 * time.Millisecond)
		if code := post(t, h, "/v1/track", consentEvent(c.user+"-real", `"`+c.user+`"`, false, `"timestamp":"`+now()+`"`)); code != 200 {
			t.Fatalf("%s: POST the real update: %d", c.user, code)
		}
		// Both were applied on arrival, before their 200.
		rec, err := h.Store().Get(ctx, c.user)
		if err != nil {
			t.Fatalf("%s: %v", c.user, err)
		}
		if cat, _ := rec.Category("Advertising"); cat.Consented || cat.Timestamp > time.Now().UnixMilli() {
			t.Errorf("%s: stored Advertising = %+v; want the real decision (false), dated no later than now", c.user, cat)
		}
		_, hist, err := h.Store().History(ctx, c.user)
		if err != nil {
			t.Fatal(err)
		}
		var sources []string
		for _, e := range hist {
			if e.Timestamp > time.Now().UnixMilli() {
				t.Errorf("%s: history entry %+v dated in the future", c.user, e)
			}
			sources = append(sources, e.Source)
		}
		// With a sentAt, the server corrects the 2099 time by the
		// client's clock skew: a few milliseconds past 2099-01-01.
		if len(sources) != 2 || !strings.HasPrefix(sources[0], "segment:"+c.user+"-stale (clamped from 2099-01-01T00:00:00.") ||
			sources[1] != "segment:"+c.user+"-real" {
			t.Errorf("%s: history sources %q, want the stale update clamped from 2099, then the real one", c.user, sources)
		}
		// The current choice flows; the stale one is a mismatch.
		if code := post(t, h, "/v1/track", trackEvent(c.user+"-current", `"`+c.user+`"`, false)); code != 200 {
			t.Fatal(code)
		}
		if code := post(t, h, "/v1/track", trackEvent(c.user+"-claims-stale", `"`+c.user+`"`, true)); code != 200 {
			t.Fatal(code)
		}
		wantDelivered = append(wantDelivered, c.user+"-current")
	}
	waitFor(t, "every event to settle", func() bool { return settled(h, 4*len(cases)) })
	var got []string
	for _, id := range out.ids() {
		if strings.Contains(id, "-current") || strings.Contains(id, "-claims-stale") {
			got = append(got, id)
		}
	}
	slices.Sort(wantDelivered)
	if !slices.Equal(got, wantDelivered) {
		t.Errorf("delivered %v, want %v", got, wantDelivered)
	}
	if n := h.Counters().Snapshot().Dropped["Consent mismatch"]; n != uint64(len(cases)) {
		t.Errorf("%d dropped as Consent mismatch, want %d", n, len(cases))
	}

	// The admin API refuses a decision time in the future, naming the
	// field; PUT, PATCH and import alike. Nothing of it is stored.
	const future = `{"categoryPreferences":{"Advertising":{"consented":true,"timestamp_unixtime_ms":4070908800000}}}`
	const msg = `categoryPreferences.Advertising.timestamp_unixtime_ms: 4070908800000 (2099-01-01T00:00:00Z) is `
	for _, method := range []string{"PUT", "PATCH"} {
		code, body := adminDo(t, h, method, "/admin/consent/no-sentat", future)
		if code != 400 || !strings.Contains(body, msg) || !strings.Contains(body, "in the future (more than 5m0s past this server's clock)") {
			t.Errorf("%s a decision dated 2099: %d %s; want 400 naming the field", method, code, body)
		}
	}
	code, body := adminDo(t, h, "POST", "/admin/consent/import",
		`{"id":"imp1","categoryPreferences":{"Advertising":true}}`+"\n"+`{"id":"no-sentat",`+future[1:]+"\n")
	if code != 200 || gjson.Get(body, "applied").Int() != 1 || gjson.Get(body, "errors.0.line").Int() != 2 ||
		!strings.Contains(gjson.Get(body, "errors.0.error").String(), msg) {
		t.Errorf("import with a line dated 2099: %d %s; want line 2 refused, naming the field", code, body)
	}
	if rec, err := h.Store().Get(ctx, "no-sentat"); err != nil {
		t.Fatal(err)
	} else if cat, _ := rec.Category("Advertising"); cat.Consented {
		t.Errorf("after the refused admin calls Advertising = %+v, want the real decision (false)", cat)
	}
}

// TestHardeningConsentNumericUserID is issue item 3 through the real
// server: a record stored under "123" (here by a consent event whose
// userId is the number 1.23e2) is found for an event whose userId is 123,
// 123.0, 1.23e2 or 123e0, so consent-match drops those that claim a
// consent the person refused. The admin API reads numeric ids of its
// bodies the same way.
func TestHardeningConsentNumericUserID(t *testing.T) {
	out := newSink(t)
	h := start(t, baseConfig(t, []config.Function{consentMatch(t)}, []string{"consent-match"}, webhookDest("warehouse", out.srv.URL)))
	ctx := context.Background()

	if code := post(t, h, "/v1/track", consentEvent("refuse", `1.23e2`, false, "")); code != 200 {
		t.Fatalf("POST the consent update: %d", code)
	}
	rec, err := h.Store().Get(ctx, "123")
	if err != nil {
		t.Fatalf("the update of userId 1.23e2 is not under \"123\": %v", err)
	}
	if cat, _ := rec.Category("Advertising"); cat.Consented {
		t.Fatalf("stored Advertising = %+v, want refused", cat)
	}
	ids := []string{`123`, `123.0`, `1.23e2`, `123e0`, `"123"`}
	for i, id := range ids {
		if code := post(t, h, "/v1/track", trackEvent(fmt.Sprintf("claims-%d", i), id, true)); code != 200 {
			t.Fatalf("POST userId %s: %d", id, code)
		}
		if code := post(t, h, "/v1/track", trackEvent(fmt.Sprintf("agrees-%d", i), id, false)); code != 200 {
			t.Fatalf("POST userId %s: %d", id, code)
		}
	}
	waitFor(t, "every event to settle", func() bool { return settled(h, 1+2*len(ids)) })
	for i, id := range ids {
		got := out.ids()
		if slices.Contains(got, fmt.Sprintf("claims-%d", i)) {
			t.Errorf("userId %s claiming Advertising reached the destination the person refused it for", id)
		}
		if !slices.Contains(got, fmt.Sprintf("agrees-%d", i)) {
			t.Errorf("userId %s carrying the stored consent was not delivered", id)
		}
	}

	// The admin API: a body's numeric alias is canonical.
	if code, body := adminDo(t, h, "PATCH", "/admin/consent/123", `{"aliases":[4.5e1]}`); code != 200 || !strings.Contains(body, `"aliases":["45"]`) {
		t.Errorf("PATCH aliases [4.5e1]: %d %s", code, body)
	}
	if code, body := adminDo(t, h, "PUT", "/admin/consent/x", `{"id":9007199254740993,"categoryPreferences":{"A":true}}`); code != 400 ||
		!strings.Contains(body, "id: number 9007199254740993 would be the id 9007199254740992") {
		t.Errorf("PUT with an inexact numeric id: %d %s; want 400 saying why", code, body)
	}
	if code, body := adminDo(t, h, "GET", "/admin/consent/1.23e2", ""); code != 404 || !strings.Contains(body, `is stored as \"123\"`) {
		t.Errorf("GET /admin/consent/1.23e2: %d %s; want 404 pointing at \"123\"", code, body)
	}
}
