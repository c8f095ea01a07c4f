package ingest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/insertfn/insertfn/sdk/segment"
)

func TestSingleCallRoutes(t *testing.T) {
	bodies := map[string]string{
		"track":    `{"userId":"u1","event":"Order Completed","properties":{"total":12.5}}`,
		"identify": `{"userId":"u1","traits":{"email":"a@example.com"}}`,
		"page":     `{"anonymousId":"a1","name":"Home"}`,
		"screen":   `{"anonymousId":"a1","name":"Settings"}`,
		"group":    `{"userId":"u1","groupId":"g1"}`,
		"alias":    `{"userId":"u1","previousId":"a1"}`,
	}
	for typ, body := range bodies {
		for _, path := range []string{"/v1/" + typ, "/v1/" + typ[:1]} { // analytics.js's short path too
			t.Run(path, func(t *testing.T) {
				s, rec := newTestServer(t, Config{})
				resp := do(t, s, request{path: path, auth: testKey, body: body})
				if resp.status != 200 || string(resp.body) != `{"success":true}` {
					t.Fatalf("answered %d %s, want 200 {\"success\":true}", resp.status, resp.body)
				}
				evs := rec.events()
				if len(evs) != 1 || rec.calls[0].source != "web" {
					t.Fatalf("accepted %v in %d calls, want one event from source web", evs, len(rec.calls))
				}
				if evs[0]["type"] != typ {
					t.Errorf("type = %v, want %s (from the path)", evs[0]["type"], typ)
				}
				if evs[0]["receivedAt"] != testNowString || evs[0]["timestamp"] != testNowString {
					t.Errorf("receivedAt %v timestamp %v, want both %s", evs[0]["receivedAt"], evs[0]["timestamp"], testNowString)
				}
			})
		}
	}
}

func TestPathTypeWinsOverBodyType(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	do(t, s, request{path: "/v1/identify", auth: testKey, body: `{"type":"track","userId":"u1"}`})
	if got := rec.events()[0]["type"]; got != "identify" {
		t.Fatalf("type %v, want identify", got)
	}
	if n := strings.Count(rec.calls[0].raw[0], `"type"`); n != 1 {
		t.Fatalf("stored event has %d type members: %s", n, rec.calls[0].raw[0])
	}
}

