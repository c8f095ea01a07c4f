package ingest

import (
	"slices"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/segment"
)

// TestStoredOrder holds the ingest's writer to the stored order the host's
// reader relies on (segment.LeadingMembers): every event it stores begins
// with its type where segment.LeadingType (what hostcall's Doc reads
// first) finds it, the leading members it has come before all others and
// in the contract's order, and context's consent comes first in context.
// sdk/hostcall's TestDocReadsTheIngestOrder checks the reader's half.
func TestStoredOrder(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	singles := []struct{ path, body string }{
		{"/v1/track", `{"properties":{"a":1},"context":{"ip":"192.0.2.1","consent":{"categoryPreferences":{"A":true}}},"integrations":{"All":false},"messageId":"m1","anonymousId":"a","userId":"u","event":"e","type":"page"}`},
		{"/v1/identify", `{"traits":{"email":"x@example.com"},"userId":123.0,"timestamp":"2024-05-01T11:00:00Z"}`},
		{"/v1/page", `{"name":"Home","anonymousId":"a","context":{"page":{"path":"/"}}}`},
		{"/v1/screen", `{"sentAt":"2024-05-01T12:00:00Z","name":"S","userId":"u","integrations":{}}`},
		{"/v1/group", `{"groupId":7,"traits":{},"userId":"u","messageId":"m2"}`},
		{"/v1/alias", `{"previousId":"p","userId":"u"}`},
	}
	for _, c := range singles {
		if resp := do(t, s, request{path: c.path, auth: testKey, body: c.body}); resp.status != 200 {
			t.Fatalf("%s answered %d %s", c.path, resp.status, resp.body)
		}
	}
	batch := `{"batch":[
		{"properties":{},"event":"Segment Consent Preference Updated","userId":"u","type":"track","context":{"consent":{"categoryPreferences":{"A":false}}}},
		{"context":{"library":{"name":"l"}},"type":"identify","anonymousId":"a"},
		{"type":"page","userId":"u","integrations":{"x":true}}
	],"context":{"locale":"fr-FR","consent":{"categoryPreferences":{"B":true}}},"integrations":{"All":true},"sentAt":"2024-05-01T12:00:00Z"}`
	if resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: batch}); resp.status != 200 {
		t.Fatalf("batch answered %d %s", resp.status, resp.body)
	}

	lead := segment.LeadingMembers()
	var stored []string
	for _, c := range rec.calls {
		stored = append(stored, c.raw...)
	}
	if len(stored) != len(singles)+3 {
		t.Fatalf("stored %d events, want %d", len(stored), len(singles)+3)
	}
	for _, ev := range stored {
		typ := gjson.Get(ev, segment.MemberType).Str
		if got, ok := segment.LeadingType([]byte(ev)); !ok || got.String() != typ {
			t.Errorf("%s: segment.LeadingType = %d, %v: the host cannot read the type first", ev, got, ok)
		}
		if at, ok := segment.TrailingReceivedAt([]byte(ev)); !ok || at != gjson.Get(ev, segment.MemberReceivedAt).Str {
			t.Errorf("%s: segment.TrailingReceivedAt = %q, %v: the host cannot read receivedAt last", ev, at, ok)
		}
		var names []string
		gjson.Parse(ev).ForEach(func(k, _ gjson.Result) bool {
			names = append(names, k.Str)
			return true
		})
		// The leading members the event has, in the contract's order, then
		// none of them.
		want := slices.DeleteFunc(slices.Clone(lead), func(m string) bool { return !slices.Contains(names, m) })
		if !slices.Equal(names[:len(want)], want) {
			t.Errorf("%s: members begin %v; want %v (segment.LeadingMembers)", ev, names[:len(want)], want)
		}
		if ctx := gjson.Get(ev, segment.MemberContext); ctx.Get(segment.ContextLeadingMember).Exists() {
			first := ""
			ctx.ForEach(func(k, _ gjson.Result) bool { first = k.Str; return false })
			if first != segment.ContextLeadingMember {
				t.Errorf("%s: context begins with %q, want %q", ev, first, segment.ContextLeadingMember)
			}
		}
	}
}
