package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testKey is the write key of the test source "web"; otherKey names "app".
const (
	testKey  = "wk-web"
	otherKey = "wk-app"
)

var testSources = []Source{
	{Name: "web", WriteKeys: []string{testKey, "wk-web-old"}},
	{Name: "app", WriteKeys: []string{otherKey}},
}

// testNow is the server's clock in tests: every receivedAt is this.
var testNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const testNowString = "2024-05-01T12:00:00.000Z"

// recorder is an Accepter that keeps copies of what it is given and
// answers err (nil: accept).
type recorder struct {
	mu    sync.Mutex
	calls []call
	err   error
}

type call struct {
	source string
	events []map[string]any
	raw    []string
}

func (r *recorder) Accept(_ context.Context, source string, events [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	c := call{source: source}
	for _, e := range events {
		var m map[string]any
		if err := json.Unmarshal(e, &m); err != nil {
			panic("server handed Accept an invalid JSON event: " + err.Error() + ": " + string(e))
		}
		c.events = append(c.events, m)
		c.raw = append(c.raw, string(e))
	}
	r.calls = append(r.calls, c)
	return nil
}

// events returns every event accepted so far, in order.
func (r *recorder) events() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []map[string]any
	for _, c := range r.calls {
		all = append(all, c.events...)
	}
	return all
}

func (r *recorder) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func newTestServer(t testing.TB, cfg Config, opts ...Option) (*Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts = append([]Option{WithClock(func() time.Time { return testNow })}, opts...)
	s, err := New(cfg, testSources, rec, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, rec
}

// request describes one call to the handler.
type request struct {
	method   string // default POST
	path     string
	auth     string // write key sent as Basic user name; "" sends no header
	header   map[string]string
	body     string
	gzipBody bool
}

// response is what the handler answered.
type response struct {
	status int
	body   []byte
	header *fasthttp.ResponseHeader
	json   map[string]any
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// do runs r through s's handler in memory and checks that the answer is
// a JSON object with a boolean success that matches its status.
func do(t testing.TB, s *Server, r request) response {
	t.Helper()
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	if r.method == "" {
		r.method = "POST"
	}
	req.Header.SetMethod(r.method)
	req.SetRequestURI(r.path)
	req.Header.SetContentType("application/json")
	if r.auth != "" {
		req.Header.Set("Authorization", basic(r.auth, ""))
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	body := []byte(r.body)
	if r.gzipBody {
		body = gz(t, body)
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.SetBody(body)
	ctx.Init(&req, nil, nil)
	s.Handler()(&ctx)
	resp := response{status: ctx.Response.StatusCode(), body: append([]byte(nil), ctx.Response.Body()...)}
	resp.header = &fasthttp.ResponseHeader{}
	ctx.Response.Header.CopyTo(resp.header)
	if err := json.Unmarshal(resp.body, &resp.json); err != nil {
		t.Fatalf("%s %s answered %d with a body that is not a JSON object: %v: %q", r.method, r.path, resp.status, err, resp.body)
	}
	ok, isBool := resp.json["success"].(bool)
	if !isBool || ok != (resp.status == 200) {
		t.Fatalf("%s %s answered %d with success=%v: %s", r.method, r.path, resp.status, resp.json["success"], resp.body)
	}
	if ct := string(ctx.Response.Header.ContentType()); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	return resp
}