func TestRequestErrors(t *testing.T) {
	big := `{"userId":"u1","event":"e","properties":{"pad":"` + strings.Repeat("x", DefaultMaxEventBytes) + `"}}`
	manyEvents := `{"batch":[` + strings.Repeat(`{"type":"track","userId":"u","event":"e"},`, 3) + `{"type":"track","userId":"u","event":"e"}]}`
	bigBatch := `{"batch":[` + strings.Repeat(`{"type":"track","userId":"u","event":"e","properties":{"p":"`+strings.Repeat("y", 20000)+`"}},`, 30) + `{}]}`
	tests := []struct {
		name   string
		cfg    Config
		req    request
		status int
		errHas string
	}{
		{"unknown path", Config{}, request{path: "/v1/nope", auth: testKey, body: `{}`}, 404, "no such endpoint"},
		{"root path", Config{}, request{path: "/", auth: testKey}, 404, "no such endpoint"},
		{"GET track", Config{}, request{method: "GET", path: "/v1/track", auth: testKey}, 405, "POST"},
		{"PUT batch", Config{}, request{method: "PUT", path: "/v1/batch", auth: testKey, body: `{}`}, 405, "POST"},
		{"no write key", Config{}, request{path: "/v1/track", body: `{"userId":"u","event":"e"}`}, 401, "missing write key"},
		{"unknown basic key", Config{}, request{path: "/v1/track", auth: "nope", body: `{"userId":"u","event":"e"}`}, 401, "unknown write key"},
		{"unknown body key", Config{}, request{path: "/v1/track", body: `{"writeKey":"nope","userId":"u","event":"e"}`}, 401, "unknown write key"},
		{"non-string body key", Config{}, request{path: "/v1/track", body: `{"writeKey":7,"userId":"u","event":"e"}`}, 401, "missing write key"},
		{"bearer auth", Config{}, request{path: "/v1/track", header: map[string]string{"Authorization": "Bearer " + testKey}, body: `{"userId":"u","event":"e"}`}, 401, "not HTTP Basic"},
		{"bad base64", Config{}, request{path: "/v1/track", header: map[string]string{"Authorization": "Basic !!!"}, body: `{"userId":"u","event":"e"}`}, 401, "not HTTP Basic"},
		{"empty basic user", Config{}, request{path: "/v1/track", header: map[string]string{"Authorization": basic("", testKey)}, body: `{"userId":"u","event":"e"}`}, 401, "not HTTP Basic"},
		{"basic key wins over body key", Config{}, request{path: "/v1/track", auth: "nope", body: `{"writeKey":"` + testKey + `","userId":"u","event":"e"}`}, 401, "unknown write key"},
		{"malformed JSON", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u",`}, 400, "not valid JSON"},
		{"empty body", Config{}, request{path: "/v1/track", auth: testKey}, 400, "not valid JSON"},
		{"array body", Config{}, request{path: "/v1/track", auth: testKey, body: `[{"userId":"u","event":"e"}]`}, 400, "must be a JSON object"},
		{"missing ids", Config{}, request{path: "/v1/track", auth: testKey, body: `{"event":"e"}`}, 400, "userId or anonymousId"},
		{"empty ids", Config{}, request{path: "/v1/identify", auth: testKey, body: `{"userId":"","anonymousId":null}`}, 400, "userId or anonymousId"},
		{"object userId", Config{}, request{path: "/v1/identify", auth: testKey, body: `{"userId":{"id":1},"anonymousId":"a"}`}, 400, "userId must be"},
		{"bool anonymousId", Config{}, request{path: "/v1/identify", auth: testKey, body: `{"userId":"u","anonymousId":true}`}, 400, "anonymousId must be"},
		{"track without event", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u"}`}, 400, "track needs event"},
		{"track with empty event", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":""}`}, 400, "track needs event"},
		{"alias without previousId", Config{}, request{path: "/v1/alias", auth: testKey, body: `{"userId":"u"}`}, 400, "previousId"},
		{"group without groupId", Config{}, request{path: "/v1/group", auth: testKey, body: `{"userId":"u"}`}, 400, "groupId"},
		{"numeric messageId", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","messageId":12}`}, 400, "messageId must be a string"},
		{"long messageId", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","messageId":"` + strings.Repeat("m", 101) + `"}`}, 400, "longer than 100"},
		{"string context", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","context":"x"}`}, 400, "context must be"},
		{"array integrations", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","integrations":[]}`}, 400, "integrations must be"},
		{"bad timestamp", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","timestamp":"yesterday"}`}, 400, "timestamp"},
		{"numeric timestamp", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","timestamp":1714564800}`}, 400, "timestamp"},
		{"bad sentAt", Config{}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","sentAt":"May 1, 2024"}`}, 400, "sentAt"},
		{"event too large", Config{}, request{path: "/v1/track", auth: testKey, body: big}, 413, "max_event_bytes"},
		{"event too large, configured", Config{MaxEventBytes: 20}, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"event"}`}, 413, "max_event_bytes"},
		{"batch too large", Config{}, request{path: "/v1/batch", auth: testKey, body: bigBatch}, 413, "max_batch_bytes"},
		{"batch too large gzip", Config{}, request{path: "/v1/batch", auth: testKey, body: bigBatch, gzipBody: true}, 413, "max_batch_bytes"},
		{"too many events", Config{MaxBatchEvents: 3}, request{path: "/v1/batch", auth: testKey, body: manyEvents}, 413, "max_batch_events"},
		{"batch missing", Config{}, request{path: "/v1/batch", auth: testKey, body: `{"events":[]}`}, 400, `"batch"`},
		{"batch not array", Config{}, request{path: "/v1/batch", auth: testKey, body: `{"batch":{"type":"track"}}`}, 400, `"batch"`},
		{"batch context not object", Config{}, request{path: "/v1/batch", auth: testKey, body: `{"batch":[],"context":[1]}`}, 400, "top-level context"},
		{"batch integrations not object", Config{}, request{path: "/v1/batch", auth: testKey, body: `{"batch":[],"integrations":true}`}, 400, "top-level integrations"},
		{"batch sentAt bad", Config{}, request{path: "/v1/batch", auth: testKey, body: `{"batch":[],"sentAt":"now"}`}, 400, "sentAt"},
		{"only invalid events", Config{}, request{path: "/v1/batch", auth: testKey, body: `{"batch":[{"type":"track","userId":"u"}]}`}, 400, "batch[0]: track needs event"},
		{"brotli", Config{}, request{path: "/v1/track", auth: testKey, header: map[string]string{"Content-Encoding": "br"}, body: `{}`}, 415, "Content-Encoding"},
		{"not gzip", Config{}, request{path: "/v1/track", auth: testKey, header: map[string]string{"Content-Encoding": "gzip"}, body: `{"userId":"u","event":"e"}`}, 400, "not valid gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := newTestServer(t, tt.cfg)
			resp := do(t, s, tt.req)
			if resp.status != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.status, resp.body)
			}
			msg, _ := resp.json["error"].(string)
			if !strings.Contains(msg, tt.errHas) {
				t.Errorf("error %q does not mention %q", msg, tt.errHas)
			}
			if resp.status == 405 && string(resp.header.Peek("Allow")) != "POST, OPTIONS" {
				t.Errorf("405 without Allow: POST, OPTIONS (got %q)", resp.header.Peek("Allow"))
			}
			if n := len(rec.events()); n != 0 {
				t.Errorf("a refused request handed %d events to Accept", n)
			}
		})
	}
}

func TestWriteKeys(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	for _, r := range []request{
		{path: "/v1/track", header: map[string]string{"Authorization": basic(otherKey, "ignored-password")}, body: `{"userId":"u","event":"basic"}`},
		{path: "/v1/track", body: `{"writeKey":"wk-web-old","userId":"u","event":"body"}`},
		{path: "/v1/batch", body: `{"writeKey":"` + testKey + `","batch":[{"type":"track","userId":"u","event":"batch","writeKey":"x"}]}`},
	} {
		if resp := do(t, s, r); resp.status != 200 {
			t.Fatalf("%s answered %d %s", r.body, resp.status, resp.body)
		}
	}
	want := []string{"app", "web", "web"}
	for i, c := range rec.calls {
		if c.source != want[i] {
			t.Errorf("call %d from source %q, want %q", i, c.source, want[i])
		}
		if strings.Contains(c.raw[0], "writeKey") {
			t.Errorf("stored event keeps writeKey: %s", c.raw[0])
		}
	}
}

func TestGzip(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	body := `{"batch":[{"type":"track","userId":"u","event":"zipped"},{"type":"identify","anonymousId":"a"}]}`
	resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: body, gzipBody: true})
	if resp.status != 200 {
		t.Fatalf("answered %d %s", resp.status, resp.body)
	}
	evs := rec.events()
	if len(evs) != 2 || evs[0]["event"] != "zipped" || evs[1]["type"] != "identify" {
		t.Fatalf("accepted %v", evs)
	}
}

func TestGzipBomb(t *testing.T) {
	// 64 MiB of zeros compress to about 64 KiB: inflation must stop at the
	// limit instead of allocating it all.
	s, _ := newTestServer(t, Config{MaxEventBytes: 1 << 10})
	bomb := gz(t, make([]byte, 64<<20))
	var req request
	req.path = "/v1/track"
	req.auth = testKey
	req.header = map[string]string{"Content-Encoding": "gzip"}
	req.body = string(bomb)
	resp := do(t, s, req)
	if resp.status != 413 {
		t.Fatalf("answered %d %s, want 413", resp.status, resp.body)
	}
	// Inflating it all would allocate 64 MiB at least.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	do(t, s, req)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("answering a gzip bomb allocated %d bytes; inflation should stop at the limit", n)
	}
}

func TestClockSkew(t *testing.T) {
	tests := []struct {
		name, fields          string
		wantTS, wantOrig      string // wantOrig "" means absent
		wantSentAt            string
		batchSentAt, batchCtx string
	}{
		{
			name:   "client clock 10s fast, 2s in the client's queue",
			fields: `"timestamp":"2024-05-01T12:00:08Z","sentAt":"2024-05-01T12:00:10Z"`,
			wantTS: "2024-05-01T11:59:58.000Z", wantOrig: "2024-05-01T12:00:08Z", wantSentAt: "2024-05-01T12:00:10Z",
		},
		{
			name:   "client clock an hour slow, in another zone, with milliseconds",
			fields: `"originalTimestamp":"2024-05-01T12:59:59.250+02:00","sentAt":"2024-05-01T13:00:00.000+02:00"`,
			wantTS: "2024-05-01T11:59:59.250Z", wantOrig: "2024-05-01T12:59:59.250+02:00", wantSentAt: "2024-05-01T13:00:00.000+02:00",
		},
		{
			name:   "originalTimestamp wins over timestamp",
			fields: `"originalTimestamp":"2024-05-01T10:00:00Z","timestamp":"2020-01-01T00:00:00Z","sentAt":"2024-05-01T10:00:05Z"`,
			wantTS: "2024-05-01T11:59:55.000Z", wantOrig: "2024-05-01T10:00:00Z", wantSentAt: "2024-05-01T10:00:05Z",
		},
		{
			name:   "no sentAt: the client's timestamp as is",
			fields: `"timestamp":"2023-01-02T03:04:05.678901+01:00"`,
			wantTS: "2023-01-02T02:04:05.678Z", wantOrig: "2023-01-02T03:04:05.678901+01:00",
		},
		{
			name:   "no timestamp: receivedAt",
			fields: `"sentAt":"2024-05-01T12:00:10Z"`,
			wantTS: testNowString, wantSentAt: "2024-05-01T12:00:10Z",
		},
		{
			name:   "nothing: receivedAt",
			wantTS: testNowString,
		},
		{
			name:   "the batch's sentAt corrects its events",
			fields: `"timestamp":"2024-05-01T12:00:00Z"`, batchSentAt: `"2024-05-01T12:00:30Z"`,
			wantTS: "2024-05-01T11:59:30.000Z", wantOrig: "2024-05-01T12:00:00Z", wantSentAt: "2024-05-01T12:00:30Z",
		},
		{
			name:   "a timestamp with an offset, a sentAt without: not corrected",
			fields: `"timestamp":"2024-05-01 14:00:00+0200","sentAt":"2024-05-01T14:00:04"`,
			wantTS: "2024-05-01T12:00:00.000Z", wantOrig: "2024-05-01 14:00:00+0200", wantSentAt: "2024-05-01T14:00:04",
		},
		{
			name:   "both without an offset: the same clock, corrected",
			fields: `"timestamp":"2024-05-01T14:00:00","sentAt":"2024-05-01T14:00:10"`,
			wantTS: "2024-05-01T11:59:50.000Z", wantOrig: "2024-05-01T14:00:00", wantSentAt: "2024-05-01T14:00:10",
		},
		{
			name:   "a sentAt without a time: not corrected",
			fields: `"timestamp":"2024-05-01T15:00:00Z","sentAt":"2024-05-01"`,
			wantTS: "2024-05-01T15:00:00.000Z", wantOrig: "2024-05-01T15:00:00Z", wantSentAt: "2024-05-01",
		},
		{
			name:   "a timestamp without a time: not corrected",
			fields: `"timestamp":"2024-04-30","sentAt":"2024-05-01T12:00:00Z"`,
			wantTS: "2024-04-30T00:00:00.000Z", wantOrig: "2024-04-30", wantSentAt: "2024-05-01T12:00:00Z",
		},
		{
			name:   "the event's sentAt wins over the batch's",
			fields: `"timestamp":"2024-05-01T12:00:00Z","sentAt":"2024-05-01T12:00:01Z"`, batchSentAt: `"2024-05-01T12:00:30Z"`,
			wantTS: "2024-05-01T11:59:59.000Z", wantOrig: "2024-05-01T12:00:00Z", wantSentAt: "2024-05-01T12:00:01Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rec := newTestServer(t, Config{})
			ev := `{"type":"track","userId":"u","event":"e"`
			if tt.fields != "" {
				ev += "," + tt.fields
			}
			ev += "}"
			body := `{"batch":[` + ev + `]`
			if tt.batchSentAt != "" {
				body += `,"sentAt":` + tt.batchSentAt
			}
			body += "}"
			if resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: body}); resp.status != 200 {
				t.Fatalf("answered %d %s", resp.status, resp.body)
			}
			got := rec.events()[0]
			if got["timestamp"] != tt.wantTS {
				t.Errorf("timestamp %v, want %s", got["timestamp"], tt.wantTS)
			}
			if orig, ok := got["originalTimestamp"]; (tt.wantOrig == "" && ok) || (tt.wantOrig != "" && orig != tt.wantOrig) {
				t.Errorf("originalTimestamp %v, want %q", orig, tt.wantOrig)
			}
			if sent, ok := got["sentAt"]; (tt.wantSentAt == "" && ok) || (tt.wantSentAt != "" && sent != tt.wantSentAt) {
				t.Errorf("sentAt %v, want %q", sent, tt.wantSentAt)
			}
			if got["receivedAt"] != testNowString {
				t.Errorf("receivedAt %v, want %s", got["receivedAt"], testNowString)
			}
		})
	}
}

func TestBatchContextMerge(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	body := `{
		"batch": [
			{"type":"track","userId":"u","event":"own",
			 "context":{"library":{"name":"own-lib"},"consent":{"categoryPreferences":{"C0004":true}}},
			 "integrations":{"Amplitude":false}},
			{"type":"identify","userId":"u"},
			{"type":"page","userId":"u","context":{ }, "integrations":null}
		],
		"context": {"library":{"name":"analytics-go","version":"3.3.0"},"ip":"192.0.2.1"},
		"integrations": {"All":false,"Amplitude":true,"Webhook":true}
	}`
	if resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: body}); resp.status != 200 {
		t.Fatalf("answered %d %s", resp.status, resp.body)
	}
	evs := rec.events()
	if len(evs) != 3 {
		t.Fatalf("accepted %d events, want 3", len(evs))
	}
	ctx0 := evs[0]["context"].(map[string]any)
	if lib := ctx0["library"].(map[string]any); lib["name"] != "own-lib" || lib["version"] != nil {
		t.Errorf("event's own context.library = %v; want it kept whole (one-level merge)", lib)
	}
	if ctx0["ip"] != "192.0.2.1" {
		t.Errorf("batch context.ip not merged: %v", ctx0)
	}
	if c := ctx0["consent"].(map[string]any)["categoryPreferences"].(map[string]any); c["C0004"] != true {
		t.Errorf("consent lost: %v", ctx0)
	}
	if in := evs[0]["integrations"].(map[string]any); in["Amplitude"] != false || in["All"] != false || in["Webhook"] != true {
		t.Errorf("integrations %v, want own Amplitude:false plus the batch's All and Webhook", in)
	}
	for i := 1; i < 3; i++ {
		c := evs[i]["context"].(map[string]any)
		if c["ip"] != "192.0.2.1" || c["library"].(map[string]any)["name"] != "analytics-go" {
			t.Errorf("event %d context %v, want the batch's", i, c)
		}
		if in := evs[i]["integrations"].(map[string]any); len(in) != 3 {
			t.Errorf("event %d integrations %v, want the batch's", i, in)
		}
	}
}

// TestConsentFirst: the stored event has its integrations before its
// context, and context.consent first in its context (from the event's own
// context, else from the batch's), the other members in their order.
func TestConsentFirst(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	body := `{"batch":[
		{"type":"track","userId":"u","event":"e","context":{"ip":"192.0.2.7","library":{"name":"l"},"consent":{"categoryPreferences":{"A":true}}},"integrations":{"All":true}},
		{"type":"track","userId":"u","event":"e","context":{"ip":"192.0.2.7"}},
		{"type":"track","userId":"u","event":"e"},
		{"type":"track","userId":"u","event":"e","context":{"consent":{"categoryPreferences":{"A":false}},"ip":"192.0.2.8"}}
	],"context":{"locale":"fr-FR","consent":{"categoryPreferences":{"B":true}}}}`
	if resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: body}); resp.status != 200 {
		t.Fatalf("answered %d %s", resp.status, resp.body)
	}
	want := []string{
		`"integrations":{"All":true},"context":{"consent":{"categoryPreferences":{"A":true}},"ip":"192.0.2.7","library":{"name":"l"},"locale":"fr-FR"}`,
		`"context":{"consent":{"categoryPreferences":{"B":true}},"ip":"192.0.2.7","locale":"fr-FR"}`,
		`"context":{"consent":{"categoryPreferences":{"B":true}},"locale":"fr-FR"}`,
		`"context":{"consent":{"categoryPreferences":{"A":false}},"ip":"192.0.2.8","locale":"fr-FR"}`,
	}
	raws := rec.calls[0].raw
	if len(raws) != len(want) {
		t.Fatalf("accepted %d events, want %d", len(raws), len(want))
	}
	for i, w := range want {
		if !strings.Contains(raws[i], w) {
			t.Errorf("event %d stored as %s; want it to contain %s", i, raws[i], w)
		}
	}
}

func TestIntegrationsNotMaterialized(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	do(t, s, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e"}`})
	if raw := rec.calls[0].raw[0]; strings.Contains(raw, "integrations") || strings.Contains(raw, "context") {
		t.Fatalf("stored %s; absent context and integrations should stay absent", raw)
	}
}

func TestBatchWithInvalidEvents(t *testing.T) {
	body := `{"batch":[
		{"type":"track","userId":"u","event":"ok-0"},
		{"type":"track","event":"no-ids"},
		{"type":"bogus","userId":"u"},
		{"userId":"u","event":"no-type"},
		"not an object",
		{"type":"identify","userId":"u","traits":{"pad":"` + strings.Repeat("z", 100) + `"}},
		{"type":"track","userId":"u","event":"ok-6"}
	]}`
	wantRejected := []struct {
		index  int
		status int
		errHas string
	}{
		{1, 400, "userId or anonymousId"},
		{2, 400, "type must be one of"},
		{3, 400, "missing type"},
		{4, 400, "not a JSON object"},
		{5, 413, "max_event_bytes"},
	}

	t.Run("lenient: the valid events are accepted", func(t *testing.T) {
		s, rec := newTestServer(t, Config{MaxEventBytes: 100})
		resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: body})
		if resp.status != 200 {
			t.Fatalf("answered %d %s", resp.status, resp.body)
		}
		evs := rec.events()
		if len(evs) != 2 || evs[0]["event"] != "ok-0" || evs[1]["event"] != "ok-6" {
			t.Fatalf("accepted %v, want ok-0 and ok-6", evs)
		}
		rej, _ := resp.json["rejected"].([]any)
		if len(rej) != len(wantRejected) {
			t.Fatalf("rejected %v, want %d entries", resp.json["rejected"], len(wantRejected))
		}
		for i, w := range wantRejected {
			r := rej[i].(map[string]any)
			if r["index"] != float64(w.index) || r["status"] != float64(w.status) || !strings.Contains(r["error"].(string), w.errHas) {
				t.Errorf("rejected[%d] = %v, want index %d status %d error mentioning %q", i, r, w.index, w.status, w.errHas)
			}
		}
		if st := s.Stats(); st.Events != 7 || st.Accepted != 2 || st.Rejected.InvalidEvents != 5 {
			t.Errorf("stats %+v; want 7 events, 2 accepted, 5 invalid", st)
		}
	})

	t.Run("strict: nothing is accepted", func(t *testing.T) {
		s, rec := newTestServer(t, Config{MaxEventBytes: 100, StrictBatch: true})
		resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: body})
		if resp.status != 400 || !strings.HasPrefix(resp.json["error"].(string), "batch[1]: missing userId") {
			t.Fatalf("answered %d %s, want 400 naming batch[1]", resp.status, resp.body)
		}
		if n := len(rec.events()); n != 0 {
			t.Fatalf("strict batch accepted %d events", n)
		}
	})
}

func TestEmptyBatch(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	if resp := do(t, s, request{path: "/v1/import", auth: testKey, body: `{"batch":[]}`}); resp.status != 200 {
		t.Fatalf("answered %d %s", resp.status, resp.body)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("Accept called for an empty batch")
	}
}

func TestMessageID(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	body := `{"batch":[
		{"type":"track","userId":"u","event":"e"},
		{"type":"track","userId":"u","event":"e","messageId":""},
		{"type":"track","userId":"u","event":"e","messageId":"client-id-1"}
	]}`
	do(t, s, request{path: "/v1/batch", auth: testKey, body: body})
	evs := rec.events()
	gen := regexp.MustCompile(`^ifn-[0-9a-f]{32}$`)
	if !gen.MatchString(evs[0]["messageId"].(string)) || !gen.MatchString(evs[1]["messageId"].(string)) {
		t.Errorf("generated messageIds %v, %v; want ifn- and 32 hex digits", evs[0]["messageId"], evs[1]["messageId"])
	}
	if evs[0]["messageId"] == evs[1]["messageId"] {
		t.Errorf("two generated messageIds are equal: %v", evs[0]["messageId"])
	}
	if evs[2]["messageId"] != "client-id-1" {
		t.Errorf("client messageId replaced: %v", evs[2]["messageId"])
	}
	// 100 characters (not bytes) is the limit.
	id := strings.Repeat("é", 100)
	if resp := do(t, s, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e","messageId":"` + id + `"}`}); resp.status != 200 {
		t.Errorf("a 100-character messageId answered %d %s", resp.status, resp.body)
	}
}

func TestDuplicateMembersFirstWins(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	do(t, s, request{path: "/v1/track", auth: testKey,
		body: `{"userId":"first","event":"e","userId":"second","context":{"a":1},"context":{"b":2}}`})
	raw := rec.calls[0].raw[0]
	if strings.Contains(raw, "second") || strings.Contains(raw, `"b"`) {
		t.Fatalf("stored %s; later duplicates of a member must be dropped", raw)
	}
	if rec.events()[0]["userId"] != "first" {
		t.Fatalf("userId %v, want first", rec.events()[0]["userId"])
	}
}

func TestDedupe(t *testing.T) {
	batch := func(ids ...string) string {
		var evs []string
		for _, id := range ids {
			evs = append(evs, `{"type":"track","userId":"u","event":"e","messageId":"`+id+`"}`)
		}
		return `{"batch":[` + strings.Join(evs, ",") + `]}`
	}
	ids := func(rec *recorder) []string {
		var out []string
		for _, e := range rec.events() {
			out = append(out, e["messageId"].(string))
		}
		return out
	}

	t.Run("a retried batch is accepted once", func(t *testing.T) {
		s, rec := newTestServer(t, Config{})
		for range 2 {
			if resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: batch("a", "b")}); resp.status != 200 {
				t.Fatalf("answered %d %s", resp.status, resp.body)
			}
		}
		do(t, s, request{path: "/v1/batch", auth: testKey, body: batch("b", "c", "c")})
		if got := strings.Join(ids(rec), ","); got != "a,b,c" {
			t.Fatalf("accepted %s, want a,b,c", got)
		}
		if len(rec.calls) != 2 {
			t.Errorf("Accept called %d times, want 2 (never for an all-duplicate batch)", len(rec.calls))
		}
		if st := s.Stats(); st.Duplicates != 4 || st.Accepted != 3 {
			t.Errorf("stats %+v, want 4 duplicates and 3 accepted", st)
		}
	})

	t.Run("windows are per source", func(t *testing.T) {
		s, rec := newTestServer(t, Config{})
		do(t, s, request{path: "/v1/batch", auth: testKey, body: batch("a")})
		do(t, s, request{path: "/v1/batch", auth: otherKey, body: batch("a")})
		if len(rec.events()) != 2 {
			t.Fatalf("accepted %v; the same id from two sources is two events", ids(rec))
		}
	})

	t.Run("the window forgets the oldest", func(t *testing.T) {
		s, rec := newTestServer(t, Config{DedupeWindow: 2})
		for _, id := range []string{"a", "b", "c", "a", "c"} {
			do(t, s, request{path: "/v1/batch", auth: testKey, body: batch(id)})
		}
		if got := strings.Join(ids(rec), ","); got != "a,b,c,a" {
			t.Fatalf("accepted %s, want a,b,c,a", got)
		}
	})

	t.Run("off", func(t *testing.T) {
		s, rec := newTestServer(t, Config{DedupeWindow: -1})
		do(t, s, request{path: "/v1/batch", auth: testKey, body: batch("a", "a")})
		if len(rec.events()) != 2 {
			t.Fatalf("accepted %v with dedupe off", ids(rec))
		}
	})

	t.Run("a refused request is not remembered", func(t *testing.T) {
		s, rec := newTestServer(t, Config{})
		rec.setErr(fmt.Errorf("queue: %w", ErrBackpressure))
		if resp := do(t, s, request{path: "/v1/batch", auth: testKey, body: batch("a")}); resp.status != 429 {
			t.Fatalf("answered %d, want 429", resp.status)
		}
		rec.setErr(nil)
		do(t, s, request{path: "/v1/batch", auth: testKey, body: batch("a")})
		if len(rec.events()) != 1 {
			t.Fatalf("the retry of a refused event was taken for a duplicate")
		}
	})
}

func TestAccepterErrors(t *testing.T) {
	s, rec := newTestServer(t, Config{RetryAfter: 1500 * time.Millisecond})
	rec.setErr(fmt.Errorf("appending to the queue: %w", ErrBackpressure))
	resp := do(t, s, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e"}`})
	if resp.status != 429 || string(resp.header.Peek("Retry-After")) != "2" {
		t.Errorf("backpressure answered %d Retry-After %q, want 429 and 2", resp.status, resp.header.Peek("Retry-After"))
	}
	rec.setErr(errors.New("disk on fire"))
	resp = do(t, s, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e"}`})
	if resp.status != 500 || strings.Contains(string(resp.body), "fire") {
		t.Errorf("failure answered %d %s, want 500 without the internal error", resp.status, resp.body)
	}
	st := s.Stats()
	if st.Rejected.Backpressure != 1 || st.Rejected.StoreFailed != 1 || st.Accepted != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestStats(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	do(t, s, request{path: "/v1/track", auth: testKey, body: `{"userId":"u","event":"e"}`})
	do(t, s, request{path: "/nope"})
	do(t, s, request{method: "GET", path: "/v1/track"})
	do(t, s, request{path: "/v1/track", body: `{}`})
	do(t, s, request{path: "/v1/track", auth: testKey, body: `{`})
	do(t, s, request{path: "/v1/track", auth: testKey, body: `{"event":"e"}`})
	do(t, s, request{path: "/v1/batch", auth: testKey, body: `{"batch":[{},{},{}]}`, header: nil})
	want := Stats{Requests: 7, Events: 5, Accepted: 1, Rejected: Rejections{
		NotFound: 1, MethodNotAllowed: 1, Unauthorized: 1, Malformed: 1, InvalidEvents: 4,
	}}
	if got := s.Stats(); got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
}

func TestNewChecksConfig(t *testing.T) {
	acc := AccepterFunc(func(context.Context, string, [][]byte) error { return nil })
	tests := []struct {
		name    string
		cfg     Config
		sources []Source
		acc     Accepter
		errHas  string
	}{
		{"no sources", Config{}, nil, acc, "no source"},
		{"nil accepter", Config{}, testSources, nil, "Accepter is nil"},
		{"unnamed source", Config{}, []Source{{WriteKeys: []string{"k"}}}, acc, `sources[0]: name: "": want 1-128`},
		{"no key", Config{}, []Source{{Name: "s"}}, acc, "write_keys: at least one write key is needed"},
		{"empty key", Config{}, []Source{{Name: "s", WriteKeys: []string{""}}}, acc, "write_keys[0]: empty"},
		{"shared key", Config{}, []Source{{Name: "a", WriteKeys: []string{"k"}}, {Name: "b", WriteKeys: []string{"k"}}}, acc, "share a write key"},
		{"same name", Config{}, []Source{{Name: "a", WriteKeys: []string{"k"}}, {Name: "a", WriteKeys: []string{"l"}}}, acc, "defined twice"},
		{"negative limit", Config{MaxBatchBytes: -1}, testSources, acc, "max_batch_bytes"},
		{"negative timeout", Config{ReadTimeout: -time.Second}, testSources, acc, "read_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.sources, tt.acc)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("New error %v, want one mentioning %q", err, tt.errHas)
			}
		})
	}
	s, err := New(Config{}, testSources, acc)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Config(); c.Listen != DefaultListen || c.MaxEventBytes != 32768 || c.MaxBatchBytes != 512000 || c.MaxBatchEvents != 2500 || c.DedupeWindow != DefaultDedupeWindow {
		t.Fatalf("zero Config filled as %+v", c)
	}
}

// TestParseTimeField: a time member is read by segment.ParseTime (its
// forms are tested there, and against the consent store in internal/app's
// TestTimestampFormsAgree) when it is a string, and refused otherwise.
func TestParseTimeField(t *testing.T) {
	for _, raw := range []string{`"2024-05-01T14:00:00.250+0200"`, `"2024-05-01"`, `"yesterday"`, `1714564800`, `null`, `true`, `{}`} {
		got, form := parseTimeField(gjson.Parse(raw))
		want, wantForm := time.Time{}, segment.TimeInvalid
		if r := gjson.Parse(raw); r.Type == gjson.String {
			want, wantForm = segment.ParseTime(r.Str)
		}
		if form != wantForm || !got.Equal(want) {
			t.Errorf("parseTimeField(%s) = %v, form %d; want %v, form %d", raw, got, form, want, wantForm)
		}
	}
	if _, form := parseTimeField(gjson.Parse(`"2024-05-01T12:00:00Z"`)); form != segment.TimeZoned {
		t.Error("an RFC 3339 string was refused")
	}
}

// peersTo is DedupePeers that hands every accepted id to other hosts at
// once, as the cluster's bus does a moment later.
type peersTo struct {
	mu     sync.Mutex
	others []*Server
	told   int
}

func (p *peersTo) Accepted(source string, ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.told += len(ids)
	for _, o := range p.others {
		o.RememberAccepted(source, ids)
	}
}

// TestDedupeAcrossHosts: an event accepted by one host of a cluster is a
// duplicate when a retry of it reaches another, for the same source only.
func TestDedupeAcrossHosts(t *testing.T) {
	peersA, peersB := &peersTo{}, &peersTo{}
	a, recA := newTestServer(t, Config{}, WithDedupePeers(peersA))
	b, recB := newTestServer(t, Config{}, WithDedupePeers(peersB))
	peersA.others, peersB.others = []*Server{b}, []*Server{a}
	body := `{"batch":[{"type":"track","userId":"u","event":"e","messageId":"m1"},{"type":"track","userId":"u","event":"e"}]}`
	if resp := do(t, a, request{path: "/v1/batch", auth: testKey, body: body}); resp.status != 200 {
		t.Fatalf("A answered %d", resp.status)
	}
	if resp := do(t, b, request{path: "/v1/batch", auth: testKey, body: body}); resp.status != 200 {
		t.Fatalf("B answered %d", resp.status)
	}
	if n := len(recA.events()); n != 2 {
		t.Fatalf("A accepted %d events, want 2", n)
	}
	if evs := recB.events(); len(evs) != 1 || evs[0]["messageId"] == "m1" {
		t.Errorf("B accepted %v, want only the event without a client messageId", evs)
	}
	if st := b.Stats(); st.Duplicates != 1 {
		t.Errorf("B's stats %+v, want 1 duplicate", st)
	}
	if peersA.told != 1 {
		t.Errorf("A told its peers %d ids, want 1 (the client's messageId only)", peersA.told)
	}
	// Another source's window is its own.
	do(t, b, request{path: "/v1/batch", auth: otherKey, body: body})
	if n := len(recB.events()); n != 3 {
		t.Errorf("B accepted %d events after the other source's batch, want 3", n)
	}
}
