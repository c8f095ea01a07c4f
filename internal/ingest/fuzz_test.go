package ingest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/insertfn/insertfn/sdk/segment"
)

var fuzzPaths = []string{"/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/import", "/v2/x"}

// FuzzHandler sends arbitrary bodies to every route: the handler never
// panics, always answers a JSON object whose success matches the status,
// and every event it accepts is a JSON object carrying what the stored
// form promises.
func FuzzHandler(f *testing.F) {
	seeds := []string{
		`{"batch":[{"type":"track","userId":"u","event":"e"}],"context":{"a":1},"integrations":{"All":true},"sentAt":"2024-05-01T12:00:00Z"}`,
		`{"userId":"u","event":"e","previousId":"p","groupId":"g","timestamp":"2024-05-01T11:00:00.5+01:00","sentAt":"2024-05-01T12:00:00Z"}`,
		`{"userId":1,"event":"e","context":{"b":[1,{"c":"\u0041"}]},"context":null,"messageId":"m"}`,
		`{"batch":[{"type":"alias","anonymousId":"a","previousId":"p","context":{}},1,"x",null,{}]}`,
		`{"\u0075serId":"u","event":"e","userId":"v"}`,
		`{"userId":"u","event":"e","context":{"consent":{"a":1,"a":2},"con\u0073ent":3},"x":"\xff"}`,
		"{\"batch\":[{\"type\":\"group\",\"userId\":1.5e1,\"groupId\":2E0,\"p\":{\"\xfe\":1,\"\xff\":2}}]}",
		`{"batch":[]}`, `[]`, `{`, ``, `{"userId":"u","event":"e","integrations":{ }}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), false, []byte(s))
	}
	f.Add(uint8(0), true, gz(f, []byte(seeds[0])))
	s, err := New(Config{MaxEventBytes: 1 << 10, MaxBatchBytes: 8 << 10, MaxBatchEvents: 20, DedupeWindow: 16}, testSources, AccepterFunc(acceptChecked))
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, route uint8, gzipped bool, body []byte) {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI(fuzzPaths[int(route)%len(fuzzPaths)])
		if route&0x80 == 0 {
			req.Header.Set("Authorization", basic(testKey, ""))
		}
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.SetBody(body)
		ctx.Init(&req, nil, nil)
		h(&ctx)
		var m map[string]any
		if err := json.Unmarshal(ctx.Response.Body(), &m); err != nil {
			t.Fatalf("answer %d is not a JSON object: %q", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		if ok, isBool := m["success"].(bool); !isBool || ok != (ctx.Response.StatusCode() == 200) {
			t.Fatalf("status %d with %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
}

// acceptChecked panics (failing the fuzz run) if an accepted event lacks
// what normalization promises.
func acceptChecked(_ context.Context, _ string, events [][]byte) error {
	for _, e := range events {
		var m map[string]any
		if err := json.Unmarshal(e, &m); err != nil {
			panic("accepted an event that is not a JSON object: " + err.Error() + ": " + string(e))
		}
		typ, _ := m["type"].(string)
		if segment.ParseCall(typ) == segment.Other {
			panic("accepted an event without a valid type: " + string(e))
		}
		if lt, ok := segment.LeadingType(e); !ok || lt.String() != typ {
			panic("accepted an event whose type the host cannot read first (segment.LeadingType): " + string(e))
		}
		id, _ := m["messageId"].(string)
		if id == "" || m["receivedAt"] != nil && !strings.HasSuffix(m["receivedAt"].(string), "Z") {
			panic("accepted an event without messageId or a UTC receivedAt: " + string(e))
		}
		if _, ok := m["timestamp"].(string); !ok {
			panic("accepted an event without timestamp: " + string(e))
		}
		if _, ok := m["writeKey"]; ok {
			panic("accepted an event that keeps writeKey: " + string(e))
		}
		if m["userId"] == nil && m["anonymousId"] == nil {
			panic("accepted an event without userId or anonymousId: " + string(e))
		}
		for _, f := range []string{"userId", "anonymousId", "previousId", "groupId"} {
			if _, isNumber := m[f].(float64); isNumber {
				panic("accepted an event whose " + f + " is still a number: " + string(e))
			}
		}
		var x bodyIndex
		if !scanBody(string(e), &x) || x.unclean || !utf8.Valid(e) {
			panic("accepted an event that repeats a name or is not UTF-8: " + string(e))
		}
		if c := gjson.GetBytes(e, "context"); c.IsObject() && c.Get("consent").Exists() {
			first := ""
			c.ForEach(func(k, _ gjson.Result) bool { first = k.Str; return false })
			if first != "consent" {
				panic("accepted an event whose context.consent is not first: " + string(e))
			}
		}
		if c, i := gjson.GetBytes(e, "context"), gjson.GetBytes(e, "integrations"); c.Exists() && i.Exists() && i.Index > c.Index {
			panic("accepted an event whose integrations come after its context: " + string(e))
		}
	}
	return nil
}
