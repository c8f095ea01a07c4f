package app

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/insertfn/insertfn/internal/consentstore"
	"github.com/insertfn/insertfn/internal/ingest"
	"github.com/insertfn/insertfn/sdk/segment"
)

// TestTimestampFormsAgree feeds one table of timestamp strings (sdk/segment's
// testdata, which segment.ParseTime is tested with) to the ingest and to
// the consent store: each accepts exactly the strings the other does, and
// reads the same instant from them.
func TestTimestampFormsAgree(t *testing.T) {
	b, err := os.ReadFile("../../sdk/segment/testdata/timestamps.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ In, Want, Form string }
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d timestamp cases", len(cases))
	}

	var stored []byte
	srv, err := ingest.New(ingest.Config{}, []ingest.Source{{Name: "web", WriteKeys: []string{"wk"}}},
		ingest.AccepterFunc(func(_ context.Context, _ string, events [][]byte) error {
			stored = append(stored[:0], events[0]...)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	handle := srv.Handler()
	// ingestReads posts a track call whose field is s and returns whether
	// the ingest accepted it, and the event it stored.
	ingestReads := func(field, s string) (bool, string) {
		body, _ := json.Marshal(map[string]any{"userId": "u", "event": "e", field: s})
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/v1/track")
		req.Header.Set("Authorization", "Basic d2s6") // wk:
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		stored = stored[:0]
		handle(&ctx)
		switch ctx.Response.StatusCode() {
		case 200:
			return true, string(stored)
		case 400:
			return false, ""
		}
		t.Fatalf("%s %q: the ingest answered %d %s", field, s, ctx.Response.StatusCode(), ctx.Response.Body())
		return false, ""
	}
	now := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) // no clamp
	// storeReads returns whether the consent store takes a consent update
	// whose field is s, and the decision time it reads from it.
	storeReads := func(field, s string) (bool, int64) {
		ev := map[string]any{"type": "track", "event": segment.ConsentPreferenceUpdated, "userId": "u",
			"timestamp": "2024-01-01T00:00:00Z", field: s,
			"context": map[string]any{"consent": map[string]any{"categoryPreferences": map[string]bool{"A": true}}}}
		body, _ := json.Marshal(ev)
		u, ok, err := consentstore.UpdateFromSegmentAt(body, now)
		if !ok {
			t.Fatalf("%s %q: not taken for a consent update", field, s)
		}
		if err != nil {
			return false, 0
		}
		return true, u.Record.Categories[0].Timestamp
	}

	for _, c := range cases {
		accept := c.Form != ""
		var want time.Time
		if accept {
			if want, err = time.Parse(time.RFC3339Nano, c.Want); err != nil {
				t.Fatal(err)
			}
		}
		// timestamp: the ingest stores the instant (no sentAt: nothing to
		// correct), the store takes it as the decision time.
		inOK, ev := ingestReads("timestamp", c.In)
		stOK, ms := storeReads("timestamp", c.In)
		if inOK != accept || stOK != accept {
			t.Errorf("timestamp %q: the ingest accepts it: %v, the consent store: %v; want %v", c.In, inOK, stOK, accept)
			continue
		}
		if accept {
			if got := gjson.Get(ev, "timestamp").Str; got != string(segment.AppendTime(nil, want)) {
				t.Errorf("timestamp %q: the ingest stored %s, want %s", c.In, got, segment.AppendTime(nil, want))
			}
			if ms != want.UnixMilli() {
				t.Errorf("timestamp %q: the consent store read %d, want %d", c.In, ms, want.UnixMilli())
			}
		}
		// The other time fields each reads: sentAt (the ingest), receivedAt
		// (the store's clamp).
		if inOK, _ := ingestReads("sentAt", c.In); inOK != accept {
			t.Errorf("sentAt %q: the ingest accepts it: %v; want %v", c.In, inOK, accept)
		}
		if stOK, _ := storeReads("receivedAt", c.In); stOK != accept {
			t.Errorf("receivedAt %q: the consent store accepts it: %v; want %v", c.In, stOK, accept)
		}
	}
}
