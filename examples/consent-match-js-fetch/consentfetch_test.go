// Package consentfetchjs_test runs the Segment-style consent function
// (index.js), which fetches stored consent from a consent service, in the
// real runtime against a local HTTP server standing in for that service.
package consentfetchjs_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insertfn/insertfn/functions"
	"github.com/insertfn/insertfn/internal/testkit/exampletest"
	"github.com/insertfn/insertfn/internal/wasmbuild"
	"github.com/insertfn/insertfn/runtime"
)

// service is the stand-in for the user's consent service: GET
// /v1/consent/{id}?source=segment with HTTP Basic auth (the key as user
// name), JSON answers; "down" answers 503.
type service struct {
	*httptest.Server
	requests atomic.Int64
}

var stored = map[string]string{
	"u1":       `{"categoryPreferences":{"Advertising":false,"Analytics":true}}`,
	"anon-9":   `{"categoryPreferences":{"Advertising":true}}`,
	"a b/c+d?": `{"categoryPreferences":{"Analytics":false}}`,
}

const apiKey = "k-123"

func newService(t testing.TB) *service {
	s := &service{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		user, _, ok := r.BasicAuth()
		switch {
		case !ok || user != apiKey:
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		case r.Method != http.MethodGet || r.URL.Query().Get("source") != "segment" || r.Header.Get("Accept") != "application/json":
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/consent/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if id == "down" {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		rec, ok := stored[id]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(rec))
	}))
	t.Cleanup(s.Close)
	return s
}

func load(tb testing.TB, opts runtime.Options) *runtime.Function {
	tb.Helper()
	code, err := os.ReadFile("index.js")
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = eng.Close(context.Background()) })
	opts.Name = "consent-match-js-fetch"
	// The first fetch of an instance compiles the web globals (web.js),
	// which a loaded machine may take a good part of a second to do.
	opts.Limits.Timeout = 10 * time.Second
	return exampletest.LoadJS(tb, eng, code, opts)
}

func settings(url, key string) []byte {
	b, _ := json.Marshal(map[string]string{"consentServiceUrl": url, "apiKey": key})
	return b
}

func event(typ, idKey, id, prefs string) string {
	e := `{"type":"` + typ + `","` + idKey + `":"` + id + `"`
	if prefs != "" {
		e += `,"context":{"consent":{"categoryPreferences":` + prefs + `}}`
	}
	return e + "}"
}

func TestConsentService(t *testing.T) {
	svc := newService(t)
	base := svc.URL + "/v1/"
	fetch := runtime.FetchPolicy{Allow: []string{base}, Timeout: 2 * time.Second}
	f := load(t, runtime.Options{Settings: settings(base, apiKey), Fetch: fetch})
	badKey := load(t, runtime.Options{Settings: settings(base, "wrong"), Fetch: fetch})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more
	down := load(t, runtime.Options{Settings: settings(closed.URL+"/v1/", apiKey),
		Fetch: runtime.FetchPolicy{Allow: []string{closed.URL + "/v1/"}}})
	notAllowed := load(t, runtime.Options{Settings: settings(base, apiKey)})
	elsewhere := load(t, runtime.Options{Settings: settings(base, apiKey),
		Fetch: runtime.FetchPolicy{Allow: []string{svc.URL + "/v2/"}}})

	for _, tc := range []struct {
		name     string
		f        *runtime.Function
		event    string
		verdict  runtime.Verdict
		kind     runtime.ErrorKind
		reason   string // a prefix of the reason
		requests int64  // the requests the service got for the event
	}{
		{name: "stored consent matches", f: f, event: event("track", "userId", "u1", `{"Advertising":false,"Analytics":true}`),
			verdict: runtime.Deliver, requests: 1},
		{name: "stored consent differs", f: f, event: event("track", "userId", "u1", `{"Advertising":true,"Analytics":true}`),
			verdict: runtime.Drop, reason: "Consent mismatch", requests: 1},
		{name: "an identify, by anonymousId", f: f, event: event("identify", "anonymousId", "anon-9", `{"Advertising":false}`),
			verdict: runtime.Drop, reason: "Consent mismatch", requests: 1},
		{name: "an id that needs escaping", f: f, event: event("page", "userId", "a b/c+d?", `{"Analytics":true}`),
			verdict: runtime.Drop, reason: "Consent mismatch", requests: 1},
		{name: "a category the service does not know", f: f, event: event("track", "userId", "u1", `{"Functional":true}`),
			verdict: runtime.Deliver, requests: 1},
		{name: "no stored record (404)", f: f, event: event("track", "userId", "stranger", `{"Advertising":true}`),
			verdict: runtime.Deliver, requests: 1},
		{name: "no consent on the event: no request", f: f, event: event("track", "userId", "u1", ""),
			verdict: runtime.Deliver, requests: 0},
		{name: "an unhandled type", f: f, event: event("alias", "userId", "u1", `{"Advertising":true}`),
			verdict: runtime.Fail, kind: runtime.KindEventNotSupported, reason: "alias is not supported", requests: 0},
		{name: "the service answers 503", f: f, event: event("track", "userId", "down", `{"Advertising":true}`),
			verdict: runtime.Fail, kind: runtime.KindRetry, reason: "Consent service answered 503", requests: 1},
		{name: "a wrong key (401)", f: badKey, event: event("track", "userId", "u1", `{"Advertising":true}`),
			verdict: runtime.Fail, kind: runtime.KindFunctionError, reason: "Error: Consent service answered 401 Unauthorized", requests: 1},
		{name: "the service is unreachable", f: down, event: event("track", "userId", "u1", `{"Advertising":true}`),
			verdict: runtime.Fail, kind: runtime.KindRetry, reason: "Consent service unreachable: fetch " + closed.URL, requests: 0},
		// The function catches fetch's TypeError and throws a RetryError;
		// the event fails as forbidden all the same.
		{name: "no fetch.allow", f: notAllowed, event: event("track", "userId", "u1", `{"Advertising":true}`),
			verdict: runtime.Fail, kind: runtime.KindFetchForbidden, reason: "fetch " + base + "consent/u1?source=segment: the function may not fetch anything", requests: 0},
		{name: "a fetch.allow elsewhere", f: elsewhere, event: event("track", "userId", "u1", `{"Advertising":true}`),
			verdict: runtime.Fail, kind: runtime.KindFetchForbidden, reason: "fetch " + base + "consent/u1?source=segment: not under an allowed prefix", requests: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2 { // the second time on an instance that served the first
				before := svc.requests.Load()
				var res runtime.Result
				err := tc.f.Invoke(context.Background(), []byte(tc.event), &res)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if res.Verdict != tc.verdict || res.Kind != tc.kind || !strings.HasPrefix(res.Reason, tc.reason) || (tc.reason == "" && res.Reason != "") {
					t.Errorf("round %d: %v %s %q, want %v %s %q", round, res.Verdict, res.Kind, res.Reason, tc.verdict, tc.kind, tc.reason)
				}
				if tc.kind == runtime.KindFetchForbidden && !strings.Contains(res.Reason, "fetch.allow") {
					t.Errorf("the reason does not name the setting: %q", res.Reason)
				}
				if res.Verdict == runtime.Deliver && (res.Modified || string(res.Event) != tc.event) {
					t.Errorf("round %d: the event changed: %s", round, res.Event)
				}
				if got := svc.requests.Load() - before; got != tc.requests {
					t.Errorf("round %d: the service got %d requests, want %d", round, got, tc.requests)
				}
			}
		})
	}

	// The mismatch's log line reaches the function's logs.
	var res runtime.Result
	if err := f.Invoke(context.Background(), []byte(event("track", "userId", "u1", `{"Advertising":true}`)), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1 || res.Logs[0].Message != "u1: Advertising is true in the event, false stored" {
		t.Errorf("logs %+v", res.Logs)
	}
}

// TestThroughTheRegistry deploys the function as a manifest says it,
// fetch.allow included, and runs an event through the failure policy.
func TestThroughTheRegistry(t *testing.T) {
	svc := newService(t)
	base := svc.URL + "/v1/"
	code, err := os.ReadFile("index.js")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.NewEngine(runtime.Config{CacheDir: wasmbuild.CompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	reg := functions.NewRegistry(eng, nil)
	defer reg.Close(context.Background())
	m := functions.Manifest{Name: "consent-fetch", Wasm: "index.js", Settings: settings(base, apiKey),
		Fetch: functions.ManifestFetch{Allow: []string{base}}, Limits: functions.ManifestLimits{Timeout: functions.Duration{Duration: 10 * time.Second}}}
	ctx := context.Background()
	if _, err := reg.Deploy(ctx, m, code); errors.Is(err, runtime.ErrNoJSEngine) {
		if os.Getenv("INSERTFN_REQUIRE_NODE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	var out functions.Outcome
	if err := reg.Run(ctx, "consent-fetch", []byte(event("track", "userId", "u1", `{"Advertising":true}`)), &out); err != nil {
		t.Fatal(err)
	}
	if out.Deliver || out.Reason != "Consent mismatch" {
		t.Errorf("outcome %+v, want a drop for Consent mismatch", out)
	}
}

// BenchmarkFetchPath is the per-event time of the check over HTTP to a
// local service: the fetch path, beside consent-match-js's fast path.
func BenchmarkFetchPath(b *testing.B) {
	svc := newService(b)
	base := svc.URL + "/v1/"
	f := load(b, runtime.Options{Settings: settings(base, apiKey), Fetch: runtime.FetchPolicy{Allow: []string{base}}})
	ev := []byte(event("track", "userId", "u1", `{"Advertising":false,"Analytics":true}`))
	var res runtime.Result
	for b.Loop() {
		if err := f.Invoke(context.Background(), ev, &res); err != nil || res.Verdict != runtime.Deliver {
			b.Fatalf("%v %v %s", err, res.Verdict, res.Reason)
		}
	}
}
